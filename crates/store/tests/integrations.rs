//! The control plane's rows: audiences, integrations and their credentials, status changes and
//! what they do to runs.

mod common;

use common::{account, job, member, new_integration, running_run, setup, upsert_batch, TestDb};
use pledgesync_core::messages::{SyncMode, Trigger};
use pledgesync_core::Module;
use pledgesync_store::{IntegrationStatus, RunStart, RunStatus, Schedule, StoreError};

#[tokio::test]
async fn audiences_are_unique_per_account() {
    let db = TestDb::new().await;
    let a = account("acct_a");
    let backers = db
        .store
        .create_audience(&a, "Backers")
        .await
        .expect("create");
    let err = db
        .store
        .create_audience(&a, " Backers ")
        .await
        .expect_err("duplicate");
    assert!(
        matches!(err, StoreError::Conflict { field: "name", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("already exists"));
    db.store
        .create_audience(&account("acct_b"), "Backers")
        .await
        .expect("other account may reuse the name");
    db.store
        .create_audience(&a, "Alpha")
        .await
        .expect("second audience");
    let names: Vec<String> = db
        .store
        .list_audiences(&a)
        .await
        .expect("list")
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert_eq!(names, ["Alpha", "Backers"]);
    assert_eq!(
        db.store.get_audience(backers.id).await.expect("get"),
        backers
    );
    let missing = db
        .store
        .get_audience(pledgesync_core::AudienceId::new())
        .await
        .expect_err("missing");
    assert!(matches!(
        missing,
        StoreError::NotFound {
            what: "audience",
            ..
        }
    ));
    assert!(db.store.create_audience(&a, "   ").await.is_err());
}

#[tokio::test]
async fn integrations_are_created_listed_and_changed() {
    let db = TestDb::new().await;
    let a = account("acct_a");
    let audience = db
        .store
        .create_audience(&a, "Backers")
        .await
        .expect("audience");
    let created = db
        .store
        .insert_integration(&new_integration(&a, "Zoho EU", None))
        .await
        .expect("insert");
    assert_eq!(created.status, IntegrationStatus::Active);
    assert_eq!(created.schedule, Schedule::default());
    assert_eq!(created.audience_id, None);
    assert_eq!(created.due_mode(chrono::Utc::now()), SyncMode::Full);
    let dup = db
        .store
        .insert_integration(&new_integration(&a, "Zoho EU", None))
        .await
        .expect_err("dup name");
    assert!(matches!(dup, StoreError::Conflict { .. }), "{dup}");

    let mapped = db
        .store
        .set_audience(created.id, Some(audience.id))
        .await
        .expect("map");
    assert_eq!(mapped.audience_id, Some(audience.id));

    let schedule = Schedule {
        modules: vec![Module::Leads],
        sync_interval_secs: 600,
        full_sync_interval_secs: 86_400,
    };
    let changed = db
        .store
        .update_schedule(created.id, &schedule)
        .await
        .expect("schedule");
    assert_eq!(changed.schedule, schedule);
    assert_eq!(
        changed.next_sync_at, None,
        "an integration that never ran has no schedule to bring forward"
    );
    let bad = Schedule {
        modules: vec![],
        ..schedule.clone()
    };
    assert!(matches!(
        db.store.update_schedule(created.id, &bad).await,
        Err(StoreError::Rejected(_))
    ));

    let reauth = db
        .store
        .set_integration_status(
            created.id,
            IntegrationStatus::NeedsReauth,
            Some("refresh token revoked"),
        )
        .await
        .expect("needs reauth");
    assert_eq!(
        reauth.status_reason.as_deref(),
        Some("refresh token revoked")
    );
    let active = db
        .store
        .set_integration_status(created.id, IntegrationStatus::Active, Some("ignored"))
        .await
        .expect("active");
    assert_eq!(
        (active.status, active.status_reason),
        (IntegrationStatus::Active, None)
    );

    db.store
        .insert_integration(&new_integration(&account("acct_b"), "Zoho EU", None))
        .await
        .expect("other account");
    let listed = db.store.list_integrations(&a).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, created.id);
    assert!(
        !format!("{listed:?}").contains("5, 6, 7, 8"),
        "ciphertext leaked into Debug"
    );
}

#[tokio::test]
async fn credentials_are_read_and_replaced_for_the_same_org_only() {
    let db = TestDb::new().await;
    let (integration, _) = setup(&db.store, "acct_a").await;
    let row = db
        .store
        .integration_credentials(integration.id)
        .await
        .expect("credentials");
    assert_eq!(row.credentials, common::credentials());
    assert_eq!(row.modules, vec![Module::Contacts, Module::Leads]);
    assert!(!row.deleted);
    assert!(format!("{row:?}").contains("Ciphertext(4 bytes)"));

    db.store
        .set_integration_status(
            integration.id,
            IntegrationStatus::NeedsReauth,
            Some("invalid_code"),
        )
        .await
        .expect("needs reauth");
    let mut fresh = common::credentials();
    fresh.refresh_token = pledgesync_store::Ciphertext(vec![9; 40]);
    fresh.encryption_key_id = "k2".into();
    let err = db
        .store
        .replace_credentials(integration.id, &fresh, "999")
        .await
        .expect_err("other org");
    assert!(
        matches!(err, StoreError::Rejected(_)) && err.to_string().contains("new integration"),
        "{err}"
    );
    let replaced = db
        .store
        .replace_credentials(integration.id, &fresh, "20071234")
        .await
        .expect("replace");
    assert_eq!(replaced.status, IntegrationStatus::Active);
    assert_eq!(replaced.encryption_key_id, "k2");
    let row = db
        .store
        .integration_credentials(integration.id)
        .await
        .expect("credentials");
    assert_eq!(row.credentials.refresh_token.0, vec![9; 40]);
}

#[tokio::test]
async fn sync_now_is_refused_with_a_reason() {
    let db = TestDb::new().await;
    let a = account("acct_a");
    let unmapped = db
        .store
        .insert_integration(&new_integration(&a, "Unmapped", None))
        .await
        .expect("insert");
    let err = db
        .store
        .enqueue_run(unmapped.id, SyncMode::Full, Trigger::Manual, job)
        .await
        .expect_err("no audience");
    assert!(err.to_string().contains("map an audience"), "{err}");

    let (integration, _) = setup(&db.store, "acct_b").await;
    db.store
        .set_integration_status(
            integration.id,
            IntegrationStatus::NeedsReauth,
            Some("invalid_grant"),
        )
        .await
        .expect("status");
    let err = db
        .store
        .enqueue_run(integration.id, SyncMode::Full, Trigger::Manual, job)
        .await
        .expect_err("reauth");
    assert!(err.to_string().contains("reconnect"), "{err}");
    db.store
        .delete_integration(integration.id)
        .await
        .expect("delete");
    db.store
        .delete_integration(integration.id)
        .await
        .expect("delete twice is a no-op");
    let err = db
        .store
        .enqueue_run(integration.id, SyncMode::Full, Trigger::Manual, job)
        .await
        .expect_err("deleted");
    assert!(err.to_string().contains("deleted"), "{err}");
    let missing = db
        .store
        .enqueue_run(
            pledgesync_core::IntegrationId::new(),
            SyncMode::Full,
            Trigger::Manual,
            job,
        )
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })));
    assert_eq!(db.store.unpublished_count().await.expect("count"), 0);
}

