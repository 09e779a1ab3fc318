//! Migrations, connection handling, error classification and the constraints that back the
//! promises, against a real PostgreSQL.

mod common;

use common::{account, new_integration, settings_for, setup, url_of, TestDb};
use pledgesync_store::{Store, StoreError};
use url::Url;

#[tokio::test]
async fn migrations_apply_from_empty_twice() {
    let db = TestDb::empty().await;
    db.store.migrate().await.expect("first migrate");
    db.store.migrate().await.expect("second migrate is a no-op");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(db.store.pool())
        .await
        .expect("count");
    let embedded = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations dir")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count();
    assert_eq!(applied, embedded as i64);
    db.store.ready().await.expect("ready");
}

#[tokio::test]
async fn concurrent_migrations_from_several_replicas_all_succeed() {
    let db = TestDb::empty().await;
    let mut replicas = Vec::new();
    for _ in 0..6 {
        replicas.push(db.another_store().await);
    }
    let results = futures::future::join_all(replicas.iter().map(|store| store.migrate())).await;
    for result in results {
        result.expect("every replica's migrate succeeds");
    }
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN \
         ('audiences', 'integrations', 'sync_runs', 'run_batches', 'audience_members', 'member_sources', \
          'sync_cursors', 'run_cursors', 'outbox')",
    )
    .fetch_one(db.store.pool())
    .await
    .expect("count tables");
    assert_eq!(tables, 9);
    for store in &replicas {
        store.migrate().await.expect("and again afterwards");
        store.close().await;
    }
}

#[tokio::test]
async fn unreachable_postgres_is_retryable() {
    let mut settings = settings_for("postgres://pledgesync:pledgesync@127.0.0.1:1/pledgesync", 1);
    settings.connect_timeout_secs = 1;
    let err = Store::connect(&settings)
        .await
        .expect_err("nothing listens on port 1");
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn a_connection_killed_in_the_pool_fails_one_statement_retryably_then_is_replaced() {
    let db = TestDb::new().await;
    // One connection, so every statement below takes the same one until the pool replaces it.
    let store = Store::connect(&settings_for(&url_of(&db.settings), 1))
        .await
        .expect("connect");
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .expect("backend pid");
    let killer = db.another_store().await;
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 10000)")
        .bind(pid)
        .fetch_one(killer.pool())
        .await
        .expect("terminate");
    assert!(killed, "the backend must be gone before the next statement");

    // Back in the pool for less than the ping interval: handed out unchecked, its statement
    // fails, and the failure says "try again".
    let error = store
        .ready()
        .await
        .expect_err("the dead connection fails its statement");
    assert!(error.is_retryable(), "{error}");
    // The pool dropped it: the next statement gets a new connection.
    store.ready().await.expect("a fresh connection answers");
    let new_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .expect("backend pid");
    assert_ne!(new_pid, pid);
}

#[tokio::test]
async fn a_wrong_password_is_permanent_and_not_echoed() {
    let mut url = Url::parse(&url_of(&settings_for(common::DEFAULT_URL, 1))).expect("url");
    url.set_password(Some("definitely-wrong-hunter2"))
        .expect("password");
    let host = std::env::var("PLEDGESYNC__POSTGRES__URL")
        .ok()
        .and_then(|u| Url::parse(&u).ok());
    if let Some(host) = host {
        url.set_host(host.host_str()).expect("host");
        url.set_port(host.port()).expect("port");
    }
    let err = Store::connect(&settings_for(url.as_str(), 1))
        .await
        .expect_err("wrong password");
    assert!(!err.is_retryable(), "{err}");
    assert!(!err.to_string().contains("hunter2"));
    assert!(!format!("{err:?}").contains("hunter2"));
}

#[tokio::test]
async fn an_invalid_url_is_a_config_error_without_the_url() {
    let err = Store::connect(&settings_for("postgres://user:s3cret@[bad", 1))
        .await
        .expect_err("bad url");
    assert!(matches!(err, StoreError::Config(_)), "{err}");
    assert!(!err.to_string().contains("s3cret"));
}

#[tokio::test]
async fn contention_sqlstates_are_classified_retryable() {
    let db = TestDb::new().await;
    for code in ["40001", "40P01"] {
        let err: StoreError = sqlx::query(&format!(
            "DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '{code}'; END $$"
        ))
        .execute(db.store.pool())
        .await
        .expect_err("raised")
        .into();
        assert!(err.is_contention() && err.is_retryable(), "{code}: {err}");
    }
    let err: StoreError = sqlx::query("SELECT 1/0")
        .execute(db.store.pool())
        .await
        .expect_err("division")
        .into();
    assert!(!err.is_retryable(), "{err}");
}

