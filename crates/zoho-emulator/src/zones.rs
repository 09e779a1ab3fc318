//! Org time zones.
//!
//! Zoho renders timestamps in the org's time zone. Without a time-zone database the emulator
//! knows a fixed table of common zones at their standard offset (no daylight saving: a sync must
//! not depend on the offset anyway, only on the instant). `UTC+05:30`-style names are accepted too.

use chrono::FixedOffset;

/// IANA names with their standard UTC offset in minutes.
const ZONES: &[(&str, i32)] = &[
    ("UTC", 0),
    ("GMT", 0),
    ("Europe/London", 0),
    ("Europe/Berlin", 60),
    ("Europe/Paris", 60),
    ("Europe/Madrid", 60),
    ("Europe/Athens", 120),
    ("Europe/Moscow", 180),
    ("Asia/Dubai", 240),
    ("Asia/Riyadh", 180),
    ("Asia/Kolkata", 330),
    ("Asia/Calcutta", 330),
    ("Asia/Kathmandu", 345),
    ("Asia/Shanghai", 480),
    ("Asia/Singapore", 480),
    ("Asia/Tokyo", 540),
    ("Australia/Adelaide", 570),
    ("Australia/Sydney", 600),
    ("Pacific/Auckland", 720),
    ("America/St_Johns", -210),
    ("America/Sao_Paulo", -180),
    ("America/New_York", -300),
    ("America/Toronto", -300),
    ("America/Chicago", -360),
    ("America/Denver", -420),
    ("America/Los_Angeles", -480),
    ("Pacific/Honolulu", -600),
];

/// The offset of a known zone name or of `UTC±HH:MM`.
pub fn offset(name: &str) -> Option<FixedOffset> {
    let minutes = match ZONES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
        Some((_, m)) => *m,
        None => parse_utc_offset(name)?,
    };
    FixedOffset::east_opt(minutes * 60)
}

/// Parses `UTC+05:30` / `UTC-08:00` into minutes.
fn parse_utc_offset(name: &str) -> Option<i32> {
    let rest = name.strip_prefix("UTC")?;
    let sign = match rest.chars().next()? {
        '+' => 1,
        '-' => -1,
        _ => return None,
    };
    let (h, m) = rest.get(1..)?.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    ((0..=14).contains(&h) && (0..60).contains(&m)).then_some(sign * (h * 60 + m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_and_explicit_offsets() {
        assert_eq!(
            offset("Asia/Kolkata").map(|o| o.local_minus_utc()),
            Some(19_800)
        );
        assert_eq!(
            offset("america/los_angeles").map(|o| o.local_minus_utc()),
            Some(-28_800)
        );
        assert_eq!(
            offset("UTC+05:45").map(|o| o.local_minus_utc()),
            Some(20_700)
        );
        assert_eq!(
            offset("UTC-03:30").map(|o| o.local_minus_utc()),
            Some(-12_600)
        );
        assert_eq!(offset("Mars/Olympus"), None);
        assert_eq!(offset("UTC+25:00"), None);
    }
}
