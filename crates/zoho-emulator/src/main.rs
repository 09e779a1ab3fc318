//! `zoho-emulator`: runs the emulator until SIGTERM or Ctrl-C.
//!
//! Prints exactly one line to stdout, `zoho-emulator listening on http://ADDR`, which scripts
//! parse; logs go to stderr. Every flag also reads a `ZOHO_EMULATOR_*` variable.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use zoho_emulator::EmulatorConfig;

/// Log line format on stderr.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// A local Zoho accounts server and CRM API for development and tests. Never for production.
#[derive(Debug, Parser)]
#[command(name = "zoho-emulator", version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "ZOHO_EMULATOR_LISTEN", default_value = "127.0.0.1:8089")]
    listen: SocketAddr,
    /// Contacts in the default org.
    #[arg(long, env = "ZOHO_EMULATOR_CONTACTS", default_value_t = 1000)]
    contacts: usize,
    /// Leads in the default org.
    #[arg(long, env = "ZOHO_EMULATOR_LEADS", default_value_t = 500)]
    leads: usize,
    /// Seed of the default org's data.
    #[arg(long, env = "ZOHO_EMULATOR_SEED", default_value_t = 42)]
    seed: u64,
    /// Delay added to every accounts and CRM answer, in milliseconds.
    #[arg(long, env = "ZOHO_EMULATOR_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    /// Access-token lifetime in seconds.
    #[arg(long, env = "ZOHO_EMULATOR_TOKEN_TTL_SECS", default_value_t = 3600)]
    token_ttl_secs: u64,
    /// DC of the default org and of the unprefixed paths (US EU IN AU JP CN CA SA).
    #[arg(long, env = "ZOHO_EMULATOR_DATA_CENTER", default_value = "US")]
    data_center: String,
    /// IANA time zone of the default org (timestamps carry its offset).
    #[arg(long, env = "ZOHO_EMULATOR_TIME_ZONE", default_value = "Asia/Kolkata")]
    time_zone: String,
    /// Edition of the default org.
    #[arg(long, env = "ZOHO_EMULATOR_EDITION", default_value = "enterprise")]
    edition: String,
    /// Access tokens per refresh token per window before `Access Denied`.
    #[arg(long, env = "ZOHO_EMULATOR_REFRESH_THROTTLE_MAX", default_value_t = 10)]
    refresh_throttle_max: u32,
    /// Refresh throttle window in seconds.
    #[arg(
        long,
        env = "ZOHO_EMULATOR_REFRESH_THROTTLE_WINDOW_SECS",
        default_value_t = 600
    )]
    refresh_throttle_window_secs: u64,
    /// HTTP status of the throttle answer (200 or 400).
    #[arg(long, env = "ZOHO_EMULATOR_THROTTLE_STATUS", default_value_t = 200)]
    throttle_status: u16,
    /// Live access tokens per refresh token.
    #[arg(
        long,
        env = "ZOHO_EMULATOR_MAX_ACTIVE_TOKENS_PER_REFRESH_TOKEN",
        default_value_t = 15
    )]
    max_active_tokens_per_refresh_token: usize,
    /// Refresh tokens per user.
    #[arg(
        long,
        env = "ZOHO_EMULATOR_MAX_REFRESH_TOKENS_PER_USER",
        default_value_t = 20
    )]
    max_refresh_tokens_per_user: usize,
    /// Grant codes per client per 10 minutes.
    #[arg(
        long,
        env = "ZOHO_EMULATOR_MAX_GRANT_CODES_PER_10_MIN",
        default_value_t = 10
    )]
    max_grant_codes_per_10_min: u32,
    /// In-flight CRM calls per org and client (0 = unlimited).
    #[arg(long, env = "ZOHO_EMULATOR_CONCURRENCY_LIMIT", default_value_t = 0)]
    concurrency_limit: usize,
    /// API credits per org per rolling 24 h (0 = unlimited).
    #[arg(long, env = "ZOHO_EMULATOR_DAILY_CREDITS", default_value_t = 0)]
    daily_credits: u64,
    /// Share of CRM calls answered 500 (0.0–1.0).
    #[arg(long, env = "ZOHO_EMULATOR_ERROR_RATE_5XX", default_value_t = 0.0)]
    error_rate_5xx: f64,
    /// Share of CRM calls whose connection is closed without an answer (0.0–1.0).
    #[arg(long, env = "ZOHO_EMULATOR_DROP_RATE", default_value_t = 0.0)]
    drop_rate: f64,
    /// Let the fault rates hit the accounts server too.
    #[arg(long, env = "ZOHO_EMULATOR_FAULTS_ON_ACCOUNTS")]
    faults_on_accounts: bool,
    /// Status when nothing was modified since If-Modified-Since (304 or 204).
    #[arg(long, env = "ZOHO_EMULATOR_NOT_MODIFIED_STATUS", default_value_t = 304)]
    not_modified_status: u16,
    /// Answer tokens in the legacy form (`expires_in_sec`, `expires_in` in ms).
    #[arg(long, env = "ZOHO_EMULATOR_LEGACY_EXPIRES_IN")]
    legacy_expires_in: bool,
    /// Log format on stderr.
    #[arg(
        long,
        env = "ZOHO_EMULATOR_LOG_FORMAT",
        value_enum,
        default_value = "plain"
    )]
    log_format: LogFormat,
}

impl Args {
    /// The library configuration these flags describe.
    fn config(&self) -> EmulatorConfig {
        EmulatorConfig {
            contacts: self.contacts,
            leads: self.leads,
            seed: self.seed,
            latency_ms: self.latency_ms,
            token_ttl_secs: self.token_ttl_secs,
            data_center: self.data_center.clone(),
            time_zone: self.time_zone.clone(),
            edition: self.edition.clone(),
            refresh_throttle_max: self.refresh_throttle_max,
            refresh_throttle_window_secs: self.refresh_throttle_window_secs,
            throttle_status: self.throttle_status,
            max_active_tokens_per_refresh_token: self.max_active_tokens_per_refresh_token,
            max_refresh_tokens_per_user: self.max_refresh_tokens_per_user,
            max_grant_codes_per_10_min: self.max_grant_codes_per_10_min,
            concurrency_limit: self.concurrency_limit,
            daily_credits: self.daily_credits,
            error_rate_5xx: self.error_rate_5xx,
            drop_rate: self.drop_rate,
            faults_on_accounts: self.faults_on_accounts,
            not_modified_status: self.not_modified_status,
            legacy_expires_in: self.legacy_expires_in,
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal; scripts and log collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Plain => builder.init(),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    let emulator = match zoho_emulator::spawn_on(args.listen, args.config()).await {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "zoho-emulator could not start");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "zoho-emulator listening on {}", emulator.base_url());
    let _ = out.flush();
    drop(out);
    terminated().await;
    tracing::info!("shutting down");
    emulator.shutdown().await;
    ExitCode::SUCCESS
}
