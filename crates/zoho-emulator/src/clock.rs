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

/// Length of a timestamp as Zoho renders it, `YYYY-MM-DDTHH:MM:SS+HH:MM`.
pub const TS_LEN: usize = 25;

/// Formats Unix seconds as Zoho does: ISO-8601, seconds precision, the org's offset
/// (e.g. `2025-03-07T10:15:00+05:30`). Offset seconds, if any, are dropped (not rounded).
pub fn format_ts(secs: i64, offset: FixedOffset) -> String {
    let mut buf = [0; TS_LEN];
    match format_ts_into(secs, offset, &mut buf) {
        Some(text) => text.to_owned(),
        None => format_ts_any_year(secs, offset),
    }
}

/// [`format_ts`] without allocating or going through `fmt`, into a stack buffer: list pages
/// render two or three timestamps per record, and `write!` with width specifiers was a sixth of the
/// CPU of serving pages. Returns `None` for years outside `0..=9999`, which do not fit the fixed layout;
/// [`format_ts`] renders those.
pub fn format_ts_into(secs: i64, offset: FixedOffset, buf: &mut [u8; TS_LEN]) -> Option<&str> {
    use chrono::{Datelike, Timelike};
    let local = local_time(secs, offset);
    let year = u32::try_from(local.year()).ok().filter(|&y| y <= 9999)?;
    let off = offset.local_minus_utc();
    let abs = off.unsigned_abs();
    *buf = *b"0000-00-00T00:00:00+00:00";
    put_digits(&mut buf[0..4], year);
    put_digits(&mut buf[5..7], local.month());
    put_digits(&mut buf[8..10], local.day());
    put_digits(&mut buf[11..13], local.hour());
    put_digits(&mut buf[14..16], local.minute());
    put_digits(&mut buf[17..19], local.second());
    if off < 0 {
        buf[19] = b'-';
    }
    put_digits(&mut buf[20..22], abs / 3600);
    put_digits(&mut buf[23..25], abs % 3600 / 60);
    // Only ASCII was written, so this never fails; if it did, `format_ts` would still be right.
    std::str::from_utf8(buf).ok()
}

/// Fills `dst` with the last `dst.len()` decimal digits of `n`, zero-padded.
fn put_digits(dst: &mut [u8], mut n: u32) {
    for digit in dst.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The wall-clock time at `offset`; times chrono cannot represent clamp to its minimum.
fn local_time(secs: i64, offset: FixedOffset) -> NaiveDateTime {
    let local = secs.saturating_add(i64::from(offset.local_minus_utc()));
    DateTime::<Utc>::from_timestamp(local, 0)
        .map(|d| d.naive_utc())
        .unwrap_or(NaiveDateTime::MIN)
}

/// The general (slow) path behind [`format_ts`] for any year: `{:04}` pads to four characters,
/// a minus sign included (`-001`), and lets longer years through (`10000`).
fn format_ts_any_year(secs: i64, offset: FixedOffset) -> String {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    let naive = local_time(secs, offset);
    let (date, time) = (naive.date(), naive.time());
    let off = offset.local_minus_utc();
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.abs();
    let mut out = String::with_capacity(TS_LEN);
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

    /// Offsets Zoho orgs use, whole minutes (negative, non-hour and extreme ones included).
    const OFFSETS: &[i32] = &[
        0, 3_600, 19_800, 20_700, 34_200, 50_400, -1_800, -12_600, -16_200, -28_800, -36_000,
        -43_200, 86_340, -86_340,
    ];

    /// Unix seconds from the year 0 to past 9999, with the edges of years and days.
    fn sample_times() -> Vec<i64> {
        let mut times: Vec<i64> = (-62_167_219_200..=253_402_300_799)
            .step_by(7_777_777)
            .collect();
        for edge in [
            0,
            -1,
            951_782_400,     // 2000-02-29
            1_741_322_700,   // 2025-03-07T04:45:00Z
            1_767_225_599,   // 2025-12-31T23:59:59Z
            -62_167_219_200, // 0000-01-01T00:00:00Z
            253_402_300_799, // 9999-12-31T23:59:59Z
        ] {
            times.extend([edge - 86_400, edge - 1, edge, edge + 1, edge + 86_399]);
        }
        times
    }

    #[test]
    fn formats_like_chrono_for_every_offset() {
        for &off in OFFSETS {
            let offset = FixedOffset::east_opt(off).expect("valid offset");
            for &secs in &sample_times() {
                let Some(utc) = DateTime::<Utc>::from_timestamp(secs, 0) else {
                    continue;
                };
                let local = utc.with_timezone(&offset);
                if !(0..=9999).contains(&chrono::Datelike::year(&local)) {
                    continue;
                }
                let expected = local.format("%Y-%m-%dT%H:%M:%S%:z").to_string();
                assert_eq!(format_ts(secs, offset), expected, "{secs} at {off}");
                let mut buf = [0; TS_LEN];
                let fast = format_ts_into(secs, offset, &mut buf);
                assert_eq!(fast, Some(expected.as_str()), "{secs} at {off}");
            }
        }
    }

    #[test]
    fn the_fast_path_matches_the_general_one_or_defers_to_it() {
        let mut times = sample_times();
        times.extend([i64::MIN, i64::MAX, -70_000_000_000, 300_000_000_000]);
        for off in OFFSETS
            .iter()
            .copied()
            .chain([3_723, -3_723, -59, 86_399, -86_399])
        {
            let offset = FixedOffset::east_opt(off).expect("valid offset");
            for &secs in &times {
                let general = format_ts_any_year(secs, offset);
                assert_eq!(format_ts(secs, offset), general, "{secs} at {off}");
                let mut buf = [0; TS_LEN];
                if let Some(fast) = format_ts_into(secs, offset, &mut buf) {
                    assert_eq!(fast, general, "{secs} at {off}");
                }
            }
        }
    }

    #[test]
    fn years_outside_four_digits_and_offset_seconds_keep_their_rendering() {
        let utc = FixedOffset::east_opt(0).expect("valid offset");
        let mut buf = [0; TS_LEN];
        assert_eq!(format_ts_into(-62_167_219_201, utc, &mut buf), None);
        assert_eq!(format_ts(-62_167_219_201, utc), "-001-12-31T23:59:59+00:00");
        assert_eq!(
            format_ts(253_402_300_800, utc),
            "10000-01-01T00:00:00+00:00"
        );
        assert_eq!(format_ts(i64::MIN, utc), "-262143-01-01T00:00:00+00:00");
        // Seconds of an offset are dropped, not rounded as chrono's `%:z` does.
        let odd = FixedOffset::west_opt(3_599).expect("valid offset");
        assert_eq!(format_ts(0, odd), "1969-12-31T23:00:01-00:59");
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
