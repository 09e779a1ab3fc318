//! Throughput of the two write paths, for the benchmark's numbers. Ignored by default (it is a
//! measurement, not a check of behaviour): `cargo test -p pledgesync-store --test throughput --
//! --ignored --nocapture`.

mod common;

use std::time::Instant;

use common::{member, running_run, setup, upsert_batch, TestDb};
use pledgesync_core::messages::SyncMode;
use pledgesync_core::Module;
use pledgesync_store::{ApplyOutcome, MemberUpsert};

const MEMBERS: u64 = 20_000;

fn members(offset: u64) -> Vec<MemberUpsert> {
    (0..MEMBERS)
        .map(|i| member(offset + i, &format!("t{i}@example.com"), 1))
        .collect()
}

#[tokio::test]
#[ignore = "measurement; run explicitly"]
async fn batch_path_versus_copy_ceiling() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct_bench").await;
    let run = running_run(&db.store, integration.id, SyncMode::Full).await;

    for sinks in [1usize, 4] {
        let all = members(if sinks == 1 { 0 } else { 1_000_000 });
        let batches: Vec<_> = all
            .chunks(200)
            .enumerate()
            .map(|(i, chunk)| {
                let seq = i as u64 + if sinks == 1 { 0 } else { 1_000 };
                upsert_batch(
                    run,
                    seq,
                    integration.id,
                    audience,
                    Module::Contacts,
                    chunk.to_vec(),
                )
            })
            .collect();
        let started = Instant::now();
        let mut lanes: Vec<Vec<_>> = vec![Vec::new(); sinks];
        for (i, batch) in batches.into_iter().enumerate() {
            lanes[i % sinks].push(batch);
        }
        let handles: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                let store = db.store.clone();
                tokio::spawn(async move {
                    for batch in lane {
                        assert!(matches!(
                            store.apply_batch(&batch).await,
                            Ok(ApplyOutcome::Applied(_))
                        ));
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("lane");
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "apply_batch, {sinks} sink(s), 200/batch, {} updates-or-inserts: {secs:.2}s = {:.0} members/s",
            MEMBERS,
            MEMBERS as f64 / secs
        );
    }

    let other = db
        .store
        .create_audience(&common::account("acct_bench"), "Copy")
        .await
        .expect("audience");
    let all = members(0);
    let started = Instant::now();
    for chunk in all.chunks(5_000) {
        db.store
            .upsert_members_copy(other.id, chunk)
            .await
            .expect("copy");
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "upsert_members_copy, 5000/call, fresh inserts: {secs:.2}s = {:.0} members/s",
        MEMBERS as f64 / secs
    );
    assert_eq!(
        db.store.count_members(other.id).await.expect("count"),
        MEMBERS
    );
}
