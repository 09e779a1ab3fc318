//! Where a window's CPU went, by part of the system: PostgreSQL, the sink, the fetcher, RabbitMQ,
//! Redis, the emulator, and the rest of the machine, from `/proc`.
//!
//! Two snapshots bracket the window: each process's user and system time (`/proc/<pid>/stat`,
//! all its threads, dead ones included) and the machine's idle time (`/proc/stat`). A process
//! counts from its first snapshot, or from zero if it started inside the window; one that ends
//! inside the window is not counted, which is why this is for the long-lived processes of a sync
//! (the sink's pooled PostgreSQL connections live as long as the sink).

use std::collections::HashMap;
use std::fmt;
use std::time::Instant;

/// `/proc` counts in USER_HZ, which Linux fixes at 100 on every architecture it exposes it on.
const TICKS_PER_SECOND: f64 = 100.0;

/// A part of the system, told by a process's name (`comm`, at most 15 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// Every `postgres` process: backends, WAL writer, checkpointer, autovacuum.
    Postgres,
    /// `pledgesync-sink`.
    Sink,
    /// `pledgesync-fetcher`.
    Fetcher,
    /// The Erlang VM that runs RabbitMQ (`beam.smp`) and its helpers.
    RabbitMq,
    /// `redis-server`.
    Redis,
    /// `zoho-emulator`: stands in for Zoho, which in production runs elsewhere.
    Emulator,
    /// Everything else that ran: the scheduler, the benchmark itself, the kernel's threads.
    Other,
}

impl Part {
    /// Every part, in the order they are printed.
    pub const ALL: [Part; 7] = [
        Part::Postgres,
        Part::Sink,
        Part::Fetcher,
        Part::RabbitMq,
        Part::Redis,
        Part::Emulator,
        Part::Other,
    ];

    /// The part a process of this `comm` belongs to.
    pub fn of(comm: &str) -> Part {
        match comm {
            "postgres" => Part::Postgres,
            "pledgesync-sink" => Part::Sink,
            // `comm` keeps the first 15 bytes of `pledgesync-fetcher`.
            "pledgesync-fetc" => Part::Fetcher,
            "beam.smp" | "erl_child_setup" | "epmd" | "inet_gethost" => Part::RabbitMq,
            "redis-server" => Part::Redis,
            "zoho-emulator" => Part::Emulator,
            _ => Part::Other,
        }
    }

    /// The suffix of its lines, e.g. `postgres` in `e2e_cpu_seconds_postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Part::Postgres => "postgres",
            Part::Sink => "sink",
            Part::Fetcher => "fetcher",
            Part::RabbitMq => "rabbitmq",
            Part::Redis => "redis",
            Part::Emulator => "emulator",
            Part::Other => "other",
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The counters at one moment.
pub struct Snapshot {
    /// When it was taken.
    at: Instant,
    /// Ticks of user and system time of each live process, with its part.
    processes: HashMap<u32, (Part, u64)>,
    /// Ticks the machine's CPUs spent idle (idle and iowait), summed over CPUs.
    idle_ticks: u64,
    /// Ticks the hypervisor ran something else while this machine wanted its CPUs.
    steal_ticks: u64,
    /// CPUs the idle and steal ticks are summed over (the `cpuN` lines of `/proc/stat`).
    cpus: usize,
}

impl Snapshot {
    /// Reads `/proc` now. Processes that vanish while being read are skipped.
    pub fn take() -> Snapshot {
        let mut processes = HashMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                if let Some(sample) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .as_deref()
                    .and_then(parse_process)
                {
                    processes.insert(pid, sample);
                }
            }
        }
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .as_deref()
            .and_then(parse_machine)
            .unwrap_or_default();
        Snapshot {
            at: Instant::now(),
            processes,
            idle_ticks: machine.idle_ticks,
            steal_ticks: machine.steal_ticks,
            cpus: machine.cpus,
        }
    }

    /// What happened between `self` and a later snapshot.
    pub fn until(&self, later: &Snapshot) -> Usage {
        let mut seconds: HashMap<Part, f64> = HashMap::new();
        for (pid, (part, ticks)) in &later.processes {
            let before = match self.processes.get(pid) {
                // A reused pid of another part is a new process.
                Some((old_part, old)) if old_part == part && old <= ticks => *old,
                Some(_) | None => 0,
            };
            *seconds.entry(*part).or_default() += (ticks - before) as f64 / TICKS_PER_SECOND;
        }
        Usage {
            wall_seconds: later.at.duration_since(self.at).as_secs_f64(),
            seconds,
            idle_seconds: later.idle_ticks.saturating_sub(self.idle_ticks) as f64
                / TICKS_PER_SECOND,
            steal_seconds: later.steal_ticks.saturating_sub(self.steal_ticks) as f64
                / TICKS_PER_SECOND,
            cpus: later.cpus,
        }
    }
}

/// CPU time spent in a window.
#[derive(Debug)]
pub struct Usage {
    /// The window's length.
    pub wall_seconds: f64,
    /// CPU seconds of each part that ran.
    seconds: HashMap<Part, f64>,
    /// CPU seconds the machine's CPUs were idle.
    pub idle_seconds: f64,
    /// CPU seconds the hypervisor gave to other guests while this one had work: time that
    /// slows a figure without any process here using it.
    pub steal_seconds: f64,
    /// CPUs the idle time is summed over.
    cpus: usize,
}

