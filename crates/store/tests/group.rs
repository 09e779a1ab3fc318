//! Group commit: many upsert batches in one transaction leave exactly what applying them one by
//! one leaves, and keep every batch's ledger row, redelivery and failure its own.

mod common;

use common::{member, running_run, setup, upsert_batch, TestDb};
use pledgesync_core::messages::SyncMode;
use pledgesync_core::{AudienceId, IntegrationId, Module, RunId};
use pledgesync_store::{
    ApplyBatch, ApplyOutcome, Member, MemberUpsert, RunCounters, Store, StoreError,
};

/// One side of the comparison: an integration, its audience and a running run.
#[derive(Clone, Copy)]
struct Side {
    integration: IntegrationId,
    audience: AudienceId,
    run: RunId,
}

async fn side(store: &Store, account: &str) -> Side {
    let (integration, audience) = setup(store, account).await;
    let run = running_run(store, integration.id, SyncMode::Full).await;
    Side {
        integration: integration.id,
        audience,
        run,
    }
}

fn with(mut record: MemberUpsert, edit: impl FnOnce(&mut MemberUpsert)) -> MemberUpsert {
    edit(&mut record);
    record
}

/// Batches that exercise what the group must order correctly: a record moving to another email
/// (its old member loses its last source), an older copy of a record arriving after a newer one,
/// a null that must not wipe, an unusable email, two records of one email in different batches,
/// and a second copy of a batch.
fn scenario(side: Side) -> Vec<ApplyBatch> {
    let batch = |seq, members| {
        upsert_batch(
            side.run,
            seq,
            side.integration,
            side.audience,
            Module::Contacts,
            members,
        )
    };
    vec![
        batch(
            0,
            vec![
                member(1, "a@x.io", 1),
                member(2, "b@x.io", 2),
                member(3, "c@x.io", 1),
                member(4, "not an email", 1),
            ],
        ),
        batch(
            1,
            vec![
                member(1, "a2@x.io", 3),
                member(5, "d@x.io", 1),
                with(member(2, "b@x.io", 0), |r| {
                    r.first_name = Some("Stale".into())
                }),
            ],
        ),
        batch(
            2,
            vec![
                with(member(3, "c@x.io", 5), |r| {
                    r.first_name = None;
                    r.phone = Some("+44 20".into());
                }),
                member(6, "d@x.io", 4),
            ],
        ),
        batch(
            2,
            vec![with(member(3, "c@x.io", 9), |r| {
                r.first_name = Some("Copy".into())
            })],
        ),
        batch(
            3,
            vec![with(member(1, "a2@x.io", 6), |r| {
                r.country = Some("GB".into())
            })],
        ),
    ]
}

/// The audience as a comparable list: everything but row timestamps.
async fn audience_state(store: &Store, audience: AudienceId) -> Vec<String> {
    let emails = ["a@x.io", "a2@x.io", "b@x.io", "c@x.io", "d@x.io"];
    let mut state = Vec::new();
    for email in emails {
        let row: Option<Member> = store.get_member(audience, email).await.expect("member");
        let sources = store
            .member_sources(audience, email)
            .await
            .expect("sources")
            .into_iter()
            .map(|s| (s.zoho_id.to_string(), s.removed_reason, s.modified_at))
            .collect::<Vec<_>>();
        state.push(format!(
            "{email}: {:?} sources {:?}",
            row.map(|m| (
                m.first_name,
                m.last_name,
                m.phone,
                m.country,
                m.source_modified_at,
                m.removed_reason
            )),
            sources
        ));
    }
    state
}

/// Asserts that two sides that applied the same scenario two ways hold the same members, sources
/// and run counters; returns the counters.
async fn assert_sides_agree(store: &Store, a: &Side, b: &Side, ways: &str) -> RunCounters {
    assert_eq!(
        audience_state(store, a.audience).await,
        audience_state(store, b.audience).await,
        "members and sources differ between {ways}"
    );
    let counters = store.get_run(a.run).await.expect("run").counters;
    assert_eq!(
        counters,
        store.get_run(b.run).await.expect("run").counters,
        "run counters differ between {ways}"
    );
    counters
}

#[tokio::test]
async fn a_group_leaves_what_the_same_batches_one_by_one_leave() {
    let db = TestDb::new().await;
    let one_by_one = side(&db.store, "acct_seq").await;
    let grouped = side(&db.store, "acct_group").await;

    for batch in scenario(one_by_one) {
        db.store.apply_batch(&batch).await.expect("apply one");
    }
    let results = db.store.apply_batches(&scenario(grouped)).await;
    let outcomes: Vec<ApplyOutcome> = results
        .into_iter()
        .map(|r| r.expect("group applies"))
        .collect();
    assert!(
        matches!(outcomes[3], ApplyOutcome::AlreadyApplied { .. }),
        "the second copy of seq 2 is a redelivery: {:?}",
        outcomes[3]
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, ApplyOutcome::Applied(_)))
            .count(),
        4
    );

    let b = assert_sides_agree(
        &db.store,
        &one_by_one,
        &grouped,
        "the sequence and the group",
    )
    .await;
    assert_eq!(b.batches_applied, 4);
    assert_eq!(
        b.deleted, 1,
        "a@x.io lost its only source when record 1 moved"
    );
    assert_eq!(b.skipped_by_reason.get("superseded"), Some(&1));
    assert_eq!(b.skipped_by_reason.get("invalid_email"), Some(&1));
    let c = db
        .store
        .get_member(grouped.audience, "c@x.io")
        .await
        .expect("get")
        .expect("c");
    assert_eq!(
        c.first_name.as_deref(),
        Some("First3"),
        "a null never wipes"
    );
    assert_eq!(c.phone.as_deref(), Some("+44 20"));
}

