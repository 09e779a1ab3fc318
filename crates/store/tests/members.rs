//! Members beyond the basics: email changes, deletions and their timing, refused batches, a full
//! run's deletion candidates, listing, and the COPY path.

mod common;

use common::run_fixture::{applied, fixture};
use common::{account, at, delete_batch, member, running_run, upsert_batch};
use pledgesync_core::messages::SyncMode;
use pledgesync_core::{Module, RunId, ZohoRecordId};
use pledgesync_store::{ApplyOutcome, SourceDeletion, StoreError};

#[tokio::test]
async fn an_email_change_moves_the_member() {
    let f = fixture().await;
    f.upsert(0, Module::Contacts, vec![member(1, "old@x.io", 1)])
        .await;
    let counts = f
        .upsert(1, Module::Contacts, vec![member(1, "new@x.io", 2)])
        .await;
    assert_eq!(counts.deleted, 1);
    assert_eq!(
        f.member("old@x.io").await.removed_reason.as_deref(),
        Some("email_changed_in_zoho")
    );
    assert!(f.member("new@x.io").await.removed_at.is_none());
    // The late, older version with the old email does not bring it back.
    let counts = f
        .upsert(2, Module::Contacts, vec![member(1, "old@x.io", 1)])
        .await;
    assert_eq!(counts.skipped_by_reason.get("superseded"), Some(&1));
    assert!(f.member("old@x.io").await.removed_at.is_some());
    // Changing back (newer) does.
    f.upsert(3, Module::Contacts, vec![member(1, "old@x.io", 3)])
        .await;
    assert!(f.member("old@x.io").await.removed_at.is_none());
    assert!(f.member("new@x.io").await.removed_at.is_some());
}

#[tokio::test]
async fn a_deleted_record_comes_back_only_with_a_newer_version() {
    let f = fixture().await;
    f.upsert(0, Module::Contacts, vec![member(1, "a@x.io", 1)])
        .await;
    let mut batch = delete_batch(f.run, 1, f.integration, f.audience, Module::Contacts, &[]);
    batch.deletions = vec![SourceDeletion {
        zoho_id: ZohoRecordId::parse("1").expect("id"),
        deleted_at: Some(at(5)),
    }];
    assert_eq!(
        applied(f.store().apply_batch(&batch).await.expect("delete")).deleted,
        1
    );
    let counts = f
        .upsert(2, Module::Contacts, vec![member(1, "a@x.io", 4)])
        .await;
    assert_eq!((counts.applied, counts.skipped), (0, 1));
    assert!(
        f.member("a@x.io").await.removed_at.is_some(),
        "a version older than the deletion does not revive"
    );
    f.upsert(3, Module::Contacts, vec![member(1, "a@x.io", 6)])
        .await;
    assert!(
        f.member("a@x.io").await.removed_at.is_none(),
        "restored and modified after the deletion: back"
    );

    // A deletion older than the version applied (restored, then modified) is ignored.
    let mut stale = delete_batch(f.run, 4, f.integration, f.audience, Module::Contacts, &[]);
    stale.deletions = vec![SourceDeletion {
        zoho_id: ZohoRecordId::parse("1").expect("id"),
        deleted_at: Some(at(5)),
    }];
    let counts = applied(f.store().apply_batch(&stale).await.expect("stale delete"));
    assert_eq!((counts.sources_removed, counts.deleted), (0, 0));
}

#[tokio::test]
async fn unusable_emails_are_skipped_and_counted() {
    let f = fixture().await;
    let mut batch = upsert_batch(
        f.run,
        0,
        f.integration,
        f.audience,
        Module::Contacts,
        vec![member(1, "  ", 1), member(2, "ok@x.io", 1)],
    );
    batch.skipped_by_reason.insert("missing_email".into(), 3);
    let counts = applied(f.store().apply_batch(&batch).await.expect("apply"));
    assert_eq!((counts.applied, counts.skipped), (1, 4));
    assert_eq!(counts.skipped_by_reason.get("invalid_email"), Some(&1));
    let run = f.store().get_run(f.run).await.expect("run");
    assert_eq!(
        run.counters.skipped_by_reason.get("missing_email"),
        Some(&3)
    );
    assert_eq!(run.counters.skipped, 4);
}

