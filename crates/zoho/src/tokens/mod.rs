//! The shared token store: one access-token refresh per expiry per integration, however many
//! workers and tasks use it.
//!
//! Three tiers, each guarding the next:
//! 1. memory: a fresh token is served without any I/O;
//! 2. one flight per integration per process: one task does the Redis round, the others wait for
//!    it and re-read memory (or keep using a still-usable token instead of waiting);
//! 3. Redis: the cached token (TTL a safety margin short of its expiry), a refresh lock
//!    (`SET NX PX` with a random value, compare-and-delete release) and the shared markers: the
//!    throttle cool-down and "Zoho rejected this refresh token".
//!
//! A token is refreshed proactively once less than the proactive margin of its lifetime is left;
//! workers that find the lock taken keep using the still-usable token, so no call waits on a
//! refresh unless its token is about to die. A cached token is only ever replaced by one that
//! expires later, and a 401 deletes it only if it is the token that failed. Whoever takes the
//! lock reads the cache and both markers again before asking Zoho: the holder before it may have
//! refreshed, been refused or been throttled in the instant between its first read and the lock.

mod error;
mod local;
mod refresh;
mod shared;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::RedisPool as Pool;
use pledgesync_core::{DataCenter, IntegrationId};
use url::Url;

pub use self::error::{ReauthReason, TokenError};
pub use self::shared::CachedToken;

use self::local::{Flight, Local};
use self::shared::Keys;
use crate::accounts::Accounts;
use crate::retry::now_ms;
use crate::secret::{AccessToken, ClientId, ClientSecret, RefreshToken};
use crate::settings::ZohoClientSettings;
use crate::telemetry;

/// What the token store needs to refresh one integration's token. Read from PostgreSQL by the
/// caller; the store never reads PostgreSQL.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The integration, which keys the cache, the lock and the markers.
    pub integration_id: IntegrationId,
    /// The Self Client's id.
    pub client_id: ClientId,
    /// The Self Client's secret.
    pub client_secret: ClientSecret,
    /// The integration's refresh token.
    pub refresh_token: RefreshToken,
    /// The data centre whose accounts server knows the client.
    pub data_center: DataCenter,
    /// The CRM API domain Zoho returned at set-up (used unless the configuration overrides it).
    pub api_domain: Option<Url>,
}

/// Access tokens shared through Redis. Cheap to clone; one per process is the intent (its memory
/// tier and flights are per instance).
#[derive(Clone)]
pub struct TokenStore {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Pool,
    accounts: Accounts,
    settings: Arc<ZohoClientSettings>,
    local: Local,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore")
            .field("prefix", &self.inner.settings.redis_key_prefix)
            .finish_non_exhaustive()
    }
}

impl TokenStore {
    /// A store over `redis` that refreshes through `accounts` (and uses its settings).
    pub fn new(redis: Pool, accounts: Accounts) -> Self {
        let settings = accounts.settings.clone();
        Self {
            inner: Arc::new(Inner {
                redis,
                accounts,
                settings,
                local: Local::default(),
            }),
        }
    }

    /// The accounts client refreshes go through.
    pub fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    /// The Redis pool (shared with the CRM client's limits).
    pub fn redis(&self) -> &Pool {
        &self.inner.redis
    }

    /// A token with more than the proactive margin left, refreshing if it must.
    pub async fn access_token(&self, creds: &Credentials) -> Result<AccessToken, TokenError> {
        self.cached_token(creds).await.map(|t| t.token)
    }

    /// Like [`Self::access_token`], with the token's expiry.
    pub async fn cached_token(&self, creds: &Credentials) -> Result<CachedToken, TokenError> {
        let id = creds.integration_id;
        let held = self.inner.local.get(id);
        if let Some(token) = held.as_ref().filter(|t| self.fresh(t)) {
            telemetry::token_cache_hit("memory");
            return Ok(token.clone());
        }
        let flight = self.inner.local.flight(id);
        let result = self.fly(creds, &flight, held).await;
        self.inner.local.release_flight(id, flight);
        result
    }

