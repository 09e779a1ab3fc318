//! `pledgesync-bench`: runs the figures of issue 7 and writes `docs/performance.md`.
//!
//! Exit status: 0 when the harness worked, whatever the figures showed and even when a figure
//! failed (its error is printed and recorded); 101 when a figure panicked (a harness bug); 1 when
//! the page could not be written; 130 when interrupted.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use pledgesync_bench::binaries::Binaries;
use pledgesync_bench::doc::{self, FigureResult, Machine};
use pledgesync_bench::figures::{Figure, Plan, Scale};
use pledgesync_bench::procs;
use pledgesync_bench::report::Recorder;
use pledgesync_bench::services::{cleanup_leftovers, Services};
use pledgesync_core::shutdown::Shutdown;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ScaleArg {
    /// Every figure at a tenth of its size (under five minutes).
    Quick,
    /// The sizes of issue 7 (up to thirty minutes).
    Full,
}

/// Benchmarks of pledgesync: the real binaries over real RabbitMQ, Redis and PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "pledgesync-bench", version)]
struct Args {
    /// How big the figures are.
    #[arg(long, value_enum, default_value = "quick")]
    scale: ScaleArg,
    /// Run only this figure (name or number: e2e, scaling, latency, tokens, fairness,
    /// incremental); may be repeated.
    #[arg(long, value_parser = parse_figure)]
    only: Vec<Figure>,
    /// Where to write the page (default: docs/performance.md of this workspace).
    #[arg(long)]
    doc: Option<PathBuf>,
    /// Do not write the page.
    #[arg(long)]
    no_doc: bool,
    /// Do not run `cargo build --release` of the binaries first.
    #[arg(long)]
    no_build: bool,
    /// Run the scheduler, fetchers and sinks with this setting instead of its default, e.g.
    /// `--set fetch.max_outstanding_batches=40`; may be repeated. The harness starts its
    /// processes without the caller's `PLEDGESYNC__*` variables (a shell must not change a figure
    /// unseen), so this is the way to try one. Figures measured so are not written to the page.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
}

/// `section.key=value` as the environment variable the binaries read (`PLEDGESYNC__SECTION__KEY`).
fn parse_setting(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE, e.g. sink.prefetch=64"))?;
    let key = key.trim();
    let well_formed = key.contains('.')
        && key.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    if !well_formed {
        return Err(format!(
            "{key:?} is not a setting name: write it as in docs/configuration.md, e.g. sink.prefetch"
        ));
    }
    Ok((
        format!(
            "PLEDGESYNC__{}",
            key.to_ascii_uppercase().replace('.', "__")
        ),
        value.to_owned(),
    ))
}

/// Settings whose values are credentials or carry them (URLs may hold a password).
fn is_secret_setting(variable: &str) -> bool {
    ["URL", "KEY", "TOKEN", "SECRET", "PASSWORD"]
        .iter()
        .any(|word| variable.contains(word))
}

