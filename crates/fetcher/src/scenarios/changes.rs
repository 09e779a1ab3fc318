//! Incremental runs and deletions.

use super::*;

#[tokio::test]
async fn an_incremental_run_reads_from_the_cursors_and_publishes_deletions() {
    let fake = Arc::new(Fake::new(SyncMode::Incremental, 5, 0, 10));
    let cursor_time: chrono::DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("time");
    {
        let mut state = fake.lock();
        state.modules = vec![Module::Contacts];
        state.cursors.insert(
            Module::Contacts,
            Cursor {
                modified_since: Some(cursor_time),
                deleted_since: Some(cursor_time),
            },
        );
        state
            .deleted
            .insert(Module::Contacts, vec![deleted_entry(77), deleted_entry(78)]);
    }
    assert_eq!(
        drive(&fake, &fetcher(&fake, config(100, 5))).await,
        vec![Outcome::Ack]
    );
    let state = fake.lock();
    let expected_since = Some(cursor_time - chrono::Duration::seconds(60));
    assert_eq!(
        state.listings,
        vec![
            ("records", Module::Contacts, expected_since),
            ("deleted", Module::Contacts, expected_since)
        ]
    );
    let kinds: Vec<(BatchKind, usize)> = state
        .published
        .iter()
        .map(|b| (b.kind, b.records.len()))
        .collect();
    assert_eq!(kinds, vec![(BatchKind::Upsert, 5), (BatchKind::Delete, 2)]);
    assert_eq!(
        state.total_estimate, None,
        "no estimate for incremental runs"
    );
    assert_eq!(state.run.fetched, 5, "deletions are not fetched records");
}

#[tokio::test]
async fn a_full_run_removes_only_unseen_members_that_zoho_lists_as_deleted() {
    let fake = Arc::new(Fake::new(SyncMode::Full, 3, 0, 10));
    let modified: chrono::DateTime<Utc> = "2026-01-01T12:00:00Z".parse().expect("time");
    {
        let mut state = fake.lock();
        state.modules = vec![Module::Contacts];
        state.unseen.insert(
            Module::Contacts,
            vec![
                UnseenSource {
                    zoho_id: "500".into(),
                    modified_at: Some(modified),
                },
                // Not in Zoho's deleted list: paging missed it, it stays.
                UnseenSource {
                    zoho_id: "501".into(),
                    modified_at: Some(modified),
                },
            ],
        );
        state.deleted.insert(
            Module::Contacts,
            vec![deleted_entry(500), deleted_entry(9_999)],
        );
    }
    assert_eq!(
        drive(&fake, &fetcher(&fake, config(100, 5))).await,
        vec![Outcome::Ack]
    );
    let state = fake.lock();
    let deletes: Vec<_> = state
        .published
        .iter()
        .filter(|b| b.kind == BatchKind::Delete)
        .collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(
        deletes[0].records,
        vec![RawRecord::from_map(&deleted_entry(500))]
    );
    assert_eq!(deletes[0].seq, 1);
    assert_eq!(state.batches_total, Some(2));
    assert_eq!(
        state.listings.last().cloned(),
        Some((
            "deleted",
            Module::Contacts,
            Some(modified - chrono::Duration::seconds(60))
        ))
    );
}
