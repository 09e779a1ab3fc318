//! Output lines (`name value unit`), the goals they are held against, and the recorder a figure
//! writes into.
//!
//! A line is printed on stdout the moment it is measured, so a figure that fails half-way still
//! shows what it got. Progress and errors go to stderr; stdout holds only figure lines and
//! `#` comments.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// The unit of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    /// Records per second.
    #[serde(rename = "records/s")]
    RecordsPerSecond,
    /// A dimensionless ratio: the machine's speed cancels out.
    #[serde(rename = "ratio")]
    Ratio,
    /// Mebibytes.
    #[serde(rename = "MiB")]
    Mebibytes,
    /// Seconds.
    #[serde(rename = "s")]
    Seconds,
    /// Microseconds.
    #[serde(rename = "us")]
    Microseconds,
    /// A count of things.
    #[serde(rename = "count")]
    Count,
}

impl Unit {
    /// How it is spelled in a line.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::RecordsPerSecond => "records/s",
            Unit::Ratio => "ratio",
            Unit::Mebibytes => "MiB",
            Unit::Seconds => "s",
            Unit::Microseconds => "us",
            Unit::Count => "count",
        }
    }

    fn decimals(self) -> usize {
        match self {
            Unit::RecordsPerSecond | Unit::Count => 0,
            Unit::Mebibytes | Unit::Microseconds => 1,
            Unit::Seconds | Unit::Ratio => 3,
        }
    }
}

/// One measured value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// E.g. `e2e_records_per_s`.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: Unit,
}

impl Line {
    /// The value as printed (fixed decimals per unit).
    pub fn value_text(&self) -> String {
        format!("{:.*}", self.unit.decimals(), self.value)
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.name,
            self.value_text(),
            self.unit.as_str()
        )
    }
}

/// What a headline figure is held against. Benchmarks report: a missed goal is shown, never an
/// error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Goal {
    /// `value ≥ x`.
    AtLeast(f64),
    /// `value ≤ x`.
    AtMost(f64),
    /// `value < x`.
    Below(f64),
}

impl Goal {
    /// Whether `value` meets it.
    pub fn met(self, value: f64) -> bool {
        match self {
            Goal::AtLeast(x) => value >= x,
            Goal::AtMost(x) => value <= x,
            Goal::Below(x) => value < x,
        }
    }
}

impl fmt::Display for Goal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Goal::AtLeast(x) => write!(f, "≥ {x:?}"),
            Goal::AtMost(x) => write!(f, "≤ {x:?}"),
            Goal::Below(x) => write!(f, "< {x:?}"),
        }
    }
}

/// The goal of a line, by name (issue 7); per-size memory lines share the flat-memory goal.
pub fn goal(name: &str) -> Option<Goal> {
    match name {
        "e2e_vs_pg_ceiling_ratio" => Some(Goal::AtLeast(0.5)),
        "time_per_record_growth_ratio" => Some(Goal::AtMost(1.0)),
        "fetch_latency_overhead_ratio" => Some(Goal::AtMost(1.1)),
        "token_refreshes_per_expiry" => Some(Goal::AtMost(1.0)),
        "fairness_p99_vs_idle_ratio" => Some(Goal::AtMost(3.0)),
        "incremental_vs_full_ratio" => Some(Goal::Below(0.05)),
        n if n.starts_with("fetcher_peak_rss_mib") || n.starts_with("sink_peak_rss_mib") => {
            Some(Goal::Below(64.0))
        }
        _ => None,
    }
}

/// Collects a figure's lines and notes, printing each line as it comes. Clones share the same
/// record, so what a figure got survives the figure's task (even a panic).
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    inner: Arc<Mutex<Recorded>>,
}

/// What a figure recorded.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    /// Its lines, in order.
    pub lines: Vec<Line>,
    /// Remarks for the doc (e.g. samples left out and why).
    pub notes: Vec<String>,
}

impl Recorder {
    /// Prints and keeps a line.
    pub fn line(&self, name: impl Into<String>, value: f64, unit: Unit) {
        let line = Line {
            name: name.into(),
            value,
            unit,
        };
        println!("{line}");
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .lines
            .push(line);
    }

    /// Like [`Recorder::line`] for a value that may not be computable (a zero denominator).
    pub fn maybe(&self, name: &str, value: Option<f64>, unit: Unit) -> Result<f64> {
        let value = value.ok_or_else(|| {
            BenchError::unexpected(name, "cannot be computed: nothing to divide by")
        })?;
        self.line(name, value, unit);
        Ok(value)
    }

    /// Keeps a note for the doc and shows it on stderr.
    pub fn note(&self, text: impl Into<String>) {
        let text = text.into();
        tracing::info!(note = %text);
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .notes
            .push(text);
    }

    /// What was recorded so far.
    pub fn recorded(&self) -> Recorded {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_print_as_name_value_unit() {
        let line = |value, unit| Line {
            name: "x".into(),
            value,
            unit,
        };
        assert_eq!(
            line(12345.678, Unit::RecordsPerSecond).to_string(),
            "x 12346 records/s"
        );
        assert_eq!(line(0.51234, Unit::Ratio).to_string(), "x 0.512 ratio");
        assert_eq!(line(41.25, Unit::Mebibytes).to_string(), "x 41.2 MiB");
        assert_eq!(line(2.0, Unit::Seconds).to_string(), "x 2.000 s");
    }

    #[test]
    fn goals_follow_the_issue() {
        assert!(goal("e2e_vs_pg_ceiling_ratio").is_some_and(|g| g.met(0.5) && !g.met(0.49)));
        assert!(goal("incremental_vs_full_ratio").is_some_and(|g| g.met(0.049) && !g.met(0.05)));
        assert!(goal("fairness_p99_vs_idle_ratio").is_some_and(|g| g.met(3.0) && !g.met(3.01)));
        assert!(goal("sink_peak_rss_mib_1000000").is_some_and(|g| g.met(63.9) && !g.met(64.0)));
        assert_eq!(goal("e2e_records_per_s"), None);
        assert_eq!(Goal::AtLeast(0.5).to_string(), "≥ 0.5");
        assert_eq!(Goal::AtMost(1.0).to_string(), "≤ 1.0");
    }

    #[test]
    fn the_recorder_keeps_lines_and_refuses_what_cannot_be_computed() {
        let recorder = Recorder::default();
        let shared = recorder.clone();
        shared.line("a", 1.0, Unit::Count);
        assert!(recorder.maybe("b", None, Unit::Ratio).is_err());
        assert_eq!(
            recorder.maybe("c", Some(2.0), Unit::Ratio).expect("value"),
            2.0
        );
        recorder.note("a note");
        let recorded = recorder.recorded();
        assert_eq!(recorded.lines.len(), 2);
        assert_eq!(recorded.notes, vec!["a note".to_owned()]);
    }
}