#[tokio::test]
async fn the_database_refuses_a_second_active_run() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct_a").await;
    let insert = "INSERT INTO sync_runs (id, integration_id, audience_id, mode, trigger) VALUES ($1, $2, $3, 'full', 'manual')";
    sqlx::query(insert)
        .bind(uuid::Uuid::now_v7())
        .bind(integration.id.0)
        .bind(audience.0)
        .execute(db.store.pool())
        .await
        .expect("first run");
    let err = sqlx::query(insert)
        .bind(uuid::Uuid::now_v7())
        .bind(integration.id.0)
        .bind(audience.0)
        .execute(db.store.pool())
        .await
        .expect_err("second active run");
    assert_eq!(
        err.as_database_error().and_then(|e| e.constraint()),
        Some("sync_runs_one_active_per_integration")
    );
}

#[tokio::test]
async fn the_database_refuses_another_accounts_audience() {
    let db = TestDb::new().await;
    let theirs = db
        .store
        .create_audience(&account("acct_b"), "Theirs")
        .await
        .expect("audience");
    let integration = db
        .store
        .insert_integration(&new_integration(&account("acct_a"), "Zoho", None))
        .await
        .expect("integration");
    let err = db
        .store
        .set_audience(integration.id, Some(theirs.id))
        .await
        .expect_err("cross-account");
    assert!(matches!(err, StoreError::Rejected(_)), "{err}");
    // And straight SQL, bypassing the API, is refused too.
    let raw = sqlx::query("UPDATE integrations SET audience_id = $1 WHERE id = $2")
        .bind(theirs.id.0)
        .bind(integration.id.0)
        .execute(db.store.pool())
        .await;
    assert!(raw.is_err());
    // Creating an integration pointing at it is refused the same way.
    let err = db
        .store
        .insert_integration(&new_integration(
            &account("acct_a"),
            "Other",
            Some(theirs.id),
        ))
        .await
        .expect_err("cross-account at insert");
    assert!(matches!(err, StoreError::Rejected(_)), "{err}");
}

#[tokio::test]
async fn member_keys_must_be_normalised_emails() {
    let db = TestDb::new().await;
    let (_, audience) = setup(&db.store, "acct_a").await;
    let err = sqlx::query(
        "INSERT INTO audience_members (audience_id, email) VALUES ($1, 'Ada@Example.com')",
    )
    .bind(audience.0)
    .execute(db.store.pool())
    .await;
    assert!(err.is_err(), "upper-case email accepted");
    let ok = sqlx::query("INSERT INTO audience_members (audience_id, email) VALUES ($1, 'ada@example.com') RETURNING origin")
        .bind(audience.0)
        .fetch_one(db.store.pool())
        .await;
    assert_eq!(
        ok.map(|row| sqlx::Row::get::<String, _>(&row, "origin"))
            .ok()
            .as_deref(),
        Some("external")
    );
}

#[tokio::test]
async fn sources_go_with_their_integration_or_audience_and_ids_must_be_digits() {
    let db = TestDb::new().await;
    let pool = db.store.pool();
    let (first, audience) = setup(&db.store, "acct_a").await;
    let (second, other_audience) = setup(&db.store, "acct_b").await;
    let insert = |integration: uuid::Uuid, audience: uuid::Uuid, zoho_id: &'static str| {
        sqlx::query(
            "INSERT INTO member_sources (integration_id, zoho_module, zoho_id, audience_id, email) \
             VALUES ($1, 'Contacts', $2, $3, 'ada@example.com')",
        )
        .bind(integration)
        .bind(zoho_id)
        .bind(audience)
        .execute(pool)
    };
    for bad in [
        "",
        "12a4",
        " 123",
        "١٢٣",
        "123456789012345678901234567890123",
    ] {
        assert!(
            insert(first.id.0, audience.0, bad).await.is_err(),
            "zoho_id {bad:?} accepted"
        );
    }
    insert(first.id.0, audience.0, "4150868000000224005")
        .await
        .expect("a digit id");
    insert(first.id.0, audience.0, "12345678901234567890123456789012")
        .await
        .expect("32 digits");
    insert(second.id.0, other_audience.0, "7")
        .await
        .expect("the other account's source");
    let sources = |integration: uuid::Uuid| {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM member_sources WHERE integration_id = $1",
        )
        .bind(integration)
        .fetch_one(pool)
    };

    // Integrations are soft-deleted by the product; a hard delete (an operator's cleanup) still
    // takes the sources with it, as the foreign key's cascade did.
    sqlx::query("DELETE FROM integrations WHERE id = $1")
        .bind(first.id.0)
        .execute(pool)
        .await
        .expect("delete the integration");
    assert_eq!(sources(first.id.0).await.expect("count"), 0);
    assert_eq!(
        sources(second.id.0).await.expect("count"),
        1,
        "others' sources stay"
    );

    sqlx::query("UPDATE integrations SET audience_id = NULL WHERE id = $1")
        .bind(second.id.0)
        .execute(pool)
        .await
        .expect("unmap");
    sqlx::query("DELETE FROM audiences WHERE id = $1")
        .bind(other_audience.0)
        .execute(pool)
        .await
        .expect("delete the audience");
    assert_eq!(sources(second.id.0).await.expect("count"), 0);
}
