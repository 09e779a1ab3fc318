//! Every way a CRM call can fail, each classified retryable or permanent where it is known.

use std::time::Duration;

use crate::tokens::TokenError;

/// A CRM call that did not produce data.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CrmError {
    /// Zoho refused the access token (401 `INVALID_TOKEN`). Retried once with a fresh token by
    /// the client; seen by callers only if the fresh token was refused too.
    #[error("Zoho refused the access token even after a refresh ({code}); if this repeats, reconnect the integration with a new grant code")]
    TokenRejected {
        /// Zoho's code, `INVALID_TOKEN` or `AUTHENTICATION_FAILURE`.
        code: String,
    },
    /// The token lacks a scope for this call (`OAUTH_SCOPE_MISMATCH`).
    #[error("Zoho refused {endpoint}: the integration's token lacks the scope for it; reconnect the integration with a grant code for the scope ZohoCRM.modules.ALL,ZohoCRM.org.READ")]
    ScopeMismatch {
        /// The endpoint that was refused.
        endpoint: &'static str,
    },
    /// The Zoho user lacks permission (`NO_PERMISSION`).
    #[error("the Zoho user who made the Self Client may not read {endpoint} (NO_PERMISSION); ask the org's Zoho administrator to grant that user's profile read access, then sync again")]
    NoPermission {
        /// The endpoint that was refused.
        endpoint: &'static str,
    },
    /// The module does not exist in this org (`INVALID_MODULE`).
    #[error("the module {module} does not exist in this Zoho org (INVALID_MODULE); check the org's CRM edition and modules")]
    InvalidModule {
        /// The module's API name.
        module: String,
    },
    /// Any other Zoho error envelope (also when it arrived with HTTP 200).
    #[error("Zoho CRM answered {code} (HTTP {status}) to {endpoint}: {message}")]
    Api {
        /// The endpoint called.
        endpoint: &'static str,
        /// HTTP status.
        status: u16,
        /// Zoho's error code, e.g. `INVALID_DATA`.
        code: String,
        /// Zoho's message, shortened.
        message: String,
        /// Whether trying again later may succeed (5xx and `INTERNAL_ERROR`).
        retryable: bool,
    },
    /// 429 `TOO_MANY_REQUESTS`: the org's credits or concurrency are exhausted at Zoho.
    #[error("Zoho is rate limiting this org (429 TOO_MANY_REQUESTS); retry in {} s", retry_after.as_secs())]
    RateLimited {
        /// How long to back off.
        retry_after: Duration,
    },
    /// pledgesync's share of the org's daily credits is spent.
    #[error("pledgesync's share of this org's Zoho API credits for the last 24 hours is spent; syncing resumes in {} s", retry_after.as_secs())]
    CreditsExhausted {
        /// When enough credits are freed.
        retry_after: Duration,
    },
    /// No concurrency slot for the org within the wait.
    #[error("all {limit} concurrent Zoho calls allowed for this org stayed busy for {} ms; retry later", waited.as_millis())]
    ConcurrencyWait {
        /// The per-org limit.
        limit: u32,
        /// How long the call waited.
        waited: Duration,
    },
    /// A server error without a Zoho envelope (a proxy, an outage page).
    #[error("Zoho CRM answered HTTP {status} to {endpoint}; retry later")]
    Server {
        /// The endpoint called.
        endpoint: &'static str,
        /// HTTP status.
        status: u16,
    },
    /// No answer: connection refused or dropped, or a timeout.
    #[error("Zoho CRM could not be reached for {endpoint}: {reason}")]
    Transport {
        /// The endpoint called.
        endpoint: &'static str,
        /// What happened (never a URL or a token).
        reason: String,
    },
    /// A success status with a body that is not what the endpoint returns (e.g. cut short).
    #[error("Zoho CRM's answer to {endpoint} could not be read ({what}); retry later")]
    Malformed {
        /// The endpoint called.
        endpoint: &'static str,
        /// What was wrong, never the body.
        what: &'static str,
    },
    /// The access token could not be had.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Redis, which holds the shared limits, failed.
    #[error("Redis, which holds the per-org Zoho limits, failed ({0}); retry when it is back")]
    Redis(String),
    /// More than 100,000 records share one `Modified_Time`: Zoho's paging cannot get past them.
    #[error("more than 100,000 {module} records share one Modified_Time, which Zoho's paging cannot get past; contact support to sync this org with a bulk export")]
    PagingStalled {
        /// The module read.
        module: String,
    },
    /// The request itself is wrong for Zoho (a caller bug).
    #[error("invalid Zoho request: {0}")]
    InvalidRequest(String),
}

