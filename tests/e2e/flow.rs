//! What a creator and an operator do with a running [`System`]: the scheduler's API, the
//! emulator's console, waiting for runs, and reading members, records and metrics.

use std::time::Duration;

use anyhow::Context as _;
use pledgesync_tests::wait_until;
use serde_json::{json, Value};

use crate::harness::{text, System, Worker, API_TOKEN, SCOPE};

impl System {
    /// A call to the scheduler's API; the JSON answer and its status.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(API_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    /// A call to the emulator's console (or API); the JSON answer.
    pub async fn emulator(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.emulator.base_url()));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(
            status.is_success(),
            "emulator {path} answered {status}: {value}"
        );
        Ok(value)
    }

    /// What a creator does: an audience, a Self Client and grant code in the emulator's console,
    /// Add Integration with the code, and Map Audience. Returns (integration id, audience id).
    pub async fn connect(
        &self,
        account: &str,
        org_id: Option<&str>,
    ) -> anyhow::Result<(String, String)> {
        let (status, audience) = self
            .api(
                reqwest::Method::POST,
                "/v1/audiences",
                Some(json!({"account_id": account, "name": "Backers"})),
            )
            .await?;
        anyhow::ensure!(
            status == 201,
            "create audience answered {status}: {audience}"
        );
        let client = self
            .emulator(
                reqwest::Method::POST,
                "/__emulator/self-clients",
                Some(json!({"org_id": org_id})),
            )
            .await?;
        let code = self
            .emulator(
                reqwest::Method::POST,
                "/__emulator/grant-codes",
                Some(json!({"client_id": client["client_id"], "scope": SCOPE, "duration_minutes": 10, "description": "PledgeBox Integration"})),
            )
            .await?;
        let (status, integration) = self
            .api(
                reqwest::Method::POST,
                "/v1/integrations",
                Some(json!({
                    "account_id": account,
                    "name": format!("Zoho of {account}"),
                    "client_id": client["client_id"],
                    "client_secret": client["client_secret"],
                    "refresh_token": code["code"],
                })),
            )
            .await?;
        anyhow::ensure!(
            status == 201,
            "create integration answered {status}: {integration}"
        );
        let integration_id = text(&integration["id"])?;
        let audience_id = text(&audience["id"])?;
        self.clients
            .lock()
            .map_err(|_| anyhow::anyhow!("client list poisoned"))?
            .insert(text(&client["client_id"])?, text(&client["client_secret"])?);
        let (status, mapped) = self
            .api(
                reqwest::Method::PUT,
                &format!("/v1/integrations/{integration_id}/audience"),
                Some(json!({"audience_id": audience_id})),
            )
            .await?;
        anyhow::ensure!(status == 200, "map audience answered {status}: {mapped}");
        Ok((integration_id, audience_id))
    }

    /// The secret of a Self Client made by [`System::connect`].
    pub fn client_secret(&self, client_id: &str) -> anyhow::Result<String> {
        let clients = self
            .clients
            .lock()
            .map_err(|_| anyhow::anyhow!("client list poisoned"))?;
        clients
            .get(client_id)
            .cloned()
            .context("no such self client")
    }

    /// Sync Now; returns the run id.
    pub async fn sync(&self, integration: &str, mode: &str) -> anyhow::Result<String> {
        let (status, run) = self
            .api(
                reqwest::Method::POST,
                &format!("/v1/integrations/{integration}/syncs"),
                Some(json!({"mode": mode})),
            )
            .await?;
        anyhow::ensure!(
            status == 202 || status == 200,
            "Sync Now answered {status}: {run}"
        );
        text(&run["id"])
    }

    /// GET /v1/runs/{id}.
    pub async fn run(&self, run: &str) -> anyhow::Result<Value> {
        let (status, view) = self
            .api(reqwest::Method::GET, &format!("/v1/runs/{run}"), None)
            .await?;
        anyhow::ensure!(status == 200, "GET run answered {status}: {view}");
        Ok(view)
    }

    /// Waits until the run has ended and returns its view.
    pub async fn wait_for_end(&self, run: &str, timeout: Duration) -> anyhow::Result<Value> {
        let ended = wait_until(&format!("run {run} to end"), timeout, || async move {
            let view = self.run(run).await.ok()?;
            matches!(
                view["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            )
            .then_some(view)
        })
        .await;
        match ended {
            Ok(view) => Ok(view),
            Err(error) => {
                let view = self.run(run).await.unwrap_or(Value::Null);
                Err(error.context(format!("the run is {view}\n{}", self.all_tails())))
            }
        }
    }

    /// Waits until the run succeeded, or fails with its error and the logs.
    pub async fn wait_for_success(&self, run: &str, timeout: Duration) -> anyhow::Result<Value> {
        let view = self.wait_for_end(run, timeout).await?;
        anyhow::ensure!(
            view["status"] == "succeeded",
            "run ended {view}\n{}",
            self.all_tails()
        );
        Ok(view)
    }

    /// Every member of the audience, through the API's pages.
    pub async fn members(&self, audience: &str) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/audiences/{audience}/members?limit=200&cursor={c}"),
                None => format!("/v1/audiences/{audience}/members?limit=200"),
            };
            let (status, page) = self.api(reqwest::Method::GET, &path, None).await?;
            anyhow::ensure!(status == 200, "members answered {status}: {page}");
            if let Some(members) = page["members"].as_array() {
                all.extend(members.iter().cloned());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(all),
            }
        }
    }

    /// The emulator's live records of a module, as Zoho's listing returns them (converted leads
    /// leave the listing).
    pub async fn records(&self, module: &str, org_id: Option<&str>) -> anyhow::Result<Vec<Value>> {
        let mut path = format!("/__emulator/records/{module}?converted=false");
        if let Some(org) = org_id {
            path.push_str(&format!("&org_id={org}"));
        }
        let answer = self.emulator(reqwest::Method::GET, &path, None).await?;
        answer["records"]
            .as_array()
            .cloned()
            .context("records listing without records")
    }

    /// A counter summed over the `/metrics` of some workers (all label sets).
    pub async fn metric(&self, workers: &[Worker], name: &str) -> anyhow::Result<f64> {
        let mut total = 0.0;
        for worker in workers {
            let text = self
                .http
                .get(format!("http://127.0.0.1:{}/metrics", worker.port))
                .send()
                .await?
                .text()
                .await?;
            total += text
                .lines()
                .filter(|line| {
                    line.starts_with(name) && line[name.len()..].starts_with(['{', ' ', ',', '}'])
                })
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>();
        }
        Ok(total)
    }

    /// The emulator's counters.
    pub async fn emulator_stats(&self) -> anyhow::Result<Value> {
        self.emulator(reqwest::Method::GET, "/__emulator/stats", None)
            .await
    }
}
