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

#[tokio::test]
async fn a_new_integration_is_not_scheduled_before_its_first_sync_now() {
    let db = TestDb::new().await;
    let (integration, _) = setup(&db.store, "acct_a").await;
    assert_eq!(integration.next_sync_at, None, "mapped, but never synced");
    assert!(db
        .store
        .claim_due_integrations(100, job)
        .await
        .expect("claim")
        .is_empty());
    let shorter = pledgesync_store::Schedule {
        sync_interval_secs: 60,
        ..pledgesync_store::Schedule::default()
    };
    let changed = db
        .store
        .update_schedule(integration.id, &shorter)
        .await
        .expect("schedule");
    assert_eq!(
        changed.next_sync_at, None,
        "a schedule change starts nothing"
    );
    assert!(db
        .store
        .claim_due_integrations(100, job)
        .await
        .expect("claim")
        .is_empty());

    // The first Sync Now starts the schedule one interval ahead.
    let run = db
        .store
        .enqueue_run(integration.id, SyncMode::Full, Trigger::Manual, job)
        .await
        .expect("sync now")
        .run()
        .id;
    let started = db
        .store
        .get_integration(integration.id)
        .await
        .expect("integration")
        .next_sync_at
        .expect("scheduled after the first Sync Now");
    assert!(started > chrono::Utc::now() + chrono::Duration::seconds(30));
    assert!(started <= chrono::Utc::now() + chrono::Duration::seconds(61));
    db.store.cancel_run(run, "test").await.expect("cancel");

    // From then on the periodic scheduler takes it when it is due.
    sqlx::query("UPDATE integrations SET next_sync_at = now() - interval '1 second'")
        .execute(db.store.pool())
        .await
        .expect("make due");
    let claimed = db
        .store
        .claim_due_integrations(100, job)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].integration_id, integration.id);
    assert_eq!(claimed[0].trigger, Trigger::Schedule);
}

#[tokio::test]
async fn the_migration_unschedules_integrations_that_never_ran() {
    let db = TestDb::empty().await;
    // The schema as 0001 left it, with one integration that ran and one that never did.
    sqlx::raw_sql(include_str!("../migrations/0001_initial_schema.sql"))
        .execute(db.store.pool())
        .await
        .expect("0001");
    sqlx::raw_sql(
        "INSERT INTO audiences (id, account_id, name) VALUES ('00000000-0000-0000-0000-0000000000a1', 'acct_a', 'B'); \
         INSERT INTO integrations (id, account_id, name, data_center, api_domain, client_id, client_secret_ciphertext, \
           refresh_token_ciphertext, encryption_key_id, zoho_org_id, audience_id) VALUES \
           ('00000000-0000-0000-0000-000000000001', 'acct_a', 'ran', 'US', 'x', 'c', '\\x01', '\\x01', 'k1', 'o', \
            '00000000-0000-0000-0000-0000000000a1'), \
           ('00000000-0000-0000-0000-000000000002', 'acct_a', 'never', 'US', 'x', 'c', '\\x01', '\\x01', 'k1', 'o', \
            '00000000-0000-0000-0000-0000000000a1'); \
         INSERT INTO sync_runs (id, integration_id, audience_id, mode, trigger, status, finished_at) VALUES \
           ('00000000-0000-0000-0000-0000000000f1', '00000000-0000-0000-0000-000000000001', \
            '00000000-0000-0000-0000-0000000000a1', 'full', 'manual', 'succeeded', now());",
    )
    .execute(db.store.pool())
    .await
    .expect("rows");
    sqlx::raw_sql(include_str!(
        "../migrations/0002_schedule_starts_with_sync_now.sql"
    ))
    .execute(db.store.pool())
    .await
    .expect("0002");
    let next: Vec<(String, Option<chrono::DateTime<chrono::Utc>>)> =
        sqlx::query_as("SELECT name, next_sync_at FROM integrations ORDER BY name")
            .fetch_all(db.store.pool())
            .await
            .expect("read");
    assert_eq!(next[0].0, "never");
    assert_eq!(next[0].1, None);
    assert_eq!(next[1].0, "ran");
    assert!(
        next[1].1.is_some(),
        "an integration that ran keeps its schedule"
    );
}
