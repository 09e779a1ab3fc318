//! A full run's deletion sweep: members the integration brought that the run did not see are
//! confirmed gone with Zoho's deleted-records API before they are removed.

use std::collections::HashSet;
use std::ops::ControlFlow;

use pledgesync_core::messages::BatchKind;
use pledgesync_core::record::RawRecord;
use pledgesync_zoho::crm::record_id;

use super::{Flow, Pass, PassEnd};
use crate::backpressure::{wait_for_room, Room};
use crate::checkpoint::{Stage, SweepWindow};
use crate::error::FetchError;
use crate::ports::{Ports, UnseenSource};

impl<P: Ports> Pass<'_, P> {
    /// A full run's deletion sweep of one module: members this integration brought that the
    /// run did not see are removed only if Zoho lists them as deleted — paging can miss a
    /// record that moved mid-run, so absence alone is no proof.
    pub(super) async fn sweep(
        &mut self,
        index: usize,
        window: Option<SweepWindow>,
    ) -> Result<Flow, FetchError> {
        if !self.drained {
            self.unconfirmed.confirm_all().await?;
            match wait_for_room(
                self.ports,
                self.run,
                self.checkpoint.next_seq,
                1,
                self.budget.deadline(),
                self.shutdown,
            )
            .await?
            {
                Room::Free { .. } => self.drained = true,
                Room::SliceOver | Room::Shutdown => return Ok(ControlFlow::Break(PassEnd::HandOn)),
                Room::Stopped => return Ok(ControlFlow::Break(PassEnd::Lost("the run stopped"))),
            }
        }
        let module = self.module(index);
        let after = self.checkpoint.plan.after_sweep(index);
        let unseen = self
            .ports
            .unseen_sources(self.integration, self.run, module)
            .await?;
        if unseen.is_empty() {
            return self.save_stage(after).await;
        }
        let window = match window {
            Some(window) => window,
            None => {
                let window = SweepWindow {
                    since: sweep_since(&unseen, self.config.overlap),
                    position: None,
                };
                tracing::info!(%module, unseen = unseen.len(), since = ?window.since, "confirming unseen members with Zoho's deleted records");
                let flow = self
                    .save_stage(Stage::Sweep {
                        module: index,
                        window: Some(window.clone()),
                    })
                    .await?;
                if flow.is_break() {
                    return Ok(flow);
                }
                window
            }
        };
        let unseen: HashSet<String> = unseen.into_iter().map(|u| u.zoho_id).collect();
        let stream = self
            .ports
            .deleted(self.access, module, window.since, window.position.clone());
        let at = |position| Stage::Sweep {
            module: index,
            window: Some(SweepWindow {
                since: window.since,
                position: Some(position),
            }),
        };
        let keep = |records| {
            let confirmed = confirmed_gone(records, &unseen);
            if !confirmed.is_empty() {
                tracing::info!(%module, confirmed = confirmed.len(), "Zoho confirms unseen records deleted");
            }
            confirmed
        };
        self.publish_all(stream, module, BatchKind::Delete, after, at, keep)
            .await
    }
}

/// Where the deleted records that can explain `unseen` start: each record was deleted after its
/// newest applied version, so the oldest of those times (less the overlap) is early enough.
fn sweep_since(
    unseen: &[UnseenSource],
    overlap: chrono::Duration,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let mut oldest = None;
    for source in unseen {
        let at = source.modified_at?;
        oldest = Some(oldest.map_or(at, |o: chrono::DateTime<chrono::Utc>| o.min(at)));
    }
    oldest.map(|t| t - overlap)
}

/// The deleted-record entries whose id is one of the unseen sources.
fn confirmed_gone(entries: Vec<RawRecord>, unseen: &HashSet<String>) -> Vec<RawRecord> {
    entries
        .into_iter()
        .filter(|entry| record_id(entry).is_some_and(|id| unseen.contains(&id)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        s.parse().expect("timestamp")
    }

    #[test]
    fn the_sweep_window_starts_before_the_oldest_unseen_version() {
        let unseen = vec![
            UnseenSource {
                zoho_id: "1".into(),
                modified_at: Some(at("2026-01-02T00:00:00Z")),
            },
            UnseenSource {
                zoho_id: "2".into(),
                modified_at: Some(at("2026-01-01T00:00:00Z")),
            },
        ];
        assert_eq!(
            sweep_since(&unseen, chrono::Duration::seconds(60)),
            Some(at("2025-12-31T23:59:00Z"))
        );
        let mut without_time = unseen;
        without_time.push(UnseenSource {
            zoho_id: "3".into(),
            modified_at: None,
        });
        assert_eq!(
            sweep_since(&without_time, chrono::Duration::seconds(60)),
            None
        );
    }

    #[test]
    fn only_unseen_ids_are_confirmed() {
        let entry = |id: &str| {
            let mut map = serde_json::Map::new();
            map.insert("id".into(), serde_json::Value::String(id.into()));
            map.insert("type".into(), serde_json::Value::String("recycle".into()));
            RawRecord::from_map(&map)
        };
        let unseen: HashSet<String> = ["2".to_owned()].into();
        let no_id = RawRecord::from_map(&serde_json::Map::new());
        let confirmed = confirmed_gone(vec![entry("1"), entry("2"), no_id], &unseen);
        assert_eq!(confirmed, vec![entry("2")]);
    }
}
