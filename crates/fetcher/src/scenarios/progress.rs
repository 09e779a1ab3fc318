//! Pages, slices, resumes, confirms and back-pressure of a run.

use super::*;

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
