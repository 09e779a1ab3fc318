//! The real binary, stopped with SIGTERM while it applies a batch: it finishes the batch, acks
//! it, leaves the rest in the queue, and exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pledgesync_core::Module;
use pledgesync_sink::apply::Applied;
use pledgesync_store::RunStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(30);

/// The child process, killed if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary; its log lines arrive on the returned channel (and are echoed).
fn spawn_sink(db: &TestDb, mq: &TestBroker) -> (Running, std::sync::mpsc::Receiver<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pledgesync-sink"));
    for (key, _) in std::env::vars() {
        if key.starts_with("PLEDGESYNC__") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
        .env("PLEDGESYNC__POSTGRES__URL", db.url())
        .env("PLEDGESYNC__RABBITMQ__URL", rabbitmq_url())
        .env("PLEDGESYNC__SINK__PREFETCH", "1")
        .env(
            "PLEDGESYNC__RABBITMQ__TOPOLOGY_PREFIX",
            mq.topology.prefix(),
        )
        .env("PLEDGESYNC__SINK__SHUTDOWN_GRACE_SECS", "20")
        .env("PLEDGESYNC__HTTP__LISTEN", "127.0.0.1:0")
        .env("PLEDGESYNC__TELEMETRY__LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn pledgesync-sink");
    let (lines, logs) = std::sync::mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[pledgesync-sink] {line}");
                let _ = lines.send(line);
            }
        });
    }
    (Running(child), logs)
}

/// Waits for a log line containing `text`, and returns it.
fn wait_for_log(
    logs: &std::sync::mpsc::Receiver<String>,
    text: &str,
    deadline: Duration,
) -> String {
    let until = Instant::now() + deadline;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match logs.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(_) => {}
            Err(_) => panic!("the sink did not log {text:?} within {deadline:?}"),
        }
    }
}

/// `GET path` on the probe port: status code and body.
async fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the probe port");
    let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn wait_for_exit(child: &mut Child, deadline: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < until,
            "the sink did not exit within {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_batch_finishes_it_acks_it_and_exits_0() {
    let db = TestDb::new().await;
    let mq = TestBroker::new().await;
    let f = Fixture::new(&db.store).await;
    db.store.set_batches_total(f.run, 4).await.expect("total");
    let (mut sink, logs) = spawn_sink(&db, &mq);
    let listening =
        tokio::task::block_in_place(|| wait_for_log(&logs, "probe server listening", WAIT));
    let log: serde_json::Value = serde_json::from_str(&listening).expect("a JSON log line");
    let probes = log["address"]
        .as_str()
        .expect("the probe address")
        .to_owned();

    // A first batch, to see the binary work and report it.
    mq.publish(&f.upsert(
        0,
        Module::Contacts,
        vec![contact(1, "held@example.com", "Before", 1)],
    ))
    .await;
    eventually("the first batch to be applied", WAIT, || async {
        (run_of(&db.store, f.run).await.counters.batches_applied == 1).then_some(())
    })
    .await;
    let (status, body) = get(&probes, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ready\":true"), "{body}");
    // The counters move after the commit that the run's counters already show: wait for them.
    eventually("the batch to be counted on /metrics", WAIT, || async {
        let (status, metrics) = get(&probes, "/metrics").await;
        (status == 200
            && metrics.contains("pledgesync_batches_applied_total{")
            && metrics.contains("pledgesync_records_applied_total{"))
        .then_some(())
    })
    .await;

    // Hold the member's row, so that the sink's next batch waits inside its transaction.
    let mut holder = db.store.pool().begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM audience_members WHERE audience_id = $1 AND email = 'held@example.com' FOR UPDATE")
        .bind(f.audience.0)
        .execute(&mut *holder)
        .await
        .expect("lock the row");

    mq.publish(&f.upsert(
        1,
        Module::Contacts,
        vec![contact(1, "held@example.com", "After", 2)],
    ))
    .await;
    mq.publish(&f.upsert(
        2,
        Module::Contacts,
        vec![contact(2, "later@example.com", "Later", 2)],
    ))
    .await;
    let name = db.name.clone();
    eventually("the batch to wait on the held row", WAIT, || {
        let pool = db.store.pool().clone();
        let name = name.clone();
        async move {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            )
            .bind(name)
            .fetch_one(&pool)
            .await
            .expect("pg_stat_activity");
            (waiting > 0).then_some(())
        }
    })
    .await;

    let pid = sink.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    // The sink has taken the signal, and still waits for its batch.
    tokio::task::block_in_place(|| wait_for_log(&logs, "shutdown requested", WAIT));
    assert!(
        sink.0.try_wait().expect("wait").is_none(),
        "the sink must wait for its batch"
    );
    holder.commit().await.expect("release the row");

    let status = tokio::task::block_in_place(|| wait_for_exit(&mut sink.0, WAIT));
    assert_eq!(status.code(), Some(0), "a graceful shutdown exits 0");

    // The batch in flight was finished.
    let held = db
        .store
        .get_member(f.audience, "held@example.com")
        .await
        .expect("read")
        .expect("member");
    assert_eq!(held.first_name.as_deref(), Some("After"));
    assert_eq!(run_of(&db.store, f.run).await.counters.batches_applied, 2);

    // Another sink picks up where this one stopped: the batch never started is still queued, the
    // finished one was acked (it does not come again before a batch published after it), and
    // the run completes.
    mq.publish(&f.upsert(
        3,
        Module::Contacts,
        vec![contact(3, "last@example.com", "Last", 3)],
    ))
    .await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let next = Sink::start(mq.broker.clone(), db.store.clone(), 1, tx);
    let handled = receive(&mut events, 2, WAIT).await;
    let seqs: Vec<u64> = handled.iter().map(|h| h.seq).collect();
    assert_eq!(seqs, [2, 3]);
    assert!(
        handled
            .iter()
            .all(|h| matches!(h.result, Ok(Applied::Written(_)))),
        "{handled:?}"
    );
    assert_eq!(run_of(&db.store, f.run).await.status, RunStatus::Succeeded);
    next.stop().await;
}
