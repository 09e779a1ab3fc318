//! The job logic end to end against the in-memory ports: slices, resumes, back-pressure,
//! deletions and failures.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use pledgesync_broker::{DeliveryInfo, Outcome, WorkQueue};
use pledgesync_core::messages::{BatchKind, SyncJob, SyncMode};
use pledgesync_core::record::RawRecord;
use pledgesync_core::shutdown::Shutdown;
use pledgesync_core::Module;

use crate::checkpoint::{Checkpoint, Cursor, Stage};
use crate::error::FetchError;
use crate::fake::{deleted_entry, Fake};
use crate::job::{Fetcher, WorkConfig};
use crate::ports::{RunPhase, UnseenSource, Usability};

fn config(slice_pages: u32, k: u32) -> WorkConfig {
    WorkConfig {
        max_outstanding_batches: k,
        slice_pages,
        slice_time: Duration::from_secs(30),
        overlap: chrono::Duration::seconds(60),
        delivery_limit: 3,
    }
}

fn delivery(count: u32) -> DeliveryInfo {
    DeliveryInfo {
        queue: WorkQueue::Jobs,
        message_id: None,
        delivery_count: count,
        redelivered: count > 0,
        traceparent: None,
    }
}

fn fetcher(fake: &Arc<Fake>, config: WorkConfig) -> Fetcher<Fake> {
    Fetcher::new(fake.clone(), config, Shutdown::new())
}

/// Delivers the job, then every continuation it publishes, until none is left.
async fn drive(fake: &Arc<Fake>, fetcher: &Fetcher<Fake>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut next = Some(fake.job());
    while let Some(job) = next.take() {
        outcomes.push(fetcher.handle_job(job, delivery(0)).await);
        let mut state = fake.lock();
        if !state.jobs.is_empty() {
            next = Some(state.jobs.remove(0));
        }
    }
    outcomes
}

fn seqs(fake: &Fake) -> Vec<u64> {
    fake.lock().published.iter().map(|b| b.seq).collect()
}

#[tokio::test]
async fn a_full_run_publishes_every_page_in_sequence_and_records_its_total() {
    let fake = Arc::new(Fake::new(SyncMode::Full, 25, 7, 10));
    let outcomes = drive(&fake, &fetcher(&fake, config(100, 5))).await;
    assert_eq!(outcomes, vec![Outcome::Ack]);
    let state = fake.lock();
    let kinds: Vec<(Module, usize)> = state
        .published
        .iter()
        .map(|b| (b.module, b.records.len()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (Module::Contacts, 10),
            (Module::Contacts, 10),
            (Module::Contacts, 5),
            (Module::Leads, 7)
        ]
    );
    assert_eq!(
        state.published.iter().map(|b| b.seq).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert!(state.published.iter().all(|b| b.kind == BatchKind::Upsert));
    assert_eq!(state.total_estimate, Some(32));
    assert_eq!(state.batches_total, Some(4));
    assert_eq!(state.run.fetched, 32);
    assert_eq!(
        state.run.phase,
        RunPhase::Ended,
        "all applied, so the run completed"
    );
    let (modules, _) = state.staged.clone().expect("cursors staged");
    assert_eq!(modules, Module::ALL.to_vec());
    assert!(
        state.listings.iter().all(|(_, _, since)| since.is_none()),
        "a full run reads everything"
    );
}

#[tokio::test]
async fn slices_hand_the_run_on_without_losing_or_repeating_a_page() {
    let fake = Arc::new(Fake::new(SyncMode::Full, 45, 12, 10));
    let outcomes = drive(&fake, &fetcher(&fake, config(2, 5))).await;
    // 5 + 2 pages, two per slice, then the sweeps and the total in a last slice.
    assert!(outcomes.len() >= 4, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| *o == Outcome::Ack));
    assert_eq!(seqs(&fake), (0..7).collect::<Vec<_>>());
    let state = fake.lock();
    assert_eq!(state.batches_total, Some(7));
    let ids: BTreeSet<String> = state
        .published
        .iter()
        .flat_map(|b| {
            b.records
                .iter()
                .filter_map(|r| r.to_map().ok()?["id"].as_str().map(str::to_owned))
        })
        .collect();
    assert_eq!(ids.len(), 57, "every record exactly once");
}

#[tokio::test]
async fn continuations_carry_the_slice_number_on() {
    let fake = Arc::new(Fake::new(SyncMode::Full, 30, 0, 10));
    let fetcher = fetcher(&fake, config(1, 5));
    let job = fake.job();
    assert_eq!(
        fetcher.handle_job(job.clone(), delivery(0)).await,
        Outcome::Ack
    );
    let continuation = fake.lock().jobs.remove(0);
    assert_eq!(continuation, SyncJob { slice: 1, ..job });
}

