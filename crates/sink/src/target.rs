//! Where a batch may go, decided from PostgreSQL alone.
//!
//! A message's ids are claims: the run must exist and belong to the integration the message
//! names, and the module must be one the integration syncs; otherwise the batch is refused
//! (dead-lettered). A batch of a run that is over, or of an integration that was deleted, is
//! discarded (acked without effect): it was valid when it was published, the creator has since
//! changed their mind, and a later run reads Zoho again. A batch of an integration whose audience
//! was unmapped mid-run stops the run (cancels it) and is discarded: the creator no longer wants
//! records in that audience, and a run left going would never complete.
//!
//! The audience written to is the run's, fixed when the run was enqueued, so remapping an
//! integration mid-run never splits one run over two audiences.

use pledgesync_core::messages::RecordBatch;
use pledgesync_core::AudienceId;
use pledgesync_store::batch_target::BatchTarget;
use pledgesync_store::{RunStatus, Store, StoreError};

/// What to do with a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Apply it to this audience.
    Apply {
        /// The run's audience.
        audience_id: AudienceId,
    },
    /// Ack it without effect; the label says why and is the `reason` of
    /// `pledgesync_batches_discarded_total`.
    Discard(&'static str),
    /// The run must not go on: cancel it, then ack the batch without effect. Today only when
    /// the creator unmapped the integration's audience mid-run; left running, the run would
    /// never complete (its remaining batches never reach the ledger) and would block every
    /// later Sync Now.
    StopRun(&'static str),
    /// It can never be applied; the text says why (for the dead letter).
    Refuse(String),
}

/// Reads the batch's run and integration (one light read, no locks) and judges the batch.
pub async fn check(store: &Store, batch: &RecordBatch) -> Result<Verdict, StoreError> {
    match store.batch_target(batch.run_id).await? {
        None => Ok(Verdict::Refuse(format!(
            "run {} does not exist (batch {} of integration {})",
            batch.run_id, batch.seq, batch.integration_id
        ))),
        Some(target) => Ok(judge(batch, &target)),
    }
}

/// The rules, in the order they are checked: contradictions first (they point at a forged or
/// broken producer whatever the run's state), then the states that make a valid batch moot.
pub fn judge(batch: &RecordBatch, target: &BatchTarget) -> Verdict {
    if target.integration_id != batch.integration_id {
        return Verdict::Refuse(format!(
            "run {} belongs to integration {}, not to integration {} named by the batch; the message is forged or corrupt",
            batch.run_id, target.integration_id, batch.integration_id
        ));
    }
    if !target.modules.contains(&batch.module) {
        return Verdict::Refuse(format!(
            "integration {} does not sync {}, yet batch {} of run {} holds {} records",
            batch.integration_id, batch.module, batch.seq, batch.run_id, batch.module
        ));
    }
    match target.run_status {
        RunStatus::Succeeded => return Verdict::Discard("run_succeeded"),
        RunStatus::Failed => return Verdict::Discard("run_failed"),
        RunStatus::Cancelled => return Verdict::Discard("run_cancelled"),
        RunStatus::Queued | RunStatus::Running => {}
    }
    if target.integration_deleted {
        // Deleting an integration cancels its run; this batch was on its way meanwhile.
        return Verdict::Discard("integration_deleted");
    }
    if target.integration_audience_id.is_none() {
        return Verdict::StopRun("no_audience");
    }
    Verdict::Apply {
        audience_id: target.run_audience_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pledgesync_core::messages::BatchKind;
    use pledgesync_core::{IntegrationId, Module, RunId};

    fn batch(integration: IntegrationId, module: Module) -> RecordBatch {
        RecordBatch {
            schema_version: RecordBatch::SCHEMA_VERSION,
            run_id: RunId::new(),
            integration_id: integration,
            module,
            seq: 3,
            kind: BatchKind::Upsert,
            records: Vec::new(),
        }
    }

    fn facts(integration: IntegrationId) -> BatchTarget {
        BatchTarget {
            run_id: RunId::new(),
            integration_id: integration,
            run_audience_id: AudienceId::new(),
            run_status: RunStatus::Running,
            integration_deleted: false,
            integration_audience_id: Some(AudienceId::new()),
            modules: vec![Module::Contacts, Module::Leads],
        }
    }

    #[test]
    fn a_running_run_applies_to_its_own_audience() {
        let integration = IntegrationId::new();
        let facts = facts(integration);
        // The integration was remapped meanwhile: the run keeps the audience it started with.
        assert_ne!(facts.integration_audience_id, Some(facts.run_audience_id));
        assert_eq!(
            judge(&batch(integration, Module::Leads), &facts),
            Verdict::Apply {
                audience_id: facts.run_audience_id
            }
        );
        let queued = BatchTarget {
            run_status: RunStatus::Queued,
            ..facts.clone()
        };
        assert!(matches!(
            judge(&batch(integration, Module::Leads), &queued),
            Verdict::Apply { .. }
        ));
    }

    #[test]
    fn contradictions_are_refused() {
        let integration = IntegrationId::new();
        let other = IntegrationId::new();
        match judge(&batch(other, Module::Contacts), &facts(integration)) {
            Verdict::Refuse(reason) => assert!(reason.contains("forged"), "{reason}"),
            verdict => panic!("{verdict:?}"),
        }
        let contacts_only = BatchTarget {
            modules: vec![Module::Contacts],
            ..facts(integration)
        };
        assert!(matches!(
            judge(&batch(integration, Module::Leads), &contacts_only),
            Verdict::Refuse(_)
        ));
        // A forged batch stays refused even when the run is over.
        let over = BatchTarget {
            run_status: RunStatus::Cancelled,
            ..facts(integration)
        };
        assert!(matches!(
            judge(&batch(other, Module::Contacts), &over),
            Verdict::Refuse(_)
        ));
    }

    #[test]
    fn moot_batches_are_discarded_with_a_reason() {
        let integration = IntegrationId::new();
        let b = batch(integration, Module::Contacts);
        let cases = [
            (RunStatus::Succeeded, false, true, "run_succeeded"),
            (RunStatus::Failed, false, true, "run_failed"),
            (RunStatus::Cancelled, false, true, "run_cancelled"),
            (RunStatus::Running, true, true, "integration_deleted"),
            (RunStatus::Cancelled, false, false, "run_cancelled"),
        ];
        for (status, deleted, mapped, reason) in cases {
            let f = BatchTarget {
                run_status: status,
                integration_deleted: deleted,
                integration_audience_id: mapped.then(AudienceId::new),
                ..facts(integration)
            };
            assert_eq!(judge(&b, &f), Verdict::Discard(reason));
        }
        let unmapped = BatchTarget {
            integration_audience_id: None,
            ..facts(integration)
        };
        assert_eq!(judge(&b, &unmapped), Verdict::StopRun("no_audience"));
    }
}
