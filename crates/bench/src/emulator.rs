//! The Zoho emulator as a child process, and its `/__emulator/` console.
//!
//! The emulator runs as its own process (not inside the harness) so that its CPU and memory are
//! nobody else's, exactly as the fetchers see a real Zoho: over HTTP on loopback.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{BenchError, Result};
use crate::procs::{Process, Spawn};
use crate::wait;

/// The scope the product's setup guide asks creators for.
pub const SCOPE: &str = "ZohoCRM.modules.ALL,ZohoCRM.org.READ";

/// How the emulator starts: its default org and the knobs that are flags.
#[derive(Clone, Debug)]
pub struct EmulatorOptions {
    /// Contacts of the default org.
    pub contacts: u64,
    /// Leads of the default org.
    pub leads: u64,
    /// Seed of the synthetic data.
    pub seed: u64,
    /// Delay before every answer, in milliseconds.
    pub latency_ms: u64,
    /// Access-token lifetime.
    pub token_ttl_secs: u64,
    /// Refreshes per refresh token per window (Zoho: 10 per 600 s).
    pub refresh_throttle: (u32, u64),
}

impl EmulatorOptions {
    /// A default org of `contacts` contacts and no leads, no latency, Zoho's token rules.
    pub fn contacts(contacts: u64) -> Self {
        Self {
            contacts,
            leads: 0,
            seed: 42,
            latency_ms: 0,
            token_ttl_secs: 3600,
            refresh_throttle: (10, 600),
        }
    }

    fn args(&self) -> Vec<String> {
        let pairs = [
            ("--listen", "127.0.0.1:0".to_owned()),
            ("--contacts", self.contacts.to_string()),
            ("--leads", self.leads.to_string()),
            ("--seed", self.seed.to_string()),
            ("--latency-ms", self.latency_ms.to_string()),
            ("--token-ttl-secs", self.token_ttl_secs.to_string()),
            (
                "--refresh-throttle-max",
                self.refresh_throttle.0.to_string(),
            ),
            (
                "--refresh-throttle-window-secs",
                self.refresh_throttle.1.to_string(),
            ),
            ("--log-format", "json".to_owned()),
        ];
        pairs
            .into_iter()
            .flat_map(|(flag, value)| [flag.to_owned(), value])
            .collect()
    }
}

/// A Self Client made in the console. Its Debug output leaves the secret out.
#[derive(Clone, Deserialize)]
pub struct SelfClient {
    /// Client ID.
    pub client_id: String,
    /// Client Secret (an emulator value, not a real credential).
    pub client_secret: String,
}

impl std::fmt::Debug for SelfClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfClient")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A running emulator.
#[derive(Debug)]
pub struct Emulator {
    /// The process.
    pub process: Process,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    http: reqwest::Client,
}

