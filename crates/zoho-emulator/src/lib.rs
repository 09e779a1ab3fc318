//! # zoho-emulator
//!
//! A faithful local stand-in for Zoho's accounts server (OAuth 2.0 token endpoint) and CRM REST API,
//! seeded with deterministic synthetic data and fitted with knobs for latency, token lifetimes,
//! Zoho's limits and injected faults. Every other part of pledgesync is tested against it, so it
//! follows `shared/docs/zoho-api-reference.md` to the status code and JSON key; where the reference
//! marks behaviour as unconfirmed, the choice made is written down in this crate's README.
//!
//! **What it must never do**: it is for development and tests only. It is never deployed to
//! production, it never calls the real Zoho (it makes no outgoing connections at all), and nothing
//! it issues is a real credential.
//!
//! ## Use from tests
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let emulator = zoho_emulator::spawn(zoho_emulator::EmulatorConfig {
//!     contacts: 50,
//!     ..Default::default()
//! })
//! .await?;
//! let accounts_url = format!("{}/dc/us", emulator.base_url());
//! // … create a self client and a grant code through `{base}/__emulator/…`, then exchange it …
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Modules
//! - [`config`]: start-up configuration ([`EmulatorConfig`]); [`knobs`]: run-time knobs.
//! - [`clock`]: the controllable clock every expiry reads; [`zones`]: org time zones.
//! - [`dc`]: data centres; [`scopes`]: OAuth scope grammar and checks.
//! - [`accounts`]: self clients and grant codes; [`tokens`]: refresh and access tokens;
//!   [`oauth`]: the token and revoke endpoints.
//! - [`schema`]: modules and fields; [`data`]: the synthetic data generator ([`words`]: its
//!   vocabulary); [`records`]: stored records and rendering; [`store`]: one module's records and
//!   edits; [`org`]: orgs and credits.
//! - [`query`]: page selection; [`paging`]: stateless page tokens.
//! - [`gate`]: auth, scope, concurrency, latency, faults and credits before each CRM call;
//!   [`params`]: parameter parsing; [`crm`]: Get Records; [`count`]: record counts;
//!   [`deleted`]: deleted records; [`meta`]: org, users, settings.
//! - [`console`] and [`edit`]: the `/__emulator/` console; [`stats`]: counters.
//! - [`reply`]: answer helpers; [`state`]: shared state; [`server`]: routes and listener.

// Validation helpers return `Result<_, Response>` so a handler can answer the first error with
// `?`-like early returns. The error is an HTTP answer built once per failed call; boxing it would
// add noise for no measurable gain.
#![allow(clippy::result_large_err)]
#![warn(missing_docs)]

pub mod accounts;
pub mod clock;
pub mod config;
pub mod console;
pub mod count;
pub mod crm;
pub mod data;
pub mod dc;
pub mod deleted;
pub mod edit;
pub mod gate;
pub mod knobs;
pub mod meta;
pub mod oauth;
pub mod org;
pub mod paging;
pub mod params;
pub mod query;
pub mod records;
pub mod reply;
pub mod schema;
pub mod scopes;
pub mod server;
pub mod state;
pub mod stats;
pub mod store;
pub mod tokens;
pub mod words;
pub mod zones;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::EmulatorConfig;
pub use dc::Dc;
pub use knobs::Knobs;

use clock::Clock;
use org::Org;
use server::{KillSwitch, Listener};
use state::State;

/// How long `shutdown` waits for in-flight calls before abandoning them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running emulator.
#[derive(Debug)]
pub struct RunningEmulator {
    /// The bound address.
    addr: SocketAddr,
    /// The id of the default org.
    default_org_id: String,
    /// Tells the server to stop.
    stop: oneshot::Sender<()>,
    /// The server task.
    task: JoinHandle<io::Result<()>>,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The accounts server (and API domain) of a DC: `{base}/dc/{dc}` with the code lower-cased.
    pub fn dc_url(&self, dc: &str) -> String {
        format!("{}/dc/{}", self.base_url(), dc.to_ascii_lowercase())
    }

    /// The id of the default org (the one seeded from the config).
    pub fn default_org_id(&self) -> &str {
        &self.default_org_id
    }

    /// Stops accepting, lets in-flight calls finish (up to a few seconds), and returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// Starts an emulator on a random loopback port.
pub async fn spawn(config: EmulatorConfig) -> io::Result<RunningEmulator> {
    spawn_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
}

/// Starts an emulator on `addr`; seeds the default org first (on a blocking thread, since a
/// million records take a moment).
pub async fn spawn_on(addr: SocketAddr, config: EmulatorConfig) -> io::Result<RunningEmulator> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    let (dc, spec) = config.validate().map_err(invalid)?;
    let knobs = config.knobs();
    let seed = config.seed;
    let state = tokio::task::spawn_blocking(move || {
        let clock = Clock::new();
        let org = Org::build(0, &spec, clock.now_secs())?;
        Ok::<_, String>(State::new(dc, org, knobs, seed, clock))
    })
    .await
    .map_err(|e| io::Error::other(e.to_string()))?
    .map_err(invalid)?;
    let state = Arc::new(state);
    let default_org_id = state.org(0).map(|o| o.id.clone()).unwrap_or_default();
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = server::app(state).into_make_service_with_connect_info::<KillSwitch>();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(Listener(listener), app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(%addr, data_center = %dc, "zoho-emulator started");
    Ok(RunningEmulator {
        addr,
        default_org_id,
        stop,
        task,
    })
}