    /// Forgets `failed` (after Zoho answered 401 to it) from memory and Redis, but only if it is
    /// still the cached token: a stale 401 must not throw away a token another worker just got.
    /// True if Redis held it.
    pub async fn invalidate_if_same(
        &self,
        integration: IntegrationId,
        failed: &AccessToken,
    ) -> Result<bool, TokenError> {
        self.inner.local.remove_if_same(integration, failed);
        let mut conn = self.inner.redis.get().await?;
        shared::delete_if_same(&mut conn, &self.keys(integration), failed).await
    }

    /// Caches a token obtained elsewhere (the set-up's code exchange), unless a later one is held.
    pub async fn offer(
        &self,
        integration: IntegrationId,
        token: AccessToken,
        lifetime: Duration,
        minted_at_ms: i64,
    ) -> Result<(), TokenError> {
        let lifetime_ms = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX / 2);
        let cached = CachedToken {
            token,
            expires_at_ms: minted_at_ms.saturating_add(lifetime_ms),
            lifetime_ms,
        };
        if !self.usable(&cached) {
            return Ok(());
        }
        let mut conn = self.inner.redis.get().await?;
        let winner = shared::store_if_later(
            &mut conn,
            &self.keys(integration),
            &cached,
            self.cache_ttl(&cached),
        )
        .await?;
        self.inner.local.put(integration, &winner);
        Ok(())
    }

    /// Drops everything held for an integration (after it is reconnected or deleted), including
    /// the needs-reauth and cool-down markers.
    pub async fn forget(&self, integration: IntegrationId) -> Result<(), TokenError> {
        self.inner.local.remove(integration);
        let mut conn = self.inner.redis.get().await?;
        shared::forget(&mut conn, &self.keys(integration)).await
    }

    fn keys(&self, integration: IntegrationId) -> Keys {
        Keys::new(&self.inner.settings.redis_key_prefix, integration)
    }

    fn fresh(&self, token: &CachedToken) -> bool {
        let margin = self.inner.settings.proactive_margin(token.lifetime());
        token.remaining_ms(now_ms()) > margin.as_millis() as i64
    }

    fn usable(&self, token: &CachedToken) -> bool {
        let margin = self.inner.settings.safety_margin(token.lifetime());
        token.remaining_ms(now_ms()) > margin.as_millis() as i64
    }

    /// Redis forgets a token a safety margin before it expires.
    fn cache_ttl(&self, token: &CachedToken) -> Duration {
        let margin = self
            .inner
            .settings
            .safety_margin(token.lifetime())
            .as_millis() as i64;
        Duration::from_millis((token.remaining_ms(now_ms()) - margin).max(1) as u64)
    }

    /// The per-process single flight in front of the Redis round.
    async fn fly(
        &self,
        creds: &Credentials,
        flight: &Flight,
        held: Option<CachedToken>,
    ) -> Result<CachedToken, TokenError> {
        let id = creds.integration_id;
        let queued_at = Instant::now();
        let mut state = match flight.lock.try_lock() {
            Ok(state) => state,
            Err(_) => {
                // Another task of this process is on it; a still-usable token needs no wait.
                if let Some(token) = held.filter(|t| self.usable(t)) {
                    telemetry::token_cache_hit("memory");
                    return Ok(token);
                }
                // The leader's round ends by its own deadline plus at most one refresh.
                let settings = &self.inner.settings;
                let wait =
                    settings.token_wait() + settings.refresh_timeout() + Duration::from_secs(1);
                tokio::time::timeout(wait, flight.lock.lock())
                    .await
                    .map_err(|_| TokenError::WaitTimedOut { waited: wait })?
            }
        };
        if let Some(token) = self.inner.local.get(id).filter(|t| self.fresh(t)) {
            telemetry::token_cache_hit("memory");
            return Ok(token);
        }
        if let Some((ended, error)) = &state.last_failure {
            if *ended > queued_at {
                return Err(error.clone());
            }
        }
        match self.round(creds).await {
            Ok(token) => {
                self.inner.local.put(id, &token);
                state.last_failure = None;
                Ok(token)
            }
            Err(error) => {
                state.last_failure = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }
}
