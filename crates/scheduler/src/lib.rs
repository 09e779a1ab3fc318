//! `pledgesync-scheduler`: the control plane: the HTTP API (integrations, Map Audience, Sync Now, runs), the outbox relay and the periodic sync loop.
//!
//! The library holds the logic; `main.rs` only parses the command line, loads [`settings::Settings`]
//! and hands over.
//!
//! Modules:
//! - [`settings`]: the binary's one typed configuration struct, validated at start.

pub mod settings;
