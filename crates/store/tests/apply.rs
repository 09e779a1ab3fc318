//! The sink's write path: exactly-once batches, newest wins, nulls never wipe, deletions reach
//! only members a sync brought.

mod common;

use common::run_fixture::{applied, fixture};
use common::{account, at, delete_batch, member, new_integration, running_run, upsert_batch};
use pledgesync_core::messages::SyncMode;
use pledgesync_core::Module;
use pledgesync_store::{ApplyOutcome, MemberOrigin};

#[tokio::test]
async fn duplicate_emails_within_a_batch_become_one_member_with_two_sources() {
    let f = fixture().await;
    let mut older = member(1, "Ada@Example.com ", 1);
    older.phone = Some("+44 1".into());
    let mut newer = member(2, "ada@example.com", 5);
    newer.first_name = Some("Ada".into());
    let counts = f
        .upsert(
            0,
            Module::Contacts,
            vec![newer, older, member(3, "bob@example.com", 1)],
        )
        .await;
    assert_eq!((counts.applied, counts.skipped, counts.deleted), (3, 0, 0));
    let ada = f.member("ada@example.com").await;
    assert_eq!(ada.first_name.as_deref(), Some("Ada"));
    assert_eq!(
        ada.phone.as_deref(),
        Some("+44 1"),
        "the older record's value fills the newer's null"
    );
    assert_eq!(ada.source_modified_at, Some(at(5)));
    assert_eq!(ada.origin, MemberOrigin::Sync);
    assert_eq!(
        f.store()
            .member_sources(f.audience, "ada@example.com")
            .await
            .expect("sources")
            .len(),
        2
    );
    assert_eq!(f.store().count_members(f.audience).await.expect("count"), 2);
}

#[tokio::test]
async fn a_redelivered_batch_has_no_effect() {
    let f = fixture().await;
    let batch = upsert_batch(
        f.run,
        0,
        f.integration,
        f.audience,
        Module::Contacts,
        vec![member(1, "a@x.io", 1)],
    );
    applied(f.store().apply_batch(&batch).await.expect("first"));
    let before = f.store().get_run(f.run).await.expect("run").counters;
    let mut changed = batch.clone();
    changed.members[0].first_name = Some("Changed".into());
    changed.members[0].modified_at = at(9);
    let again = f.store().apply_batch(&changed).await.expect("redelivery");
    assert_eq!(
        again,
        ApplyOutcome::AlreadyApplied {
            run_completed: false
        }
    );
    assert_eq!(
        f.store().get_run(f.run).await.expect("run").counters,
        before
    );
    assert_eq!(before.applied, 1);
    assert_eq!(
        f.member("a@x.io").await.first_name.as_deref(),
        Some("First1")
    );
}

#[tokio::test]
async fn older_data_never_overwrites_newer() {
    let f = fixture().await;
    let mut newer = member(1, "a@x.io", 10);
    newer.first_name = Some("New".into());
    f.upsert(0, Module::Contacts, vec![newer]).await;

    // The same record, an older version (delivered late).
    let mut stale = member(1, "a@x.io", 5);
    stale.first_name = Some("Stale".into());
    let counts = f.upsert(1, Module::Contacts, vec![stale]).await;
    assert_eq!((counts.applied, counts.skipped), (0, 1));
    assert_eq!(counts.skipped_by_reason.get("superseded"), Some(&1));

    // Another record (a Lead) with the same email and older data.
    let mut lead = member(2, "a@x.io", 3);
    lead.first_name = Some("Lead".into());
    lead.country = Some("DE".into());
    let counts = f.upsert(2, Module::Leads, vec![lead]).await;
    assert_eq!(counts.applied, 1, "the lead is recorded as a source");
    let a = f.member("a@x.io").await;
    assert_eq!(a.first_name.as_deref(), Some("New"));
    assert_eq!(a.country, None, "older data does not fill fields either");
    assert_eq!(a.source_modified_at, Some(at(10)));
}

#[tokio::test]
async fn null_never_wipes_a_value() {
    let f = fixture().await;
    let mut full = member(1, "a@x.io", 1);
    full.phone = Some("+1 555".into());
    full.unsubscribed = Some(true);
    full.attributes = attributes(serde_json::json!({"lead_source": "Webinar", "tier": "gold"}));
    f.upsert(0, Module::Contacts, vec![full]).await;

    let mut sparse = member(1, "a@x.io", 2);
    sparse.first_name = None;
    sparse.phone = None;
    sparse.unsubscribed = None;
    sparse.attributes = attributes(serde_json::json!({"lead_source": null, "tier": "platinum"}));
    f.upsert(1, Module::Contacts, vec![sparse]).await;

    let a = f.member("a@x.io").await;
    assert_eq!(a.first_name.as_deref(), Some("First1"));
    assert_eq!(a.phone.as_deref(), Some("+1 555"));
    assert!(a.unsubscribed, "an opt-out is never lost to a null");
    assert_eq!(
        a.attributes.get("lead_source"),
        Some(&serde_json::json!("Webinar"))
    );
    assert_eq!(
        a.attributes.get("tier"),
        Some(&serde_json::json!("platinum"))
    );

    let mut opt_in = member(1, "a@x.io", 3);
    opt_in.unsubscribed = Some(false);
    f.upsert(2, Module::Contacts, vec![opt_in]).await;
    assert!(
        !f.member("a@x.io").await.unsubscribed,
        "a newer explicit value does change it"
    );
}

