//! One process's Redis round for a token: read the cache and the shared markers, then refresh
//! under the lock, or wait for whoever holds it.

use std::time::{Duration, Instant};

use crate::oauth::{Refusal, TokenReply};
use crate::retry::{jitter_between, now_ms};
use crate::telemetry;
use crate::tokens::shared::{self, CachedToken, Keys, LockGuard};
use crate::tokens::{Credentials, ReauthReason, TokenError, TokenStore};

/// How often a worker that found the lock taken looks for the new token.
const POLL_LOW: Duration = Duration::from_millis(15);
const POLL_HIGH: Duration = Duration::from_millis(45);

impl TokenStore {
    /// One process's Redis round: read the cache and markers; refresh under the lock, or wait for
    /// whoever holds it.
    pub(super) async fn round(&self, creds: &Credentials) -> Result<CachedToken, TokenError> {
        let id = creds.integration_id;
        let keys = self.keys(id);
        let settings = &self.inner.settings;
        let deadline = Instant::now() + settings.token_wait();
        let fingerprint = creds.refresh_token.fingerprint();
        let mut counted_wait = false;
        loop {
            // A connection per pass: waits below must not hold a pooled connection.
            let mut conn = self.inner.redis.get().await?;
            let snapshot = shared::snapshot(&mut conn, &keys).await?;
            if let Some(token) = snapshot.cached.as_ref().filter(|t| self.fresh(t)) {
                telemetry::token_cache_hit("redis");
                return Ok(token.clone());
            }
            if let Some(reason) = snapshot
                .reauth
                .as_deref()
                .and_then(|m| reauth_reason(m, &fingerprint))
            {
                self.inner.local.remove(id);
                return Err(TokenError::NeedsReauth { reason });
            }
            let usable = snapshot
                .cached
                .clone()
                .filter(|t| self.usable(t))
                .or_else(|| self.inner.local.get(id).filter(|t| self.usable(t)));
            if let Some(left) = snapshot.cooldown {
                telemetry::token_throttle();
                if let Some(token) = usable {
                    return Ok(token);
                }
                if Instant::now() + left > deadline {
                    return Err(TokenError::Throttled { retry_after: left });
                }
                drop(conn);
                tokio::time::sleep(left + jitter_between(POLL_LOW, POLL_HIGH)).await;
                continue;
            }
            let lock_value = format!("{:032x}", rand::random::<u128>());
            if shared::try_lock(
                &mut conn,
                &keys,
                &lock_value,
                Duration::from_millis(settings.refresh_lock_ttl_ms),
            )
            .await?
            {
                let guard = LockGuard::new(self.inner.redis.clone(), &keys, lock_value);
                let result = self
                    .refresh_locked(&mut conn, creds, &keys, usable, &fingerprint)
                    .await;
                if let Err(e) = guard.release(&mut conn).await {
                    // The lock's TTL frees it anyway; waiters will find the new token first.
                    tracing::warn!(integration_id = %id, error = %e, "refresh lock not released");
                }
                match result {
                    Ok(Locked::Token(token)) => return Ok(token),
                    // Read the markers again, as every waiter does.
                    Ok(Locked::MarkersChanged) => continue,
                    Err(e) => return Err(e),
                }
            }
            if !counted_wait {
                telemetry::token_lock_wait();
                counted_wait = true;
            }
            if let Some(token) = usable {
                return Ok(token);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(TokenError::WaitTimedOut {
                    waited: settings.token_wait(),
                });
            }
            drop(conn);
            tokio::time::sleep(jitter_between(POLL_LOW, POLL_HIGH).min(deadline - now)).await;
        }
    }