#[tokio::test]
async fn a_crash_between_publish_and_commit_republishes_the_uncommitted_pages_under_their_seqs() {
    let fake = Arc::new(Fake::new(SyncMode::Full, 30, 0, 10));
    let fetcher = fetcher(&fake, config(100, 5));
    fake.lock().fail_next_commit = false;
    let job = fake.job();
    {
        let fake = fake.clone();
        tokio::spawn(async move {
            // Arm the failure once a page is published: the next commit, the one that would
            // point past it, fails as if the process died there.
            loop {
                {
                    let mut state = fake.lock();
                    if !state.published.is_empty() {
                        state.fail_next_commit = true;
                        break;
                    }
                }
                tokio::task::yield_now().await;
            }
        });
    }
    let mut outcome = fetcher.handle_job(job.clone(), delivery(0)).await;
    let mut attempts = 1;
    while outcome != Outcome::Ack && attempts < 5 {
        assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
        outcome = fetcher.handle_job(job.clone(), delivery(attempts)).await;
        attempts += 1;
    }
    assert_eq!(outcome, Outcome::Ack);
    let published = seqs(&fake);
    let distinct: BTreeSet<u64> = published.iter().copied().collect();
    assert_eq!(distinct, (0..3).collect(), "every page, under its own seq");
    // Nothing was committed past the plan before the failure, so the retry may republish every
    // page of the first attempt, each once and under the same seq; none is lost.
    let first_attempt = published.len() - distinct.len();
    assert!(
        first_attempt >= 1,
        "the failure came after a publish: {published:?}"
    );
    let republished = &published[first_attempt..];
    assert_eq!(
        republished.iter().copied().collect::<BTreeSet<u64>>(),
        distinct,
        "{published:?}"
    );
    assert!(
        published.len() <= 6,
        "at most the uncommitted pages republished: {published:?}"
    );
    assert_eq!(fake.lock().batches_total, Some(3));
}

#[tokio::test]
async fn a_nacked_batch_among_outstanding_confirms_is_published_again_before_the_checkpoint_passes_it(
) {
    let fake = Arc::new(Fake::new(SyncMode::Full, 50, 0, 10));
    let fetcher = fetcher(&fake, config(100, 50));
    fake.lock().nack_batch = Some(2);
    let job = fake.job();
    let mut outcome = fetcher.handle_job(job.clone(), delivery(0)).await;
    assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
    {
        let state = fake.lock();
        let committed: Checkpoint = state
            .run
            .checkpoint
            .as_ref()
            .map(|json| Checkpoint::from_json(json).expect("a checkpoint"))
            .expect("the plan was committed");
        assert!(
            committed.next_seq <= 2,
            "the checkpoint passed a batch RabbitMQ never took: {}",
            committed.next_seq
        );
    }
    let mut attempts = 1;
    while outcome != Outcome::Ack && attempts < 5 {
        outcome = fetcher.handle_job(job.clone(), delivery(attempts)).await;
        attempts += 1;
    }
    assert_eq!(outcome, Outcome::Ack);
    let distinct: BTreeSet<u64> = seqs(&fake).into_iter().collect();
    assert_eq!(distinct, (0..5).collect(), "no batch lost");
    assert_eq!(fake.lock().batches_total, Some(5));
}

