//! The state one emulator shares between its handlers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use rand::Rng;

use crate::accounts::Accounts;
use crate::clock::Clock;
use crate::data::mix;
use crate::dc::Dc;
use crate::knobs::Knobs;
use crate::org::{Org, OrgSpec, MAX_ORGS};
use crate::paging::Codec;
use crate::stats::Stats;

/// Locks a mutex, ignoring poisoning: every critical section leaves its data consistent, and an
/// emulator that stops answering after one panic would be useless to the tests that follow.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct State {
    /// The controllable clock.
    pub clock: Clock,
    /// Knobs in force (swapped whole on PUT, so a request sees one consistent set).
    knobs: RwLock<Arc<Knobs>>,
    /// Accounts-server tables.
    pub accounts: Mutex<Accounts>,
    /// Orgs by index; index 0 is the default org.
    orgs: RwLock<Vec<Arc<Org>>>,
    /// DC of the unprefixed paths and of self clients created without one.
    pub default_dc: Dc,
    /// Counters.
    pub stats: Stats,
    /// Page-token codec with this process's secret.
    pub codec: Codec,
    /// In-flight CRM calls per (org index, client id), for the concurrency limit.
    in_flight: Mutex<HashMap<(usize, Arc<str>), usize>>,
    /// State of the fault RNG (SplitMix64 counter), seeded so fault patterns are reproducible.
    fault_rng: AtomicU64,
}

impl State {
    /// A new state with the default org already seeded.
    pub fn new(default_dc: Dc, default_org: Org, knobs: Knobs, seed: u64, clock: Clock) -> State {
        let mut key = [0u8; 32];
        rand::rng().fill(&mut key);
        State {
            clock,
            knobs: RwLock::new(Arc::new(knobs)),
            accounts: Mutex::new(Accounts::default()),
            orgs: RwLock::new(vec![Arc::new(default_org)]),
            default_dc,
            stats: Stats::default(),
            codec: Codec::new(key),
            in_flight: Mutex::new(HashMap::new()),
            fault_rng: AtomicU64::new(mix(seed ^ 0xFA17)),
        }
    }

    /// The knobs in force.
    pub fn knobs(&self) -> Arc<Knobs> {
        self.knobs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the knobs.
    pub fn set_knobs(&self, knobs: Knobs) {
        *self.knobs.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(knobs);
    }

    /// Org by index.
    pub fn org(&self, index: usize) -> Option<Arc<Org>> {
        self.orgs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(index)
            .cloned()
    }

    /// Org by id, with its index; `None` id means the default org.
    pub fn org_by_id(&self, id: Option<&str>) -> Option<(usize, Arc<Org>)> {
        let orgs = self.orgs.read().unwrap_or_else(PoisonError::into_inner);
        match id {
            None => orgs.first().map(|o| (0, o.clone())),
            Some(id) => orgs
                .iter()
                .enumerate()
                .find(|(_, o)| o.id == id)
                .map(|(i, o)| (i, o.clone())),
        }
    }

    /// Every org.
    pub fn orgs(&self) -> Vec<Arc<Org>> {
        self.orgs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Seeds and adds an org; the write lock is held only to push, not while seeding.
    pub fn add_org(&self, spec: &OrgSpec) -> Result<Arc<Org>, String> {
        let index = self
            .orgs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        if index >= MAX_ORGS {
            return Err(format!("at most {MAX_ORGS} orgs per emulator"));
        }
        let org = Arc::new(Org::build(index, spec, self.clock.now_secs())?);
        let mut orgs = self.orgs.write().unwrap_or_else(PoisonError::into_inner);
        // Another request may have added one meanwhile: rebuild with the index actually free.
        if orgs.len() != index {
            let org = Arc::new(Org::build(orgs.len(), spec, self.clock.now_secs())?);
            orgs.push(org.clone());
            return Ok(org);
        }
        orgs.push(org.clone());
        Ok(org)
    }

    /// `true` with probability `p`, from the seeded fault RNG.
    pub fn roll(&self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        let z = mix(self
            .fault_rng
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed));
        ((z >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Takes one of `limit` in-flight slots of (org, client); `None` when all are taken.
    pub fn acquire(self: &Arc<Self>, org: usize, client: Arc<str>, limit: usize) -> Option<Slot> {
        let mut map = lock(&self.in_flight);
        let n = map.entry((org, client.clone())).or_insert(0);
        if limit > 0 && *n >= limit {
            return None;
        }
        *n += 1;
        Some(Slot {
            state: self.clone(),
            key: (org, client),
        })
    }
}

/// One in-flight CRM call; frees its slot when dropped (also when the client hangs up).
#[derive(Debug)]
pub struct Slot {
    /// The state holding the table.
    state: Arc<State>,
    /// The (org, client) it counts against.
    key: (usize, Arc<str>),
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = lock(&self.state.in_flight);
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}
