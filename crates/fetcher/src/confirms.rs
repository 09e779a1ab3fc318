//! Publishes whose confirms a slice is still waiting for.
//!
//! A slice sends each batch's publish off as a task and goes on with the next page; it waits for
//! the confirms only when `MAX_UNCONFIRMED` (8) are outstanding and before anything that must not
//! run ahead of them (a checkpoint commit, the end-of-run sweep, the run's total).

use std::collections::VecDeque;
use std::future::Future;

use tokio::task::JoinHandle;

use crate::error::FetchError;

/// Confirms awaited at once by one slice. Each batch is about 100 KB, so this bounds what a
/// fetcher holds for RabbitMQ per job as well as what a crash republishes.
const MAX_UNCONFIRMED: usize = 8;

/// The publish tasks of a slice whose confirms are not in yet. Dropping it (the slice ended
/// early, on an error or a lost run) aborts them: their batches are past the committed
/// checkpoint, so the next slice publishes them again under the same sequence numbers.
#[derive(Debug, Default)]
pub(crate) struct Unconfirmed(VecDeque<JoinHandle<Result<(), FetchError>>>);

impl Unconfirmed {
    /// Starts `publish` as a task of its own; with [`MAX_UNCONFIRMED`] outstanding, waits for the
    /// oldest before returning.
    pub(crate) async fn send(
        &mut self,
        publish: impl Future<Output = Result<(), FetchError>> + Send + 'static,
    ) -> Result<(), FetchError> {
        self.0.push_back(tokio::spawn(publish));
        while self.0.len() >= MAX_UNCONFIRMED {
            self.confirm_oldest().await?;
        }
        Ok(())
    }

    /// Waits for the oldest confirm, if any.
    async fn confirm_oldest(&mut self) -> Result<(), FetchError> {
        match self.0.pop_front() {
            None => Ok(()),
            Some(publish) => publish.await.unwrap_or_else(|join| {
                Err(FetchError::broker(
                    format!("a batch's publish task ended without a confirm ({join}); the batch will be published again"),
                    true,
                ))
            }),
        }
    }

    /// Waits for every confirm.
    pub(crate) async fn confirm_all(&mut self) -> Result<(), FetchError> {
        while !self.0.is_empty() {
            self.confirm_oldest().await?;
        }
        Ok(())
    }
}

impl Drop for Unconfirmed {
    fn drop(&mut self) {
        for publish in &self.0 {
            publish.abort();
        }
    }
}
