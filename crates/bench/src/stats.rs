//! The arithmetic of the figures: percentiles, ratios and unit conversions.
//!
//! Percentiles use the nearest-rank method: the p-th percentile is an observed sample (never an
//! interpolation between two), so a p99 over 60 runs is the slowest run, which is what a creator
//! waiting on the slowest Sync Now sees.

/// The `p`-th percentile (0 < p ≤ 100) of `samples` by nearest rank; `None` for no samples or a
/// `p` out of range. NaNs are ignored.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    // Nearest rank: ceil(p/100 × n), 1-based.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// The arithmetic mean; `None` for no samples.
pub fn mean(samples: &[f64]) -> Option<f64> {
    (!samples.is_empty()).then(|| samples.iter().sum::<f64>() / samples.len() as f64)
}

/// `numerator / denominator` when the denominator is a positive, finite number.
pub fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0 && denominator.is_finite() && numerator.is_finite())
        .then(|| numerator / denominator)
}

/// Items per second over `secs`; `None` when no time passed.
pub fn per_second(items: u64, secs: f64) -> Option<f64> {
    ratio(items as f64, secs)
}

/// Bytes as mebibytes.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Reads a `Key:   123 kB` line of `/proc/<pid>/status` and returns the value in bytes.
pub fn status_kib_field(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != key {
            return None;
        }
        let mut parts = rest.split_whitespace();
        let value: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") => Some(value * 1024),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_are_observed_samples() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), Some(50.0));
        assert_eq!(percentile(&samples, 99.0), Some(99.0));
        assert_eq!(percentile(&samples, 100.0), Some(100.0));
        assert_eq!(percentile(&samples, 1.0), Some(1.0));
        assert_eq!(percentile(&samples, 0.5), Some(1.0));
    }

    #[test]
    fn percentiles_of_small_sets_round_up() {
        // 20 runs: p99 is the slowest, p50 the 10th.
        let samples: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        assert_eq!(percentile(&samples, 99.0), Some(20.0));
        assert_eq!(percentile(&samples, 50.0), Some(10.0));
        assert_eq!(percentile(&[3.0], 50.0), Some(3.0));
        assert_eq!(percentile(&[2.0, 1.0], 50.0), Some(1.0));
        assert_eq!(percentile(&[2.0, 1.0], 51.0), Some(2.0));
    }

    #[test]
    fn percentiles_refuse_what_has_no_answer() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[f64::NAN], 50.0), None);
        assert_eq!(percentile(&[1.0], 0.0), None);
        assert_eq!(percentile(&[1.0], 100.1), None);
        assert_eq!(percentile(&[f64::NAN, 4.0, 2.0], 100.0), Some(4.0));
    }

    #[test]
    fn ratios_and_rates_need_a_positive_denominator() {
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(3.0, 0.0), None);
        assert_eq!(ratio(3.0, -1.0), None);
        assert_eq!(ratio(f64::INFINITY, 1.0), None);
        assert_eq!(per_second(1000, 2.0), Some(500.0));
        assert_eq!(per_second(1000, 0.0), None);
        assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
        assert_eq!(mean(&[]), None);
        assert_eq!(mib(3 * 1024 * 1024), 3.0);
    }

    #[test]
    fn proc_status_fields_are_read_in_bytes() {
        let status = "Name:\tpledgesync-sink\nVmPeak:\t  200000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   30720 kB\nThreads:\t5\n";
        assert_eq!(status_kib_field(status, "VmHWM"), Some(40960 * 1024));
        assert_eq!(status_kib_field(status, "VmRSS"), Some(30720 * 1024));
        assert_eq!(status_kib_field(status, "Threads"), None);
        assert_eq!(status_kib_field(status, "VmSwap"), None);
        assert_eq!(status_kib_field("VmHWM: lots kB", "VmHWM"), None);
    }
}
