//! The Zoho emulator as a child process, and its `/__emulator/` console.
//!
//! The emulator runs as its own process (not inside the harness) so that its CPU and memory are
//! nobody else's, exactly as the fetchers see a real Zoho: over HTTP on loopback.

use std::path::Path;
use std::time::Duration;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
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

/// A Self Client made in the console.
#[derive(Clone, Debug, Deserialize)]
pub struct SelfClient {
    /// Client ID.
    pub client_id: String,
    /// Client Secret (an emulator value, not a real credential).
    pub client_secret: String,
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
        parse_listing(&body, fields).map_err(|e| BenchError::unexpected(what, e.to_string()))
    }
}

fn text(value: &Value, what: &str) -> Result<String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| BenchError::unexpected(what, format!("not a string: {value}")))
}

/// Reads `{"records": [{…}, …]}` keeping only `id` and `fields` of each record, so a million
/// records with every field never sit in memory whole.
pub fn parse_listing(body: &[u8], fields: &[&str]) -> serde_json::Result<Vec<Map<String, Value>>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let records = Listing { fields }.deserialize(&mut de)?;
    de.end()?;
    Ok(records)
}

struct Listing<'f> {
    fields: &'f [&'f str],
}

impl<'de> DeserializeSeed<'de> for Listing<'_> {
    type Value = Vec<Map<String, Value>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Listing<'_> {
    type Value = Vec<Map<String, Value>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object with a `records` array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut records = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "records" {
                records = Some(map.next_value_seed(Records {
                    fields: self.fields,
                })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        records.ok_or_else(|| serde::de::Error::missing_field("records"))
    }
}

struct Records<'f> {
    fields: &'f [&'f str],
}

impl<'de> DeserializeSeed<'de> for Records<'_> {
    type Value = Vec<Map<String, Value>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Records<'_> {
    type Value = Vec<Map<String, Value>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(record) = seq.next_element_seed(Record {
            fields: self.fields,
        })? {
            out.push(record);
        }
        Ok(out)
    }
}

struct Record<'f> {
    fields: &'f [&'f str],
}

impl<'de> DeserializeSeed<'de> for Record<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Record<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut record = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "id" || self.fields.contains(&key.as_str()) {
                let value: Value = map.next_value()?;
                record.insert(key, value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_keep_only_the_requested_fields() {
        let body = br#"{"records":[
            {"id":"1","Email":"a@example.com","Description":"long text","Owner":{"name":"Ann","id":"9"},"Modified_Time":"2024-01-01T00:00:00+05:30"},
            {"Email":null,"id":"2","Tag":[{"name":"x"}]}
        ],"other":{"ignored":[1,2,3]}}"#;
        let records = parse_listing(body, &["Email", "Owner", "Modified_Time"]).expect("parse");
        assert_eq!(records.len(), 2);
        assert_eq!(
            Value::Object(records[0].clone()),
            json!({"id":"1","Email":"a@example.com","Owner":{"name":"Ann","id":"9"},"Modified_Time":"2024-01-01T00:00:00+05:30"})
        );
        assert_eq!(
            Value::Object(records[1].clone()),
            json!({"id":"2","Email":null})
        );
    }

    #[test]
    fn a_listing_without_records_is_an_error() {
        assert!(parse_listing(br#"{"data":[]}"#, &[]).is_err());
        assert!(parse_listing(br#"{"records":[]} trailing"#, &[]).is_err());
        assert!(parse_listing(br#"{"records":[]}"#, &[])
            .expect("empty")
            .is_empty());
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
