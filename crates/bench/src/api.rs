//! The scheduler's HTTP API as a creator (and the PledgeBox app) uses it: audiences,
//! integrations, Sync Now and run progress.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::emulator::SelfClient;
use crate::error::{BenchError, Result};
use crate::wait;

/// A client of one scheduler.
#[derive(Clone)]
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Api {
    // The bearer token stays out of Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// An integration mapped to its audience.
#[derive(Clone, Debug)]
pub struct Connected {
    /// The integration's id.
    pub integration: String,
    /// The audience's id.
    pub audience: String,
}

/// The counters of a run the harness reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Counters {
    /// Records read from Zoho.
    pub fetched: u64,
    /// Records written to the audience.
    pub applied: u64,
    /// Records not written.
    pub skipped: u64,
    /// Batches the fetcher published.
    #[serde(default)]
    pub batches_published: u64,
    /// Batches the sinks applied.
    #[serde(default)]
    pub batches_applied: u64,
    /// All batches of the run, once known.
    #[serde(default)]
    pub batches_total: Option<u64>,
}

/// `GET /v1/runs/{id}`, the parts the figures use.
#[derive(Clone, Debug, Deserialize)]
pub struct RunView {
    /// The run's id.
    pub id: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Progress counters.
    pub counters: Counters,
    /// When Sync Now enqueued it.
    pub created_at: DateTime<Utc>,
    /// When a fetcher picked it up.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl RunView {
    /// Whether the run reached a final status.
    pub fn ended(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "cancelled")
    }

    /// Seconds from Sync Now to the end, as the server's clock saw them.
    pub fn seconds(&self) -> Option<f64> {
        let end = self.finished_at?;
        Some((end - self.created_at).num_microseconds()? as f64 / 1e6)
    }

    /// `Err(RunFailed)` unless the run succeeded.
    pub fn succeeded(self) -> Result<RunView> {
        if self.status == "succeeded" {
            Ok(self)
        } else {
            Err(BenchError::RunFailed {
                run: self.id,
                status: self.status,
                error: self.error.unwrap_or_else(|| "no error given".to_owned()),
            })
        }
    }
}

impl Api {
    /// A client of the scheduler at `base` with bearer `token`.
    pub fn new(base: String, token: String) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| BenchError::http("building the HTTP client", e))?;
        Ok(Self { base, token, http })
    }

    /// The scheduler's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        ok: &[u16],
    ) -> Result<Value> {
        let what = format!("scheduler {method} {path}");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| BenchError::http(&what, e))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| BenchError::http(&what, e))?;
        if !ok.contains(&status) {
            return Err(BenchError::Status {
                what,
                status,
                body: text,
            });
        }
        serde_json::from_str(&text)
            .map_err(|e| BenchError::unexpected(what, format!("{e}: {text}")))
    }

    /// Whether `/readyz` answers 200 (PostgreSQL, RabbitMQ and Redis reachable).
    pub async fn ready(&self) -> bool {
        self.http
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// What a creator does: an audience, Add Integration with a fresh grant code of `client`,
    /// reading only `modules`, and Map Audience.
    pub async fn connect(
        &self,
        account: &str,
        client: &SelfClient,
        code: &str,
        modules: &[&str],
    ) -> Result<Connected> {
        let audience = self
            .call(
                reqwest::Method::POST,
                "/v1/audiences",
                Some(json!({"account_id": account, "name": "Backers"})),
                &[201],
            )
            .await?;
        let integration = self
            .call(
                reqwest::Method::POST,
                "/v1/integrations",
                Some(json!({
                    "account_id": account,
                    "name": format!("Zoho of {account}"),
                    "client_id": client.client_id,
                    "client_secret": client.client_secret,
                    "refresh_token": code,
                    "modules": modules,
                })),
                &[201],
            )
            .await?;
        let connected = Connected {
            integration: id(&integration)?,
            audience: id(&audience)?,
        };
        self.call(
            reqwest::Method::PUT,
            &format!("/v1/integrations/{}/audience", connected.integration),
            Some(json!({"audience_id": connected.audience})),
            &[200],
        )
        .await?;
        Ok(connected)
    }

    /// Sync Now in `mode` (`full` or `incremental`); the run started, or the one already going.
    pub async fn sync(&self, integration: &str, mode: &str) -> Result<RunView> {
        let run = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/integrations/{integration}/syncs"),
                Some(json!({"mode": mode})),
                &[200, 202],
            )
            .await?;
        parse_run(run)
    }

    /// `GET /v1/runs/{id}`.
    pub async fn run(&self, run: &str) -> Result<RunView> {
        let view = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/runs/{run}"),
                None,
                &[200],
            )
            .await?;
        parse_run(view)
    }

    /// Waits (polling every `every`) until the run has ended, and returns its last view.
    pub async fn wait_for_end(
        &self,
        run: &str,
        timeout: Duration,
        every: Duration,
    ) -> Result<RunView> {
        wait::until(
            &format!("run {run} to end"),
            timeout,
            every,
            || async move {
                let view = self.run(run).await?;
                Ok(view.ended().then_some(view))
            },
        )
        .await
    }
}

fn id(value: &Value) -> Result<String> {
    value["id"].as_str().map(str::to_owned).ok_or_else(|| {
        BenchError::unexpected("the scheduler's answer", format!("no id in {value}"))
    })
}

fn parse_run(value: Value) -> Result<RunView> {
    serde_json::from_value(value.clone())
        .map_err(|e| BenchError::unexpected("a run view", format!("{e}: {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(status: &str) -> RunView {
        parse_run(json!({
            "id": "r1",
            "integration_id": "i1",
            "status": status,
            "error": null,
            "counters": {"fetched": 200, "applied": 190, "skipped": 10, "skipped_by_reason": {}, "deleted": 0,
                         "batches_published": 1, "batches_applied": 1, "batches_total": 1},
            "total_estimate": 200,
            "created_at": "2025-01-01T00:00:00Z",
            "started_at": "2025-01-01T00:00:00.250Z",
            "finished_at": "2025-01-01T00:00:01.500Z"
        }))
        .expect("view")
    }

    #[test]
    fn a_run_view_reads_its_times_and_counters() {
        let run = view("succeeded");
        assert!(run.ended());
        assert_eq!(run.seconds(), Some(1.5));
        assert_eq!(run.counters.fetched, 200);
        assert_eq!(run.counters.batches_total, Some(1));
        assert!(run.succeeded().is_ok());
    }

    #[test]
    fn a_failed_run_is_an_error_with_its_reason() {
        let mut run = view("failed");
        run.error = Some("Zoho refused".into());
        let error = run.succeeded().expect_err("failed");
        assert_eq!(error.to_string(), "run r1 ended failed: Zoho refused");
        assert!(!view("running").ended());
    }
}