fn parse_figure(text: &str) -> Result<Figure, String> {
    Figure::parse(text).ok_or_else(|| {
        let names: Vec<&str> = Figure::ALL.iter().map(|f| f.name()).collect();
        format!(
            "unknown figure {text:?}; one of {} or 1 to 6",
            names.join(", ")
        )
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // A panic anywhere must not leave a child running.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        procs::kill_all();
        default_hook(info);
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pledgesync-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(args));
    procs::kill_all();
    code
}

async fn run(args: Args) -> ExitCode {
    let shutdown = Shutdown::on_signals();
    let scale = match args.scale {
        ScaleArg::Quick => Scale::Quick,
        ScaleArg::Full => Scale::Full,
    };
    let plan = Plan::new(scale);
    let figures: Vec<Figure> = if args.only.is_empty() {
        Figure::ALL.to_vec()
    } else {
        Figure::ALL
            .into_iter()
            .filter(|f| args.only.contains(f))
            .collect()
    };
    let services = Services::from_env();
    let machine = Machine::detect();
    println!(
        "# pledgesync-bench --scale {} on {} CPUs, {:.1} GiB, Linux {}",
        scale.name(),
        machine.nproc,
        machine.memory_gib,
        machine.kernel
    );

    // A failure here is the system's (it does not build), not the harness's: every figure
    // reports it.
    let setup_error = prepare(args.no_build).await.err();
    let binaries = Binaries::beside_harness().map(|b| b.with_settings(args.settings.clone()));
    for (name, value) in &args.settings {
        let shown = if is_secret_setting(name) {
            "***"
        } else {
            value
        };
        println!("# setting {name}={shown} (not the default: the page is not written)");
    }

    let mut results = Vec::new();
    let (mut panicked, mut interrupted) = (false, false);
    for figure in figures {
        println!(
            "# figure {} ({}): {}",
            figure.number(),
            figure.name(),
            figure.title()
        );
        let recorder = Recorder::default();
        let started = Instant::now();
        let date = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let load_before = doc::load_average();
        let outcome: Result<(), String> = match (&setup_error, &binaries) {
            (Some(error), _) => Err(error.clone()),
            (None, Err(error)) => Err(error.to_string()),
            (None, Ok(binaries)) => {
                let (plan, binaries, out) = (plan.clone(), binaries.clone(), recorder.clone());
                let mut task =
                    tokio::spawn(async move { figure.run(&plan, &binaries, &out).await });
                tokio::select! {
                    joined = &mut task => match joined {
                        Ok(result) => result.map_err(|e| e.to_string()),
                        Err(join) => {
                            panicked = true;
                            Err(format!("the harness panicked: {join}"))
                        }
                    },
                    () = shutdown.cancelled() => {
                        task.abort();
                        let _ = task.await;
                        interrupted = true;
                        Err("interrupted".to_owned())
                    }
                }
            }
        };
        // Whatever the figure left (it failed, panicked or was interrupted) goes now.
        procs::kill_all();
        let left = cleanup_leftovers(&services).await;
        if left > 0 {
            println!("# clean-up: {left} throwaway database(s) or prefix(es) could not be removed yet (see stderr)");
        }
        if let Err(error) = &outcome {
            tracing::error!(figure = figure.name(), %error, "figure failed");
            println!(
                "# figure {} failed: {}",
                figure.name(),
                error.lines().next().unwrap_or_default()
            );
        }
        tracing::info!(
            figure = figure.name(),
            seconds = started.elapsed().as_secs(),
            "figure done"
        );
        let recorded = recorder.recorded();
        results.push(FigureResult {
            figure: figure.name().to_owned(),
            scale: scale.name().to_owned(),
            date,
            machine: machine.clone(),
            lines: recorded.lines,
            error: outcome.err(),
            notes: recorded.notes,
            method: figure.method(&plan),
            load: load_before.zip(doc::load_average()),
        });
        if interrupted {
            break;
        }
    }

    if interrupted {
        eprintln!("pledgesync-bench: interrupted; everything it started is stopped and removed");
        return ExitCode::from(130);
    }
    if !args.no_doc && args.settings.is_empty() {
        let path = args.doc.unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/performance.md")
        });
        if let Err(error) = doc::write(&path, results) {
            eprintln!("pledgesync-bench: {error}");
            return ExitCode::FAILURE;
        }
        tracing::info!(path = %path.display(), "page written");
    }
    if panicked {
        eprintln!("pledgesync-bench: a figure panicked; that is a bug in the harness");
        return ExitCode::from(101);
    }
    ExitCode::SUCCESS
}

/// Builds the release binaries (unless told not to) and checks they are there.
async fn prepare(no_build: bool) -> Result<(), String> {
    if !no_build {
        tokio::task::spawn_blocking(Binaries::build_release)
            .await
            .map_err(|e| format!("the build task failed: {e}"))?
            .map_err(|e| e.to_string())?;
    }
    let binaries = Binaries::beside_harness().map_err(|e| e.to_string())?;
    let missing = binaries.missing();
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "missing binaries: {}; run `cargo build --release --bins`",
            names.join(", ")
        ));
    }
    if !binaries.is_release() {
        tracing::warn!(
            "the binaries are not a release build: the figures will be slow and say little"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_setting;

    #[test]
    fn a_setting_becomes_the_variable_the_binaries_read() {
        assert_eq!(
            parse_setting("fetch.max_outstanding_batches=40"),
            Ok((
                "PLEDGESYNC__FETCH__MAX_OUTSTANDING_BATCHES".to_owned(),
                "40".to_owned()
            ))
        );
        assert_eq!(
            parse_setting("zoho_client.org_concurrency=a=b").map(|(_, v)| v),
            Ok("a=b".to_owned())
        );
    }

    #[test]
    fn credentials_given_as_settings_are_not_printed() {
        assert!(super::is_secret_setting("PLEDGESYNC__POSTGRES__URL"));
        assert!(super::is_secret_setting(
            "PLEDGESYNC__SECURITY__ENCRYPTION_KEY"
        ));
        assert!(!super::is_secret_setting("PLEDGESYNC__SINK__PREFETCH"));
    }

    #[test]
    fn a_malformed_setting_says_how_to_write_it() {
        for bad in [
            "sink.prefetch",
            "prefetch=4",
            "Sink.Prefetch=4",
            "sink..prefetch=4",
            "=4",
        ] {
            let error = parse_setting(bad).expect_err(bad);
            assert!(error.contains("e.g."), "{bad}: {error}");
        }
    }
}
