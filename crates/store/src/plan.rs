//! What a batch may change, decided before anything is written: which records are live, which
//! are superseded by a newer version (or a later deletion), which deletions apply, and which
//! members may have lost their last live source. Pure: the inputs are the batch and the source
//! rows it found, so the rules are tested without a database.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use crate::apply::{ApplyBatch, SourceDeletion};
use crate::members::{
    normalize_email, MemberUpsert, REMOVED_DELETED_IN_ZOHO, REMOVED_EMAIL_CHANGED,
    SKIPPED_INVALID_EMAIL, SKIPPED_SUPERSEDED,
};
use crate::sources::{decide, Decision, ExistingSource};

/// The batch's effects, ready to write.
pub(crate) struct Plan<'a> {
    /// Records to write, by Zoho id (sorted: the lock order), with their normalised email.
    pub(crate) live: BTreeMap<&'a str, (Cow<'a, str>, &'a MemberUpsert)>,
    /// Records whose newer version was already applied: only marked seen by this run.
    pub(crate) superseded: Vec<&'a str>,
    /// Deletions to apply.
    pub(crate) deletions: Vec<&'a SourceDeletion>,
    /// Members that may have lost their last live source.
    pub(crate) candidates: Candidates,
    /// The sink's skip reasons plus the store's own.
    pub(crate) skipped_by_reason: BTreeMap<String, u32>,
}

/// Members that may have lost their last live source, with the reason to give if so.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Candidates {
    pub(crate) by_key: BTreeMap<(uuid::Uuid, String), &'static str>,
}

impl Candidates {
    fn push(&mut self, audience: uuid::Uuid, email: &str, reason: &'static str) {
        self.by_key
            .entry((audience, email.to_owned()))
            .or_insert(reason);
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = (uuid::Uuid, &str)> {
        self.by_key.keys().map(|(a, e)| (*a, e.as_str()))
    }
}

/// Decides the batch's effects given the source rows that existed before it.
pub(crate) fn plan<'a>(
    batch: &'a ApplyBatch,
    existing: &HashMap<String, ExistingSource>,
) -> Plan<'a> {
    let mut plan = Plan {
        live: BTreeMap::new(),
        superseded: Vec::new(),
        deletions: Vec::new(),
        candidates: Candidates::default(),
        skipped_by_reason: batch.skipped_by_reason.clone(),
    };
    for record in &batch.members {
        let Some(email) = normalize_email(&record.email) else {
            plan.skip(SKIPPED_INVALID_EMAIL);
            continue;
        };
        // The same record twice in one batch: the newer version stands for both.
        if let Some((_, kept)) = plan.live.get(record.zoho_id.as_str()) {
            let kept_is_newer = kept.modified_at > record.modified_at;
            plan.skip(SKIPPED_SUPERSEDED);
            if kept_is_newer {
                continue;
            }
        }
        match decide(existing.get(record.zoho_id.as_str()), record.modified_at) {
            Decision::Live => {
                plan.live.insert(record.zoho_id.as_str(), (email, record));
            }
            Decision::Stale { seen } => {
                plan.skip(SKIPPED_SUPERSEDED);
                if seen {
                    plan.superseded.push(record.zoho_id.as_str());
                }
            }
        }
    }
    // A live record that now has another email leaves its old member without this source.
    for (id, (email, _)) in &plan.live {
        if let Some(old) = existing.get(*id).filter(|old| !old.removed) {
            if old.audience_id == batch.audience_id.0 && &old.email != email {
                plan.candidates
                    .push(old.audience_id, &old.email, REMOVED_EMAIL_CHANGED);
            }
        }
    }
    for deletion in &batch.deletions {
        let Some(old) = existing
            .get(deletion.zoho_id.as_str())
            .filter(|old| !old.removed)
        else {
            continue;
        };
        // A version modified after the deletion means the record was restored since.
        let restored_later =
            matches!((deletion.deleted_at, old.modified_at), (Some(at), Some(m)) if m > at);
        if !restored_later {
            plan.candidates
                .push(old.audience_id, &old.email, REMOVED_DELETED_IN_ZOHO);
            plan.deletions.push(deletion);
        }
    }
    plan
}

