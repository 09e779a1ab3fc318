//! The PostgreSQL side of pledgesync: schema, embedded migrations, and every query the scheduler,
//! fetchers and sinks run. PostgreSQL is the system of record; this crate is its only door.
//!
//! It must never: hold or see a plaintext secret (callers encrypt; it stores ciphertext and a key
//! id); trust a message's word for where data goes (a batch's integration and audience are checked
//! against its run); make every batch update one shared row (run counters are sums over the
//! ledger); or remove a member that did not come from a sync.
//!
//! # Schema, and the promise each table keeps
//! - `audiences` — PledgeBox lists, unique name per account. Target of a composite foreign key
//!   `(id, account_id)`, so an integration can only feed an audience of its own account.
//! - `integrations` — a creator's Zoho connection: ciphertexts + key id (promise 10), the mapped
//!   audience, status (`active`/`needs_reauth`/`disabled`), modules and intervals, `next_sync_at`
//!   (what the periodic scheduler claims; NULL until the first run is enqueued, so a new
//!   integration never syncs before its creator's first Sync Now) and `last_full_sync_at` (weekly
//!   full runs, promise 7).
//! - `sync_runs` — one row per run: status, error, the fetcher's opaque checkpoint, batches
//!   published/total, records fetched. A partial unique index on `integration_id` where the status
//!   is queued or running keeps one active run per integration (promise 8). The audience is fixed
//!   at enqueue time. `heartbeat_at` (and the ledger's `applied_at`) tell the stale-run watchdog
//!   that a run still moves.
//! - `run_batches` — the ledger: `(run_id, seq)` primary key makes a redelivered batch a no-op
//!   (promise 1). Applied / skipped (by reason) / deleted / batches applied are sums over it, so
//!   concurrent sinks never contend on a run row. A run succeeds when the ledger holds
//!   `batches_total` rows.
//! - `audience_members` — keyed by `(audience_id, normalised email)`: a Lead converted into a
//!   Contact stays one member. `source_modified_at` guards newest-wins (promise 3); a NULL never
//!   wipes a value; `origin` marks rows a sync created, the only ones a sync may remove
//!   (promise 7); removal is soft (`removed_at`, `removed_reason`).
//! - `member_sources` — which Zoho record of which integration brings which member, the version
//!   applied, the last run that saw it (a full run's deletion candidates), and removal. A member
//!   stays while any live source has it.
//! - `sync_cursors` — per-module incremental cursors; `run_cursors` — positions a run staged,
//!   promoted (only forward) by the statement that marks the run succeeded.
//! - `outbox` — a run's first job, written in the run's transaction, published by a relay.
//!
//! # Modules
//! - [`db`]: [`Store`]: connect (pool, timeouts), migrate (advisory-locked), readiness.
//! - [`error`]: [`StoreError`], classified retryable or permanent.
//! - [`codec`]: run and integration statuses, and how enums are spelled in the database.
//! - [`audiences`], [`integrations`], [`credentials`]: the control plane's rows.
//! - [`enqueue`]: Sync Now and the periodic scheduler's claim, each with its outbox job.
//! - [`outbox`]: the relay's claim-publish-mark cycle.
//! - [`runs`]: run lifecycle, checkpoints, completion, the counters a run shows.
//! - [`stale`]: the stale-run watchdog, which fails active runs nothing moved for too long.
//! - [`apply`]: a sink's batch in one transaction; the private `plan` (what a batch may change),
//!   `sources` (source rows inside the batch) and `upsert` (the shared member upsert, and the
//!   COPY bulk path) are its parts.
//! - `group`: group commit — [`Store::apply_batches`] applies many upsert batches of one run in
//!   one transaction, as if one after another.
//! - `novelty`: whether a transaction looks its records' sources up first, or assumes they are
//!   new and lets the sources' insert prove it (an integration's first sync).
//! - [`members`]: member and source reads (keyset listing, full-run deletion candidates).
//! - [`attributes`]: a member's further fields as a sink hands them over, rendered once.
//! - [`cursors`]: incremental cursors.
//! - [`fetch_progress`]: the fetcher's guarded checkpoint, back-pressure read and versioned
//!   deletion candidates.
//! - `testing` (feature `testing`): throwaway migrated databases for other crates' tests.

pub mod apply;
pub mod attributes;
pub mod audiences;
pub mod batch_target;
pub mod codec;
pub mod credentials;
pub mod cursors;
pub mod db;
pub mod enqueue;
pub mod error;
pub mod fetch_progress;
mod group;
pub mod integrations;
pub mod members;
mod novelty;
pub mod outbox;
mod plan;
pub mod runs;
mod sources;
pub mod stale;
#[cfg(feature = "testing")]
pub mod testing;
mod upsert;

pub use apply::{ApplyBatch, ApplyCounts, ApplyOutcome, SourceDeletion};
pub use attributes::{Attributes, AttributesWriter};
pub use audiences::Audience;
pub use codec::{IntegrationStatus, RunStatus};
pub use credentials::{Ciphertext, IntegrationCredentials, StoredSecrets, ZohoCredentials};
pub use cursors::{Cursor, CursorPosition};
pub use db::Store;
pub use enqueue::{EnqueueOutcome, NewRun, OutboxMessage};
pub use error::StoreError;
pub use integrations::{Integration, NewIntegration, Schedule};
pub use members::{normalize_email, Member, MemberOrigin, MemberPage, MemberSource, MemberUpsert};
pub use outbox::{OutboxClaim, OutboxRow, OUTBOX_CHANNEL};
pub use runs::{Checkpoint, Run, RunCounters, RunStart};
pub use stale::{stale_run_error, StaleRun};
