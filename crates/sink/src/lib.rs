//! `pledgesync-sink`: the sink worker: it consumes RecordBatches and applies them to PledgeBox
//! audiences exactly once.
//!
//! A batch is checked against PostgreSQL (its run, its integration, the run's audience), its Zoho
//! records are mapped into audience members (or skipped, counted by reason), and the store writes
//! members, sources, deletions and the ledger row in one transaction; only then is the delivery
//! acked. A redelivered batch finds its ledger row and is acked without effect.
//!
//! This crate must never trust a message beyond its ids (the audience comes from the run row),
//! never call Zoho, never write PostgreSQL except through `pledgesync-store`'s `apply_batch` and
//! `apply_batches` (and
//! `cancel_run` when an integration lost its audience mid-run),
//! and never take a lock every batch must wait for: several sinks apply batches of one run and
//! one audience at once.
//!
//! The library holds the logic; `main.rs` only parses the command line, loads
//! [`settings::Settings`], sets up telemetry and hands over to [`run::run`].
//!
//! Modules:
//! - [`settings`]: the binary's one typed configuration struct, validated at start.
//! - [`email`]: normalising and validating the address that keys a member.
//! - [`fields`]: a record's fields read in one pass over its JSON text.
//! - [`mapping`]: Zoho records into members (or skip reasons), deleted-record entries into deletions.
//! - [`target`]: where a batch may go, judged from its run and integration in PostgreSQL.
//! - [`apply`]: the batch handler: check, map, apply, and the broker outcome and metrics.
//! - [`commit`]: group commit: the batches in flight written together, each answered alone.
//! - [`claims`]: the rows a batch will lock, so that groups written at once keep apart.
//! - [`run`]: start-up, probes, the consumer, graceful shutdown.

pub mod apply;
pub mod claims;
pub mod commit;
pub mod email;
pub mod fields;
pub mod mapping;
pub mod run;
pub mod settings;
pub mod target;
