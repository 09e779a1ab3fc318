//! Entry point of `pledgesync-scheduler`: command line, configuration, telemetry; the work lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use pledgesync_broker::WorkQueue;
use pledgesync_core::process;
use pledgesync_core::shutdown::Shutdown;
use pledgesync_core::RunId;
use pledgesync_scheduler::settings::Settings;
use pledgesync_scheduler::{commands, Application};

/// pledgesync scheduler: the control plane: the HTTP API (integrations, Map Audience, Sync Now, runs), the outbox relay and the periodic sync loop.
///
/// Configuration: built-in defaults, then the TOML file given with --config, then environment
/// variables PLEDGESYNC__SECTION__KEY (see docs/configuration.md).
#[derive(Debug, Parser)]
#[command(name = "pledgesync-scheduler", version)]
struct Cli {
    /// A TOML configuration file (optional).
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long, global = true)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API, relay the outbox and schedule periodic syncs (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Look at dead letters, or send them back to work.
    #[command(subcommand)]
    DeadLetters(DeadLetters),
    /// Re-encrypt stored Zoho secrets under the current key (security.encryption_key_id), so a
    /// retired key can be removed; prints a JSON report and exits 1 if some rows stay unreadable.
    ReencryptSecrets {
        /// Only count the rows that would be re-encrypted.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DeadLetters {
    /// Print dead letters as JSON (they stay in place).
    List {
        /// Only this queue's dead letters.
        #[arg(long, value_enum)]
        queue: Option<Queue>,
        /// At most this many per queue.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Move dead letters back to their work queue.
    Redrive {
        /// Only this queue's dead letters.
        #[arg(long, value_enum)]
        queue: Option<Queue>,
        /// Only the letters of this run.
        #[arg(long, value_name = "RUN_ID")]
        run: Option<RunId>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Queue {
    Jobs,
    Batches,
}

fn queues(only: Option<Queue>) -> Vec<WorkQueue> {
    match only {
        Some(Queue::Jobs) => vec![WorkQueue::Jobs],
        Some(Queue::Batches) => vec![WorkQueue::Batches],
        None => WorkQueue::ALL.to_vec(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    process::run(
        "pledgesync-scheduler",
        cli.config.as_deref(),
        cli.check_config,
        |settings: Settings| run(command, settings),
    )
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    let _telemetry = pledgesync_core::telemetry::init("pledgesync-scheduler", &settings.telemetry)?;
    match command {
        Command::Serve => {
            let shutdown = Shutdown::on_signals();
            let app = Application::build(settings)
                .await
                .context("the scheduler could not start")?;
            app.run_until_stopped(shutdown)
                .await
                .context("the API server failed")?;
        }
        Command::Migrate => {
            commands::migrate(&settings).await?;
            println!("pledgesync-scheduler: migrations applied");
        }
        Command::DeadLetters(DeadLetters::List { queue, limit }) => {
            let listed = commands::list_dead_letters(&settings, &queues(queue), limit).await?;
            let json: serde_json::Map<String, serde_json::Value> = listed
                .into_iter()
                .map(|(queue, letters)| {
                    Ok((queue.as_str().to_owned(), serde_json::to_value(letters)?))
                })
                .collect::<Result<_, serde_json::Error>>()?;
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        Command::DeadLetters(DeadLetters::Redrive { queue, run }) => {
            for (queue, moved) in
                commands::redrive_dead_letters(&settings, &queues(queue), run).await?
            {
                println!("{queue}: {moved} dead letters moved back to work");
            }
        }
        Command::ReencryptSecrets { dry_run } => {
            let report = commands::reencrypt_secrets(&settings, dry_run).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.unreadable.is_empty() {
                anyhow::bail!(
                    "{} integrations could not be decrypted with the configured keys and keep their old key; \
                     add the keys they name to security.retired_keys and run again, or have their creators \
                     reconnect (a new grant code)",
                    report.unreadable.len()
                );
            }
        }
    }
    Ok(())
}
