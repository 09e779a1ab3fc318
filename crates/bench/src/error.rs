//! What can stop a figure from being measured.
//!
//! The harness never retries: a benchmark that hits an error reports it for that figure and goes
//! on with the next one. So errors are not split into retryable and permanent; each message says
//! what failed and where to look (a service to start, a log to read).

use std::path::PathBuf;
use std::time::Duration;

/// A failure of the harness or of the system under measurement.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file or process operation failed.
    #[error("{what} failed: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP call could not be made or its answer not read.
    #[error("HTTP call {what} failed: {source} (is the process still running? see its log)")]
    Http {
        /// Which call.
        what: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// An HTTP call got an answer the harness did not expect.
    #[error("{what} answered HTTP {status}: {body}")]
    Status {
        /// Which call.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The answer's body, for the reader.
        body: String,
    },
    /// An answer or a file did not have the shape the harness needs.
    #[error("{what}: {detail}")]
    Unexpected {
        /// What was being read.
        what: String,
        /// What was wrong with it.
        detail: String,
    },
    /// A service could not be reached.
    #[error("{service} is not reachable ({detail}); start the services with `bash deploy/local/services.sh up`")]
    Unavailable {
        /// PostgreSQL, RabbitMQ or Redis.
        service: &'static str,
        /// The client's error.
        detail: String,
    },
    /// PostgreSQL refused a statement.
    #[error("PostgreSQL: {0}")]
    Database(#[from] sqlx::Error),
    /// The store's bulk path failed (the PostgreSQL ceiling).
    #[error("store: {0}")]
    Store(#[from] pledgesync_store::StoreError),
    /// RabbitMQ refused a command (only the clean-up talks to it).
    #[error("RabbitMQ: {0}")]
    Broker(#[from] lapin::Error),
    /// Redis refused a command (only the clean-up talks to it).
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A condition did not come true in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// The condition.
        what: String,
        /// How long the harness waited.
        after: Duration,
    },
    /// A child process exited while the harness still needed it.
    #[error("{process} exited early ({status}); its log is {log}: {tail}")]
    Exited {
        /// Which process.
        process: String,
        /// How it exited.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// A sync run ended without succeeding.
    #[error("run {run} ended {status}: {error}")]
    RunFailed {
        /// The run's id.
        run: String,
        /// Its final status.
        status: String,
        /// The error the run shows.
        error: String,
    },
    /// `cargo build --release` of the binaries failed.
    #[error(
        "building the release binaries failed ({0}); run `cargo build --release --bins` to see why"
    )]
    Build(String),
}

impl BenchError {
    /// An [`BenchError::Io`] for `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io {
            what: what.into(),
            source,
        }
    }

    /// An [`BenchError::Http`] for `what`.
    pub fn http(what: impl Into<String>, source: reqwest::Error) -> Self {
        BenchError::Http {
            what: what.into(),
            source,
        }
    }

    /// An [`BenchError::Unexpected`] answer.
    pub fn unexpected(what: impl Into<String>, detail: impl Into<String>) -> Self {
        BenchError::Unexpected {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// The harness's result type.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
