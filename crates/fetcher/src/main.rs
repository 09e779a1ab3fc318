//! Entry point of `pledgesync-fetcher`: command line, configuration, telemetry and the runtime;
//! the work lives in the library ([`pledgesync_fetcher::app::run`]).

// The consumer future over the fetcher's job handler nests deeper than rustc's default limit in
// release builds (a layout query overflow).
#![recursion_limit = "256"]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pledgesync_core::shutdown::Shutdown;
use pledgesync_core::{process, telemetry};
use pledgesync_fetcher::settings::Settings;

/// pledgesync fetcher: the fetch worker: it consumes SyncJobs, reads Zoho with tokens from the shared token store, and publishes RecordBatches.
///
/// Configuration: built-in defaults, then the TOML file given with --config, then environment
/// variables PLEDGESYNC__SECTION__KEY (see docs/configuration.md).
#[derive(Debug, Parser)]
#[command(name = "pledgesync-fetcher", version)]
struct Cli {
    /// A TOML configuration file (optional).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    process::run(
        "pledgesync-fetcher",
        cli.config.as_deref(),
        cli.check_config,
        |settings: Settings| async move {
            let _telemetry = telemetry::init("pledgesync-fetcher", &settings.telemetry)?;
            // Install the recorder before the first metric is counted.
            let _ = telemetry::metrics_handle();
            pledgesync_fetcher::app::run(settings, Shutdown::on_signals()).await?;
            anyhow::Ok(())
        },
    )
}
