//! `pledgesync-fetcher`: the fetch worker. It consumes SyncJobs, reads Zoho with tokens from the
//! shared token store, and publishes each page as a RecordBatch for the sinks.
//!
//! A job works one bounded slice of a run: it checks the job against the run row, marks the run
//! running, plans the run and records Zoho's record count on its first slice, then pages every
//! selected module (all records on a full run; changes and deletions since the cursors on an
//! incremental one), publishing each page with a confirm and then committing the checkpoint. At
//! most K batches of a run wait for the sink at once. When the slice is used up it hands the run
//! on as a continuation job; at the end a full run sweeps members whose records Zoho confirms
//! deleted, and the run's batch total is recorded so the sink can complete it.
//!
//! The fetcher must never transform records (the sink maps them), never trust an id in a message
//! beyond what the run row says, never hold a delivery past its slice, and never log a secret.
//!
//! Modules:
//! - [`settings`]: the binary's one typed configuration struct, validated at start.
//! - [`fields`]: the Zoho fields requested per module.
//! - [`checkpoint`]: the run's plan, stage and next sequence number, as committed.
//! - [`budget`]: a job's slice of pages and time.
//! - [`backpressure`]: waiting while K batches of a run are in flight.
//! - [`ports`]: what the job logic needs from PostgreSQL, RabbitMQ and Zoho, as one trait.
//! - [`pass`]: one slice of a run, stage by stage.
//! - [`confirms`]: the publishes a slice still waits to have confirmed.
//! - [`job`]: one SyncJob delivery, from the run row to the broker's outcome.
//! - [`live`]: [`ports::Ports`] over the store, the broker and the Zoho client.
//! - [`app`]: the process: connections, probes, the consumer and graceful shutdown.
//! - [`error`]: failures, classified retryable or permanent, with messages for creators.
//! - [`telemetry`]: the fetcher's metrics.

pub mod app;
pub mod backpressure;
pub mod budget;
pub mod checkpoint;
pub mod confirms;
pub mod error;
pub mod fields;
pub mod job;
pub mod live;
pub mod pass;
pub mod ports;
pub mod settings;
pub mod telemetry;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod scenarios;

pub use error::FetchError;
pub use job::{Fetcher, WorkConfig};
