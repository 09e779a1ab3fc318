//! The backoff schedule: exponential with full jitter, so that workers that failed together do not
//! come back together.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng as _;

/// Exponential backoff with full jitter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait before attempt `attempt + 1`, given `attempt` (1-based) failed: a uniform draw
    /// from `[cap/2, cap]` where `cap = min(max, base × 2^(attempt-1))`. Half the cap is kept as a
    /// floor so that a retry is never immediate.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        let cap = self.base.saturating_mul(factor).min(self.max);
        jitter_between(cap / 2, cap)
    }
}

/// A uniform draw from `[low, high]`.
pub(crate) fn jitter_between(low: Duration, high: Duration) -> Duration {
    if high <= low {
        return low;
    }
    let span = (high - low).as_micros().min(u128::from(u64::MAX)) as u64;
    low + Duration::from_micros(rand::rng().random_range(0..=span))
}

/// Wall-clock milliseconds since the Unix epoch: token expiries are shared between processes
/// through Redis, so they are absolute times, not `Instant`s.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for _ in 0..100 {
            let first = b.delay(1);
            assert!(
                first >= Duration::from_millis(50) && first <= Duration::from_millis(100),
                "{first:?}"
            );
            let third = b.delay(3);
            assert!(
                third >= Duration::from_millis(200) && third <= Duration::from_millis(400),
                "{third:?}"
            );
            let late = b.delay(40);
            assert!(
                late >= Duration::from_millis(500) && late <= Duration::from_secs(1),
                "{late:?}"
            );
        }
    }

    #[test]
    fn jitter_handles_empty_ranges() {
        let d = Duration::from_millis(5);
        assert_eq!(jitter_between(d, d), d);
        assert_eq!(jitter_between(d, Duration::ZERO), d);
    }
}
