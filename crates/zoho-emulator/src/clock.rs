//! The emulator's notion of "now".
//!
//! Zoho's limits are measured in minutes and hours (grant codes live 10 minutes, access tokens an
//! hour, page tokens a day, credits roll over 24 hours). Tests cannot wait that long, so every expiry
//! in the emulator reads this clock, which is the wall clock plus an offset that the console can
//! push forward. Nothing in the emulator compares against `Instant::now()` for expiry.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};

/// Milliseconds in one second, for readability at call sites.
pub const MS: i64 = 1000;

/// A wall clock that tests can move forward.
#[derive(Debug, Default)]
pub struct Clock {
    /// How far the emulator's "now" is ahead of the wall clock, in milliseconds.
    offset_ms: AtomicI64,
}

impl Clock {
    /// A clock that starts at the wall clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// The emulator's current time in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        wall.saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// The emulator's current time in whole seconds since the Unix epoch.
    pub fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(MS)
    }

    /// Moves "now" forward by `secs` seconds (never backward: expiry must stay monotonic).
    pub fn advance_secs(&self, secs: u64) {
        let ms = i64::try_from(secs)
            .unwrap_or(i64::MAX / MS)
            .saturating_mul(MS);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// How far the clock has been moved forward, in seconds.
    pub fn offset_secs(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed) / MS
    }
}

/// Formats Unix seconds as Zoho does: ISO-8601, seconds precision, the org's offset
/// (e.g. `2025-03-07T10:15:00+05:30`).
///
/// Written by hand rather than with `chrono::format` because list pages format two or three
/// timestamps per record and the format-string interpreter is the slowest part of a page.
pub fn format_ts(secs: i64, offset: FixedOffset) -> String {
    use std::fmt::Write;
    let local = secs.saturating_add(i64::from(offset.local_minus_utc()));
    let naive = DateTime::<Utc>::from_timestamp(local, 0)
        .map(|d| d.naive_utc())
        .unwrap_or(NaiveDateTime::MIN);
    let (date, time) = (naive.date(), naive.time());
    use chrono::{Datelike, Timelike};
    let off = offset.local_minus_utc();
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.abs();
    let mut out = String::with_capacity(25);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{:02}:{:02}",
        date.year(),
        date.month(),
        date.day(),
        time.hour(),
        time.minute(),
        time.second(),
        sign,
        off / 3600,
        (off % 3600) / 60
    );
    out
}

/// Parses a timestamp as clients send it in `If-Modified-Since`: ISO-8601 with an offset (what
/// Zoho documents), also RFC 2822 / HTTP-date (what generic HTTP clients send). Returns epoch ms.
pub fn parse_ts_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.timestamp_millis());
    }
    DateTime::parse_from_rfc2822(text)
        .ok()
        .map(|dt| dt.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_offset_and_seconds() {
        let ist = FixedOffset::east_opt(5 * 3600 + 1800).expect("valid offset");
        // 2025-03-07T04:45:00Z
        assert_eq!(format_ts(1_741_322_700, ist), "2025-03-07T10:15:00+05:30");
        let pst = FixedOffset::west_opt(8 * 3600).expect("valid offset");
        assert_eq!(format_ts(1_741_322_700, pst), "2025-03-06T20:45:00-08:00");
        let utc = FixedOffset::east_opt(0).expect("valid offset");
        assert_eq!(format_ts(0, utc), "1970-01-01T00:00:00+00:00");
    }

    #[test]
    fn parses_iso_and_http_dates() {
        assert_eq!(
            parse_ts_ms("2025-03-07T10:15:00+05:30"),
            Some(1_741_322_700_000)
        );
        assert_eq!(
            parse_ts_ms("Fri, 07 Mar 2025 04:45:00 GMT"),
            Some(1_741_322_700_000)
        );
        assert_eq!(parse_ts_ms("yesterday"), None);
    }

    #[test]
    fn advancing_moves_now_forward() {
        let clock = Clock::new();
        let before = clock.now_secs();
        clock.advance_secs(600);
        assert!(clock.now_secs() >= before + 600);
        assert_eq!(clock.offset_secs(), 600);
    }
}