#[tokio::test]
async fn forged_or_orphaned_batches_are_refused() {
    let f = fixture().await;
    let other = f
        .store()
        .create_audience(&account("acct_a"), "Other")
        .await
        .expect("audience");
    let forged = upsert_batch(
        f.run,
        0,
        f.integration,
        other.id,
        Module::Contacts,
        vec![member(1, "a@x.io", 1)],
    );
    let err = f
        .store()
        .apply_batch(&forged)
        .await
        .expect_err("wrong audience");
    assert!(
        matches!(err, StoreError::Rejected(_)) && !err.is_retryable(),
        "{err}"
    );
    let unknown = upsert_batch(
        RunId::new(),
        0,
        f.integration,
        f.audience,
        Module::Contacts,
        vec![],
    );
    assert!(matches!(
        f.store().apply_batch(&unknown).await,
        Err(StoreError::NotFound { .. })
    ));
    let mut mixed = upsert_batch(
        f.run,
        0,
        f.integration,
        f.audience,
        Module::Contacts,
        vec![member(1, "a@x.io", 1)],
    );
    mixed.deletions =
        delete_batch(f.run, 0, f.integration, f.audience, Module::Contacts, &[1]).deletions;
    assert!(matches!(
        f.store().apply_batch(&mixed).await,
        Err(StoreError::Rejected(_))
    ));
    assert_eq!(
        f.store()
            .get_run(f.run)
            .await
            .expect("run")
            .counters
            .batches_applied,
        0
    );

    f.store()
        .delete_integration(f.integration)
        .await
        .expect("delete");
    let late = upsert_batch(
        f.run,
        0,
        f.integration,
        f.audience,
        Module::Contacts,
        vec![member(1, "a@x.io", 1)],
    );
    assert!(matches!(
        f.store().apply_batch(&late).await.expect("late"),
        ApplyOutcome::Discarded { .. }
    ));
    assert!(f
        .store()
        .get_member(f.audience, "a@x.io")
        .await
        .expect("get")
        .is_none());
}

#[tokio::test]
async fn a_full_run_lists_the_sources_it_did_not_see() {
    let f = fixture().await;
    f.upsert(
        0,
        Module::Contacts,
        (1..=5)
            .map(|i| member(i, &format!("m{i}@x.io"), 1))
            .collect(),
    )
    .await;
    f.store().set_batches_total(f.run, 1).await.expect("total");
    let full = running_run(f.store(), f.integration, SyncMode::Full).await;
    let seen = vec![
        member(1, "m1@x.io", 1),
        member(3, "m3@x.io", 2),
        member(5, "m5@x.io", 0),
    ];
    let batch = upsert_batch(full, 0, f.integration, f.audience, Module::Contacts, seen);
    let counts = applied(f.store().apply_batch(&batch).await.expect("apply"));
    assert_eq!(
        counts.skipped_by_reason.get("superseded"),
        Some(&1),
        "m5's older version is still seen"
    );
    let first = f
        .store()
        .members_unseen_by_run(f.integration, full, Module::Contacts, None, 1)
        .await
        .expect("page 1");
    let rest = f
        .store()
        .members_unseen_by_run(f.integration, full, Module::Contacts, first.last(), 10)
        .await
        .expect("page 2");
    let unseen: Vec<&str> = first.iter().chain(&rest).map(|id| id.as_str()).collect();
    assert_eq!(unseen, ["2", "4"]);
    assert!(f
        .store()
        .members_unseen_by_run(f.integration, full, Module::Leads, None, 10)
        .await
        .expect("leads")
        .is_empty());
}

#[tokio::test]
async fn members_are_listed_in_keyset_pages() {
    let f = fixture().await;
    f.upsert(
        0,
        Module::Contacts,
        (1..=7)
            .map(|i| member(i, &format!("m{i}@x.io"), 1))
            .collect(),
    )
    .await;
    f.delete(1, Module::Contacts, &[4]).await;
    let mut emails = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = f
            .store()
            .list_members(f.audience, 2, after.as_deref())
            .await
            .expect("page");
        emails.extend(page.members.iter().map(|m| m.email.clone()));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(
        emails,
        ["m1@x.io", "m2@x.io", "m3@x.io", "m5@x.io", "m6@x.io", "m7@x.io"]
    );
    assert_eq!(f.store().count_members(f.audience).await.expect("count"), 6);
}

#[tokio::test]
async fn the_copy_path_keeps_the_same_promises() {
    let f = fixture().await;
    let mut first = member(1, "a@x.io", 5);
    first.first_name = Some("Tab\tand\\slash".into());
    first.unsubscribed = Some(true);
    f.store()
        .upsert_members_copy(f.audience, &[first, member(2, "b@x.io", 5)])
        .await
        .expect("copy");
    let mut older = member(1, "A@x.io", 1);
    older.first_name = Some("Older".into());
    let mut sparse = member(2, "b@x.io", 9);
    sparse.first_name = None;
    sparse.unsubscribed = None;
    let written = f
        .store()
        .upsert_members_copy(f.audience, &[older, sparse])
        .await
        .expect("copy again");
    assert_eq!(written, 1, "only the newer row is written");
    let a = f.member("a@x.io").await;
    assert_eq!(
        (a.first_name.as_deref(), a.unsubscribed),
        (Some("Tab\tand\\slash"), true)
    );
    let b = f.member("b@x.io").await;
    assert_eq!(
        (b.first_name.as_deref(), b.source_modified_at),
        (Some("First2"), Some(at(9)))
    );
}
