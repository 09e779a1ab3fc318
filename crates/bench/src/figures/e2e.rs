//! Figure 1: a full sync of N contacts into an empty audience through one fetcher and one sink,
//! against the PostgreSQL ceiling measured in the same database right after each sync.

use crate::api::RunView;
use crate::binaries::Binaries;
use crate::ceiling;
use crate::cpu::{Part, Snapshot, Usage};
use crate::error::{BenchError, Result};
use crate::figures::{full_sync, run_seconds, Plan};
use crate::report::{Recorder, Unit};
use crate::stats::{mib, per_second, percentile, ratio};
use crate::store_path;
use crate::system::{System, SystemOptions};
use crate::timeline::{self, Timeline};

pub(super) async fn run(plan: &Plan, binaries: &Binaries, out: &Recorder) -> Result<()> {
    let n = plan.e2e_records;
    let system = System::start(binaries, "e2e", SystemOptions::contacts(n)).await?;
    let records = ceiling::contacts(&system).await?;
    let mut ceiling = ceiling::Bench::prepare(&system, &records).await?;
    // Each attempt is a first sync of its own integration into its own empty audience, then at
    // once a ceiling attempt: the machine's speed drifts over minutes here, and a pair taken
    // together meets it in one state. The fastest of each side counts.
    let mut best: Option<(RunView, Usage, f64, Timeline)> = None;
    let mut pair_ratios = Vec::new();
    for attempt in 1..=plan.e2e_attempts {
        let connected = system
            .connect(&format!("bench-e2e-{attempt}"), None)
            .await?;
        let before = Snapshot::take();
        let run = full_sync(&system, &connected.integration, n).await?;
        let usage = before.until(&Snapshot::take());
        let seconds = run_seconds(&run)?;
        let timeline = timeline::read(&system.database_url, &run.id).await?;
        tracing::info!(
            attempt,
            pickup = timeline.pickup,
            head = timeline.head,
            tail = timeline.tail,
            per_decisecond = ?timeline.per_decisecond,
            "sync timeline"
        );
        out.line(
            format!("e2e_seconds_attempt{attempt}"),
            seconds,
            Unit::Seconds,
        );
        let ceiling_seconds = ceiling.attempt(attempt).await?;
        out.line(
            format!("pg_ceiling_seconds_attempt{attempt}"),
            ceiling_seconds,
            Unit::Seconds,
        );
        // Both sides took the same records, so their rates compare as their times, inverted.
        if let Some(pair) = ratio(ceiling_seconds, seconds) {
            out.line(
                format!("e2e_vs_pg_ceiling_ratio_pair{attempt}"),
                pair,
                Unit::Ratio,
            );
            pair_ratios.push(pair);
        }
        if best
            .as_ref()
            .is_none_or(|(_, _, fastest, _)| seconds < *fastest)
        {
            best = Some((run, usage, seconds, timeline));
        }
    }
    let ceiling = ceiling.finish().await;
    let Some((run, usage, seconds, timeline)) = best else {
        return Err(BenchError::unexpected("figure 1", "made no attempt"));
    };
    let peaks = system.peak_rss()?;
    out.line("e2e_seconds", seconds, Unit::Seconds);
    out.line("e2e_head_seconds", timeline.head, Unit::Seconds);
    out.line("e2e_tail_seconds", timeline.tail, Unit::Seconds);
    let e2e = out.maybe(
        "e2e_records_per_s",
        per_second(run.counters.fetched, seconds),
        Unit::RecordsPerSecond,
    )?;
    out.line(
        "e2e_records_fetched",
        run.counters.fetched as f64,
        Unit::Count,
    );
    out.line(
        "e2e_members_applied",
        run.counters.applied as f64,
        Unit::Count,
    );

    for part in Part::ALL {
        out.line(
            format!("e2e_cpu_seconds_{part}"),
            usage.seconds(part),
            Unit::Seconds,
        );
    }
    if let Some(idle) = usage.idle_share(seconds) {
        out.line("e2e_cpu_idle_share", idle, Unit::Ratio);
    }
    out.line("e2e_cpu_steal_seconds", usage.steal_seconds, Unit::Seconds);

    out.line("pg_ceiling_seconds", ceiling.seconds, Unit::Seconds);
    let pg = out.maybe(
        "pg_ceiling_records_per_s",
        ceiling.records_per_s(),
        Unit::RecordsPerSecond,
    )?;
    out.maybe("e2e_vs_pg_ceiling_ratio", ratio(e2e, pg), Unit::Ratio)?;
    out.maybe(
        "e2e_vs_pg_ceiling_ratio_pairs_median",
        percentile(&pair_ratios, 50.0),
        Unit::Ratio,
    )?;

    let writes = store_path::measure(&system.services, &records).await?;
    out.line("store_path_seconds", writes.seconds, Unit::Seconds);
    out.line(
        "store_path_cpu_seconds_postgres",
        writes.postgres_cpu_seconds,
        Unit::Seconds,
    );
    let writes_rate = out.maybe(
        "store_path_records_per_s",
        writes.records_per_s(),
        Unit::RecordsPerSecond,
    )?;
    out.maybe(
        "store_path_vs_pg_ceiling_ratio",
        ratio(writes_rate, pg),
        Unit::Ratio,
    )?;
    out.maybe(
        "e2e_vs_store_path_ratio",
        ratio(e2e, writes_rate),
        Unit::Ratio,
    )?;
    if writes.applied != run.counters.applied {
        out.note(format!(
            "the store path applied {} records, the run {}",
            writes.applied, run.counters.applied
        ));
    }
    if ceiling.records != run.counters.fetched {
        out.note(format!(
            "the ceiling read {} records from the emulator, the run fetched {}",
            ceiling.records, run.counters.fetched
        ));
    }
    for (i, peak) in peaks.fetchers.iter().enumerate() {
        out.line(
            format!("e2e_fetcher{i}_peak_rss_mib"),
            mib(*peak),
            Unit::Mebibytes,
        );
    }
    for (i, peak) in peaks.sinks.iter().enumerate() {
        out.line(
            format!("e2e_sink{i}_peak_rss_mib"),
            mib(*peak),
            Unit::Mebibytes,
        );
    }
    system.stop().await;
    Ok(())
}