impl Emulator {
    /// Starts the emulator and waits for its `listening on` line (seeding a million records
    /// takes a moment).
    pub async fn start(program: &Path, options: &EmulatorOptions, dir: &Path) -> Result<Emulator> {
        let args = options.args();
        // Request logs would cost the emulator CPU that the figures should not pay for.
        let env = [("RUST_LOG".to_owned(), "warn".to_owned())];
        let process = Process::spawn(Spawn {
            name: "zoho-emulator",
            program,
            args: &args,
            env: &env,
            dir,
        })?;
        let base = wait::until(
            "the zoho-emulator to print its address",
            Duration::from_secs(120),
            Duration::from_millis(20),
            || {
                let found = process.stdout().lines().find_map(|l| {
                    l.strip_prefix("zoho-emulator listening on ")
                        .map(str::to_owned)
                });
                let alive = process.check_alive();
                async move {
                    alive?;
                    Ok(found)
                }
            },
        )
        .await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| BenchError::http("building the HTTP client", e))?;
        Ok(Emulator {
            process,
            base,
            http,
        })
    }

    /// The accounts-server template for `PLEDGESYNC__ZOHO__ACCOUNTS_URL`.
    pub fn accounts_url(&self) -> String {
        format!("{}/dc/{{dc}}", self.base)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<reqwest::Response> {
        let what = format!("emulator {method} {path}");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| BenchError::http(&what, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(BenchError::Status {
            what,
            status: status.as_u16(),
            body,
        })
    }

    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let what = format!("emulator {method} {path}");
        self.call(method, path, body)
            .await?
            .json()
            .await
            .map_err(|e| BenchError::http(what, e))
    }

    /// Seeds another org; returns its id.
    pub async fn create_org(&self, contacts: u64, seed: u64) -> Result<String> {
        let org = self
            .json(
                reqwest::Method::POST,
                "/__emulator/orgs",
                Some(json!({"contacts": contacts, "leads": 0, "seed": seed})),
            )
            .await?;
        text(&org["org_id"], "the new org's org_id")
    }

    /// A Self Client of `org` (the default org when `None`).
    pub async fn self_client(&self, org: Option<&str>) -> Result<SelfClient> {
        let client = self
            .json(
                reqwest::Method::POST,
                "/__emulator/self-clients",
                Some(json!({"org_id": org})),
            )
            .await?;
        serde_json::from_value(client)
            .map_err(|e| BenchError::unexpected("a new self client", e.to_string()))
    }

    /// A 10-minute grant code for the product's scope.
    pub async fn grant_code(&self, client: &SelfClient) -> Result<String> {
        let code = self
            .json(
                reqwest::Method::POST,
                "/__emulator/grant-codes",
                Some(
                    json!({"client_id": client.client_id, "scope": SCOPE, "duration_minutes": 10}),
                ),
            )
            .await?;
        text(&code["code"], "the grant code")
    }

    /// Changes `knobs` (a partial object).
    pub async fn set_knobs(&self, knobs: Value) -> Result<()> {
        self.call(reqwest::Method::PUT, "/__emulator/knobs", Some(knobs))
            .await?;
        Ok(())
    }

    /// The counters since start or the last reset.
    pub async fn stats(&self) -> Result<Value> {
        self.json(reqwest::Method::GET, "/__emulator/stats", None)
            .await
    }

    /// Zeroes the counters.
    pub async fn reset_stats(&self) -> Result<()> {
        self.call(reqwest::Method::POST, "/__emulator/stats/reset", None)
            .await?;
        Ok(())
    }

    /// Changes `update` seeded-random Contacts of the default org (new Modified_Time).
    pub async fn update_contacts(&self, update: u64, seed: u64) -> Result<u64> {
        let answer = self
            .json(
                reqwest::Method::POST,
                "/__emulator/records/Contacts/mutate",
                Some(json!({"update": update, "delete": 0, "create": 0, "seed": seed})),
            )
            .await?;
        Ok(answer["updated"]
            .as_array()
            .map_or(0, |ids| ids.len() as u64))
    }

    /// Every live Contact of the default org, reduced to `id` and `fields`, as the fetcher would
    /// have read them.
    pub async fn contacts(&self, fields: &[&str]) -> Result<Vec<Map<String, Value>>> {
        let what = "emulator GET /__emulator/records/Contacts";
        let body = self
            .call(reqwest::Method::GET, "/__emulator/records/Contacts", None)
            .await?
            .bytes()
            .await
            .map_err(|e| BenchError::http(what, e))?;
        crate::listing::parse(&body, fields)
            .map_err(|e| BenchError::unexpected(what, e.to_string()))
    }
}

fn text(value: &Value, what: &str) -> Result<String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| BenchError::unexpected(what, format!("not a string: {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_clients_debug_output_leaves_the_secret_out() {
        let client = SelfClient {
            client_id: "1000.ABC".into(),
            client_secret: "s3cr3t".into(),
        };
        let shown = format!("{client:?}");
        assert!(
            shown.contains("1000.ABC") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn flags_carry_every_option() {
        let args = EmulatorOptions {
            latency_ms: 50,
            token_ttl_secs: 5,
            refresh_throttle: (10, 1),
            ..EmulatorOptions::contacts(20_000)
        }
        .args();
        let joined = args.join(" ");
        for expected in [
            "--contacts 20000",
            "--leads 0",
            "--latency-ms 50",
            "--token-ttl-secs 5",
            "--refresh-throttle-max 10",
            "--refresh-throttle-window-secs 1",
            "--listen 127.0.0.1:0",
        ] {
            assert!(joined.contains(expected), "{joined} lacks {expected}");
        }
    }
}
