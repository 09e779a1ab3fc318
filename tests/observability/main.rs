//! Operability of a whole sync: the metrics each binary serves on `/metrics` add up to what the
//! run reports, one Sync Now is one trace from the API request to every batch a sink applied, and
//! a dead-lettered batch lands after its cause is mended and it is redriven.
//!
//! `metrics` and `dead_letters` run the real binaries as processes (the e2e harness); `traces` runs the three
//! components in this process through their library entry points, because an in-memory span
//! exporter can only read spans of its own process. Each test has its own database, RabbitMQ
//! topology prefix, Redis key prefix and Zoho emulator.

// The e2e harness and its creator's steps, shared as they are; this target uses a part of them.
#[allow(dead_code)]
#[path = "../e2e/flow.rs"]
mod flow;
#[allow(dead_code)]
#[path = "../e2e/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../e2e/oracle.rs"]
mod oracle;

mod dead_letters;
mod metrics;
mod scrape;
mod traces;
