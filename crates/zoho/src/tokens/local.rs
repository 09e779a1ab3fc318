//! The token store's in-process side: a memory copy of each integration's token, and one flight
//! per integration so that however many tasks of a process need a token at once, one of them does
//! the Redis round while the others wait and then re-read memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use pledgesync_core::IntegrationId;

use crate::secret::AccessToken;
use crate::tokens::shared::CachedToken;
use crate::tokens::TokenError;

/// The state a flight's leader leaves for the tasks queued behind it.
#[derive(Default)]
pub(crate) struct FlightState {
    /// The last round's failure and when it ended; tasks that queued before then share it
    /// instead of repeating the round.
    pub last_failure: Option<(Instant, TokenError)>,
}

/// One integration's flight: whoever holds the lock does the Redis round.
#[derive(Default)]
pub(crate) struct Flight {
    pub lock: tokio::sync::Mutex<FlightState>,
}

/// Memory copies and flights, per integration.
#[derive(Default)]
pub(crate) struct Local {
    tokens: Mutex<HashMap<IntegrationId, CachedToken>>,
    flights: Mutex<HashMap<IntegrationId, Arc<Flight>>>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these plain maps cannot leave them half-updated.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Local {
    pub fn get(&self, id: IntegrationId) -> Option<CachedToken> {
        locked(&self.tokens).get(&id).cloned()
    }

    /// Keeps `token` unless memory already holds one that expires later.
    pub fn put(&self, id: IntegrationId, token: &CachedToken) {
        let mut tokens = locked(&self.tokens);
        match tokens.get(&id) {
            Some(held) if held.expires_at_ms >= token.expires_at_ms => {}
            _ => {
                tokens.insert(id, token.clone());
            }
        }
    }

    /// Drops the memory copy if it is `failed`; true if it was.
    pub fn remove_if_same(&self, id: IntegrationId, failed: &AccessToken) -> bool {
        let mut tokens = locked(&self.tokens);
        if tokens.get(&id).is_some_and(|held| held.token == *failed) {
            tokens.remove(&id);
            true
        } else {
            false
        }
    }

    pub fn remove(&self, id: IntegrationId) {
        locked(&self.tokens).remove(&id);
    }

    pub fn flight(&self, id: IntegrationId) -> Arc<Flight> {
        locked(&self.flights).entry(id).or_default().clone()
    }

    /// Forgets a flight nobody else holds, so the map does not grow with idle integrations.
    pub fn release_flight(&self, id: IntegrationId, flight: Arc<Flight>) {
        let mut flights = locked(&self.flights);
        // Two references: the map's and ours. Clones are only made under this same mutex.
        if Arc::strong_count(&flight) == 2 {
            flights.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(value: &str, expires_at_ms: i64) -> CachedToken {
        CachedToken {
            token: AccessToken::new(value),
            expires_at_ms,
            lifetime_ms: 1000,
        }
    }

    #[test]
    fn memory_keeps_the_later_token_and_removes_only_the_same() {
        let local = Local::default();
        let id = IntegrationId::new();
        local.put(id, &token("a", 2000));
        local.put(id, &token("old", 1000));
        assert_eq!(local.get(id).map(|t| t.token), Some(AccessToken::new("a")));
        assert!(!local.remove_if_same(id, &AccessToken::new("other")));
        assert!(local.remove_if_same(id, &AccessToken::new("a")));
        assert!(local.get(id).is_none());
    }

    #[test]
    fn idle_flights_are_forgotten() {
        let local = Local::default();
        let id = IntegrationId::new();
        let first = local.flight(id);
        let second = local.flight(id);
        assert!(Arc::ptr_eq(&first, &second));
        local.release_flight(id, second);
        assert_eq!(locked(&local.flights).len(), 1, "still held by `first`");
        local.release_flight(id, first);
        assert!(locked(&local.flights).is_empty());
    }
}
