//! Plans that must not depend on statistics. Right after an integration's first sync, before
//! autovacuum has analysed the new rows, the planner knows nothing of the tables; statements that
//! reach rows named by a batch must still do so one key at a time through an index (see
//! `crate::apply`, "Reaching rows by key"), or a sync's orphan check reads every source once per
//! statement. (Estimates that go wrong there also used to trigger JIT compilation; the store's
//! sessions run with JIT off, see `crate::db`.)

mod common;

use common::{member, running_run, setup, upsert_batch, TestDb};
use pledgesync_core::messages::SyncMode;
use pledgesync_core::Module;
use pledgesync_store::testing::ORPHAN_CHECK_SQL;
use pledgesync_store::ApplyOutcome;

const RECORDS: u64 = 20_000;
const CANDIDATES: u64 = 500;

#[tokio::test]
async fn the_orphan_check_probes_sources_by_index_before_the_tables_have_statistics() {
    let db = TestDb::new().await;
    let pool = db.store.pool();
    for table in ["audience_members", "member_sources"] {
        sqlx::query(&format!(
            "ALTER TABLE {table} SET (autovacuum_enabled = false)"
        ))
        .execute(pool)
        .await
        .expect("autovacuum off: the tables keep no statistics");
    }
    let (integration, audience) = setup(&db.store, "acct_plans").await;
    let run = running_run(&db.store, integration.id, SyncMode::Full).await;
    let records: Vec<_> = (0..RECORDS)
        .map(|i| member(i + 1, &format!("p{i}@example.com"), 1))
        .collect();
    let batches: Vec<_> = records
        .chunks(200)
        .enumerate()
        .map(|(seq, chunk)| {
            upsert_batch(
                run,
                seq as u64,
                integration.id,
                audience,
                Module::Contacts,
                chunk.to_vec(),
            )
        })
        .collect();
    for group in batches.chunks(4) {
        let outcomes = db.store.apply_batches(group).await;
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, Ok(ApplyOutcome::Applied(_)))));
    }
    let analysed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stats WHERE tablename IN ('audience_members', 'member_sources')",
    )
    .fetch_one(pool)
    .await
    .expect("pg_stats");
    assert_eq!(
        analysed, 0,
        "the tables must be without statistics for this test to mean anything"
    );

    let audiences = vec![audience.0; CANDIDATES as usize];
    let emails: Vec<String> = (0..CANDIDATES)
        .map(|i| format!("p{}@example.com", i * 37))
        .collect();
    let reasons = vec!["email_changed_in_zoho"; CANDIDATES as usize];
    let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {ORPHAN_CHECK_SQL}"))
        .bind(audiences)
        .bind(emails)
        .bind(reasons)
        .fetch_all(pool)
        .await
        .expect("explain the orphan check");
    let plan = plan.join("\n");
    assert!(
        plan.contains("member_sources_by_member"),
        "the orphan check must probe member_sources_by_member per candidate:\n{plan}"
    );
    assert!(
        !plan.contains("Seq Scan on member_sources")
            && !plan.contains("Hash Anti Join")
            && !plan.contains("Merge Anti Join"),
        "the orphan check must not read every source:\n{plan}"
    );
}

#[tokio::test]
async fn the_stores_sessions_never_jit_compile_and_keep_their_timeouts() {
    let db = TestDb::new().await;
    for (setting, expected) in [
        ("jit", "off"),
        ("statement_timeout", "1min"),
        ("lock_timeout", "15s"),
        ("idle_in_transaction_session_timeout", "5min"),
    ] {
        let value: String = sqlx::query_scalar(&format!("SHOW {setting}"))
            .fetch_one(db.store.pool())
            .await
            .expect("SHOW");
        assert_eq!(value, expected, "{setting}");
    }
}
