//! Per-org limits shared by every worker through Redis: a counting semaphore of concurrent calls
//! whose slots are leases that expire (a crashed worker frees its slots), and the org's API credits
//! counted over a rolling 24 hours in 10-minute buckets, of which a configured share is never
//! exceeded. Both are checked and taken in one Lua script, timed by Redis's clock so that workers'
//! clocks need not agree.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use redis::Script;

use crate::RedisPool as Pool;

use crate::crm::CrmError;
use crate::retry::jitter_between;
use crate::settings::ZohoClientSettings;
use crate::telemetry;

/// Credits are counted in buckets this long; one frees up to a bucket later than Zoho would,
/// which errs on the safe side.
const BUCKET_SECS: u64 = 600;
/// Zoho's credit window.
const WINDOW_SECS: u64 = 24 * 3600;
/// How long a low `X-API-CREDITS-REMAINING` holds calls back before looking again.
const LOW_CREDITS_HOLD: Duration = Duration::from_secs(600);

/// Returns {1, credits used} when admitted, {0, 0} when every slot is taken, {2, ms to wait} when
/// the credit share is spent or a low-credits hold is on.
static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now_ms = now_s * 1000 + math.floor(tonumber(t[2]) / 1000)
local hold = redis.call('PTTL', KEYS[3])
if hold > 0 then return {2, hold} end
local limit, lease, lease_ms = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local budget, cost = tonumber(ARGV[4]), tonumber(ARGV[5])
local bucket_secs, window_secs = tonumber(ARGV[6]), tonumber(ARGV[7])
local buckets = math.floor(window_secs / bucket_secs)
local current = math.floor(now_s / bucket_secs)
local oldest_live = current - buckets + 1
local all = redis.call('HGETALL', KEYS[2])
local used, min_b = 0, nil
for i = 1, #all, 2 do
  local b = tonumber(all[i])
  if b == nil or b < oldest_live then
    redis.call('HDEL', KEYS[2], all[i])
  else
    used = used + tonumber(all[i + 1])
    if min_b == nil or b < min_b then min_b = b end
  end
end
if used + cost > budget then
  local free_at_ms = ((min_b or current) + buckets) * bucket_secs * 1000
  return {2, math.max(free_at_ms - now_ms, 1000)}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= limit then return {0, 0} end
redis.call('ZADD', KEYS[1], now_ms + lease_ms, lease)
redis.call('PEXPIRE', KEYS[1], lease_ms * 2)
redis.call('HINCRBY', KEYS[2], tostring(current), cost)
redis.call('EXPIRE', KEYS[2], window_secs + bucket_secs)
return {1, used + cost}
",
    )
});

/// The per-org limits.
#[derive(Clone)]
pub(crate) struct Limits {
    redis: Pool,
    prefix: String,
    concurrency: u32,
    lease: Duration,
    wait: Duration,
}

/// A held concurrency slot; give it back with [`Limits::release`]. If the call holding it is
/// cancelled (a dropped page stream), dropping the lease gives the slot back in the background
/// rather than leaving it taken until the lease expires.
pub(crate) struct Lease {
    redis: Pool,
    key: String,
    id: String,
    released: bool,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (redis, key, id) = (
                self.redis.clone(),
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.id),
            );
            runtime.spawn(async move {
                if let Err(error) = zrem(&redis, &key, &id).await {
                    tracing::warn!(%error, "concurrency slot of a cancelled call not released; its lease will expire");
                }
            });
        }
    }
}

async fn zrem(redis: &Pool, key: &str, id: &str) -> Result<i64, String> {
    let mut conn = redis.get().await.map_err(|e| e.to_string())?;
    redis::cmd("ZREM")
        .arg(key)
        .arg(id)
        .query_async::<i64>(&mut conn)
        .await
        .map_err(|e| e.to_string())
}

impl Limits {
    pub fn new(redis: Pool, settings: &ZohoClientSettings) -> Self {
        Self {
            redis,
            prefix: settings.redis_key_prefix.clone(),
            concurrency: settings.org_concurrency,
            // A lease outlives any call it guards, so only a crashed holder's lease expires.
            lease: settings.request_timeout() + Duration::from_secs(5),
            wait: Duration::from_millis(settings.concurrency_wait_ms),
        }
    }

    fn keys(&self, org: &str) -> [String; 3] {
        [
            format!("{}:org:{org}:slots", self.prefix),
            format!("{}:org:{org}:credits", self.prefix),
            format!("{}:org:{org}:credits-hold", self.prefix),
        ]
    }

    /// Takes a slot and one credit for `org`, waiting for a slot up to the configured wait.
    pub async fn admit(&self, org: &str, budget: u64) -> Result<Lease, CrmError> {
        let keys = self.keys(org);
        let id = format!("{:032x}", rand::random::<u128>());
        let started = Instant::now();
        let mut counted = false;
        loop {
            let mut conn = self
                .redis
                .get()
                .await
                .map_err(|e| CrmError::Redis(e.to_string()))?;
            let (verdict, value): (i64, i64) = ADMIT
                .key(&keys[0])
                .key(&keys[1])
                .key(&keys[2])
                .arg(self.concurrency)
                .arg(&id)
                .arg(self.lease.as_millis() as u64)
                .arg(budget)
                .arg(1)
                .arg(BUCKET_SECS)
                .arg(WINDOW_SECS)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| CrmError::Redis(e.to_string()))?;
            drop(conn);
            match verdict {
                1 => {
                    telemetry::credits_used(1);
                    return Ok(Lease {
                        redis: self.redis.clone(),
                        key: keys[0].clone(),
                        id,
                        released: false,
                    });
                }
                2 => {
                    telemetry::limit_wait("credits");
                    return Err(CrmError::CreditsExhausted {
                        retry_after: Duration::from_millis(value.max(0) as u64),
                    });
                }
                _ => {}
            }
            if !counted {
                telemetry::limit_wait("concurrency");
                counted = true;
            }
            let waited = started.elapsed();
            if waited >= self.wait {
                return Err(CrmError::ConcurrencyWait {
                    limit: self.concurrency,
                    waited,
                });
            }
            tokio::time::sleep(
                jitter_between(Duration::from_millis(10), Duration::from_millis(40))
                    .min(self.wait - waited),
            )
            .await;
        }
    }

    /// Gives a slot back. A failure only delays the slot until its lease expires.
    pub async fn release(&self, mut lease: Lease) {
        lease.released = true;
        if let Err(error) = zrem(&self.redis, &lease.key, &lease.id).await {
            tracing::warn!(%error, "concurrency slot not released; its lease will expire");
        }
    }

    /// Acts on `X-API-CREDITS-REMAINING`: when the org (all its apps together) has less left than
    /// the creator's reserved share, every worker holds off for a while.
    pub async fn note_remaining(&self, org: &str, remaining: u64, daily_credits: u64, share: f64) {
        let reserve = ((daily_credits as f64) * (1.0 - share)).floor() as u64;
        if remaining > reserve {
            return;
        }
        let key = &self.keys(org)[2];
        let result = async {
            let mut conn = self.redis.get().await.map_err(|e| e.to_string())?;
            redis::cmd("SET")
                .arg(key)
                .arg(remaining)
                .arg("PX")
                .arg(LOW_CREDITS_HOLD.as_millis() as u64)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        tracing::warn!(
            org,
            remaining,
            reserve,
            "the org's Zoho API credits are low; holding calls back"
        );
        if let Err(error) = result {
            tracing::warn!(%error, "low-credits hold not recorded");
        }
    }
}
