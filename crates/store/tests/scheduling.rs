//! Several schedulers (and Sync Now) racing to start runs: each due integration is enqueued once,
//! and there is never a second active run.

mod common;

use std::collections::HashSet;

use common::{account, job, new_integration, setup, TestDb};
use pledgesync_core::messages::{SyncMode, Trigger};
use pledgesync_store::Store;

async fn reset_schedule(store: &Store) {
    sqlx::query("UPDATE sync_runs SET status = 'cancelled', finished_at = now() WHERE status IN ('queued', 'running')")
        .execute(store.pool())
        .await
        .expect("cancel runs");
    sqlx::query("UPDATE integrations SET next_sync_at = now() - interval '1 second'")
        .execute(store.pool())
        .await
        .expect("make due");
}

#[tokio::test]
async fn two_schedulers_claiming_at_once_enqueue_each_due_integration_once() {
    let db = TestDb::new().await;
    let a = account("acct_a");
    let audience = db
        .store
        .create_audience(&a, "Backers")
        .await
        .expect("audience");
    let mut due = Vec::new();
    for i in 0..10 {
        due.push(
            db.store
                .insert_integration(&new_integration(&a, &format!("due{i}"), Some(audience.id)))
                .await
                .expect("insert")
                .id,
        );
    }
    // Half had a full sync recently: they get incremental runs.
    sqlx::query("UPDATE integrations SET last_full_sync_at = now() - interval '1 day' WHERE name IN ('due0','due1','due2','due3','due4')")
        .execute(db.store.pool())
        .await
        .expect("recent full");
    // Never claimed: unmapped, disabled, deleted.
    db.store
        .insert_integration(&new_integration(&a, "unmapped", None))
        .await
        .expect("insert");
    let disabled = db
        .store
        .insert_integration(&new_integration(&a, "disabled", Some(audience.id)))
        .await
        .expect("insert");
    db.store
        .set_integration_status(
            disabled.id,
            pledgesync_store::IntegrationStatus::Disabled,
            None,
        )
        .await
        .expect("disable");
    let deleted = db
        .store
        .insert_integration(&new_integration(&a, "deleted", Some(audience.id)))
        .await
        .expect("insert");
    db.store
        .delete_integration(deleted.id)
        .await
        .expect("delete");

    let schedulers = [
        db.another_store().await,
        db.another_store().await,
        db.another_store().await,
    ];
    for round in 0..5 {
        reset_schedule(&db.store).await;
        let claims = schedulers.iter().map(|s| s.claim_due_integrations(4, job));
        let mut claimed = Vec::new();
        for result in futures::future::join_all(claims).await {
            claimed.extend(result.expect("claim"));
        }
        // Whatever was left after the concurrent tick is claimed by the next tick.
        claimed.extend(
            schedulers[0]
                .claim_due_integrations(100, job)
                .await
                .expect("claim rest"),
        );
        let integrations: HashSet<_> = claimed.iter().map(|r| r.integration_id).collect();
        assert_eq!(
            (claimed.len(), integrations.len()),
            (10, 10),
            "round {round}"
        );
        assert!(
            due.iter().all(|id| integrations.contains(id)),
            "round {round}"
        );
        let full = claimed.iter().filter(|r| r.mode == SyncMode::Full).count();
        assert_eq!(full, 5, "round {round}");
        assert!(claimed
            .iter()
            .all(|r| r.trigger == Trigger::Schedule && r.audience_id == audience.id));
        assert!(
            schedulers[1]
                .claim_due_integrations(100, job)
                .await
                .expect("claim")
                .is_empty(),
            "nothing is due twice"
        );
    }
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_runs")
        .fetch_one(db.store.pool())
        .await
        .expect("count");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(db.store.pool())
        .await
        .expect("count");
    assert_eq!((runs, jobs), (50, 50));
    let next: Vec<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT next_sync_at FROM integrations WHERE id = ANY($1)")
            .bind(due.iter().map(|id| id.0).collect::<Vec<_>>())
            .fetch_all(db.store.pool())
            .await
            .expect("next");
    assert!(next
        .iter()
        .all(|t| *t > chrono::Utc::now() + chrono::Duration::seconds(3000)));
}

#[tokio::test]
async fn schedulers_racing_sync_now_never_make_two_active_runs() {
    let db = TestDb::new().await;
    let (integration, _) = setup(&db.store, "acct_a").await;
    let scheduler = db.another_store().await;
    for round in 0..10 {
        reset_schedule(&db.store).await;
        let (claimed, manual) = tokio::join!(
            scheduler.claim_due_integrations(10, job),
            db.store
                .enqueue_run(integration.id, SyncMode::Incremental, Trigger::Manual, job)
        );
        let claimed = claimed.expect("claim");
        let manual = manual.expect("sync now");
        let active: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sync_runs WHERE status IN ('queued', 'running')",
        )
        .fetch_one(db.store.pool())
        .await
        .expect("count");
        assert_eq!(active, 1, "round {round}");
        if let Some(run) = claimed.first() {
            assert_eq!(
                manual.run().id,
                run.run_id,
                "round {round}: Sync Now returns the scheduled run"
            );
        }
    }
}