#[tokio::test]
async fn a_redelivered_group_has_no_effect() {
    let db = TestDb::new().await;
    let s = side(&db.store, "acct_a").await;
    let batches = scenario(s);
    for result in db.store.apply_batches(&batches).await {
        result.expect("first delivery");
    }
    let before = db.store.get_run(s.run).await.expect("run").counters;
    let state = audience_state(&db.store, s.audience).await;
    for result in db.store.apply_batches(&batches).await {
        assert!(
            matches!(result, Ok(ApplyOutcome::AlreadyApplied { .. })),
            "{result:?}"
        );
    }
    assert_eq!(db.store.get_run(s.run).await.expect("run").counters, before);
    assert_eq!(audience_state(&db.store, s.audience).await, state);
}

#[tokio::test]
async fn a_forged_batch_fails_alone() {
    let db = TestDb::new().await;
    let s = side(&db.store, "acct_a").await;
    let other = side(&db.store, "acct_b").await;
    let mut batches = scenario(s);
    // Claims its run belongs to another account's audience: forged or corrupt.
    batches[1].audience_id = other.audience;
    let results = db.store.apply_batches(&batches).await;
    assert!(
        matches!(results[1], Err(StoreError::Rejected(_))),
        "{:?}",
        results[1]
    );
    for (i, result) in results.iter().enumerate().filter(|(i, _)| *i != 1) {
        assert!(result.is_ok(), "batch {i}: {result:?}");
    }
    let counters = db.store.get_run(s.run).await.expect("run").counters;
    assert_eq!(counters.batches_applied, 3, "seq 0, 2 and 3 are applied");
    assert!(db
        .store
        .get_member(other.audience, "d@x.io")
        .await
        .expect("get")
        .is_none());
}

#[tokio::test]
async fn the_last_batch_of_a_group_completes_its_run_once() {
    let db = TestDb::new().await;
    let s = side(&db.store, "acct_a").await;
    let batches: Vec<ApplyBatch> = (0..5)
        .map(|seq| {
            upsert_batch(
                s.run,
                seq,
                s.integration,
                s.audience,
                Module::Contacts,
                vec![member(100 + seq, &format!("m{seq}@x.io"), 1)],
            )
        })
        .collect();
    db.store.set_batches_total(s.run, 5).await.expect("total");
    let results = db.store.apply_batches(&batches).await;
    let completions = results
        .iter()
        .filter(|r| matches!(r, Ok(ApplyOutcome::Applied(c)) if c.run_completed))
        .count();
    assert_eq!(completions, 1, "{results:?}");
    let run = db.store.get_run(s.run).await.expect("run");
    assert_eq!(run.status, pledgesync_store::RunStatus::Succeeded);
    assert_eq!(run.counters.applied, 5);
}

#[tokio::test]
async fn assuming_records_new_leaves_what_looking_them_up_leaves() {
    let db = TestDb::new().await;
    let assuming = side(&db.store, "acct_assume").await;
    let looking = side(&db.store, "acct_lookup").await;

    // A store that remembers nothing looks every record's source up.
    for batch in scenario(looking) {
        Store::from_pool(db.store.pool().clone())
            .apply_batch(&batch)
            .await
            .expect("apply with lookups");
    }
    let batches = scenario(assuming);
    let (integration, module) = (assuming.integration, Module::Contacts);
    assert!(!db.store.assumes_new_sources(integration, module));
    db.store.apply_batch(&batches[0]).await.expect("batch 0");
    assert!(
        db.store.assumes_new_sources(integration, module),
        "batch 0 found no source, so the next transaction assumes new records"
    );
    // Record 1 of batch 1 has a source since batch 0: the assumption fails, the batch runs
    // again with the lookup, and the store stops assuming.
    db.store.apply_batch(&batches[1]).await.expect("batch 1");
    assert!(!db.store.assumes_new_sources(integration, module));
    for result in db.store.apply_batches(&batches[2..]).await {
        result.expect("the rest as a group");
    }

    let a = assert_sides_agree(&db.store, &looking, &assuming, "looking up and assuming").await;
    assert_eq!(
        a.deleted, 1,
        "a@x.io lost its only source when record 1 moved"
    );
}

#[tokio::test]
async fn a_group_of_new_records_assumes_them_new_and_writes_every_source() {
    let db = TestDb::new().await;
    let s = side(&db.store, "acct_new").await;
    let batch = |seq: u64, first: u64| {
        upsert_batch(
            s.run,
            seq,
            s.integration,
            s.audience,
            Module::Contacts,
            (first..first + 3)
                .map(|id| member(id, &format!("m{id}@x.io"), 1))
                .collect(),
        )
    };
    db.store.apply_batch(&batch(0, 10)).await.expect("first");
    assert!(db
        .store
        .assumes_new_sources(s.integration, Module::Contacts));
    let batches = [batch(1, 20), batch(2, 30), batch(3, 40)];
    for result in db.store.apply_batches(&batches).await {
        assert!(matches!(result, Ok(ApplyOutcome::Applied(_))), "{result:?}");
    }
    assert!(
        db.store
            .assumes_new_sources(s.integration, Module::Contacts),
        "the assumption held"
    );
    for id in [10u64, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42] {
        let email = format!("m{id}@x.io");
        let sources = db
            .store
            .member_sources(s.audience, &email)
            .await
            .expect("sources");
        assert_eq!(sources.len(), 1, "{email}: {sources:?}");
        assert_eq!(sources[0].zoho_id.as_str(), id.to_string());
        assert!(db
            .store
            .get_member(s.audience, &email)
            .await
            .expect("get")
            .is_some());
    }
    let counters = db.store.get_run(s.run).await.expect("run").counters;
    assert_eq!((counters.applied, counters.batches_applied), (12, 4));
}
