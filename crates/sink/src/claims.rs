//! Claims: the rows a batch will lock, so that concurrent commit groups keep apart.
//!
//! Two groups that write the same member (the same email in one audience) or the same source
//! (the same Zoho record) cannot both proceed: the second one's insert waits on the first one's
//! transaction until it commits. A Zoho org holds duplicate emails (a contact and a lead, two
//! contacts of one person), so with two commit workers nearly every pair of groups shared one,
//! and the workers ran one after the other. A worker now leaves for later a batch whose claims
//! meet those of a group another worker is writing.
//!
//! Claims decide only what is worth writing at the same time; PostgreSQL's row locks stay the
//! guarantee. So claims can be hashes: a collision defers a batch that could have gone, nothing
//! worse.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use pledgesync_store::ApplyBatch;

/// The rows one batch will lock, as hashes.
#[derive(Clone, Debug, Default)]
pub struct Claims(Vec<u64>);

impl Claims {
    /// What `batch` locks that is known before it is planned: its members (by audience and
    /// email) and its sources (by integration, module and record id). A member a record leaves
    /// (its email changed, or it was deleted) is found only while planning, and is not here.
    pub fn of(batch: &ApplyBatch) -> Self {
        let member = |email: &str| {
            let mut hasher = DefaultHasher::new();
            (0u8, batch.audience_id.0, email).hash(&mut hasher);
            hasher.finish()
        };
        let source = |id: &str| {
            let mut hasher = DefaultHasher::new();
            (1u8, batch.integration_id.0, batch.module, id).hash(&mut hasher);
            hasher.finish()
        };
        let members = batch
            .members
            .iter()
            .flat_map(|m| [member(&m.email), source(m.zoho_id.as_str())]);
        let deletions = batch.deletions.iter().map(|d| source(d.zoho_id.as_str()));
        Self(members.chain(deletions).collect())
    }

    fn iter(&self) -> impl Iterator<Item = &u64> {
        self.0.iter()
    }
}

/// The claims of the groups being written right now, each with how many hold it: a batch
/// passed over too often is written despite its claims (see [`crate::commit`]), so two groups
/// may hold one claim, and releasing one of them must not free it for the other.
#[derive(Debug, Default)]
pub struct Held(HashMap<u64, u32, BuildHasherDefault<AlreadyHashed>>);

/// Claims are hashes already: hashing them again cost as much as the rest of the bookkeeping.
#[derive(Debug, Default)]
struct AlreadyHashed(u64);

impl Hasher for AlreadyHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; fold anything else in rather than drop it.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, claim: u64) {
        self.0 = claim;
    }
}

impl Held {
    /// Whether `claims` meets a held one.
    pub fn meets(&self, claims: &Claims) -> bool {
        claims.iter().any(|claim| self.0.contains_key(claim))
    }

    /// Holds `claims` until [`Held::release`].
    pub fn hold(&mut self, claims: &Claims) {
        for claim in claims.iter() {
            *self.0.entry(*claim).or_default() += 1;
        }
    }

    /// Lets go of `claims`, held before with [`Held::hold`].
    pub fn release(&mut self, claims: &Claims) {
        for claim in claims.iter() {
            if let Some(holders) = self.0.get_mut(claim) {
                *holders -= 1;
                if *holders == 0 {
                    self.0.remove(claim);
                }
            }
        }
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An upsert batch of `(record id, email)` pairs into `audience`, for tests.
#[cfg(test)]
pub(crate) fn test_batch(
    audience: pledgesync_core::AudienceId,
    records: &[(&str, &str)],
) -> ApplyBatch {
    use chrono::Utc;
    use pledgesync_core::messages::BatchKind;
    use pledgesync_core::{IntegrationId, Module, RunId, ZohoRecordId};
    use pledgesync_store::MemberUpsert;
    ApplyBatch {
        run_id: RunId::new(),
        seq: 0,
        integration_id: IntegrationId(uuid::Uuid::nil()),
        audience_id: audience,
        module: Module::Contacts,
        kind: BatchKind::Upsert,
        members: records
            .iter()
            .map(|(id, email)| MemberUpsert {
                zoho_id: ZohoRecordId::parse(*id).expect("id"),
                email: (*email).to_owned(),
                first_name: None,
                last_name: None,
                phone: None,
                country: None,
                unsubscribed: None,
                attributes: Default::default(),
                modified_at: Utc::now(),
            })
            .collect(),
        skipped_by_reason: Default::default(),
        deletions: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::test_batch as batch;
    use super::*;
    use pledgesync_core::AudienceId;

    #[test]
    fn a_shared_email_or_record_meets_and_release_frees_it() {
        let audience = AudienceId(uuid::Uuid::nil());
        let writing = Claims::of(&batch(audience, &[("1", "ada@x.io"), ("2", "bob@x.io")]));
        let mut held = Held::default();
        held.hold(&writing);
        let same_email = Claims::of(&batch(audience, &[("9", "bob@x.io")]));
        let same_record = Claims::of(&batch(audience, &[("1", "new@x.io")]));
        let apart = Claims::of(&batch(audience, &[("3", "cy@x.io")]));
        assert!(held.meets(&same_email));
        assert!(held.meets(&same_record));
        assert!(!held.meets(&apart));
        held.release(&writing);
        assert!(!held.meets(&same_email) && !held.meets(&same_record));
        assert!(held.is_empty());
    }

    #[test]
    fn a_claim_held_twice_stays_held_until_both_release_it() {
        let audience = AudienceId(uuid::Uuid::nil());
        let first = Claims::of(&batch(audience, &[("1", "ada@x.io")]));
        let second = Claims::of(&batch(audience, &[("2", "ada@x.io")]));
        let mut held = Held::default();
        held.hold(&first);
        held.hold(&second);
        held.release(&first);
        assert!(held.meets(&Claims::of(&batch(audience, &[("3", "ada@x.io")]))));
        held.release(&second);
        assert!(held.is_empty());
    }

    #[test]
    fn the_same_email_in_another_audience_does_not_meet() {
        let writing = Claims::of(&batch(AudienceId(uuid::Uuid::nil()), &[("1", "ada@x.io")]));
        let mut held = Held::default();
        held.hold(&writing);
        let other = Claims::of(&batch(AudienceId(uuid::Uuid::max()), &[("7", "ada@x.io")]));
        assert!(!held.meets(&other));
    }
}