#[tokio::test]
async fn back_pressure_holds_at_k_in_flight_and_hands_on_when_the_slice_ends() {
    let fake = Arc::new(Fake::new(SyncMode::Full, 100, 0, 10));
    fake.lock().auto_apply = false;
    let mut cfg = config(100, 3);
    cfg.slice_time = Duration::from_millis(300);
    let fetcher = fetcher(&fake, cfg);
    assert_eq!(
        fetcher.handle_job(fake.job(), delivery(0)).await,
        Outcome::Ack
    );
    {
        let state = fake.lock();
        assert_eq!(state.published.len(), 3, "stopped at K");
        assert_eq!(state.jobs.len(), 1, "handed on");
        assert!(state.max_in_flight <= 3);
    }
    // The sink catches up while the fetcher works: a helper applies everything now and then.
    let applier = {
        let fake = fake.clone();
        tokio::spawn(async move {
            for _ in 0..400 {
                fake.apply_all();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut rounds = 0;
    loop {
        let job = fake.lock().jobs.pop();
        let Some(job) = job else { break };
        assert_eq!(fetcher.handle_job(job, delivery(0)).await, Outcome::Ack);
        rounds += 1;
        assert!(rounds < 50);
    }
    applier.abort();
    let state = fake.lock();
    assert_eq!(
        state.published.iter().map(|b| b.seq).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert!(
        state.max_in_flight <= 3,
        "max in flight {}",
        state.max_in_flight
    );
    assert_eq!(state.batches_total, Some(10));
}

#[tokio::test]
async fn the_ledger_and_the_checkpoint_are_not_touched_for_every_page() {
    // 40 pages of 10, K = 8, a sink that applies every batch as soon as it is published.
    let fake = Arc::new(Fake::new(SyncMode::Full, 400, 0, 10));
    let fetcher = fetcher(&fake, config(100, 8));
    assert_eq!(
        fetcher.handle_job(fake.job(), delivery(0)).await,
        Outcome::Ack
    );
    let state = fake.lock();
    assert_eq!(state.published.len(), 40);
    // Once per K publishes (plus the sweep's wait for the last batches), not once per publish.
    assert!(
        state.ledger_reads <= 40 / 8 + 2,
        "{} reads of the ledger for 40 publishes",
        state.ledger_reads
    );
    // A commit every CHECKPOINT_EVERY_PAGES pages, plus the stage changes after the listing.
    assert!(
        state.commits <= 40 / crate::pass::CHECKPOINT_EVERY_PAGES + 4,
        "{} checkpoint commits for 40 pages",
        state.commits
    );
    assert_eq!(state.batches_total, Some(40));
}

#[tokio::test]
async fn an_incremental_run_reads_from_the_cursors_and_publishes_deletions() {
    let fake = Arc::new(Fake::new(SyncMode::Incremental, 5, 0, 10));
    let cursor_time: chrono::DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("time");
    {
        let mut state = fake.lock();
        state.modules = vec![Module::Contacts];
        state.cursors.insert(
            Module::Contacts,
            Cursor {
                modified_since: Some(cursor_time),
                deleted_since: Some(cursor_time),
            },
        );
        state
            .deleted
            .insert(Module::Contacts, vec![deleted_entry(77), deleted_entry(78)]);
    }
    assert_eq!(
        drive(&fake, &fetcher(&fake, config(100, 5))).await,
        vec![Outcome::Ack]
    );
    let state = fake.lock();
    let expected_since = Some(cursor_time - chrono::Duration::seconds(60));
    assert_eq!(
        state.listings,
        vec![
            ("records", Module::Contacts, expected_since),
            ("deleted", Module::Contacts, expected_since)
        ]
    );
    let kinds: Vec<(BatchKind, usize)> = state
        .published
        .iter()
        .map(|b| (b.kind, b.records.len()))
        .collect();
    assert_eq!(kinds, vec![(BatchKind::Upsert, 5), (BatchKind::Delete, 2)]);
    assert_eq!(
        state.total_estimate, None,
        "no estimate for incremental runs"
    );
    assert_eq!(state.run.fetched, 5, "deletions are not fetched records");
}

#[tokio::test]
async fn a_full_run_removes_only_unseen_members_that_zoho_lists_as_deleted() {
    let fake = Arc::new(Fake::new(SyncMode::Full, 3, 0, 10));
    let modified: chrono::DateTime<Utc> = "2026-01-01T12:00:00Z".parse().expect("time");
    {
        let mut state = fake.lock();
        state.modules = vec![Module::Contacts];
        state.unseen.insert(
            Module::Contacts,
            vec![
                UnseenSource {
                    zoho_id: "500".into(),
                    modified_at: Some(modified),
                },
                // Not in Zoho's deleted list: paging missed it, it stays.
                UnseenSource {
                    zoho_id: "501".into(),
                    modified_at: Some(modified),
                },
            ],
        );
        state.deleted.insert(
            Module::Contacts,
            vec![deleted_entry(500), deleted_entry(9_999)],
        );
    }
    assert_eq!(
        drive(&fake, &fetcher(&fake, config(100, 5))).await,
        vec![Outcome::Ack]
    );
    let state = fake.lock();
    let deletes: Vec<_> = state
        .published
        .iter()
        .filter(|b| b.kind == BatchKind::Delete)
        .collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(
        deletes[0].records,
        vec![RawRecord::from_map(&deleted_entry(500))]
    );
    assert_eq!(deletes[0].seq, 1);
    assert_eq!(state.batches_total, Some(2));
    assert_eq!(
        state.listings.last().cloned(),
        Some((
            "deleted",
            Module::Contacts,
            Some(modified - chrono::Duration::seconds(60))
        ))
    );
}

#[tokio::test]
async fn a_rejected_refresh_token_fails_the_run_for_the_creator_and_acks() {
    let fake = Arc::new(Fake::new(SyncMode::Incremental, 5, 0, 10));
    fake.lock().zoho_failure = Some(FetchError::NeedsReauth {
        detail: "invalid_code".into(),
    });
    let outcome = fetcher(&fake, config(100, 5))
        .handle_job(fake.job(), delivery(0))
        .await;
    assert_eq!(outcome, Outcome::Ack);
    let state = fake.lock();
    let (message, needs_reauth) = state.failed.clone().expect("run failed");
    assert!(needs_reauth);
    assert!(
        message.contains("generate a new grant code") && message.contains("re-authorise"),
        "{message}"
    );
    assert_eq!(state.usability, Usability::NeedsReauth);
    assert!(state.published.is_empty());
}

#[tokio::test]
async fn retryable_failures_retry_until_the_last_delivery_then_fail_the_run() {
    let fake = Arc::new(Fake::new(SyncMode::Incremental, 5, 0, 10));
    let fetcher = fetcher(&fake, config(100, 5));
    fake.lock().zoho_failure = Some(FetchError::zoho(
        "Zoho CRM answered HTTP 503; retry later",
        true,
    ));
    let outcome = fetcher.handle_job(fake.job(), delivery(0)).await;
    assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
    assert!(fake.lock().failed.is_none());

    fake.lock().zoho_failure = Some(FetchError::zoho(
        "Zoho CRM answered HTTP 503; retry later",
        true,
    ));
    let outcome = fetcher.handle_job(fake.job(), delivery(3)).await;
    assert!(matches!(outcome, Outcome::DeadLetter { .. }), "{outcome:?}");
    let (message, needs_reauth) = fake.lock().failed.clone().expect("run failed");
    assert!(!needs_reauth);
    assert!(
        message.starts_with("the sync gave up after 4 attempts: Zoho CRM answered HTTP 503"),
        "{message}"
    );
}

#[tokio::test]
async fn a_job_naming_another_integration_is_dead_lettered_without_touching_the_run() {
    let fake = Arc::new(Fake::new(SyncMode::Full, 5, 0, 10));
    let forged = SyncJob {
        integration_id: pledgesync_core::IntegrationId::new(),
        ..fake.job()
    };
    let outcome = fetcher(&fake, config(100, 5))
        .handle_job(forged, delivery(0))
        .await;
    assert!(matches!(outcome, Outcome::DeadLetter { .. }), "{outcome:?}");
    let state = fake.lock();
    assert_eq!(state.run.phase, RunPhase::Queued);
    assert!(state.published.is_empty() && state.failed.is_none());
}

#[tokio::test]
async fn ended_and_unknown_runs_are_acked_without_work() {
    let fake = Arc::new(Fake::new(SyncMode::Full, 5, 0, 10));
    fake.lock().run.phase = RunPhase::Ended;
    let fetcher = fetcher(&fake, config(100, 5));
    assert_eq!(
        fetcher.handle_job(fake.job(), delivery(0)).await,
        Outcome::Ack
    );
    let unknown = SyncJob {
        run_id: pledgesync_core::RunId::new(),
        ..fake.job()
    };
    assert_eq!(fetcher.handle_job(unknown, delivery(0)).await, Outcome::Ack);
    assert!(fake.lock().published.is_empty());
}

#[tokio::test]
async fn shutdown_hands_the_run_on_at_the_next_page() {
    let fake = Arc::new(Fake::new(SyncMode::Full, 50, 0, 10));
    let shutdown = Shutdown::new();
    shutdown.trigger();
    let fetcher = Fetcher::new(fake.clone(), config(100, 5), shutdown);
    assert_eq!(
        fetcher.handle_job(fake.job(), delivery(0)).await,
        Outcome::Ack
    );
    let state = fake.lock();
    assert_eq!(state.jobs.len(), 1, "a continuation carries the run on");
    assert!(state.published.is_empty());
    assert!(state.run.checkpoint.is_some(), "the plan is committed");
}

#[tokio::test]
async fn a_continuation_that_cannot_be_published_leaves_the_delivery_to_be_retried() {
    let fake = Arc::new(Fake::new(SyncMode::Full, 50, 0, 10));
    fake.lock().fail_job_publish = true;
    let outcome = fetcher(&fake, config(1, 5))
        .handle_job(fake.job(), delivery(0))
        .await;
    assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
    let checkpoint = fake.lock().run.checkpoint.clone().expect("checkpoint");
    let checkpoint = Checkpoint::from_json(&checkpoint).expect("readable");
    assert_eq!(checkpoint.next_seq, 1);
    assert!(matches!(
        checkpoint.stage,
        Stage::Records {
            module: 0,
            position: Some(_)
        }
    ));
}

#[tokio::test]
async fn disabled_integrations_fail_the_run_without_calling_zoho() {
    let fake = Arc::new(Fake::new(SyncMode::Full, 5, 0, 10));
    fake.lock().usability = Usability::Disabled;
    assert_eq!(
        fetcher(&fake, config(100, 5))
            .handle_job(fake.job(), delivery(0))
            .await,
        Outcome::Ack
    );
    let state = fake.lock();
    assert!(state
        .failed
        .as_ref()
        .is_some_and(|(m, reauth)| m.contains("disabled") && !reauth));
    assert!(state.listings.is_empty());
}
