use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pledgesync_broker::{run_consumer_with, DeliveryInfo, Outcome, PublishOptions, WorkQueue};
use pledgesync_core::messages::SyncJob;
use pledgesync_core::shutdown::Shutdown;
use pledgesync_core::RunId;
use tokio::sync::mpsc;

use crate::common::{cleanup, connect, fast_consumer, job_of, recv, wait_for_depth};

#[tokio::test]
async fn dead_lettered_jobs_are_listed_with_their_reason_and_redriven_by_run() {
    let broker = connect("dead").await;
    let (run_a, run_b) = (RunId::new(), RunId::new());
    let jobs = [job_of(run_a), job_of(run_a).continuation(), job_of(run_b)];
    for (n, job) in jobs.iter().enumerate() {
        broker
            .publish(
                WorkQueue::Jobs,
                job,
                &PublishOptions::new(format!("job-{n}")),
            )
            .await
            .expect("confirmed");
    }

    // First the integration is broken: every job is dead-lettered by the handler.
    let broken = Arc::new(AtomicBool::new(true));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let shutdown = Shutdown::new();
    let is_broken = broken.clone();
    let consumer = tokio::spawn(run_consumer_with(
        broker.clone(),
        fast_consumer(WorkQueue::Jobs, 2),
        move |job: SyncJob, _: DeliveryInfo| {
            let broken = is_broken.load(Ordering::SeqCst);
            let tx = tx.clone();
            async move {
                if broken {
                    Outcome::dead_letter("run belongs to another integration")
                } else {
                    let _ = tx.send(job);
                    Outcome::Ack
                }
            }
        },
        shutdown.clone(),
    ));
    let dead = broker.topology().dead_queue(WorkQueue::Jobs);
    wait_for_depth(&broker, &dead, 3).await;

    // Listing leaves every letter in place, and says why each died.
    let letters = broker
        .dead_letters(WorkQueue::Jobs, 10)
        .await
        .expect("list");
    assert_eq!(letters.len(), 3);
    assert_eq!(
        broker
            .dead_letters(WorkQueue::Jobs, 2)
            .await
            .expect("list")
            .len(),
        2
    );
    wait_for_depth(&broker, &dead, 3).await;
    for letter in &letters {
        assert_eq!(
            letter.reason.as_deref(),
            Some("run belongs to another integration")
        );
        assert_eq!(
            letter.source_queue.as_deref(),
            Some(broker.topology().queue(WorkQueue::Jobs).as_str())
        );
        assert_eq!(letter.kind.as_deref(), Some("SyncJob"));
        assert!(letter.headers.contains_key("x-pledgesync-failed-at"));
    }
    let mut runs: Vec<_> = letters.iter().filter_map(|l| l.run_id).collect();
    runs.sort();
    let mut expected = vec![run_a, run_a, run_b];
    expected.sort();
    assert_eq!(runs, expected);

    // The cause is fixed: redrive run B only, then the rest.
    broken.store(false, Ordering::SeqCst);
    assert_eq!(
        broker
            .redrive(WorkQueue::Jobs, Some(run_b))
            .await
            .expect("redrive"),
        1
    );
    let redriven = recv(&mut rx, "run B's job").await;
    assert_eq!(redriven, jobs[2]);
    wait_for_depth(&broker, &dead, 2).await;
    assert_eq!(
        broker
            .redrive(WorkQueue::Jobs, Some(RunId::new()))
            .await
            .expect("redrive"),
        0
    );
    // The letters that redrive held come back to the queue asynchronously (a quorum queue
    // settles through its log); wait for them before the next pass.
    wait_for_depth(&broker, &dead, 2).await;
    assert_eq!(
        broker
            .redrive(WorkQueue::Jobs, None)
            .await
            .expect("redrive"),
        2
    );
    let mut rest = vec![
        recv(&mut rx, "a job of run A").await,
        recv(&mut rx, "a job of run A").await,
    ];
    rest.sort_by_key(|job| job.slice);
    assert_eq!(rest, jobs[..2].to_vec());
    wait_for_depth(&broker, &dead, 0).await;

    // A letter whose cause is not fixed dies again; redriving it moves it once and ends.
    broken.store(true, Ordering::SeqCst);
    broker
        .publish(
            WorkQueue::Jobs,
            &job_of(run_a),
            &PublishOptions::new("hopeless"),
        )
        .await
        .expect("confirmed");
    wait_for_depth(&broker, &dead, 1).await;
    assert_eq!(
        broker
            .redrive(WorkQueue::Jobs, None)
            .await
            .expect("redrive"),
        1
    );
    wait_for_depth(&broker, &dead, 1).await;
    let letters = broker
        .dead_letters(WorkQueue::Jobs, 10)
        .await
        .expect("list");
    assert_eq!(
        letters[0].headers.get("x-pledgesync-redriven"),
        Some(&serde_json::json!(1))
    );

    shutdown.trigger();
    consumer.await.expect("join").expect("clean stop");
    wait_for_depth(&broker, &broker.topology().queue(WorkQueue::Jobs), 0).await;
    cleanup(&broker).await;
}
