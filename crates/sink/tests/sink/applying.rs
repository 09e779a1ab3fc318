//! One sink applying batches: the happy path, redelivery, newest wins, nulls, skips.

use std::time::Duration;

use pledgesync_core::Module;
use pledgesync_sink::apply::Applied;
use pledgesync_store::RunStatus;
use serde_json::json;
use tokio::sync::mpsc;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_batch_is_applied_and_completes_its_run() {
    let db = TestDb::new().await;
    let mq = TestBroker::new().await;
    let f = Fixture::new(&db.store).await;
    db.store.set_batches_total(f.run, 1).await.expect("total");
    let (tx, mut events) = mpsc::unbounded_channel();
    let sink = Sink::start(mq.broker.clone(), db.store.clone(), 2, tx);

    let mut blank = contact(3, "   ", "Nobody", 1);
    blank.insert("Email".into(), json!("   "));
    let mut lead_fields = contact(2, "GRACE@example.org ", "Grace", 2);
    lead_fields.insert("Email_Opt_Out".into(), json!(true));
    mq.publish(&f.upsert(
        0,
        Module::Contacts,
        vec![contact(1, "Ada@Example.com", "Ada", 1), lead_fields, blank],
    ))
    .await;

    let handled = receive(&mut events, 1, WAIT).await;
    match &handled[0].result {
        Ok(Applied::Written(counts)) => {
            assert_eq!((counts.applied, counts.skipped), (2, 1));
            assert!(counts.run_completed, "the last batch completes the run");
        }
        other => panic!("expected the batch written, got {other:?}"),
    }
    let ada = db
        .store
        .get_member(f.audience, "ada@example.com")
        .await
        .expect("read")
        .expect("member");
    assert_eq!(ada.first_name.as_deref(), Some("Ada"));
    assert_eq!(ada.last_name.as_deref(), Some("Lovelace"));
    assert_eq!(ada.phone.as_deref(), Some("+44 20 1"));
    assert_eq!(ada.country.as_deref(), Some("United Kingdom"));
    assert!(!ada.unsubscribed);
    assert_eq!(ada.attributes, object(json!({"Owner": "Patricia Boyle"})));
    assert_eq!(
        ada.source_modified_at.map(|t| t.to_rfc3339()).as_deref(),
        Some("2024-05-01T08:01:00+00:00")
    );
    let grace = db
        .store
        .get_member(f.audience, "grace@example.org")
        .await
        .expect("read")
        .expect("member");
    assert!(grace.unsubscribed, "Email_Opt_Out is carried");
    let sources = db
        .store
        .member_sources(f.audience, "grace@example.org")
        .await
        .expect("sources");
    assert_eq!(sources.len(), 1);
    assert_eq!(
        (sources[0].module, sources[0].zoho_id.as_str()),
        (Module::Contacts, "2")
    );

    let run = run_of(&db.store, f.run).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(
        (
            run.counters.applied,
            run.counters.skipped,
            run.counters.batches_applied
        ),
        (2, 1, 1)
    );
    assert_eq!(
        run.counters.skipped_by_reason.get("missing_email"),
        Some(&1)
    );
    sink.stop().await;
}

#[tokio::test]
async fn a_batch_delivered_twice_is_applied_once() {
    let db = TestDb::new().await;
    let mq = TestBroker::new().await;
    let f = Fixture::new(&db.store).await;
    let (tx, mut events) = mpsc::unbounded_channel();
    // Prefetch 2: the two copies may well be applied at the same moment.
    let sink = Sink::start(mq.broker.clone(), db.store.clone(), 2, tx);

    let batch = f.upsert(
        0,
        Module::Leads,
        (1..=20)
            .map(|i| contact(i, &format!("l{i}@example.com"), "L", 5))
            .collect(),
    );
    mq.publish(&batch).await;
    mq.publish(&batch).await;
    let handled = receive(&mut events, 2, WAIT).await;
    let written = handled
        .iter()
        .filter(|h| matches!(h.result, Ok(Applied::Written(_))))
        .count();
    let repeated = handled
        .iter()
        .filter(|h| matches!(h.result, Ok(Applied::AlreadyApplied)))
        .count();
    assert_eq!((written, repeated), (1, 1), "{handled:?}");
    let before = run_of(&db.store, f.run).await.counters;
    assert_eq!((before.applied, before.batches_applied), (20, 1));
    assert_eq!(db.store.count_members(f.audience).await.expect("count"), 20);

    // And once more, later: still nothing changes.
    let member = db
        .store
        .get_member(f.audience, "l7@example.com")
        .await
        .expect("read")
        .expect("member");
    mq.publish(&batch).await;
    let handled = receive(&mut events, 1, WAIT).await;
    assert!(
        matches!(handled[0].result, Ok(Applied::AlreadyApplied)),
        "{handled:?}"
    );
    assert_eq!(run_of(&db.store, f.run).await.counters, before);
    let again = db
        .store
        .get_member(f.audience, "l7@example.com")
        .await
        .expect("read")
        .expect("member");
    assert_eq!(
        again.updated_at, member.updated_at,
        "the redelivery wrote nothing"
    );
    sink.stop().await;
}

