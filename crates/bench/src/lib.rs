//! `pledgesync-bench`: the benchmarks of issue 7. It runs the real release binaries (scheduler,
//! fetchers, sinks, and a zoho-emulator process standing in for Zoho) over the real RabbitMQ,
//! Redis and PostgreSQL of this machine, prints one `name value unit` line per measured value,
//! and writes `docs/performance.md`.
//!
//! It must never: fail on a threshold (benchmarks report; a missed goal is shown, not raised);
//! touch anything but its own throwaway database, RabbitMQ prefix and Redis prefix; or leave a
//! process, database, queue or key behind, whether a figure succeeds, fails, panics or is
//! interrupted.
//!
//! Modules:
//! - [`figures`]: the six figures, their sizes per scale ([`figures::Plan`]) and how each is made.
//! - [`system`]: one throwaway pledgesync (emulator, scheduler, fetchers, sinks) and its teardown.
//! - [`api`]: the scheduler's HTTP API as a creator uses it; [`emulator`]: the emulator process and
//!   its console; [`listing`]: its record listing, cut to the fields the fetcher requests.
//! - [`ceiling`]: the PostgreSQL ceiling (COPY + the sink's upsert, with the sink's mapping).
//! - [`cpu`]: where a window's CPU went, by part of the system (`/proc`).
//! - [`procs`]: child processes, their peak memory, and the registry that kills them all;
//!   [`binaries`]: where the release binaries are, and building them.
//! - [`services`]: the services' URLs and the throwaway pieces made in them.
//! - [`report`]: lines, units and goals; [`doc`]: the Markdown page; [`stats`]: percentiles and
//!   ratios; [`prometheus`]: reading a `/metrics` page; [`wait`]: deadlines.
//! - [`error`]: what can stop a figure ([`error::BenchError`]).

pub mod api;
pub mod binaries;
pub mod ceiling;
pub mod cpu;
pub mod doc;
pub mod emulator;
pub mod error;
pub mod figures;
pub mod listing;
pub mod procs;
pub mod prometheus;
pub mod report;
pub mod services;
pub mod stats;
pub mod store_path;
pub mod system;
pub mod timeline;
pub mod wait;
