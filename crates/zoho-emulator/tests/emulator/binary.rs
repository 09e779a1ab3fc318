//! The `zoho-emulator` binary: flags, env, the one stdout line, clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

#[tokio::test]
async fn binary_prints_its_url_and_exits_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zoho-emulator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--contacts",
            "12",
            "--leads",
            "3",
            "--seed",
            "5",
            "--token-ttl-secs",
            "120",
        ])
        .env("ZOHO_EMULATOR_LATENCY_MS", "7")
        .env("ZOHO_EMULATOR_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("reader")
    .expect("a line");
    let base = line
        .trim()
        .strip_prefix("zoho-emulator listening on ")
        .expect("the announced line")
        .to_string();
    assert!(
        base.starts_with("http://127.0.0.1:") && !base.ends_with('/'),
        "{base}"
    );
    let http = reqwest::Client::new();
    let orgs: Value = http
        .get(format!("{base}/__emulator/orgs"))
        .send()
        .await
        .expect("orgs")
        .json()
        .await
        .expect("json");
    assert_eq!(orgs["orgs"][0]["contacts"], 12);
    assert_eq!(orgs["orgs"][0]["leads"], 3);
    let knobs: Value = http
        .get(format!("{base}/__emulator/knobs"))
        .send()
        .await
        .expect("knobs")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (knobs["latency_ms"].clone(), knobs["token_ttl_secs"].clone()),
        (Value::from(7), Value::from(120))
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("waiter")
        .expect("exit status");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn binary_rejects_bad_configuration() {
    let out = Command::new(env!("CARGO_BIN_EXE_zoho-emulator"))
        .args(["--listen", "127.0.0.1:0", "--data-center", "MARS"])
        .output()
        .expect("binary runs");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing announced on stdout");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown data centre"));
}