impl CrmError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            CrmError::TokenRejected { .. }
            | CrmError::ScopeMismatch { .. }
            | CrmError::NoPermission { .. }
            | CrmError::InvalidModule { .. }
            | CrmError::PagingStalled { .. }
            | CrmError::InvalidRequest(_) => false,
            CrmError::Api { retryable, .. } => *retryable,
            CrmError::Token(e) => e.is_retryable(),
            CrmError::RateLimited { .. }
            | CrmError::CreditsExhausted { .. }
            | CrmError::ConcurrencyWait { .. }
            | CrmError::Server { .. }
            | CrmError::Transport { .. }
            | CrmError::Malformed { .. }
            | CrmError::Redis(_) => true,
        }
    }

    /// The least time to wait before trying again, when the failure says.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CrmError::RateLimited { retry_after } | CrmError::CreditsExhausted { retry_after } => {
                Some(*retry_after)
            }
            CrmError::Token(e) => e.retry_after(),
            _ => None,
        }
    }

    /// Whether the integration must be reconnected by its creator before it can sync again.
    pub fn needs_reauth(&self) -> bool {
        matches!(
            self,
            CrmError::Token(TokenError::NeedsReauth { .. }) | CrmError::ScopeMismatch { .. }
        )
    }

    /// Zoho's error code, when the failure is a Zoho error envelope.
    pub fn zoho_code(&self) -> Option<&str> {
        match self {
            CrmError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Classifies a Zoho error envelope (`{"code","details","message","status":"error"}`).
    pub(crate) fn from_envelope(
        endpoint: &'static str,
        module: &str,
        status: u16,
        code: &str,
        message: &str,
    ) -> Self {
        match code {
            "INVALID_TOKEN" | "AUTHENTICATION_FAILURE" => CrmError::TokenRejected {
                code: code.to_owned(),
            },
            "OAUTH_SCOPE_MISMATCH" => CrmError::ScopeMismatch { endpoint },
            "NO_PERMISSION" => CrmError::NoPermission { endpoint },
            "INVALID_MODULE" => CrmError::InvalidModule {
                module: module.to_owned(),
            },
            "TOO_MANY_REQUESTS" => CrmError::RateLimited {
                retry_after: Duration::ZERO,
            },
            _ => CrmError::Api {
                endpoint,
                status,
                code: sanitize(code, 64),
                message: sanitize(message, 200),
                retryable: status >= 500 || code == "INTERNAL_ERROR",
            },
        }
    }
}

/// Keeps printable characters only, and at most `max` of them.
fn sanitize(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_classified() {
        let e = |status, code| CrmError::from_envelope("records", "Contacts", status, code, "msg");
        assert!(!e(401, "OAUTH_SCOPE_MISMATCH").is_retryable());
        assert!(e(401, "OAUTH_SCOPE_MISMATCH").needs_reauth());
        assert!(!e(403, "NO_PERMISSION").is_retryable());
        assert!(!e(400, "INVALID_MODULE").is_retryable());
        assert!(!e(400, "INVALID_DATA").is_retryable());
        assert!(!e(400, "TOKEN_BOUND_DATA_MISMATCH").is_retryable());
        assert!(e(500, "INTERNAL_ERROR").is_retryable());
        assert!(e(200, "INTERNAL_ERROR").is_retryable());
        assert!(e(429, "TOO_MANY_REQUESTS").is_retryable());
        assert!(matches!(
            e(401, "INVALID_TOKEN"),
            CrmError::TokenRejected { .. }
        ));
        assert_eq!(e(400, "EXPIRED_VALUE").zoho_code(), Some("EXPIRED_VALUE"));
    }

    #[test]
    fn messages_tell_what_to_do() {
        let e = CrmError::from_envelope("org", "", 401, "OAUTH_SCOPE_MISMATCH", "Unauthorized");
        assert_eq!(
            e.to_string(),
            "Zoho refused org: the integration's token lacks the scope for it; reconnect the integration with a grant code for the scope ZohoCRM.modules.ALL,ZohoCRM.org.READ"
        );
        let e = CrmError::from_envelope(
            "records",
            "Deals",
            400,
            "INVALID_MODULE",
            "the module name given seems to be invalid",
        );
        assert_eq!(
            e.to_string(),
            "the module Deals does not exist in this Zoho org (INVALID_MODULE); check the org's CRM edition and modules"
        );
    }
}
