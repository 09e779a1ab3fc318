//! Races between sinks (and the fetcher) the promises must survive: overlapping emails, the last
//! two batches of a run landing together, the fetcher's total racing the last batch, and
//! duplicate deliveries.

mod common;

use common::{at, delete_batch, member, running_run, setup, upsert_batch, TestDb};
use pledgesync_core::messages::SyncMode;
use pledgesync_core::Module;
use pledgesync_store::{ApplyOutcome, MemberUpsert, RunStatus};

fn named(id: u64, email: String, minute: u32, first: &str) -> MemberUpsert {
    let mut m = member(id, &email, minute);
    m.first_name = Some(first.to_owned());
    m
}

#[tokio::test]
async fn concurrent_batches_with_overlapping_emails_never_fail_and_newest_wins() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct_a").await;
    let run = running_run(&db.store, integration.id, SyncMode::Full).await;
    let sink_a = db.another_store().await;
    let sink_b = db.another_store().await;
    const ROUNDS: u64 = 40;
    for round in 0..ROUNDS {
        let minute = round as u32 * 2;
        // Emails 0..80 from Contacts in one order, 40..120 from Leads in reverse order, so the
        // two batches meet on 40 emails from both ends. Which is newer alternates by round.
        let (contacts_minute, leads_minute) = if round % 2 == 0 {
            (minute + 1, minute)
        } else {
            (minute, minute + 1)
        };
        let contacts: Vec<MemberUpsert> = (0..80)
            .map(|i| named(1000 + i, format!("p{i}@x.io"), contacts_minute, "Contact"))
            .collect();
        let leads: Vec<MemberUpsert> = (40..120)
            .rev()
            .map(|i| named(5000 + i, format!("P{i}@X.io"), leads_minute, "Lead"))
            .collect();
        let a = upsert_batch(
            run,
            round * 2,
            integration.id,
            audience,
            Module::Contacts,
            contacts,
        );
        let b = upsert_batch(
            run,
            round * 2 + 1,
            integration.id,
            audience,
            Module::Leads,
            leads,
        );
        let (sa, sb) = (sink_a.clone(), sink_b.clone());
        let ta = tokio::spawn(async move { sa.apply_batch(&a).await });
        let tb = tokio::spawn(async move { sb.apply_batch(&b).await });
        let (ra, rb) = (ta.await.expect("task"), tb.await.expect("task"));
        assert!(
            matches!(ra, Ok(ApplyOutcome::Applied(_))),
            "round {round}: {ra:?}"
        );
        assert!(
            matches!(rb, Ok(ApplyOutcome::Applied(_))),
            "round {round}: {rb:?}"
        );

        let expected_overlap = if round % 2 == 0 { "Contact" } else { "Lead" };
        for (email, expected) in [
            ("p0@x.io", "Contact"),
            ("p50@x.io", expected_overlap),
            ("p119@x.io", "Lead"),
        ] {
            let m = db
                .store
                .get_member(audience, email)
                .await
                .expect("get")
                .expect("member");
            assert_eq!(
                m.first_name.as_deref(),
                Some(expected),
                "round {round}, {email}"
            );
        }
    }
    assert_eq!(db.store.count_members(audience).await.expect("count"), 120);
    let counters = db.store.get_run(run).await.expect("run").counters;
    assert_eq!(
        (counters.applied, counters.batches_applied),
        (160 * ROUNDS, 2 * ROUNDS)
    );
    let newest: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audience_members WHERE audience_id = $1 AND source_modified_at = $2",
    )
    .bind(audience.0)
    .bind(at((ROUNDS as u32 - 1) * 2 + 1))
    .fetch_one(db.store.pool())
    .await
    .expect("count");
    assert_eq!(
        newest, 80,
        "the last round's newer batch holds its 80 emails"
    );
}