#[tokio::test]
async fn an_older_modified_time_never_overwrites_a_newer_one() {
    let db = TestDb::new().await;
    let mq = TestBroker::new().await;
    let f = Fixture::new(&db.store).await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let sink = Sink::start(mq.broker.clone(), db.store.clone(), 4, tx);

    // Whatever order the sink sees them in, the newest version stands: the same record twice,
    // and the same person as a Lead (an older record) and a Contact.
    mq.publish(&f.upsert(
        0,
        Module::Contacts,
        vec![contact(1, "ada@example.com", "Newest", 30)],
    ))
    .await;
    mq.publish(&f.upsert(
        1,
        Module::Contacts,
        vec![contact(1, "ada@example.com", "Stale", 10)],
    ))
    .await;
    mq.publish(&f.upsert(
        2,
        Module::Leads,
        vec![contact(9, "ADA@example.com", "Lead", 20)],
    ))
    .await;
    let handled = receive(&mut events, 3, WAIT).await;
    assert!(handled.iter().all(|h| h.result.is_ok()), "{handled:?}");

    let ada = db
        .store
        .get_member(f.audience, "ada@example.com")
        .await
        .expect("read")
        .expect("member");
    assert_eq!(ada.first_name.as_deref(), Some("Newest"));
    assert_eq!(
        db.store.count_members(f.audience).await.expect("count"),
        1,
        "a converted Lead stays one member"
    );
    let sources = db
        .store
        .member_sources(f.audience, "ada@example.com")
        .await
        .expect("sources");
    assert_eq!(
        sources.len(),
        2,
        "both records keep the member: {sources:?}"
    );
    sink.stop().await;
}

#[tokio::test]
async fn a_null_from_zoho_never_wipes_a_value() {
    let db = TestDb::new().await;
    let mq = TestBroker::new().await;
    let f = Fixture::new(&db.store).await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let sink = Sink::start(mq.broker.clone(), db.store.clone(), 1, tx);

    let mut first = contact(1, "ada@example.com", "Ada", 1);
    first.insert("Email_Opt_Out".into(), json!(true));
    first.insert("Lead_Source".into(), json!("Web"));
    mq.publish(&f.upsert(0, Module::Contacts, vec![first]))
        .await;
    receive(&mut events, 1, WAIT).await;

    let newer = object(json!({
        "id": "1",
        "Email": "ada@example.com",
        "First_Name": "Augusta",
        "Last_Name": "",
        "Phone": null,
        "Email_Opt_Out": null,
        "Lead_Source": null,
        "Modified_Time": modified(2),
    }));
    mq.publish(&f.upsert(1, Module::Contacts, vec![newer]))
        .await;
    let handled = receive(&mut events, 1, WAIT).await;
    assert!(
        matches!(handled[0].result, Ok(Applied::Written(_))),
        "{handled:?}"
    );

    let ada = db
        .store
        .get_member(f.audience, "ada@example.com")
        .await
        .expect("read")
        .expect("member");
    assert_eq!(
        ada.first_name.as_deref(),
        Some("Augusta"),
        "the newer value is applied"
    );
    assert_eq!(
        ada.last_name.as_deref(),
        Some("Lovelace"),
        "a blank is not a value"
    );
    assert_eq!(
        ada.phone.as_deref(),
        Some("+44 20 1"),
        "a null does not wipe"
    );
    assert_eq!(
        ada.country.as_deref(),
        Some("United Kingdom"),
        "an absent field does not wipe"
    );
    assert!(ada.unsubscribed, "a null opt-out keeps the opt-out");
    assert_eq!(ada.attributes.get("Lead_Source"), Some(&json!("Web")));
    sink.stop().await;
}

