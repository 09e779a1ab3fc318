//! A job's slice: how many pages and how much time one delivery may take before the run is handed
//! on as a continuation job.
//!
//! RabbitMQ closes a channel whose delivery stays unacknowledged past its consumer timeout (30
//! minutes by default), and a long run must not starve short ones in the jobs queue, so no job
//! works a run for longer than its slice.

use std::time::Duration;

use tokio::time::Instant;

/// What is left of one job's slice.
#[derive(Clone, Debug)]
pub struct Budget {
    pages_left: u32,
    deadline: Instant,
}

impl Budget {
    /// A slice of `pages` pages or `time`, whichever runs out first, starting now.
    pub fn new(pages: u32, time: Duration) -> Self {
        Self {
            pages_left: pages,
            deadline: Instant::now() + time,
        }
    }

    /// Counts one page (or sweep step) worked.
    pub fn spend_page(&mut self) {
        self.pages_left = self.pages_left.saturating_sub(1);
    }

    /// When the slice's time runs out.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the slice is used up: the job should hand the run on.
    pub fn exhausted(&self) -> bool {
        self.pages_left == 0 || Instant::now() >= self.deadline
    }

    /// Pages still allowed.
    pub fn pages_left(&self) -> u32 {
        self.pages_left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_run_out() {
        let mut budget = Budget::new(2, Duration::from_secs(60));
        assert!(!budget.exhausted());
        budget.spend_page();
        assert!(!budget.exhausted());
        budget.spend_page();
        assert!(budget.exhausted());
        budget.spend_page();
        assert_eq!(budget.pages_left(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn time_runs_out() {
        let budget = Budget::new(100, Duration::from_secs(5));
        assert!(!budget.exhausted());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(budget.exhausted());
    }
}
