//! `pledgesync-fetcher`: the fetch worker: it consumes SyncJobs, reads Zoho with tokens from the shared token store, and publishes RecordBatches.
//!
//! The library holds the logic; `main.rs` only parses the command line, loads [`settings::Settings`]
//! and hands over.
//!
//! Modules:
//! - [`settings`]: the binary's one typed configuration struct, validated at start.

pub mod settings;
