//! The token store's Redis side: keys, the stored form of a token, and the Lua scripts that make
//! every change conditional (replace only with a later expiry, delete only what we hold).

use std::sync::LazyLock;
use std::time::Duration;

use pledgesync_core::IntegrationId;
use redis::{AsyncCommands as _, Script};

use crate::secret::AccessToken;
use crate::tokens::TokenError;

/// A cached token as Redis holds it: `{expires_at_ms}:{lifetime_ms}:{token}`.
#[derive(Clone, Debug)]
pub struct CachedToken {
    /// The token.
    pub token: AccessToken,
    /// When Zoho will stop accepting it (Unix ms, measured from before the refresh was sent).
    pub expires_at_ms: i64,
    /// Its whole lifetime, which scales the refresh margins.
    pub lifetime_ms: i64,
}

impl CachedToken {
    pub(crate) fn encode(&self) -> String {
        format!(
            "{}:{}:{}",
            self.expires_at_ms,
            self.lifetime_ms,
            self.token.expose()
        )
    }

    pub(crate) fn decode(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, ':');
        let expires_at_ms = parts.next()?.parse().ok()?;
        let lifetime_ms = parts.next()?.parse().ok()?;
        let token = parts.next().filter(|t| !t.is_empty())?;
        Some(Self {
            token: AccessToken::new(token),
            expires_at_ms,
            lifetime_ms,
        })
    }

    /// Milliseconds left at `now_ms`.
    pub(crate) fn remaining_ms(&self, now_ms: i64) -> i64 {
        self.expires_at_ms - now_ms
    }

    pub(crate) fn lifetime(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.lifetime_ms).unwrap_or(0))
    }
}

/// The keys of one integration.
pub(crate) struct Keys {
    pub token: String,
    pub lock: String,
    pub cooldown: String,
    pub reauth: String,
}

impl Keys {
    pub fn new(prefix: &str, id: IntegrationId) -> Self {
        Self {
            token: format!("{prefix}:token:{id}"),
            lock: format!("{prefix}:token-lock:{id}"),
            cooldown: format!("{prefix}:token-cooldown:{id}"),
            reauth: format!("{prefix}:token-reauth:{id}"),
        }
    }
}

/// Stores ARGV[2] unless the cached token expires at or after ARGV[1]; returns what is cached.
static STORE_IF_LATER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local exp = tonumber(string.match(cur, '^(%d+):'))
  if exp and exp >= tonumber(ARGV[1]) then return cur end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return ARGV[2]
",
    )
});

/// Deletes the cached token only if it is ARGV[1].
static DELETE_IF_SAME: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1])
if cur and string.match(cur, '^%d+:%d+:(.*)$') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// Releases a lock only if we still hold it (our random value).
static RELEASE_LOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// What one read of an integration's keys found.
pub(crate) struct Snapshot {
    pub cached: Option<CachedToken>,
    /// Time left in the throttle cool-down.
    pub cooldown: Option<Duration>,
    /// `{fingerprint}:{reason}` of a refresh token Zoho rejected.
    pub reauth: Option<String>,
}

pub(crate) async fn snapshot(
    conn: &mut crate::RedisConnection,
    keys: &Keys,
) -> Result<Snapshot, TokenError> {
    let (cached, cooldown_ms, reauth): (Option<String>, i64, Option<String>) = redis::pipe()
        .get(&keys.token)
        .pttl(&keys.cooldown)
        .get(&keys.reauth)
        .query_async(conn)
        .await?;
    Ok(Snapshot {
        cached: cached.as_deref().and_then(CachedToken::decode),
        cooldown: (cooldown_ms > 0).then(|| Duration::from_millis(cooldown_ms as u64)),
        reauth,
    })
}

/// `SET lock value NX PX ttl`: whether we got it.
pub(crate) async fn try_lock(
    conn: &mut crate::RedisConnection,
    keys: &Keys,
    value: &str,
    ttl: Duration,
) -> Result<bool, TokenError> {
    let answer: Option<String> = redis::cmd("SET")
        .arg(&keys.lock)
        .arg(value)
        .arg("NX")
        .arg("PX")
        .arg(ttl.as_millis().max(1) as u64)
        .query_async(conn)
        .await?;
    Ok(answer.is_some())
}