impl Usage {
    /// CPU seconds `part` used (0 if it did not run).
    pub fn seconds(&self, part: Part) -> f64 {
        self.seconds.get(&part).copied().unwrap_or(0.0)
    }

    /// The share of the machine's CPU time that stayed idle during the first `busy_seconds` of
    /// the window (a run, timed by its own timestamps). The rest of the window, the moments
    /// before the benchmark noticed the run's end, is taken as wholly idle and taken off.
    pub fn idle_share(&self, busy_seconds: f64) -> Option<f64> {
        let cpus = self.cpus as f64;
        let tail = (self.wall_seconds - busy_seconds).max(0.0);
        let idle = (self.idle_seconds - tail * cpus).max(0.0);
        let capacity = busy_seconds.min(self.wall_seconds) * cpus;
        (capacity > 0.0).then(|| (idle / capacity).clamp(0.0, 1.0))
    }
}

/// `(part, utime + stime)` of a `/proc/<pid>/stat` line. The name sits in parentheses and may
/// itself hold spaces and parentheses, so the fields are counted from the last `)`.
fn parse_process(stat: &str) -> Option<(Part, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    let mut fields = stat.get(close + 1..)?.split_ascii_whitespace();
    // After the name: state, ppid, pgrp, session, tty_nr, tpgid, flags, minflt, cminflt, majflt,
    // cmajflt, utime, stime.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((Part::of(comm), utime + stime))
}

/// The machine's counters in `/proc/stat`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Machine {
    /// Idle plus iowait ticks of the `cpu` line (all CPUs).
    idle_ticks: u64,
    /// Steal ticks of the `cpu` line.
    steal_ticks: u64,
    /// How many `cpuN` lines follow it.
    cpus: usize,
}

/// Reads the `cpu` line of `/proc/stat` and counts the CPUs it sums over.
fn parse_machine(stat: &str) -> Option<Machine> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let cpus = stat
        .lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    // user, nice, system, idle, iowait, irq, softirq, steal.
    let ticks: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .take(8)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    match ticks[..] {
        [_, _, _, idle, iowait, _, _, steal] => Some(Machine {
            idle_ticks: idle + iowait,
            steal_ticks: steal,
            cpus,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_lines_are_read_from_the_last_parenthesis() {
        let line = "4242 (pledgesync-sink) S 1 4242 4242 0 -1 4194560 1 0 0 0 150 37 0 0 20 0 9 0";
        assert_eq!(parse_process(line), Some((Part::Sink, 187)));
        let odd = "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0";
        assert_eq!(parse_process(odd), Some((Part::Other, 11)));
        assert_eq!(parse_process("garbage"), None);
        assert_eq!(parse_process("1 (x) S 1 2"), None);
    }

    #[test]
    fn names_map_to_parts() {
        assert_eq!(Part::of("postgres"), Part::Postgres);
        assert_eq!(Part::of("pledgesync-fetc"), Part::Fetcher);
        assert_eq!(Part::of("beam.smp"), Part::RabbitMq);
        assert_eq!(Part::of("zoho-emulator"), Part::Emulator);
        assert_eq!(Part::of("pledgesync-sche"), Part::Other);
    }

    #[test]
    fn idle_is_idle_plus_iowait_and_steal_is_apart() {
        let stat = "cpu  100 5 50 1000 20 0 3 9 0 0\ncpu0 50 2 25 500 10 0 1 4 0 0\n";
        assert_eq!(
            parse_machine(stat),
            Some(Machine {
                idle_ticks: 1020,
                steal_ticks: 9,
                cpus: 1
            })
        );
        assert_eq!(parse_machine("cpu  1 2 3"), None);
        assert_eq!(parse_machine("intr 1 2 3"), None);
    }

    #[test]
    fn usage_counts_new_processes_from_zero_and_ignores_reused_pids() {
        let at = Instant::now();
        let before = Snapshot {
            at,
            processes: HashMap::from([(1, (Part::Postgres, 100)), (2, (Part::Sink, 50))]),
            idle_ticks: 1_000,
            steal_ticks: 5,
            cpus: 2,
        };
        let after = Snapshot {
            at: at + std::time::Duration::from_secs(2),
            processes: HashMap::from([
                (1, (Part::Postgres, 250)),
                // Pid 2 now belongs to another program: all its time is in the window.
                (2, (Part::Redis, 7)),
                (3, (Part::Postgres, 30)),
            ]),
            idle_ticks: 1_100,
            steal_ticks: 25,
            cpus: 2,
        };
        let usage = before.until(&after);
        assert!((usage.seconds(Part::Postgres) - 1.8).abs() < 1e-9);
        assert!((usage.seconds(Part::Redis) - 0.07).abs() < 1e-9);
        assert_eq!(usage.seconds(Part::Sink), 0.0);
        assert!((usage.idle_seconds - 1.0).abs() < 1e-9);
        assert!((usage.steal_seconds - 0.2).abs() < 1e-9);
        assert_eq!(usage.idle_share(2.0), Some(0.25));
        // Half a second of the window came after the run: 1 idle CPU-second of it is the tail's.
        assert_eq!(usage.idle_share(1.5), Some(0.0));
    }
}
