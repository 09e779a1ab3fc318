//! How every binary starts: configuration first, then the async runtime, then its work.
//!
//! The three `main`s parse their command line and hand the rest to [`run`], so that they agree on
//! what an operator sees: exit code 2 and one line on stderr for configuration that does not load
//! or validate (nothing has started yet), `--check-config` printing that the configuration is
//! valid, and exit code 1 with the error's whole chain on stderr (and in the log) for a failure.

use std::fmt::Display;
use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use serde::de::DeserializeOwned;

use crate::settings::{self, Validate};

/// Exit code for configuration that cannot be loaded or is invalid.
pub const EXIT_BAD_CONFIG: u8 = 2;

/// Loads `S` (defaults, then `config`, then `PLEDGESYNC__…` variables) and validates it. With
/// `check_config` it only says whether the configuration is valid; otherwise it runs `work` on a
/// multi-threaded runtime until it returns. `name` prefixes what is printed.
pub fn run<S, F, Fut, E>(name: &str, config: Option<&Path>, check_config: bool, work: F) -> ExitCode
where
    S: DeserializeOwned + Validate,
    F: FnOnce(S) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let settings: S = match settings::load(config) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{name}: {err}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if check_config {
        println!("{name}: configuration is valid");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{name}: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints an `anyhow` error's chain of causes on one line.
            tracing::error!(error = format!("{err:#}"), "{name} stopped on an error");
            eprintln!("{name}: {err:#}");
            ExitCode::FAILURE
        }
    }
}
