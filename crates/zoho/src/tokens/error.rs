//! Why no access token could be had, classified retryable or permanent.

use std::fmt;
use std::time::Duration;

/// What Zoho rejected when it refused to refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReauthReason {
    /// `invalid_code` on refresh: the refresh token was revoked, deleted or never valid.
    RefreshTokenRejected,
    /// `invalid_client`: the Self Client was deleted.
    ClientRejected,
    /// `invalid_client_secret`: the Client Secret was regenerated.
    SecretRejected,
}

impl ReauthReason {
    /// A stable, short name for Redis markers and metrics.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ReauthReason::RefreshTokenRejected => "refresh_token",
            ReauthReason::ClientRejected => "client",
            ReauthReason::SecretRejected => "secret",
        }
    }

    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "client" => ReauthReason::ClientRejected,
            "secret" => ReauthReason::SecretRejected,
            _ => ReauthReason::RefreshTokenRejected,
        }
    }
}

impl fmt::Display for ReauthReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReauthReason::RefreshTokenRejected => {
                "the refresh token was revoked or is no longer valid"
            }
            ReauthReason::ClientRejected => "the Self Client no longer exists",
            ReauthReason::SecretRejected => "the Client Secret no longer matches the Client ID",
        })
    }
}

/// Why [`crate::TokenStore::access_token`] failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TokenError {
    /// Permanent: Zoho rejected the integration's credentials. Never retried in a loop.
    #[error("Zoho rejected the integration's credentials ({reason}): reconnect the integration with a new grant code from the Zoho API Console (Self Client → Generate Code, scope ZohoCRM.modules.ALL,ZohoCRM.org.READ)")]
    NeedsReauth {
        /// What Zoho rejected.
        reason: ReauthReason,
    },
    /// Zoho throttled refreshes for this integration; every worker waits out the cool-down.
    #[error("Zoho is throttling token refreshes for this integration; the next refresh is allowed in {} s", retry_after.as_secs())]
    Throttled {
        /// Time left in the shared cool-down.
        retry_after: Duration,
    },
    /// The accounts server could not be reached or answered nonsense.
    #[error("no access token: {reason}; retry later")]
    Unavailable {
        /// What happened, never a token.
        reason: String,
    },
    /// Another worker's refresh did not land within the wait.
    #[error("no access token within {} ms: another worker's refresh of this integration did not finish in time; retry later", waited.as_millis())]
    WaitTimedOut {
        /// How long the caller waited.
        waited: Duration,
    },
    /// Redis failed.
    #[error("Redis, which holds the shared Zoho tokens, failed ({0}); retry when it is back")]
    Redis(String),
}

impl TokenError {
    /// Whether asking again later may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, TokenError::NeedsReauth { .. })
    }

    /// The least time to wait before asking again, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TokenError::Throttled { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

impl From<crate::RedisPoolError> for TokenError {
    fn from(e: crate::RedisPoolError) -> Self {
        TokenError::Redis(e.to_string())
    }
}

impl From<redis::RedisError> for TokenError {
    fn from(e: redis::RedisError) -> Self {
        TokenError::Redis(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_reauth_is_permanent_and_says_what_to_do() {
        let e = TokenError::NeedsReauth {
            reason: ReauthReason::RefreshTokenRejected,
        };
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            "Zoho rejected the integration's credentials (the refresh token was revoked or is no longer valid): reconnect the integration with a new grant code from the Zoho API Console (Self Client → Generate Code, scope ZohoCRM.modules.ALL,ZohoCRM.org.READ)"
        );
        let throttled = TokenError::Throttled {
            retry_after: Duration::from_secs(42),
        };
        assert!(throttled.is_retryable());
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(42)));
        for reason in [
            ReauthReason::RefreshTokenRejected,
            ReauthReason::ClientRejected,
            ReauthReason::SecretRejected,
        ] {
            assert_eq!(ReauthReason::parse(reason.as_str()), reason);
        }
    }
}