pub(super) fn method(plan: &Plan) -> String {
    format!(
        "A fresh system (own database, RabbitMQ prefix and Redis prefix; one scheduler, one fetcher, one sink, \
         production defaults) in front of a zoho-emulator process seeded with {n} contacts and no latency. One \
         integration reading Contacts, mapped to an empty audience; Sync Now (full); {attempts} times, each \
         with an integration and an empty audience of its own (`e2e_seconds_attempt<n>`), each sync followed \
         at once by one attempt of the PostgreSQL ceiling in the same database \
         (`pg_ceiling_seconds_attempt<n>`): the machine's speed drifts over minutes (the same binaries took \
         5.7 s and 4.6 s ten minutes apart), and a pair taken together meets it in one state. The fastest of \
         each side counts. `e2e_vs_pg_ceiling_ratio_pair<n>` is one pair's ceiling time over its sync \
         time (the same records), and `e2e_vs_pg_ceiling_ratio_pairs_median` the middle one of the \
         pairs (nearest rank): what one attempt gives, where the headline ratio takes the best of \
         each side. `e2e_records_per_s` is the \
         run's records fetched over its own timestamps, Sync Now (`created_at`) to `finished_at`. Of \
         the fastest sync, `e2e_head_seconds` is Sync Now to the start of the first transaction that \
         applied a batch (the ledger's `applied_at`), and `e2e_tail_seconds` the start of the last \
         one to the run's end (its commit, the drain, the deletion sweep and completing the run). The \
         ceiling: the same {n} records read from the emulator's console (before the first sync), cut to \
         the fields the fetcher requests, mapped by the sink's own mapping (`pledgesync_sink::mapping`), and \
         upserted into a fresh empty audience of the same `audience_members` table by \
         `Store::upsert_members_copy` (COPY into a temporary table, then the sink's own upsert statement), \
         timed around that call only. `e2e_vs_pg_ceiling_ratio` is records/s end to end \
         over records/s of the ceiling, both counted in Zoho records of the same input. Last, in a fresh \
         database of its own, the sink's writes alone (`store_path_seconds`): the same records cut into pages \
         of 200, mapped the same way, and applied through `Store::apply_batches` (the call a sink's commit \
         worker makes: members, sources and a ledger row per batch) in groups of {group} batches (the sink's \
         average group during the full-scale run) by {workers} concurrent tasks (the sink's commit workers), \
         with no broker, fetcher, emulator or sink process running. `store_path_vs_pg_ceiling_ratio` is what \
         the data model leaves of the ceiling, `e2e_vs_store_path_ratio` what the pipeline around the writes \
         leaves of that; their product is `e2e_vs_pg_ceiling_ratio`. `e2e_cpu_seconds_<part>` says where the \
         machine's CPU went during the fastest sync, from `/proc` read at Sync Now and when the run's end was \
         seen: PostgreSQL (all its processes), the sink, the fetcher, RabbitMQ, Redis, the emulator, and \
         the rest (the scheduler, the benchmark, kernel threads); `e2e_cpu_idle_share` is the share of \
         the CPUs left idle during the run, and `e2e_cpu_steal_seconds` the time the hypervisor gave \
         to other guests (it slows a run without showing in any process here). \
         `store_path_cpu_seconds_postgres` is PostgreSQL's CPU in the writes alone.\n\n\
         Reading the ratio: the ceiling writes each member once, alone on the machine, in one sorted \
         statement. The sink also writes each record's source row (which record of which integration \
         brought the member: what deletions and newest-wins need), first looks up and locks the sources \
         it may replace (unless the last transaction of the integration found none: then the plain \
         insert of the sources is the proof that the records are new), writes a ledger row per \
         batch, takes its records in groups of a few hundred \
         random emails, and shares the 2 CPUs with the emulator, the fetcher and RabbitMQ. Both halves \
         are measured (full scale, 2026-12-05, over the day's runs after migration 0004): the sink's \
         writes alone took 2.7-3.1 s, 0.73-0.82 of the ceiling's rate, so the data model alone caps \
         this figure there; the pipeline then kept 0.52-0.63 of the writes' rate. In PostgreSQL's own \
         statement time (`pg_stat_statements`) in the writes alone, a member costs 14.3 µs (the \
         ceiling's COPY and upsert 12.3 µs) and a source 6.0 µs. Alone \
         on the machine (in PL/pgSQL, no client), 184,000 synthetic members went through the sink's \
         upsert statement fed by `unnest` in 1.92-2.03 s in 230 groups of 800 taken in email order, \
         as fast as one sorted statement (1.99-2.01 s), and in 2.45-2.90 s in groups of random \
         emails, whatever their size (200 to 4,000 rows: 2.44-2.61 s), with about the same WAL \
         (92-101 MB) and a 22 MB index against 17: a member costs the sink more than the ceiling \
         because Zoho's paging order is random in email, not because of the `unnest` path or the \
         group size (2026-12-05). During the sync PostgreSQL took 1.0 CPU, the sink 0.3, the \
         fetcher 0.17, RabbitMQ 0.14, the emulator 0.08 and Redis 0.03 (the `e2e_cpu_seconds_*` lines \
         over the sync's time), 0.06-0.12 of the CPUs stayed idle (never waiting on the disk: iowait \
         stayed at 0.01), and a third commit worker did not help. By process, the sink's PostgreSQL \
         connections spent 4.6 CPU-seconds in a sync against 3.4 in the writes alone, for the same \
         statements: the same work costs more CPU beside four busy processes; an autovacuum of the \
         fresh tables added 0.3 in the first sync. What the source rows \
         cost end to end was measured once, before migration 0004, by switching their lookup and \
         insert off (not shippable: deletions and newest-wins need them): the sync then took 4.2-4.3 s \
         and this ratio reached \
         0.51-0.53, so they hold about a quarter of the sync's time. Changed nothing measurable in this \
         ratio: a sink pool of 4 connections instead of 10; byte-order (`COLLATE \"C\"`) email columns; \
         64 batches in flight per run and a sink prefetch of 64 instead of 20 and 32; dropping the index \
         `member_sources_by_member` (the writes alone about 5 % faster, the sync within its noise); \
         COPY instead of `INSERT … SELECT FROM unnest` for new sources (8.8 µs a source against 7.7, \
         before migration 0004); mimalloc as the workers' allocator (the sink's and fetcher's CPU \
         10-15 % lower, but their peak RSS went from 40 and 25 MiB to 87 and 69, past figure 2's \
         goal); one runtime thread per process instead of two (the sink 1.35 CPU-seconds instead of \
         1.6, the fetcher 0.74 instead of 0.85, but 0.12 of the CPUs idle instead of 0.08, the sync \
         unchanged); a hash index on the sources' email (4.7 µs a source, but with one equality to \
         estimate on tables without statistics the planner costed the incremental run's orphan check \
         past PostgreSQL's JIT thresholds, and compiling it took 150 ms: the incremental figure took \
         0.3-0.4 s instead of 0.13. The store's sessions now run with JIT off, which brought that \
         run back to 0.12-0.14 s with the hash index too, and the ceiling stayed at 2.22-2.25 s; the \
         B-tree on both columns stays, for estimates that stay in proportion); and \
         PostgreSQL with 1 GB of `shared_buffers` and 64 MB of `wal_buffers` instead of 128 MB and 4 MB, \
         which made the sync (5.0-5.1 s) and the ceiling (2.25-2.33 s) faster alike, ratio 0.45 three \
         times. History: group commits took the ratio from 0.04 to \
         about 0.25; PostgreSQL's work per record (an opt-out lookup that was quadratic in the group, \
         per-row foreign-key triggers and a regular expression on `member_sources`) took the sync from \
         about 10.5 s to 6.2-7.1 s; carrying records as the text Zoho wrote took the fetcher from a \
         quarter of a CPU to a sixth; keeping apart groups that share members removed the lock waits \
         between the two commit workers; reading a record's columns without building a map of it took \
         the sink from 2.0 to 1.6 CPU-seconds per sync, and reading each batch's body in one pass \
         instead of two (a version probe, then the message) saved the half of the decoding that took \
         about a tenth of the sink's CPU in a profile. Skipping the source lookup when the last \
         transaction of the integration found no source (`crates/store/src/novelty.rs`: in this sync \
         258 of 260 transactions) took the sync from 5.6-6.1 s to 5.0-5.6 s and this ratio from \
         0.36-0.38 to 0.41-0.45 on the same day: the lookup was 6 % of PostgreSQL's statement time, \
         and it also held a round trip and the sink's encoding of every id in each transaction's path. \
         Migration 0004 (2026-12-05) took two per-row costs off a source: its email check ran \
         `lower()` under the database's collation, and the B-tree that finds a member's sources \
         compared emails under it on every insert; a non-empty check and a bytewise (`COLLATE \"C\"`) \
         email keep what they were for. A source went from 7.7 to 6.0 µs of statement time (22 % \
         less). In 4 pairs of figures taken in turn on the same afternoon, the sync took 4.90-5.31 s \
         against 5.10-5.41 s without the migration (about 3 % less), the ceiling 2.19-2.38 s against \
         2.20-2.65 s, and the ratio 0.41-0.49 in both: inside this figure's noise. Later that day the sink moved to jemalloc (its CPU in a sync \
         1.51-1.53 s against 1.28-1.37 in pairs taken in turn, peak RSS unchanged at 39-42 MiB; the \
         fetcher gained nothing from it and keeps glibc's allocator), stopped copying every email \
         twice on its way into the store, writes each record's attributes as JSON text while it \
         reads the record instead of building a map of values to serialise again (its CPU \
         1.21-1.30 s before, 1.16-1.19 after), and acks a group's batches with one multiple ack where it \
         may (790 ack frames for 1,635 acks; a quorum queue spent 0.16-0.22 CPU-seconds consuming \
         1000 batch-sized messages acked one by one and 0.07-0.09 acked five at a time); the \
         emulator renders its pages without `format!` (0.43-0.44 CPU-seconds a sync before, 0.29-0.35 \
         after). A sync's CPU went from about 9.4 to 8.1-8.6 CPU-seconds (9.7 in a slow run), and \
         the ratio over that afternoon's runs was 0.40-0.52: the machine's own speed moved it more (the same binaries \
         took 5.7 s in a full `make bench` and 4.6-5.1 s over the next half hour, every process \
         slower alike in the slow run). The next day (2026-12-05, evening) the pools stopped checking \
         connections in steady use: sqlx pinged a PostgreSQL connection on every checkout (a round \
         trip per transaction, 8 % of the sink's CPU in a profile) and deadpool-redis sent UNWATCH and \
         PING on every checkout (two round trips a page); both now check only a connection idle for \
         5 s or more. The sink's writes alone went from 2.56-2.95 s to 2.45-2.59 s, and in the sync \
         the sink took 1.10-1.15 CPU-seconds, the fetcher 0.74-0.79 (a page's body is also no longer \
         copied into its reply) and Redis 0.11-0.13 (0.15-0.18 before). Tried that evening and not \
         kept: one runtime thread per process (5 pairs in turn: sync medians 4.70 and 4.72 s), and \
         polling the ledger from 2 ms \
         instead of 10 when the fetcher waits for room; both inside the noise (RabbitMQ's schedulers \
         already run without busy waiting: its defaults pass `+sbwt none`). Kept: while the fetcher \
         waits, a look that found batches applied is followed by the short pause again (pauses used \
         to double whatever the sink did, so the drain before the deletion sweep could end a doubled \
         pause after the last batch). Two findings left as \
         they are: a quorum queue spent 0.57-0.75 CPU-seconds taking and delivering 1,000 messages of \
         95 KB, and 0.42-0.46 for the same records compressed to 16 KB (zstd, 6 to 1), so most of \
         RabbitMQ's cost is per message, and the design keeps a batch one page of plain JSON; and the \
         foreign key from `audience_members` to `audiences` runs one locking lookup per new member \
         (1.1-1.3 µs of statement time each, in the sink and the ceiling alike): taking it off would \
         speed both sides by about the same CPU time, which lowers this ratio. The first sync of each \
         figure run is the slowest (a fresh database: its autovacuum starts during it), so the figure \
         now takes 3 attempts. The rest is spread thin: the \
         fetcher reads each page's JSON three times (the error check, the split into records, the \
         paging fields: about a fifth of its CPU); the sink's remaining CPU is mostly reading the JSON \
         of its records (about a fifth) and of its messages (about a twelfth). PostgreSQL \
         checkpointed three times during one run of this figure (about 700 MB of WAL with \
         `max_wal_size` at 1 GB): whichever step a checkpoint starts in pays full-page images, the \
         sync's random inserts more than the ceiling's sorted ones. With a tenth of the CPUs now idle \
         during the sync, more concurrency was tried again, in turns: 3 commit workers took \
         4.53-4.67 s and 40 batches in flight per run 4.69-4.95 s, against 4.28-4.56 s with the \
         defaults (2 and 20). The head and tail lines (added on 2026-12-05, late) show that \
         nearly all of a sync is steady state: 10-50 ms from Sync Now to the first applied batch, \
         50-100 ms from the last one to the run's end, and about 300 batches applied per second in \
         between, tenth of a second after tenth. That evening the figures ran on another machine \
         type (see Machine above: Intel Xeon instead of AMD EPYC), where both sides ran about a \
         quarter faster (the sync 3.0-3.6 s, the ceiling 1.7-1.9 s) and the ratio came out at \
         0.50-0.57 in single runs of this figure with the old defaults. The same evening showed that a test of a setting \
         through the shell measures the defaults: the harness starts its processes without the \
         caller's `PLEDGESYNC__*` variables, so that a shell cannot change a figure unseen. Which of the \
         setting tests above went that way is not recorded; `--set section.key=value` now passes a \
         setting on (and keeps such a run off this page). Tried so, more batches in flight \
         per run did help: with K = 20 a busy sink found 1 to 5 batches waiting when a commit worker \
         came free (the fetcher refills the window a page at a time after each commit, about 2 ms a \
         page against the sink's 3.3), wrote groups of 3.6 batches on average and held 39 MiB at its \
         peak; with K = 40 and a sink prefetch of 64 it wrote groups of 7 and the sync took 2.9-3.1 s \
         against 3.0-3.3 (51 MiB), with 60 and 96 2.9-3.1 s (59 MiB, close to figure 2's goal), with 30 \
         and 48 3.0 s (44-47 MiB). The writes alone had shown why: one commit worker took 4.8 s for the \
         records in groups of 1 batch, 3.8 s in groups of 4 and 3.2 s in groups of 16. The defaults are \
         now K = 32 and a sink prefetch of 48: in three pairs taken in turn, 2.94-3.10 s against \
         3.06-3.24 s with 20 and 32, the sink's peak 45-47 MiB against 38-39, and fairness's p99 1.3-1.5 \
         times idle against 1.2-1.3. The figures above are one more run.",
        n = plan.e2e_records,
        attempts = plan.e2e_attempts,
        group = store_path::GROUP_BATCHES,
        workers = pledgesync_sink::settings::SinkSettings::default().commit_workers,
    )
}