#[tokio::test]
async fn concurrent_deletions_and_upserts_on_shared_emails_stay_consistent() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct_a").await;
    let run = running_run(&db.store, integration.id, SyncMode::Incremental).await;
    let sinks = [db.another_store().await, db.another_store().await];
    let mut seq = 0;
    for round in 0..15u64 {
        // Contacts bring 30 emails; then, concurrently, the contacts are deleted while leads
        // bring half of the same emails. A member stays exactly when a lead has it.
        let base = round * 100;
        let contacts: Vec<MemberUpsert> = (0..30)
            .map(|i| named(base + i, format!("r{round}m{i}@x.io"), 1, "C"))
            .collect();
        db.store
            .apply_batch(&upsert_batch(
                run,
                seq,
                integration.id,
                audience,
                Module::Contacts,
                contacts,
            ))
            .await
            .expect("contacts");
        let ids: Vec<u64> = (0..30).map(|i| base + i).collect();
        let deletes = delete_batch(
            run,
            seq + 1,
            integration.id,
            audience,
            Module::Contacts,
            &ids,
        );
        let leads: Vec<MemberUpsert> = (0..30)
            .step_by(2)
            .map(|i| named(50_000 + base + i, format!("r{round}m{i}@x.io"), 2, "L"))
            .collect();
        let leads = upsert_batch(run, seq + 2, integration.id, audience, Module::Leads, leads);
        seq += 3;
        let (s0, s1) = (sinks[0].clone(), sinks[1].clone());
        let td = tokio::spawn(async move { s0.apply_batch(&deletes).await });
        let tl = tokio::spawn(async move { s1.apply_batch(&leads).await });
        td.await.expect("task").expect("deletes apply");
        tl.await.expect("task").expect("leads apply");
        for i in 0..30 {
            let m = db
                .store
                .get_member(audience, &format!("r{round}m{i}@x.io"))
                .await
                .expect("get")
                .expect("member");
            assert_eq!(
                m.removed_at.is_none(),
                i % 2 == 0,
                "round {round}, member {i}: {m:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_last_two_batches_landing_together_complete_the_run_once() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct_a").await;
    let sinks = [db.another_store().await, db.another_store().await];
    for round in 0..20u64 {
        let run = running_run(&db.store, integration.id, SyncMode::Incremental).await;
        db.store
            .set_batches_total(run, 2)
            .await
            .expect("total first");
        let batches = [0u64, 1].map(|seq| {
            upsert_batch(
                run,
                seq,
                integration.id,
                audience,
                Module::Contacts,
                vec![member(
                    round * 10 + seq,
                    &format!("x{round}@x.io"),
                    seq as u32,
                )],
            )
        });
        let handles: Vec<_> = batches
            .into_iter()
            .zip(sinks.iter().cloned())
            .map(|(batch, sink)| tokio::spawn(async move { sink.apply_batch(&batch).await }))
            .collect();
        let mut completed = 0;
        for handle in handles {
            match handle.await.expect("task").expect("apply") {
                ApplyOutcome::Applied(counts) => completed += usize::from(counts.run_completed),
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(
            completed, 1,
            "round {round}: exactly one sink completes the run"
        );
        assert_eq!(
            db.store.get_run(run).await.expect("run").status,
            RunStatus::Succeeded,
            "round {round}"
        );
    }
}

#[tokio::test]
async fn the_total_racing_the_last_batch_still_completes_the_run() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct_a").await;
    let fetcher = db.another_store().await;
    let sink = db.another_store().await;
    for round in 0..20u64 {
        let run = running_run(&db.store, integration.id, SyncMode::Incremental).await;
        db.store
            .apply_batch(&upsert_batch(
                run,
                0,
                integration.id,
                audience,
                Module::Contacts,
                vec![],
            ))
            .await
            .expect("first batch");
        let last = upsert_batch(
            run,
            1,
            integration.id,
            audience,
            Module::Contacts,
            vec![member(round, "y@x.io", 1)],
        );
        let f = fetcher.clone();
        let s = sink.clone();
        let total = tokio::spawn(async move { f.set_batches_total(run, 2).await });
        let apply = tokio::spawn(async move { s.apply_batch(&last).await });
        total.await.expect("task").expect("total");
        apply.await.expect("task").expect("apply");
        assert_eq!(
            db.store.get_run(run).await.expect("run").status,
            RunStatus::Succeeded,
            "round {round}"
        );
    }
    // The sweep finds nothing left to complete.
    assert!(db
        .store
        .complete_finished_runs()
        .await
        .expect("sweep")
        .is_empty());
}

#[tokio::test]
async fn a_batch_delivered_twice_at_once_applies_once() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct_a").await;
    let run = running_run(&db.store, integration.id, SyncMode::Full).await;
    let sinks = [db.another_store().await, db.another_store().await];
    for seq in 0..10u64 {
        let batch = upsert_batch(
            run,
            seq,
            integration.id,
            audience,
            Module::Contacts,
            (0..20)
                .map(|i| member(seq * 100 + i, &format!("d{i}@x.io"), seq as u32))
                .collect(),
        );
        let handles: Vec<_> = sinks
            .iter()
            .cloned()
            .map(|sink| {
                let batch = batch.clone();
                tokio::spawn(async move { sink.apply_batch(&batch).await })
            })
            .collect();
        let mut applied = 0;
        for handle in handles {
            match handle.await.expect("task").expect("apply") {
                ApplyOutcome::Applied(_) => applied += 1,
                ApplyOutcome::AlreadyApplied { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(applied, 1, "seq {seq}");
    }
    let counters = db.store.get_run(run).await.expect("run").counters;
    assert_eq!((counters.applied, counters.batches_applied), (200, 10));
}

#[tokio::test]
async fn the_same_new_record_from_two_concurrent_batches_keeps_its_newest_version() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct_a").await;
    let run = running_run(&db.store, integration.id, SyncMode::Full).await;
    let sinks = [db.another_store().await, db.another_store().await];
    const ROUNDS: u64 = 20;
    for round in 0..ROUNDS {
        // The same record on two pages of one run (it changed while the run listed it: a new
        // email at a later Modified_Time), applied by two sinks at once. Fresh ids every round,
        // so both transactions find no source and race to create it.
        let ids: Vec<u64> = (0..50).map(|i| 100_000 + round * 100 + i).collect();
        let older: Vec<MemberUpsert> = ids
            .iter()
            .map(|&id| named(id, format!("old{id}@x.io"), 1, "Old"))
            .collect();
        let newer: Vec<MemberUpsert> = ids
            .iter()
            .map(|&id| named(id, format!("new{id}@x.io"), 2, "New"))
            .collect();
        let mut batches = vec![
            upsert_batch(
                run,
                round * 2,
                integration.id,
                audience,
                Module::Contacts,
                older,
            ),
            upsert_batch(
                run,
                round * 2 + 1,
                integration.id,
                audience,
                Module::Contacts,
                newer,
            ),
        ];
        if round % 2 == 1 {
            batches.reverse();
        }
        let tasks: Vec<_> = batches
            .into_iter()
            .zip(sinks.iter().cloned())
            .map(|(batch, sink)| tokio::spawn(async move { sink.apply_batch(&batch).await }))
            .collect();
        for task in tasks {
            let outcome = task.await.expect("task");
            assert!(
                matches!(outcome, Ok(ApplyOutcome::Applied(_))),
                "round {round}: {outcome:?}"
            );
        }
        for id in ids {
            let new = db
                .store
                .get_member(audience, &format!("new{id}@x.io"))
                .await
                .expect("get")
                .expect("the newest version's member");
            assert_eq!(
                new.first_name.as_deref(),
                Some("New"),
                "round {round}, {id}"
            );
            assert!(new.removed_at.is_none(), "round {round}, {id}: {new:?}");
            let sources = db
                .store
                .member_sources(audience, &new.email)
                .await
                .expect("sources");
            assert_eq!(sources.len(), 1, "round {round}, {id}: {sources:?}");
            assert_eq!(sources[0].zoho_id.as_str(), id.to_string());
            assert!(sources[0].removed_at.is_none(), "round {round}, {id}");
            assert_eq!(sources[0].modified_at, Some(at(2)), "round {round}, {id}");
            // The older email either never became a member (the newer version came first) or
            // was removed when its record moved on.
            let old = db
                .store
                .get_member(audience, &format!("old{id}@x.io"))
                .await
                .expect("get");
            assert!(
                old.as_ref().is_none_or(|m| m.removed_at.is_some()),
                "round {round}, {id}: the older email is still a live member: {old:?}"
            );
        }
    }
}
