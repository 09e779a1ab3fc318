//! `pledgesync-scheduler`: the control plane of pledgesync.
//!
//! It serves the HTTP API the PledgeBox app calls (audiences, integrations with their Zoho code
//! exchange, Map Audience, Sync Now, runs, dead letters), relays the jobs that runs are created
//! with from the PostgreSQL outbox to RabbitMQ, enqueues periodic syncs when they are due (never
//! before an integration's first Sync Now), and fails runs that nothing moved for too long.
//! Several replicas may run side by side: the outbox and the due-integration claim both use
//! `SKIP LOCKED`, so no job is published twice in normal operation and no due sync is enqueued twice.
//!
//! It must never store, log, trace or answer with a plaintext secret (client secrets and refresh
//! tokens are encrypted by [`crypto`] before they reach the store, and API views have no field
//! that could carry one), never publish a job that is not committed beside its run (jobs go
//! through the outbox only), and never answer a malformed request with a 5xx.
//!
//! Modules:
//! - [`settings`]: the binary's typed configuration, validated at start.
//! - [`crypto`]: AES-256-GCM for secrets at rest, with key ids for rotation.
//! - [`api`]: routes, middleware (auth, limits, metrics, traces), handlers and their error shape.
//! - [`state`]: what handlers and loops share, including the lazily dialed broker.
//! - [`relay`]: the outbox relay loop.
//! - [`periodic`]: the loop that enqueues due syncs and fails stale runs.
//! - [`app`]: [`app::Application`], which builds everything and runs it until shutdown.
//! - [`rekey`]: re-encryption of stored secrets under the current key (key rotation).
//! - [`commands`]: the `migrate`, `dead-letters` and `reencrypt-secrets` subcommands.

pub mod api;
pub mod app;
pub mod commands;
/// Secrets at rest; the implementation is shared with the fetcher through core.
pub use pledgesync_core::crypto;
pub mod periodic;
pub mod rekey;
pub mod relay;
pub mod settings;
pub mod state;

pub use app::{Application, StartupError};
