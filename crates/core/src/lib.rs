//! The shared vocabulary of pledgesync.
//!
//! Every other crate speaks in these types: the ids of the things the system moves, the two message
//! contracts that cross RabbitMQ, the typed configuration sections, telemetry set-up, the small
//! probe server every binary runs, and the shutdown signal.
//!
//! The encryption of secrets at rest lives here because both the scheduler (which writes them) and
//! the fetcher (which reads them) need it.
//!
//! This crate must never do I/O against PostgreSQL, RabbitMQ, Redis or Zoho, and must never hold
//! business logic: it is depended on by everything, so it stays small and cheap to compile.
//!
//! Modules:
//! - [`crypto`]: AES-256-GCM for secrets at rest, bound to their row and column, with key ids for rotation.
//! - [`ids`]: typed ids (integration, run, audience, account, Zoho record) and the CRM modules.
//! - [`datacenter`]: Zoho's data centres and their hosts.
//! - [`messages`]: `SyncJob` and `RecordBatch`, versioned, with a decode that never panics.
//! - [`record`]: a Zoho record carried as the JSON text Zoho wrote, from client to sink.
//! - [`settings`]: the configuration sections shared by the binaries and the layered loader.
//! - [`telemetry`]: JSON logs, log levels and the optional OTLP trace exporter.
//! - [`probes`]: `/healthz`, `/readyz` and `/metrics` on a small HTTP port.
//! - [`shutdown`]: the SIGTERM/SIGINT signal turned into a cancellation token.
//! - [`process`]: how every binary starts (configuration, `--check-config`, runtime, exit codes).

pub mod crypto;
pub mod datacenter;
pub mod ids;
pub mod messages;
pub mod probes;
pub mod process;
pub mod record;
pub mod settings;
pub mod shutdown;
pub mod telemetry;

pub use datacenter::DataCenter;
pub use ids::{AccountId, AudienceId, IntegrationId, Module, RunId, ZohoRecordId};
