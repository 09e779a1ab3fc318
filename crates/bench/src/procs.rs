//! The child processes a benchmark starts, and the promise that none outlives the harness.
//!
//! Every child is held in one process-wide registry. A [`Process`] handle stops its child
//! gracefully through [`Process::stop`]; dropping the handle (an error, a panic unwinding) kills
//! it; and [`kill_all`] — called from the panic hook and on Ctrl-C/SIGTERM — kills whatever is
//! left. Only a SIGKILL of the harness itself can leave children behind, and those exit when the
//! services they talk to are cleaned up.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};
use crate::stats::status_kib_field;

fn registry() -> &'static Mutex<HashMap<u32, Child>> {
    static REGISTRY: OnceLock<Mutex<HashMap<u32, Child>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn with_registry<T>(f: impl FnOnce(&mut HashMap<u32, Child>) -> T) -> T {
    // A panic while the lock was held must not stop the clean-up that follows it.
    let mut guard = registry().lock().unwrap_or_else(PoisonError::into_inner);
    f(&mut guard)
}

/// Kills (SIGKILL) and reaps every child still running. Safe to call from a panic hook.
pub fn kill_all() {
    let children: Vec<Child> = with_registry(|r| r.drain().map(|(_, child)| child).collect());
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// How many children are still registered (for the final check that nothing is left).
pub fn running() -> usize {
    with_registry(|r| r.len())
}

/// A running child, with its output going to `<dir>/<name>.out` (stdout) and `<name>.log`
/// (stderr, where the binaries log).
#[derive(Debug)]
pub struct Process {
    /// A name for messages and log files, e.g. `fetcher-0`.
    name: String,
    pid: u32,
    stdout: PathBuf,
    log: PathBuf,
}

/// How to start a child.
#[derive(Debug)]
pub struct Spawn<'a> {
    /// A name for messages and log files.
    pub name: &'a str,
    /// The executable.
    pub program: &'a Path,
    /// Its arguments.
    pub args: &'a [String],
    /// Its `PLEDGESYNC__…` (and other) variables; inherited `PLEDGESYNC__…` ones are removed
    /// first so that only what the harness sets is in force.
    pub env: &'a [(String, String)],
    /// Where its output files go.
    pub dir: &'a Path,
}

fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| BenchError::io(format!("opening {}", path.display()), e))
}

impl Process {
    /// Starts the child and registers it.
    pub fn spawn(spec: Spawn<'_>) -> Result<Process> {
        let stdout = spec.dir.join(format!("{}.out", spec.name));
        let log = spec.dir.join(format!("{}.log", spec.name));
        let mut command = Command::new(spec.program);
        for (key, _) in std::env::vars() {
            if key.starts_with("PLEDGESYNC__") {
                command.env_remove(key);
            }
        }
        command
            .args(spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(open_log(&stdout)?))
            .stderr(Stdio::from(open_log(&log)?));
        let child = command
            .spawn()
            .map_err(|e| BenchError::io(format!("starting {}", spec.program.display()), e))?;
        let pid = child.id();
        with_registry(|r| r.insert(pid, child));
        tracing::debug!(name = spec.name, pid, "started");
        Ok(Process {
            name: spec.name.to_owned(),
            pid,
            stdout,
            log,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// The last `lines` lines of its log.
    pub fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `Err(Exited)` if the child has exited (it should still be running).
    pub fn check_alive(&self) -> Result<()> {
        let status = with_registry(|r| match r.get_mut(&self.pid) {
            Some(child) => child.try_wait().map(|s| s.map(|s| s.to_string())),
            None => Ok(Some("stopped by the harness".to_owned())),
        })
        .map_err(|e| BenchError::io(format!("checking on {}", self.name), e))?;
        match status {
            None => Ok(()),
            Some(status) => Err(BenchError::Exited {
                process: self.name.clone(),
                status,
                log: self.log.clone(),
                tail: self.tail(20),
            }),
        }
    }

    /// Peak resident memory so far (`VmHWM`), in bytes. Read it before stopping the child.
    pub fn peak_rss_bytes(&self) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path)
            .map_err(|e| BenchError::io(format!("reading {path}"), e))?;
        status_kib_field(&status, "VmHWM")
            .ok_or_else(|| BenchError::unexpected(path, "no VmHWM line"))
    }

    /// SIGTERM, then up to `grace` for a clean exit, then SIGKILL. Always reaps the child.
    pub async fn stop(self, grace: Duration) {
        let Some(mut child) = with_registry(|r| r.remove(&self.pid)) else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            let signalled = Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            let deadline = Instant::now() + grace;
            while signalled && Instant::now() < deadline {
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        if matches!(child.try_wait(), Ok(None)) {
            tracing::warn!(name = %self.name, pid = self.pid, "did not stop on SIGTERM; killing it");
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = with_registry(|r| r.remove(&self.pid)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn_sleep(dir: &Path, name: &str) -> Process {
        Process::spawn(Spawn {
            name,
            program: Path::new("sleep"),
            args: &["30".to_owned()],
            env: &[],
            dir,
        })
        .expect("spawn sleep")
    }

    fn alive(pid: u32) -> bool {
        // A reaped child has no /proc entry (a zombie would still have one).
        Path::new(&format!("/proc/{pid}")).exists()
    }

    #[tokio::test]
    async fn children_are_stopped_dropped_or_killed_and_never_left_behind() {
        let dir = std::env::temp_dir().join(format!("bench-procs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");

        let stopped = spawn_sleep(&dir, "stopped");
        let pid = stopped.pid();
        stopped.check_alive().expect("running");
        assert!(stopped.peak_rss_bytes().expect("VmHWM") > 0);
        stopped.stop(Duration::from_secs(5)).await;
        assert!(!alive(pid));

        let dropped = spawn_sleep(&dir, "dropped");
        let pid = dropped.pid();
        drop(dropped);
        assert!(!alive(pid));

        let left = spawn_sleep(&dir, "left");
        let pid = left.pid();
        kill_all();
        assert!(!alive(pid));
        let error = left.check_alive().expect_err("killed");
        assert!(error.to_string().contains("left exited early"), "{error}");

        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