#[tokio::test]
async fn disabling_or_deleting_cancels_the_active_run() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct_a").await;
    let run = running_run(&db.store, integration.id, SyncMode::Full).await;
    db.store
        .apply_batch(&upsert_batch(
            run,
            0,
            integration.id,
            audience,
            Module::Contacts,
            vec![member(1, "a@x.io", 1)],
        ))
        .await
        .expect("apply");
    db.store
        .set_integration_status(integration.id, IntegrationStatus::Disabled, Some("paused"))
        .await
        .expect("disable");
    assert_eq!(
        db.store.get_run(run).await.expect("run").status,
        RunStatus::Cancelled
    );
    assert!(matches!(
        db.store.start_run(run, integration.id).await,
        Ok(RunStart::Skip(RunStatus::Cancelled))
    ));

    db.store
        .set_integration_status(integration.id, IntegrationStatus::Active, None)
        .await
        .expect("enable");
    let run = running_run(&db.store, integration.id, SyncMode::Incremental).await;
    db.store
        .delete_integration(integration.id)
        .await
        .expect("delete");
    let run = db.store.get_run(run).await.expect("run");
    assert_eq!(
        (run.status, run.error.as_deref()),
        (RunStatus::Cancelled, Some("the integration was deleted"))
    );
    let sources = db
        .store
        .member_sources(audience, "a@x.io")
        .await
        .expect("sources");
    assert_eq!(
        sources[0].removed_reason.as_deref(),
        Some("integration_deleted")
    );
    let member = db
        .store
        .get_member(audience, "a@x.io")
        .await
        .expect("get")
        .expect("member");
    assert!(
        member.removed_at.is_none(),
        "deleting a connection does not empty the audience"
    );
    assert!(db
        .store
        .list_integrations(&account("acct_a"))
        .await
        .expect("list")
        .is_empty());
    assert!(
        db.store
            .integration_credentials(integration.id)
            .await
            .expect("creds")
            .deleted
    );
}

#[tokio::test]
async fn unmapping_the_audience_cancels_the_active_run_and_remapping_does_not() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct_a").await;
    let other = db
        .store
        .create_audience(&account("acct_a"), "Other")
        .await
        .expect("audience");

    // Remapping keeps the run going, on the audience it started with.
    let run = running_run(&db.store, integration.id, SyncMode::Full).await;
    db.store
        .set_audience(integration.id, Some(other.id))
        .await
        .expect("remap");
    let still = db.store.get_run(run).await.expect("run");
    assert_eq!(
        (still.status, still.audience_id),
        (RunStatus::Running, audience)
    );

    let unmapped = db
        .store
        .set_audience(integration.id, None)
        .await
        .expect("unmap");
    assert_eq!(unmapped.audience_id, None);
    let cancelled = db.store.get_run(run).await.expect("run");
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(cancelled.finished_at.is_some());
    let error = cancelled.error.expect("error");
    assert!(
        error.contains("unmapped") && error.contains("map an audience"),
        "{error}"
    );
    assert!(db
        .store
        .active_run(integration.id)
        .await
        .expect("active")
        .is_none());
    // Its late jobs are acked without work, and the sink sees the run as over.
    assert!(matches!(
        db.store.start_run(run, integration.id).await,
        Ok(RunStart::Skip(RunStatus::Cancelled))
    ));
    let target = db
        .store
        .batch_target(run)
        .await
        .expect("target")
        .expect("exists");
    assert_eq!(target.run_status, RunStatus::Cancelled);

    // Unmapping with no run going changes nothing else; a finished run keeps its status.
    db.store
        .set_audience(integration.id, None)
        .await
        .expect("unmap again");
    assert_eq!(
        db.store.get_run(run).await.expect("run").error.as_deref(),
        Some(error.as_str())
    );
    assert!(matches!(
        db.store
            .set_audience(pledgesync_core::IntegrationId::new(), None)
            .await,
        Err(StoreError::NotFound { .. })
    ));
}