async fn release_lock(
    conn: &mut crate::RedisConnection,
    key: &str,
    value: &str,
) -> Result<(), TokenError> {
    let _: i64 = RELEASE_LOCK.key(key).arg(value).invoke_async(conn).await?;
    Ok(())
}

/// A held refresh lock. Released explicitly; if the refresh is cancelled midway, dropping the
/// guard releases it in the background so other workers need not wait for its TTL.
pub(crate) struct LockGuard {
    redis: crate::RedisPool,
    key: String,
    value: String,
    released: bool,
}

impl LockGuard {
    pub fn new(redis: crate::RedisPool, keys: &Keys, value: String) -> Self {
        Self {
            redis,
            key: keys.lock.clone(),
            value,
            released: false,
        }
    }

    pub async fn release(mut self, conn: &mut crate::RedisConnection) -> Result<(), TokenError> {
        self.released = true;
        release_lock(conn, &self.key, &self.value).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (redis, key, value) = (
                self.redis.clone(),
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.value),
            );
            runtime.spawn(async move {
                let result = match redis.get().await {
                    Ok(mut conn) => release_lock(&mut conn, &key, &value).await,
                    Err(e) => Err(e.into()),
                };
                if let Err(error) = result {
                    tracing::warn!(%error, "refresh lock of a cancelled refresh not released; its TTL will free it");
                }
            });
        }
    }
}

/// Caches `token` for `ttl` unless a later-expiring one is cached; returns the cached winner.
pub(crate) async fn store_if_later(
    conn: &mut crate::RedisConnection,
    keys: &Keys,
    token: &CachedToken,
    ttl: Duration,
) -> Result<CachedToken, TokenError> {
    let stored: String = STORE_IF_LATER
        .key(&keys.token)
        .arg(token.expires_at_ms)
        .arg(token.encode())
        .arg(ttl.as_millis().max(1) as u64)
        .invoke_async(conn)
        .await?;
    Ok(CachedToken::decode(&stored).unwrap_or_else(|| token.clone()))
}

pub(crate) async fn delete_if_same(
    conn: &mut crate::RedisConnection,
    keys: &Keys,
    token: &AccessToken,
) -> Result<bool, TokenError> {
    let deleted: i64 = DELETE_IF_SAME
        .key(&keys.token)
        .arg(token.expose())
        .invoke_async(conn)
        .await?;
    Ok(deleted > 0)
}

pub(crate) async fn set_cooldown(
    conn: &mut crate::RedisConnection,
    keys: &Keys,
    length: Duration,
) -> Result<(), TokenError> {
    let () = conn
        .pset_ex(&keys.cooldown, 1, length.as_millis().max(1) as u64)
        .await?;
    Ok(())
}

pub(crate) async fn mark_reauth(
    conn: &mut crate::RedisConnection,
    keys: &Keys,
    marker: &str,
    memory: Duration,
) -> Result<(), TokenError> {
    let () = redis::pipe()
        .pset_ex(&keys.reauth, marker, memory.as_millis().max(1) as u64)
        .ignore()
        .del(&keys.token)
        .ignore()
        .query_async(conn)
        .await?;
    Ok(())
}

pub(crate) async fn forget(
    conn: &mut crate::RedisConnection,
    keys: &Keys,
) -> Result<(), TokenError> {
    let () = redis::pipe()
        .del(&[&keys.token, &keys.cooldown, &keys.reauth])
        .ignore()
        .query_async(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_round_trips_and_rejects_garbage() {
        let token = CachedToken {
            token: AccessToken::new("1000.abc:def"),
            expires_at_ms: 1_700_000_000_000,
            lifetime_ms: 3_600_000,
        };
        let back = CachedToken::decode(&token.encode()).expect("decodes");
        assert_eq!(back.token.expose(), "1000.abc:def");
        assert_eq!(back.expires_at_ms, token.expires_at_ms);
        assert_eq!(back.lifetime(), Duration::from_secs(3600));
        assert!(CachedToken::decode("garbage").is_none());
        assert!(CachedToken::decode("1:2:").is_none());
        assert!(CachedToken::decode("x:2:t").is_none());
    }
}
