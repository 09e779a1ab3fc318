//! The one error type of the store, classified retryable or permanent.

use sqlx::migrate::MigrateError;

/// SQLSTATEs that mean "a concurrent transaction got in the way; run yours again".
const CONTENTION_CODES: &[&str] = &[
    "40001", // serialization_failure
    "40P01", // deadlock_detected
    "55P03", // lock_not_available (lock_timeout)
];

/// SQLSTATEs (or classes, by prefix) that mean the server is briefly unable to serve.
const UNAVAILABLE_CODES: &[&str] = &[
    "08",    // connection_exception class
    "53",    // insufficient_resources class (too many connections, disk full, out of memory)
    "57P01", // admin_shutdown
    "57P02", // crash_shutdown
    "57P03", // cannot_connect_now (starting up / recovering)
    "57014", // query_canceled (statement_timeout under load)
    "58000", // system_error
    "58030", // io_error
];

/// What went wrong in the store, and whether trying again can help ([`StoreError::is_retryable`]).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// PostgreSQL is unreachable, the connection was lost, the pool had no free connection in
    /// time, or the server is starting up or shutting down.
    #[error("PostgreSQL is unavailable: {0}; retry with backoff, and check that PostgreSQL is up and reachable if it persists")]
    Unavailable(#[source] sqlx::Error),

    /// A serialization failure, deadlock or lock timeout against a concurrent transaction, or a
    /// race the store detected itself.
    #[error(
        "the transaction lost a race with a concurrent one ({code}); retry the whole operation"
    )]
    Contention {
        /// The SQLSTATE (e.g. `40P01` for a deadlock), or the store's own code for a race it
        /// detected (`row_moved`: a row this transaction had locked was not where it was found).
        code: String,
        /// The driver's error, when the database raised it (not when the store detected the race).
        #[source]
        source: Option<sqlx::Error>,
    },

    /// A uniqueness rule refused the write, e.g. a second audience with the same name.
    #[error("{what} already exists; choose another {field}")]
    Conflict {
        /// What could not be created, e.g. `an audience named "Backers" in this account`.
        what: String,
        /// Which input to change.
        field: &'static str,
    },

    /// The row the operation needs does not exist (or was deleted).
    #[error("{what} {id} does not exist")]
    NotFound {
        /// The kind of row, e.g. `integration`.
        what: &'static str,
        /// Its id as text.
        id: String,
    },

    /// The request is not allowed in the current state, or its input breaks a rule; the message
    /// says what to do. Never retried.
    #[error("{0}")]
    Rejected(String),

    /// A stored value could not be decoded into its type.
    #[error("stored data could not be read: {0}; the row was written by an incompatible build or edited by hand")]
    Corrupt(String),

    /// The PostgreSQL settings could not be used.
    #[error("PostgreSQL settings are invalid: {0}")]
    Config(String),

    /// Applying the embedded migrations failed.
    #[error("database migration failed: {0}; fix the database (or the migration) and start again")]
    Migration(#[source] MigrateError),

    /// PostgreSQL refused the statement for a reason retrying cannot fix (a bug or a schema
    /// mismatch).
    #[error("PostgreSQL rejected a query: {0}; this is a bug or a schema mismatch, not retried")]
    Query(#[source] sqlx::Error),
}

impl StoreError {
    /// Whether the same operation may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) | StoreError::Contention { .. } => true,
            StoreError::Migration(
                MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _),
            ) => is_transient(e),
            _ => false,
        }
    }

    /// PostgreSQL cannot be used for a reason found outside the driver (e.g. the component that
    /// talks to it stopped); retryable like any [`StoreError::Unavailable`].
    pub fn unavailable(why: impl Into<String>) -> Self {
        StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(why.into())))
    }

    /// A copy of a retryable error for the other batches of a group that failed with it (the
    /// driver's error is not cloneable, so a copy carries its text). `None` for a permanent one.
    pub(crate) fn retryable_copy(&self) -> Option<StoreError> {
        match self {
            StoreError::Contention { code, .. } => Some(StoreError::Contention {
                code: code.clone(),
                source: None,
            }),
            error if error.is_retryable() => Some(StoreError::unavailable(error.to_string())),
            _ => None,
        }
    }

    /// Whether this is a concurrency conflict that is worth retrying at once.
    pub fn is_contention(&self) -> bool {
        matches!(self, StoreError::Contention { .. })
    }

    pub(crate) fn not_found(what: &'static str, id: impl ToString) -> Self {
        StoreError::NotFound {
            what,
            id: id.to_string(),
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Corrupt(what.into())
    }
}

/// SQLSTATE of a database error, if it is one.
pub(crate) fn sqlstate(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// The constraint a database error names, if any.
pub(crate) fn constraint(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}

fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(_) => sqlstate(error).is_some_and(|code| {
            CONTENTION_CODES.contains(&code.as_str())
                || UNAVAILABLE_CODES.iter().any(|p| code.starts_with(p))
        }),
        _ => false,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if let Some(code) = sqlstate(&error) {
            if CONTENTION_CODES.contains(&code.as_str()) {
                return StoreError::Contention {
                    code,
                    source: Some(error),
                };
            }
        }
        if is_transient(&error) {
            StoreError::Unavailable(error)
        } else {
            StoreError::Query(error)
        }
    }
}

impl From<MigrateError> for StoreError {
    fn from(error: MigrateError) -> Self {
        StoreError::Migration(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_are_retryable() {
        let io = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        assert!(StoreError::from(io).is_retryable());
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_retryable());
    }

    #[test]
    fn logic_failures_are_permanent() {
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_retryable());
        assert!(!StoreError::from(sqlx::Error::PoolClosed).is_retryable());
        assert!(!StoreError::Rejected("map an audience first".into()).is_retryable());
        assert!(!StoreError::not_found("run", "x").is_retryable());
    }

    #[test]
    fn messages_say_what_to_do() {
        let err = StoreError::Conflict {
            what: "an audience named \"Backers\" in this account".into(),
            field: "name",
        };
        assert_eq!(
            err.to_string(),
            "an audience named \"Backers\" in this account already exists; choose another name"
        );
    }
}
