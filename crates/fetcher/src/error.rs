//! What can stop a job, and what each failure means for the run.
//!
//! Three kinds: the creator must act (re-authorise, grant a scope, fix a module) — the run fails
//! with a message for them and the job is acked; something was briefly away (Zoho 5xx/429 after
//! the client's own retries, RabbitMQ, PostgreSQL, Redis) — the job is retried from its
//! checkpoint; or the fetcher's own state is broken (a checkpoint it cannot read) — permanent.

/// Which service a failure came from; the label of the `pledgesync_fetcher_errors_total` metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Zoho,
    Postgres,
    RabbitMq,
    Secrets,
    Checkpoint,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Zoho => "zoho",
            Source::Postgres => "postgres",
            Source::RabbitMq => "rabbitmq",
            Source::Secrets => "secrets",
            Source::Checkpoint => "checkpoint",
        }
    }
}

/// The message a creator reads when Zoho no longer accepts the integration's credentials.
pub const REAUTH_MESSAGE: &str = "Zoho rejected the stored refresh token (it was revoked, replaced or the Self Client \
changed): generate a new grant code in the Zoho API Console with scope ZohoCRM.modules.ALL,ZohoCRM.org.READ and \
re-authorise the integration with it";

/// A job could not go on.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Zoho no longer accepts the integration's credentials: the creator must re-authorise.
    #[error("{REAUTH_MESSAGE} ({detail})")]
    NeedsReauth {
        /// What Zoho said, never a secret.
        detail: String,
    },
    /// A Zoho call failed.
    #[error("{message}")]
    Zoho {
        /// The client's explanation, which already says what to do.
        message: String,
        /// Whether trying again later may succeed.
        retryable: bool,
        /// Whether the creator must reconnect the integration (e.g. a scope is missing).
        reauth: bool,
    },
    /// PostgreSQL failed.
    #[error("PostgreSQL: {message}")]
    Store {
        /// The store's explanation.
        message: String,
        /// Whether trying again later may succeed.
        retryable: bool,
    },
    /// RabbitMQ did not confirm a publish.
    #[error("RabbitMQ: {message}")]
    Broker {
        /// The broker's explanation.
        message: String,
        /// Whether trying again later may succeed.
        retryable: bool,
    },
    /// The integration's secrets cannot be decrypted with the configured keys.
    #[error("the integration's stored secrets cannot be decrypted ({0}); check security.encryption_key and security.retired_keys, or re-authorise the integration")]
    Secrets(String),
    /// The integration may not sync (disabled, deleted, or already marked for re-authorisation).
    #[error("{0}")]
    Inactive(String),
    /// The run's checkpoint was written by an incompatible build or edited by hand.
    #[error("the run's checkpoint cannot be read ({0}); start a new run")]
    Checkpoint(String),
}

impl FetchError {
    /// Whether the same job may succeed when delivered again.
    pub fn is_retryable(&self) -> bool {
        match self {
            FetchError::Zoho { retryable, .. }
            | FetchError::Store { retryable, .. }
            | FetchError::Broker { retryable, .. } => *retryable,
            FetchError::NeedsReauth { .. }
            | FetchError::Secrets(_)
            | FetchError::Inactive(_)
            | FetchError::Checkpoint(_) => false,
        }
    }

    /// Whether the integration must be marked as needing re-authorisation.
    pub fn needs_reauth(&self) -> bool {
        matches!(
            self,
            FetchError::NeedsReauth { .. } | FetchError::Zoho { reauth: true, .. }
        )
    }

    /// Where the failure came from.
    pub fn source(&self) -> Source {
        match self {
            FetchError::NeedsReauth { .. } | FetchError::Zoho { .. } => Source::Zoho,
            FetchError::Store { .. } | FetchError::Inactive(_) => Source::Postgres,
            FetchError::Broker { .. } => Source::RabbitMq,
            FetchError::Secrets(_) => Source::Secrets,
            FetchError::Checkpoint(_) => Source::Checkpoint,
        }
    }

    pub fn store(message: impl Into<String>, retryable: bool) -> Self {
        FetchError::Store {
            message: message.into(),
            retryable,
        }
    }

    pub fn broker(message: impl Into<String>, retryable: bool) -> Self {
        FetchError::Broker {
            message: message.into(),
            retryable,
        }
    }

    pub fn zoho(message: impl Into<String>, retryable: bool) -> Self {
        FetchError::Zoho {
            message: message.into(),
            retryable,
            reauth: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert!(FetchError::zoho("503", true).is_retryable());
        assert!(!FetchError::zoho("INVALID_MODULE", false).is_retryable());
        assert!(FetchError::store("down", true).is_retryable());
        assert!(FetchError::broker("no confirm", true).is_retryable());
        let reauth = FetchError::NeedsReauth {
            detail: "invalid_code".into(),
        };
        assert!(!reauth.is_retryable() && reauth.needs_reauth());
        assert!(!FetchError::Secrets("bad tag".into()).is_retryable());
        assert!(!FetchError::Checkpoint("v9".into()).is_retryable());
    }

    #[test]
    fn the_reauth_message_tells_the_creator_what_to_do() {
        let text = FetchError::NeedsReauth {
            detail: "invalid_code".into(),
        }
        .to_string();
        assert!(
            text.starts_with("Zoho rejected the stored refresh token"),
            "{text}"
        );
        assert!(
            text.contains("generate a new grant code") && text.contains("re-authorise"),
            "{text}"
        );
    }
}
