//! Delete batches remove a member only when its last live source is gone, and never a member
//! that came from elsewhere.

use std::time::Duration;

use pledgesync_core::Module;
use pledgesync_sink::apply::Applied;
use tokio::sync::mpsc;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_delete_batch_removes_only_members_whose_last_source_it_was() {
    let db = TestDb::new().await;
    let mq = TestBroker::new().await;
    let account = account();
    let audience = create_audience(&db.store, &account, "Backers").await;
    let ours = create_integration(&db.store, &account, "Zoho EU", audience)
        .await
        .id;
    let theirs = create_integration(&db.store, &account, "Zoho US", audience)
        .await
        .id;
    let a = Fixture {
        account: account.clone(),
        audience,
        integration: ours,
        run: running_run(&db.store, ours).await,
    };
    let b = Fixture {
        account: account.clone(),
        audience,
        integration: theirs,
        run: running_run(&db.store, theirs).await,
    };
    // A member the PledgeBox app added before any sync brought the same address.
    sqlx::query("INSERT INTO audience_members (audience_id, email, first_name) VALUES ($1, 'app@example.com', 'App')")
        .bind(audience.0)
        .execute(db.store.pool())
        .await
        .expect("external member");

    let (tx, mut events) = mpsc::unbounded_channel();
    let sink = Sink::start(mq.broker.clone(), db.store.clone(), 2, tx);
    mq.publish(&a.upsert(
        0,
        Module::Contacts,
        vec![
            contact(101, "only-ours@example.com", "Only", 1),
            contact(102, "shared@example.com", "Shared", 1),
            contact(103, "app@example.com", "Synced", 1),
            contact(104, "converted@example.com", "Contact", 2),
        ],
    ))
    .await;
    mq.publish(&a.upsert(
        1,
        Module::Leads,
        vec![contact(201, "converted@example.com", "Lead", 1)],
    ))
    .await;
    mq.publish(&b.upsert(
        0,
        Module::Contacts,
        vec![
            contact(301, "shared@example.com", "Shared", 1),
            contact(302, "theirs@example.com", "Theirs", 1),
        ],
    ))
    .await;
    let handled = receive(&mut events, 3, WAIT).await;
    assert!(
        handled
            .iter()
            .all(|h| matches!(h.result, Ok(Applied::Written(_)))),
        "{handled:?}"
    );
    assert_eq!(db.store.count_members(audience).await.expect("count"), 5);

    // Zoho says our records 101..103 and our Lead 201 are gone; 302 is the other
    // integration's id and means nothing for ours.
    mq.publish(&a.delete(2, Module::Contacts, &["101", "102", "103", "302"]))
        .await;
    mq.publish(&a.delete(3, Module::Leads, &["201"])).await;
    let handled = receive(&mut events, 2, WAIT).await;
    assert!(
        handled
            .iter()
            .all(|h| matches!(h.result, Ok(Applied::Written(_)))),
        "{handled:?}"
    );

    let member = |email: &'static str| {
        let store = db.store.clone();
        async move {
            store
                .get_member(audience, email)
                .await
                .expect("read")
                .expect("row kept")
        }
    };
    let gone = member("only-ours@example.com").await;
    assert!(
        gone.removed_at.is_some(),
        "its only source was deleted in Zoho"
    );
    assert_eq!(gone.removed_reason.as_deref(), Some("deleted_in_zoho"));
    assert!(
        member("shared@example.com").await.removed_at.is_none(),
        "the other integration still has it"
    );
    assert!(
        member("app@example.com").await.removed_at.is_none(),
        "it came from elsewhere"
    );
    assert!(
        member("theirs@example.com").await.removed_at.is_none(),
        "not our record"
    );
    assert!(
        member("converted@example.com").await.removed_at.is_none(),
        "the Contact still has it"
    );
    assert_eq!(db.store.count_members(audience).await.expect("count"), 4);

    let counters = run_of(&db.store, a.run).await.counters;
    assert_eq!(counters.deleted, 1);
    let theirs_counters = run_of(&db.store, b.run).await.counters;
    assert_eq!(theirs_counters.deleted, 0);
    sink.stop().await;
}
