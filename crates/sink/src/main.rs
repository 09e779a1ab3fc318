//! Entry point of `pledgesync-sink`: command line, configuration, telemetry; the work lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pledgesync_core::shutdown::Shutdown;
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings: Settings = match pledgesync_core::settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("pledgesync-sink: {err}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        println!("pledgesync-sink: configuration is valid");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("pledgesync-sink: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let _telemetry =
            match pledgesync_core::telemetry::init("pledgesync-sink", &settings.telemetry) {
                Ok(guard) => guard,
                Err(err) => {
                    eprintln!("pledgesync-sink: {err}");
                    return ExitCode::FAILURE;
                }
            };
        match pledgesync_sink::run::run(settings, Shutdown::on_signals()).await {
            Ok(()) => {
                tracing::info!("pledgesync-sink stopped");
                ExitCode::SUCCESS
            }
            Err(err) => {
                tracing::error!(error = %err, "pledgesync-sink stopped on an error");
                ExitCode::FAILURE
            }
        }
    })
}
