//! Entry point of `pledgesync-sink`: command line, configuration, telemetry; the work lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pledgesync_core::shutdown::Shutdown;
use pledgesync_core::{process, telemetry};
use pledgesync_sink::settings::Settings;

/// pledgesync sink: the sink worker: it consumes RecordBatches and applies them to PledgeBox audiences exactly once.
///
/// Configuration: built-in defaults, then the TOML file given with --config, then environment
/// variables PLEDGESYNC__SECTION__KEY (see docs/configuration.md).
#[derive(Debug, Parser)]
#[command(name = "pledgesync-sink", version)]
struct Cli {
    /// A TOML configuration file (optional).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

/// jemalloc rather than the system allocator: a sink allocates and frees several small values per
/// record, and glibc's malloc took about a seventh of its CPU doing so (the e2e benchmark, see
/// docs/performance.md); peak memory stays as it was. The fetcher, which copies records whole,
/// gained nothing from it and keeps the system allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    process::run(
        "pledgesync-sink",
        cli.config.as_deref(),
        cli.check_config,
        |settings: Settings| async move {
            let _telemetry = telemetry::init("pledgesync-sink", &settings.telemetry)?;
            pledgesync_sink::run::run(settings, Shutdown::on_signals()).await?;
            tracing::info!("pledgesync-sink stopped");
            anyhow::Ok(())
        },
    )
}
