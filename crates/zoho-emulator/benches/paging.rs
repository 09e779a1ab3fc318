//! Paging throughput of a million-record org over HTTP, with the emulator on one core.
//!
//! Method: the emulator runs on its own single-threaded runtime (one core); the client runs on
//! another thread. Because page tokens stop at 100,000 records (reference §5), the client reads
//! the way a real incremental sync must: `sort_by=Modified_Time&sort_order=asc`, page 1 then
//! `page_token` up to 100,000 records, then a new window with `If-Modified-Since` set to the last
//! Modified_Time seen (inclusive, so records at that instant come again and are de-duplicated by
//! id). It checks that every record was read exactly once, then issues 20,000 token refreshes and
//! 5,000 more pages to show that memory does not grow with tokens or pages.
//!
//! Prints `emulator_build_secs`, `emulator_records_per_s`, `emulator_rss_mib` (VmHWM) and
//! `emulator_rss_growth_mib` (VmRSS after the token/page storm minus before).

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::Instant;

use reqwest::Client;
use serde_json::{json, Value};
use zoho_emulator::{spawn, EmulatorConfig};

/// Records in the org.
const RECORDS: usize = 1_000_000;
/// Fields a sync asks for.
const FIELDS: &str = "Email,First_Name,Last_Name,Email_Opt_Out,Modified_Time";

/// A `/proc/self/status` value in MiB.
fn proc_status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A string field of a JSON value.
fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

/// POSTs JSON to the console.
async fn console(http: &Client, url: String, body: Value) -> Value {
    http.post(url)
        .json(&body)
        .send()
        .await
        .expect("console")
        .json()
        .await
        .expect("json")
}

/// Reads every record once; returns how many unique records were read.
async fn read_all(http: &Client, api: &str, token: &str) -> usize {
    let auth = format!("Zoho-oauthtoken {token}");
    let base = format!(
        "{api}/crm/v8/Contacts?fields={FIELDS}&per_page=200&sort_by=Modified_Time&sort_order=asc"
    );
    let mut since: Option<String> = None;
    let mut at_boundary: HashSet<String> = HashSet::new();
    let mut unique = 0usize;
    loop {
        let mut page_token: Option<String> = None;
        let mut last_time = String::new();
        let mut last_ids: HashSet<String> = HashSet::new();
        let more = loop {
            let url = match &page_token {
                None => base.clone(),
                Some(t) => format!("{base}&page_token={t}"),
            };
            let mut req = http.get(url).header("Authorization", &auth);
            if let Some(s) = &since {
                req = req.header("If-Modified-Since", s);
            }
            let resp = req.send().await.expect("page");
            if resp.status() == reqwest::StatusCode::NOT_MODIFIED
                || resp.status() == reqwest::StatusCode::NO_CONTENT
            {
                break false;
            }
            assert_eq!(resp.status(), reqwest::StatusCode::OK);
            let v: Value = resp.json().await.expect("json");
            for r in v["data"].as_array().expect("data") {
                let id = text(&r["id"]);
                let modified = text(&r["Modified_Time"]);
                if modified != last_time {
                    last_time = modified.clone();
                    last_ids.clear();
                }
                if !at_boundary.contains(&id) {
                    unique += 1;
                }
                last_ids.insert(id);
            }
            let info = &v["info"];
            if info["more_records"] != true {
                break false;
            }
            // 500 pages of 200 is where token navigation ends.
            if info["page"].as_u64() == Some(500) {
                break true;
            }
            page_token = Some(text(&info["next_page_token"]));
        };
        if !more {
            return unique;
        }
        since = Some(last_time);
        at_boundary = last_ids;
    }
}

fn main() {
    let (tx, rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let started = Instant::now();
            let config = EmulatorConfig {
                contacts: RECORDS,
                leads: 0,
                latency_ms: 0,
                ..Default::default()
            };
            let emulator = spawn(config).await.expect("emulator");
            let _ = tx.send((emulator.base_url(), started.elapsed().as_secs_f64()));
            let _ = stop_rx.await;
            emulator.shutdown().await;
        });
    });
    let (base, build_secs) = rx.recv().expect("emulator started");
    println!("emulator_build_secs {build_secs:.3} s");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let http = Client::new();
        let client = console(&http, format!("{base}/__emulator/self-clients"), json!({})).await;
        let (id, secret) = (text(&client["client_id"]), text(&client["client_secret"]));
        let code = console(
            &http,
            format!("{base}/__emulator/grant-codes"),
            json!({"client_id": id, "scope": "ZohoCRM.modules.ALL,ZohoCRM.org.READ", "duration_minutes": 10}),
        )
        .await;
        let form = [("grant_type", "authorization_code"), ("client_id", &id), ("client_secret", &secret), ("code", &text(&code["code"]))];
        let tokens: Value = http.post(format!("{base}/oauth/v2/token")).form(&form).send().await.expect("token").json().await.expect("json");
        let (api, access, refresh) = (text(&tokens["api_domain"]), text(&tokens["access_token"]), text(&tokens["refresh_token"]));

        let started = Instant::now();
        let unique = read_all(&http, &api, &access).await;
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(unique, RECORDS, "every record read exactly once");
        println!("emulator_records_per_s {:.0} records/s", RECORDS as f64 / secs);
        println!("emulator_rss_mib {:.1} MiB", proc_status_mib("VmHWM:"));

        // Memory must not grow with tokens issued or pages served.
        let before = proc_status_mib("VmRSS:");
        let knobs = json!({"refresh_throttle_max": 1_000_000});
        http.put(format!("{base}/__emulator/knobs")).json(&knobs).send().await.expect("knobs");
        let form = [("grant_type", "refresh_token"), ("client_id", &id), ("client_secret", &secret), ("refresh_token", &refresh)];
        let mut last = access.clone();
        for _ in 0..20_000 {
            let v: Value = http.post(format!("{base}/oauth/v2/token")).form(&form).send().await.expect("refresh").json().await.expect("json");
            last = text(&v["access_token"]);
        }
        let url = format!("{api}/crm/v8/Contacts?fields={FIELDS}&per_page=200&page=1");
        for _ in 0..5_000 {
            let resp = http.get(&url).header("Authorization", format!("Zoho-oauthtoken {last}")).send().await.expect("page");
            assert_eq!(resp.status(), reqwest::StatusCode::OK);
            let _ = resp.bytes().await;
        }
        let after = proc_status_mib("VmRSS:");
        let stats: Value = http.get(format!("{base}/__emulator/stats")).send().await.expect("stats").json().await.expect("json");
        println!("emulator_rss_growth_mib {:.1} MiB", after - before);
        println!("emulator_token_tables {}", stats["token_tables"]);
    });
    let _ = stop_tx.send(());
    let _ = server.join();
}