    /// Refreshes while holding the lock.
    async fn refresh_locked(
        &self,
        conn: &mut crate::RedisConnection,
        creds: &Credentials,
        keys: &Keys,
        usable: Option<CachedToken>,
        fingerprint: &str,
    ) -> Result<Locked, TokenError> {
        let id = creds.integration_id;
        // Between our read and our lock, the holder before us may have refreshed, or been
        // refused (needs-reauth marker) or throttled (cool-down): asking Zoho again would be a
        // second refresh for one expiry, or a second try of a refresh token Zoho rejected.
        let snapshot = shared::snapshot(conn, keys).await?;
        if let Some(token) = snapshot.cached.filter(|t| self.fresh(t)) {
            telemetry::token_cache_hit("redis");
            return Ok(Locked::Token(token));
        }
        if snapshot.cooldown.is_some()
            || snapshot
                .reauth
                .as_deref()
                .and_then(|m| reauth_reason(m, fingerprint))
                .is_some()
        {
            return Ok(Locked::MarkersChanged);
        }
        let settings = &self.inner.settings;
        let sent_at_ms = now_ms();
        let accounts = &self.inner.accounts;
        let call = accounts.refresh(
            creds.data_center,
            &creds.client_id,
            &creds.client_secret,
            &creds.refresh_token,
        );
        let reply = match tokio::time::timeout(settings.refresh_timeout(), call).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => {
                telemetry::token_refresh("failed");
                return Err(TokenError::Unavailable {
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                telemetry::token_refresh("failed");
                return Err(TokenError::Unavailable {
                    reason: format!(
                        "the token endpoint did not answer within {} ms",
                        settings.refresh_timeout_ms
                    ),
                });
            }
        };
        let reason = match reply {
            TokenReply::Granted(grant) => {
                telemetry::token_refresh("ok");
                let lifetime_ms = i64::try_from(grant.lifetime.as_millis()).unwrap_or(i64::MAX / 2);
                let token = CachedToken {
                    token: grant.access_token,
                    expires_at_ms: sent_at_ms.saturating_add(lifetime_ms),
                    lifetime_ms,
                };
                return match shared::store_if_later(conn, keys, &token, self.cache_ttl(&token))
                    .await
                {
                    Ok(winner) => Ok(Locked::Token(winner)),
                    Err(e) => {
                        // The token is good even if Redis could not keep it.
                        tracing::warn!(integration_id = %id, error = %e, "refreshed token not cached in Redis");
                        Ok(Locked::Token(token))
                    }
                };
            }
            TokenReply::Refused(Refusal::Throttled) => {
                telemetry::token_refresh("throttled");
                telemetry::token_throttle();
                let cooldown = Duration::from_secs(settings.refresh_cooldown_secs);
                tracing::warn!(integration_id = %id, cooldown_secs = cooldown.as_secs(), "Zoho throttled token refreshes; all workers hold off");
                shared::set_cooldown(conn, keys, cooldown).await?;
                return usable.map(Locked::Token).ok_or(TokenError::Throttled {
                    retry_after: cooldown,
                });
            }
            TokenReply::Refused(Refusal::Other(code)) => {
                telemetry::token_refresh("failed");
                return Err(TokenError::Unavailable {
                    reason: format!("Zoho refused the refresh with `{code}`"),
                });
            }
            TokenReply::Refused(Refusal::InvalidCode) => ReauthReason::RefreshTokenRejected,
            TokenReply::Refused(Refusal::InvalidClient) => ReauthReason::ClientRejected,
            TokenReply::Refused(Refusal::InvalidClientSecret) => ReauthReason::SecretRejected,
        };
        telemetry::token_refresh("rejected");
        tracing::warn!(integration_id = %id, reason = reason.as_str(), "Zoho rejected the integration's credentials; it needs reauthorisation");
        self.inner.local.remove(id);
        let marker = format!("{fingerprint}:{}", reason.as_str());
        shared::mark_reauth(
            conn,
            keys,
            &marker,
            Duration::from_secs(settings.needs_reauth_memory_secs),
        )
        .await?;
        Err(TokenError::NeedsReauth { reason })
    }
}

/// What a round that took the refresh lock ended with, short of an error.
enum Locked {
    /// A token to use: refreshed now, or found fresh in the cache.
    Token(CachedToken),
    /// Another process left a needs-reauth or cool-down marker since the round read them: read
    /// them again, as a waiter would, instead of asking Zoho.
    MarkersChanged,
}

/// The reason in a needs-reauth marker, if the marker is about this refresh token.
fn reauth_reason(marker: &str, fingerprint: &str) -> Option<ReauthReason> {
    let (marked, reason) = marker.split_once(':')?;
    (marked == fingerprint).then(|| ReauthReason::parse(reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::RefreshToken;

    #[test]
    fn markers_only_match_their_refresh_token() {
        let token = RefreshToken::new("1000.a");
        let marker = format!("{}:client", token.fingerprint());
        assert_eq!(
            reauth_reason(&marker, &token.fingerprint()),
            Some(ReauthReason::ClientRejected)
        );
        assert_eq!(
            reauth_reason(&marker, &RefreshToken::new("1000.b").fingerprint()),
            None
        );
        assert_eq!(reauth_reason("garbage", &token.fingerprint()), None);
    }
}
