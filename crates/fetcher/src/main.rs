//! Entry point of `pledgesync-fetcher`: command line, configuration, telemetry and the runtime;
//! the work lives in the library ([`pledgesync_fetcher::app::run`]).

// The consumer future over the fetcher's job handler nests deeper than rustc's default limit in
// release builds (a layout query overflow).
#![recursion_limit = "256"]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pledgesync_core::shutdown::Shutdown;
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
    let settings: Settings = match pledgesync_core::settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("pledgesync-fetcher: {err}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        println!("pledgesync-fetcher: configuration is valid");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("pledgesync-fetcher: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let _telemetry =
            match pledgesync_core::telemetry::init("pledgesync-fetcher", &settings.telemetry) {
                Ok(guard) => guard,
                Err(err) => {
                    eprintln!("pledgesync-fetcher: {err}");
                    return ExitCode::FAILURE;
                }
            };
        // Install the recorder before the first metric is counted.
        let _ = pledgesync_core::telemetry::metrics_handle();
        match pledgesync_fetcher::app::run(settings, Shutdown::on_signals()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!(error = %err, "pledgesync-fetcher stopped with an error");
                eprintln!("pledgesync-fetcher: {err}");
                ExitCode::FAILURE
            }
        }
    })
}
