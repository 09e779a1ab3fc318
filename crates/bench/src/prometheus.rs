//! Reading a value out of a worker's `/metrics` page (Prometheus text format).
//!
//! Only what the figures need: the sum of a metric's samples whose labels include a given set.
//! Comments, other metrics and malformed lines are skipped, never an error: a page that lacks the
//! metric (nothing counted yet) reads as `None`.

/// Sums the samples of `name` whose labels include every pair of `labels`; `None` when no sample
/// matches.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total: Option<f64> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(sample) = parse_line(line) else {
            continue;
        };
        if sample.name != name {
            continue;
        }
        let matches = labels
            .iter()
            .all(|(key, value)| sample.labels.iter().any(|(k, v)| k == key && v == value));
        if matches {
            *total.get_or_insert(0.0) += sample.value;
        }
    }
    total
}

/// One sample line.
#[derive(Debug, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn parse_line(line: &str) -> Option<Sample> {
    let (head, rest) = match line.find('{') {
        Some(open) => {
            let close = line[open..].find('}')? + open;
            let labels = parse_labels(&line[open + 1..close])?;
            ((line[..open].to_owned(), labels), &line[close + 1..])
        }
        None => {
            let (name, rest) = line.split_once(char::is_whitespace)?;
            ((name.to_owned(), Vec::new()), rest)
        }
    };
    // A timestamp may follow the value.
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Sample {
        name: head.0,
        labels: head.1,
        value,
    })
}

/// `a="x",b="y \"quoted\""` into pairs; `None` when malformed.
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.push((key.trim().to_owned(), value));
        rest = after[end + 1..].trim_start().trim_start_matches(',').trim();
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP pledgesync_fetcher_batches_published_total batches
# TYPE pledgesync_fetcher_batches_published_total counter
pledgesync_fetcher_batches_published_total{module="Contacts",kind="upsert"} 100
pledgesync_fetcher_batches_published_total{module="Leads",kind="upsert"} 7
pledgesync_fetcher_batches_published_total{module="Contacts",kind="delete"} 2
pledgesync_fetcher_run_duration_seconds_sum 5.25
pledgesync_fetcher_run_duration_seconds_count 1 1700000000000
odd_metric{label="with \"quotes\", and a comma"} 3
broken_metric{label="unterminated} 9
"#;

    #[test]
    fn sums_the_samples_that_carry_the_labels() {
        let name = "pledgesync_fetcher_batches_published_total";
        assert_eq!(
            sum(PAGE, name, &[("module", "Contacts"), ("kind", "upsert")]),
            Some(100.0)
        );
        assert_eq!(sum(PAGE, name, &[("kind", "upsert")]), Some(107.0));
        assert_eq!(sum(PAGE, name, &[]), Some(109.0));
        assert_eq!(sum(PAGE, name, &[("module", "Deals")]), None);
    }

    #[test]
    fn reads_unlabelled_samples_and_skips_timestamps() {
        assert_eq!(
            sum(PAGE, "pledgesync_fetcher_run_duration_seconds_sum", &[]),
            Some(5.25)
        );
        assert_eq!(
            sum(PAGE, "pledgesync_fetcher_run_duration_seconds_count", &[]),
            Some(1.0)
        );
        assert_eq!(
            sum(PAGE, "pledgesync_fetcher_run_duration_seconds", &[]),
            None
        );
    }

    #[test]
    fn quoted_labels_and_broken_lines() {
        assert_eq!(
            sum(
                PAGE,
                "odd_metric",
                &[("label", "with \"quotes\", and a comma")]
            ),
            Some(3.0)
        );
        assert_eq!(sum(PAGE, "broken_metric", &[]), None);
        assert_eq!(sum("", "anything", &[]), None);
    }
}
