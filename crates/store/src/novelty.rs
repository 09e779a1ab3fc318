//! Whether a sink's transaction looks its records' sources up first, or assumes they are new.
//!
//! A transaction plans against the source rows its records already have (newest wins, moved
//! emails, deletions), so it reads and locks them first: one index descent per record. In an
//! integration's first sync, and whenever Zoho hands over records pledgesync has never seen, that
//! read finds nothing, and it cost about a tenth of a 200,000-record sync's time. So when the
//! last transaction of the same integration and module found no source of any of its records,
//! the next one plans as if none existed and lets the plain insert of its sources prove it: the
//! insert fails on the sources' key if one did exist (or another transaction is creating it), and
//! the transaction is then rolled back and run again the usual way. The guess only chooses the
//! way; both ways write the same rows, sources before members.
//!
//! The guess is a hint kept per process, per integration and module: losing it (a restart, the
//! table filling up) costs one lookup, never a wrong write.

use std::collections::HashMap;
use std::sync::Mutex;

use pledgesync_core::{IntegrationId, Module};

/// Integrations and modules remembered at most; past this the memory starts again empty.
const CAPACITY: usize = 4096;

/// How a transaction learns which of its records have a source row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SourceLookup {
    /// Read and lock the rows of the records' ids before planning.
    Find,
    /// Plan as if no row existed; the plain insert of the sources checks it.
    AssumeNew,
}

/// The last outcome per integration and module: did its records turn out all new?
#[derive(Debug, Default)]
pub(crate) struct Novelty {
    /// `true` when the last transaction of the key found no existing source.
    all_new: Mutex<HashMap<(IntegrationId, Module), bool>>,
}

impl Novelty {
    /// The way the next transaction of `integration` and `module` should take.
    pub(crate) fn lookup(&self, integration: IntegrationId, module: Module) -> SourceLookup {
        let all_new = self.with(|map| map.get(&(integration, module)).copied());
        if all_new == Some(true) {
            SourceLookup::AssumeNew
        } else {
            SourceLookup::Find
        }
    }

    /// Records whether the records of a transaction of `integration` and `module` were all new.
    pub(crate) fn learn(&self, integration: IntegrationId, module: Module, all_new: bool) {
        self.with(|map| {
            if map.len() >= CAPACITY && !map.contains_key(&(integration, module)) {
                map.clear();
            }
            map.insert((integration, module), all_new);
        });
    }

    /// Counts a transaction whose assumption held.
    pub(crate) fn held(&self) {
        metrics::counter!("pledgesync_store_assumed_new_total", "outcome" => "held").increment(1);
    }

    /// A transaction that assumed its records new met an existing source: remembers that, counts
    /// it, and returns the way to run it again.
    pub(crate) fn failed(&self, integration: IntegrationId, module: Module) -> SourceLookup {
        metrics::counter!("pledgesync_store_assumed_new_total", "outcome" => "failed").increment(1);
        self.learn(integration, module, false);
        SourceLookup::Find
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<(IntegrationId, Module), bool>) -> T) -> T {
        // A panic elsewhere while holding the lock leaves only hints behind: keep using them.
        let mut map = self
            .all_new
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut map)
    }
}

#[cfg(feature = "testing")]
impl crate::db::Store {
    /// Whether this store's next transaction of `integration` and `module` will assume its
    /// records new (tests of the two ways).
    pub fn assumes_new_sources(&self, integration: IntegrationId, module: Module) -> bool {
        self.novelty.lookup(integration, module) == SourceLookup::AssumeNew
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integration(n: u128) -> IntegrationId {
        IntegrationId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn looks_up_until_a_transaction_found_nothing() {
        let novelty = Novelty::default();
        let (a, module) = (integration(1), Module::Contacts);
        assert_eq!(novelty.lookup(a, module), SourceLookup::Find);
        novelty.learn(a, module, true);
        assert_eq!(novelty.lookup(a, module), SourceLookup::AssumeNew);
        assert_eq!(novelty.lookup(a, Module::Leads), SourceLookup::Find);
        assert_eq!(novelty.lookup(integration(2), module), SourceLookup::Find);
        novelty.learn(a, module, false);
        assert_eq!(novelty.lookup(a, module), SourceLookup::Find);
    }

    #[test]
    fn memory_stays_bounded() {
        let novelty = Novelty::default();
        for n in 0..(CAPACITY as u128 + 10) {
            novelty.learn(integration(n), Module::Contacts, true);
        }
        let remembered = novelty.with(|map| map.len());
        assert!(remembered <= CAPACITY, "{remembered} entries");
        let last = integration(CAPACITY as u128 + 9);
        assert_eq!(
            novelty.lookup(last, Module::Contacts),
            SourceLookup::AssumeNew
        );
    }
}