#[tokio::test]
async fn skipped_records_are_counted_by_reason() {
    let db = TestDb::new().await;
    let mq = TestBroker::new().await;
    let f = Fixture::new(&db.store).await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let sink = Sink::start(mq.broker.clone(), db.store.clone(), 1, tx);

    let with = |field: &str, value: serde_json::Value| {
        let mut record = contact(77, "ok@example.com", "Ok", 1);
        if value.is_null() {
            record.remove(field);
        } else {
            record.insert(field.into(), value);
        }
        record
    };
    let records = vec![
        contact(1, "valid@example.com", "Valid", 1),
        with("Email", json!(null)),
        with("Email", json!("mary@example")),
        with("Email", json!("first last@example.com")),
        with("id", json!(null)),
        with("id", json!("4150-868")),
        with("Modified_Time", json!(null)),
        with("Modified_Time", json!("15/10/2023 14:20")),
    ];
    mq.publish(&f.upsert(0, Module::Contacts, records)).await;
    let handled = receive(&mut events, 1, WAIT).await;
    assert!(
        matches!(handled[0].result, Ok(Applied::Written(_))),
        "{handled:?}"
    );

    let counters = run_of(&db.store, f.run).await.counters;
    assert_eq!((counters.applied, counters.skipped), (1, 7));
    let expected = [
        ("invalid_email", 2),
        ("invalid_id", 1),
        ("invalid_modified_time", 1),
        ("missing_email", 1),
        ("missing_id", 1),
        ("missing_modified_time", 1),
    ];
    let by_reason: Vec<(&str, u64)> = counters
        .skipped_by_reason
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(by_reason, expected);
    assert_eq!(db.store.count_members(f.audience).await.expect("count"), 1);
    sink.stop().await;
}

#[tokio::test]
async fn batches_held_at_once_share_transactions_and_each_counts_once() {
    let db = TestDb::new().await;
    let mq = TestBroker::new().await;
    let f = Fixture::new(&db.store).await;
    let batches: u64 = 40;
    db.store
        .set_batches_total(f.run, batches)
        .await
        .expect("total");
    // Queued before the sink starts, so that it holds many at once.
    for seq in 0..batches {
        let records = (0..5)
            .map(|i| {
                let id = seq * 10 + i + 1;
                contact(id, &format!("m{id}@example.com"), "M", 1)
            })
            .collect();
        mq.publish(&f.upsert(seq, Module::Contacts, records)).await;
    }
    let (tx, mut events) = mpsc::unbounded_channel();
    let sink = Sink::start(mq.broker.clone(), db.store.clone(), 32, tx);
    let handled = receive(&mut events, batches as usize, WAIT).await;
    let written = handled
        .iter()
        .filter(|h| matches!(h.result, Ok(Applied::Written(_))))
        .count();
    assert_eq!(written, batches as usize, "{handled:?}");
    let completions = handled
        .iter()
        .filter(|h| matches!(&h.result, Ok(Applied::Written(c)) if c.run_completed))
        .count();
    assert_eq!(completions, 1, "the run completes once");

    // Batches of one transaction share its start time in the ledger.
    let transactions: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT applied_at) FROM run_batches WHERE run_id = $1")
            .bind(f.run.0)
            .fetch_one(db.store.pool())
            .await
            .expect("ledger");
    assert!(
        transactions < batches as i64,
        "{transactions} transactions for {batches} batches held at once: none were grouped"
    );
    let run = run_of(&db.store, f.run).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.counters.applied, batches * 5);
    assert_eq!(run.counters.batches_applied, batches);
    assert_eq!(
        db.store.count_members(f.audience).await.expect("count"),
        batches * 5
    );
    assert!(mq.dead_letters().await.is_empty());
    sink.stop().await;
}