impl Plan<'_> {
    fn skip(&mut self, reason: &str) {
        *self.skipped_by_reason.entry(reason.to_owned()).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};
    use pledgesync_core::messages::BatchKind;
    use pledgesync_core::{AudienceId, IntegrationId, Module, RunId, ZohoRecordId};

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, minute, 0)
            .single()
            .expect("time")
    }

    fn record(id: &str, email: &str, minute: u32) -> MemberUpsert {
        MemberUpsert {
            zoho_id: ZohoRecordId::parse(id).expect("id"),
            email: email.into(),
            first_name: None,
            last_name: None,
            phone: None,
            country: None,
            unsubscribed: None,
            attributes: Default::default(),
            modified_at: at(minute),
        }
    }

    fn batch(members: Vec<MemberUpsert>, deletions: Vec<SourceDeletion>) -> ApplyBatch {
        ApplyBatch {
            run_id: RunId::new(),
            seq: 0,
            integration_id: IntegrationId::new(),
            audience_id: AudienceId(uuid::Uuid::nil()),
            module: Module::Contacts,
            kind: if deletions.is_empty() {
                BatchKind::Upsert
            } else {
                BatchKind::Delete
            },
            members,
            skipped_by_reason: BTreeMap::from([("missing_email".to_owned(), 2)]),
            deletions,
        }
    }

    fn existing(id: &str, email: &str, minute: u32, removed: bool) -> (String, ExistingSource) {
        (
            id.to_owned(),
            ExistingSource {
                audience_id: uuid::Uuid::nil(),
                email: email.into(),
                modified_at: Some(at(minute)),
                removed,
                zoho_deleted_at: None,
            },
        )
    }

    #[test]
    fn the_newer_copy_of_a_record_in_one_batch_wins() {
        let b = batch(
            vec![record("1", "a@x.io", 5), record("1", "b@x.io", 3)],
            vec![],
        );
        let plan = plan(&b, &HashMap::new());
        assert_eq!(plan.live.len(), 1);
        assert_eq!(plan.live["1"].0, "a@x.io");
        assert_eq!(plan.skipped_by_reason.get("superseded"), Some(&1));
        assert_eq!(plan.skipped_by_reason.get("missing_email"), Some(&2));
    }

    #[test]
    fn stale_and_invalid_records_are_skipped_with_reasons() {
        let b = batch(vec![record("1", "a@x.io", 1), record("2", " ", 9)], vec![]);
        let rows = HashMap::from([existing("1", "a@x.io", 4, false)]);
        let plan = plan(&b, &rows);
        assert!(plan.live.is_empty());
        assert_eq!(plan.superseded, ["1"]);
        assert_eq!(plan.skipped_by_reason.get("superseded"), Some(&1));
        assert_eq!(plan.skipped_by_reason.get("invalid_email"), Some(&1));
    }

    #[test]
    fn an_email_change_makes_the_old_member_a_candidate() {
        let b = batch(vec![record("1", "New@x.io", 5)], vec![]);
        let rows = HashMap::from([existing("1", "old@x.io", 4, false)]);
        let plan = plan(&b, &rows);
        assert_eq!(plan.live["1"].0, "new@x.io");
        let keys: Vec<_> = plan.candidates.by_key.into_iter().collect();
        assert_eq!(
            keys,
            [(
                (uuid::Uuid::nil(), "old@x.io".to_owned()),
                REMOVED_EMAIL_CHANGED
            )]
        );
    }

    #[test]
    fn deletions_apply_to_live_sources_not_restored_since() {
        let gone = |id: &str, minute: Option<u32>| SourceDeletion {
            zoho_id: ZohoRecordId::parse(id).expect("id"),
            deleted_at: minute.map(at),
        };
        let b = batch(
            vec![],
            vec![
                gone("1", None),
                gone("2", Some(3)),
                gone("3", None),
                gone("4", Some(9)),
            ],
        );
        let rows = HashMap::from([
            existing("1", "a@x.io", 1, false),
            existing("2", "b@x.io", 5, false),
            existing("3", "c@x.io", 1, true),
            existing("4", "d@x.io", 5, false),
        ]);
        let plan = plan(&b, &rows);
        let applied: Vec<&str> = plan.deletions.iter().map(|d| d.zoho_id.as_str()).collect();
        assert_eq!(applied, ["1", "4"]);
        assert_eq!(plan.candidates.by_key.len(), 2);
    }
}
