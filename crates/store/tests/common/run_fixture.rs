//! One integration's running run, with helpers that apply batches one at a time.

use pledgesync_core::messages::SyncMode;
use pledgesync_core::{AudienceId, IntegrationId, Module, RunId};
use pledgesync_store::{ApplyCounts, ApplyOutcome, Store};

use super::{delete_batch, running_run, setup, upsert_batch, TestDb};

/// The counts of an applied batch; panics on any other outcome.
pub fn applied(outcome: ApplyOutcome) -> ApplyCounts {
    match outcome {
        ApplyOutcome::Applied(counts) => counts,
        other => panic!("expected Applied, got {other:?}"),
    }
}

/// A running full run of an integration mapped to an empty audience, in a database of its own.
pub struct Fixture {
    pub db: TestDb,
    pub integration: IntegrationId,
    pub audience: AudienceId,
    pub run: RunId,
}

pub async fn fixture() -> Fixture {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct_a").await;
    let run = running_run(&db.store, integration.id, SyncMode::Full).await;
    Fixture {
        db,
        integration: integration.id,
        audience,
        run,
    }
}

impl Fixture {
    pub fn store(&self) -> &Store {
        &self.db.store
    }

    pub async fn upsert(
        &self,
        seq: u64,
        module: Module,
        members: Vec<pledgesync_store::MemberUpsert>,
    ) -> ApplyCounts {
        let batch = upsert_batch(
            self.run,
            seq,
            self.integration,
            self.audience,
            module,
            members,
        );
        applied(self.store().apply_batch(&batch).await.expect("apply"))
    }

    pub async fn delete(&self, seq: u64, module: Module, ids: &[u64]) -> ApplyCounts {
        let batch = delete_batch(self.run, seq, self.integration, self.audience, module, ids);
        applied(
            self.store()
                .apply_batch(&batch)
                .await
                .expect("apply delete"),
        )
    }

    pub async fn member(&self, email: &str) -> pledgesync_store::Member {
        self.store()
            .get_member(self.audience, email)
            .await
            .expect("get")
            .expect("member exists")
    }
}