#[tokio::test]
async fn members_from_elsewhere_are_never_removed() {
    let f = fixture().await;
    for email in ["app@x.io", "both@x.io"] {
        sqlx::query("INSERT INTO audience_members (audience_id, email, first_name) VALUES ($1, $2, 'FromApp')")
            .bind(f.audience.0)
            .bind(email)
            .execute(f.store().pool())
            .await
            .expect("app member");
    }
    let mut zoho = member(7, "both@x.io", 1);
    zoho.first_name = None;
    zoho.last_name = Some("FromZoho".into());
    f.upsert(0, Module::Contacts, vec![zoho, member(8, "zoho@x.io", 1)])
        .await;
    let both = f.member("both@x.io").await;
    assert_eq!(
        (both.first_name.as_deref(), both.last_name.as_deref()),
        (Some("FromApp"), Some("FromZoho"))
    );
    assert_eq!(both.origin, MemberOrigin::External);

    let counts = f.delete(1, Module::Contacts, &[7, 8]).await;
    assert_eq!((counts.sources_removed, counts.deleted), (2, 1));
    assert!(
        f.member("both@x.io").await.removed_at.is_none(),
        "came from the app: stays"
    );
    assert!(f.member("app@x.io").await.removed_at.is_none());
    let gone = f.member("zoho@x.io").await;
    assert_eq!(gone.removed_reason.as_deref(), Some("deleted_in_zoho"));
    assert_eq!(f.store().count_members(f.audience).await.expect("count"), 2);
    assert_eq!(
        f.store()
            .get_run(f.run)
            .await
            .expect("run")
            .counters
            .deleted,
        1
    );
}

#[tokio::test]
async fn a_converted_lead_stays_one_member() {
    let f = fixture().await;
    f.upsert(0, Module::Leads, vec![member(100, "lead@x.io", 1)])
        .await;
    f.upsert(1, Module::Contacts, vec![member(200, "Lead@X.io", 2)])
        .await;
    assert_eq!(f.store().count_members(f.audience).await.expect("count"), 1);
    assert_eq!(
        f.store()
            .member_sources(f.audience, "lead@x.io")
            .await
            .expect("sources")
            .len(),
        2
    );

    // Zoho removes the converted lead: the contact still has the member.
    let counts = f.delete(2, Module::Leads, &[100]).await;
    assert_eq!((counts.sources_removed, counts.deleted), (1, 0));
    assert!(f.member("lead@x.io").await.removed_at.is_none());
    // The contact goes too: now the member goes.
    let counts = f.delete(3, Module::Contacts, &[200]).await;
    assert_eq!(counts.deleted, 1);
    assert!(f.member("lead@x.io").await.removed_at.is_some());
    assert_eq!(f.store().count_members(f.audience).await.expect("count"), 0);
}

#[tokio::test]
async fn two_integrations_feed_one_audience() {
    let f = fixture().await;
    let second = f
        .store()
        .insert_integration(&new_integration(
            &account("acct_a"),
            "Second org",
            Some(f.audience),
        ))
        .await
        .expect("second integration");
    let run2 = running_run(f.store(), second.id, SyncMode::Full).await;
    f.upsert(0, Module::Contacts, vec![member(1, "shared@x.io", 1)])
        .await;
    let batch = upsert_batch(
        run2,
        0,
        second.id,
        f.audience,
        Module::Contacts,
        vec![member(1, "shared@x.io", 2), member(2, "only2@x.io", 2)],
    );
    applied(
        f.store()
            .apply_batch(&batch)
            .await
            .expect("second integration's batch"),
    );
    assert_eq!(f.store().count_members(f.audience).await.expect("count"), 2);
    // Record ids are per integration: the first integration deleting "1" or "2" does not touch
    // the second's sources.
    let counts = f.delete(1, Module::Contacts, &[1, 2]).await;
    assert_eq!((counts.sources_removed, counts.deleted), (1, 0));
    assert!(f.member("shared@x.io").await.removed_at.is_none());
    let batch = delete_batch(run2, 1, second.id, f.audience, Module::Contacts, &[1]);
    assert_eq!(
        applied(f.store().apply_batch(&batch).await.expect("delete")).deleted,
        1
    );
    assert!(f.member("shared@x.io").await.removed_at.is_some());
    assert!(f.member("only2@x.io").await.removed_at.is_none());
}

fn attributes(object: serde_json::Value) -> pledgesync_store::Attributes {
    match object {
        serde_json::Value::Object(map) => pledgesync_store::Attributes::from_map(&map),
        other => panic!("not an object: {other}"),
    }
}
