//! `pledgesync-sink`: the sink worker: it consumes RecordBatches and applies them to PledgeBox audiences exactly once.
//!
//! The library holds the logic; `main.rs` only parses the command line, loads [`settings::Settings`]
//! and hands over.
//!
//! Modules:
//! - [`settings`]: the binary's one typed configuration struct, validated at start.

pub mod settings;
