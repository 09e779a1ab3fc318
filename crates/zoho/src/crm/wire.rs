//! One HTTP exchange with the CRM API, and how its answer is read: 204/304 are empty successes,
//! a Zoho error envelope is an error whatever the status (HTTP 200 included), anything else that
//! is not the expected JSON is `Malformed`.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, AUTHORIZATION, IF_MODIFIED_SINCE};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::Instrument as _;

use crate::crm::CrmError;
use crate::secret::AccessToken;
use crate::telemetry;

/// A CRM request, before authentication.
#[derive(Clone, Debug)]
pub(crate) struct ApiRequest {
    /// Metric/span label: `records`, `deleted`, `count`, `org`.
    pub endpoint: &'static str,
    /// The module's API name, or empty.
    pub module: String,
    /// Path below the API base, e.g. `/crm/v8/Contacts`.
    pub path: String,
    /// Query parameters.
    pub query: Vec<(&'static str, String)>,
    /// `If-Modified-Since`, as Zoho wants it (ISO-8601 with offset).
    pub if_modified_since: Option<String>,
}

/// A CRM answer worth reading.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A JSON object, as text: a page of records is cut into records without building a tree
    /// of it ([`crate::crm::paging`]); other answers are read with [`JsonObject::tree`].
    Json(JsonObject),
    /// 204 No Content or 304 Not Modified.
    Empty,
}

/// The text of an answer that [`classify`] found to be a JSON object.
pub(crate) struct JsonObject(Vec<u8>);

impl JsonObject {
    /// The text.
    pub fn text(&self) -> &[u8] {
        &self.0
    }

    /// The object as a tree.
    pub fn tree(&self, endpoint: &'static str) -> Result<Map<String, Value>, CrmError> {
        serde_json::from_slice(&self.0).map_err(|_| CrmError::Malformed {
            endpoint,
            what: "not a JSON object",
        })
    }

    /// An object from a tree, for tests.
    #[cfg(test)]
    pub fn from_tree(map: Map<String, Value>) -> Self {
        Self(Value::Object(map).to_string().into_bytes())
    }
}

/// Never the text: an answer holds a creator's CRM data.
impl std::fmt::Debug for JsonObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JsonObject({} bytes)", self.0.len())
    }
}

/// The top-level fields of an answer that say whether it is a Zoho error envelope; all others
/// are skipped without being built.
#[derive(Deserialize)]
struct EnvelopeFields {
    status: Option<Value>,
    code: Option<Value>,
    message: Option<Value>,
}

/// What one exchange produced, with the `X-API-CREDITS-REMAINING` header if Zoho sent it.
pub(crate) struct Exchange {
    pub result: Result<Reply, CrmError>,
    pub credits_remaining: Option<u64>,
}

/// Sends `request` with `token` to `base` (no retry, no limits: the caller owns those).
pub(crate) async fn send(
    http: &reqwest::Client,
    base: &str,
    token: &AccessToken,
    request: &ApiRequest,
    timeout: Duration,
) -> Exchange {
    let span = tracing::info_span!(
        "zoho.call",
        endpoint = request.endpoint,
        module = %request.module,
        status = tracing::field::Empty,
    );
    async {
        let started = Instant::now();
        let exchange = exchange(http, base, token, request, timeout).await;
        let label = match (&exchange.0, &exchange.1.result) {
            (Some(status), _) => status.to_string(),
            (None, Err(CrmError::Transport { reason, .. })) if reason.starts_with("no answer") => {
                "timeout".to_owned()
            }
            (None, _) => "transport".to_owned(),
        };
        tracing::Span::current().record("status", label.as_str());
        telemetry::record_call(request.endpoint, &label, started);
        exchange.1
    }
    .instrument(span)
    .await
}

async fn exchange(
    http: &reqwest::Client,
    base: &str,
    token: &AccessToken,
    request: &ApiRequest,
    timeout: Duration,
) -> (Option<u16>, Exchange) {
    let transport = |reason: String| Exchange {
        result: Err(CrmError::Transport {
            endpoint: request.endpoint,
            reason,
        }),
        credits_remaining: None,
    };
    let mut auth = match HeaderValue::from_str(&format!("Zoho-oauthtoken {}", token.expose())) {
        Ok(value) => value,
        Err(_) => {
            return (
                None,
                Exchange {
                    result: Err(CrmError::TokenRejected {
                        code: "unusable token characters".to_owned(),
                    }),
                    credits_remaining: None,
                },
            )
        }
    };
    auth.set_sensitive(true);
    let mut builder = http
        .get(format!("{base}{}", request.path))
        .query(&request.query)
        .header(AUTHORIZATION, auth)
        .timeout(timeout);
    if let Some(since) = &request.if_modified_since {
        builder = builder.header(IF_MODIFIED_SINCE, since);
    }
    let answer = tokio::time::timeout(timeout, async {
        let response = builder.send().await?;
        let status = response.status().as_u16();
        let credits = response
            .headers()
            .get("x-api-credits-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, credits, body))
    })
    .await;
    match answer {
        Ok(Ok((status, credits_remaining, body))) => (
            Some(status),
            Exchange {
                // Unshared, so the page's text moves into its reply instead of being copied.
                result: classify(request.endpoint, &request.module, status, Vec::from(body)),
                credits_remaining,
            },
        ),
        Ok(Err(e)) => (None, transport(e.without_url().to_string())),
        Err(_) => (
            None,
            transport(format!("no answer within {} ms", timeout.as_millis())),
        ),
    }
}

/// Reads an answer. Never quotes the body in an error. An owned body becomes the reply's text
/// as it is.
pub(crate) fn classify<B: AsRef<[u8]> + Into<Vec<u8>>>(
    endpoint: &'static str,
    module: &str,
    status: u16,
    answer: B,
) -> Result<Reply, CrmError> {
    let body = answer.as_ref();
    if status == 204 || status == 304 {
        return Ok(Reply::Empty);
    }
    // Reading only the envelope's fields still checks that the whole body is valid JSON.
    let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let fields = is_object
        .then(|| serde_json::from_slice::<EnvelopeFields>(body).ok())
        .flatten();
    if let Some(envelope) = fields.as_ref().and_then(error_envelope) {
        if status == 429 {
            return Err(CrmError::RateLimited {
                retry_after: Duration::ZERO,
            });
        }
        return Err(CrmError::from_envelope(
            endpoint, module, status, envelope.0, envelope.1,
        ));
    }
    match status {
        200..=299 => match fields {
            Some(_) => Ok(Reply::Json(JsonObject(answer.into()))),
            // A 200 with an empty body is how some Zoho endpoints say "nothing".
            None if body.iter().all(u8::is_ascii_whitespace) => Ok(Reply::Empty),
            None if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() => {
                Err(CrmError::Malformed {
                    endpoint,
                    what: "not a JSON object",
                })
            }
            None => Err(CrmError::Malformed {
                endpoint,
                what: "not JSON",
            }),
        },
        401 => Err(CrmError::TokenRejected {
            code: "HTTP 401".to_owned(),
        }),
        429 => Err(CrmError::RateLimited {
            retry_after: Duration::ZERO,
        }),
        _ if status >= 500 => Err(CrmError::Server { endpoint, status }),
        _ => Err(CrmError::Api {
            endpoint,
            status,
            code: format!("HTTP_{status}"),
            message: "no Zoho error body".to_owned(),
            retryable: false,
        }),
    }
}

/// `(code, message)` of a top-level Zoho error envelope.
fn error_envelope(fields: &EnvelopeFields) -> Option<(&str, &str)> {
    let is_error = fields.status.as_ref().and_then(Value::as_str) == Some("error");
    let code = fields.code.as_ref().and_then(Value::as_str)?;
    is_error.then(|| {
        (
            code,
            fields
                .message
                .as_ref()
                .and_then(Value::as_str)
                .unwrap_or(""),
        )
    })
}

/// The organisation an integration reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgInfo {
    /// Zoho's org id (digits, as a string).
    pub id: String,
    /// `company_name`.
    pub name: String,
    /// IANA time zone of the org, e.g. `Asia/Kolkata`; Zoho's timestamps carry its offset.
    pub time_zone: String,
}

pub(crate) fn parse_org(reply: Reply) -> Result<OrgInfo, CrmError> {
    let malformed = |what| CrmError::Malformed {
        endpoint: "org",
        what,
    };
    let Reply::Json(answer) = reply else {
        return Err(malformed("empty answer"));
    };
    let map = answer.tree("org")?;
    let org = map
        .get("org")
        .and_then(Value::as_array)
        .and_then(|orgs| orgs.first())
        .and_then(Value::as_object)
        .ok_or_else(|| malformed("no org object"))?;
    let text = |key: &str| match org.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Ok(OrgInfo {
        id: text("id").ok_or_else(|| malformed("no org id"))?,
        name: text("company_name").unwrap_or_default(),
        time_zone: text("time_zone").unwrap_or_default(),
    })
}

pub(crate) fn parse_count(reply: Reply) -> Result<u64, CrmError> {
    match reply {
        Reply::Empty => Ok(0),
        Reply::Json(answer) => answer
            .tree("count")?
            .get("count")
            .and_then(|c| {
                c.as_u64()
                    .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
            })
            .ok_or(CrmError::Malformed {
                endpoint: "count",
                what: "no count",
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_statuses_are_successes() {
        assert!(matches!(
            classify("records", "Contacts", 204, b""),
            Ok(Reply::Empty)
        ));
        assert!(matches!(
            classify("records", "Contacts", 304, b""),
            Ok(Reply::Empty)
        ));
    }

    #[test]
    fn an_error_envelope_with_http_200_is_an_error() {
        let body = br#"{"code":"INTERNAL_ERROR","details":{},"message":"Internal Server Error","status":"error"}"#;
        let err = classify("records", "Contacts", 200, body).expect_err("error, not data");
        assert!(err.is_retryable());
        let body = br#"{"code":"INVALID_MODULE","details":{"resource_path_index":0},"message":"the module name given seems to be invalid","status":"error"}"#;
        assert!(matches!(
            classify("records", "Deals", 400, body),
            Err(CrmError::InvalidModule { .. })
        ));
        let body = br#"{"code":"OAUTH_SCOPE_MISMATCH","details":{},"message":"Unauthorized","status":"error"}"#;
        assert!(matches!(
            classify("org", "", 401, body),
            Err(CrmError::ScopeMismatch { endpoint: "org" })
        ));
        let body = br#"{"code":"INVALID_TOKEN","details":{},"message":"invalid oauth token","status":"error"}"#;
        assert!(matches!(
            classify("records", "Contacts", 401, body),
            Err(CrmError::TokenRejected { .. })
        ));
        let body =
            br#"{"code":"TOO_MANY_REQUESTS","details":{},"message":"too many","status":"error"}"#;
        assert!(matches!(
            classify("records", "Contacts", 429, body),
            Err(CrmError::RateLimited { .. })
        ));
    }

    #[test]
    fn other_answers_are_classified_by_status() {
        assert!(matches!(
            classify("records", "Contacts", 502, b"<html>"),
            Err(CrmError::Server { status: 502, .. })
        ));
        assert!(matches!(
            classify("records", "Contacts", 200, b"{\"data\":[{\"id\""),
            Err(CrmError::Malformed { .. })
        ));
        assert!(matches!(
            classify("records", "Contacts", 429, b""),
            Err(CrmError::RateLimited { .. })
        ));
        let data = classify(
            "records",
            "Contacts",
            200,
            br#"{"data":[],"info":{"more_records":false}}"#,
        );
        assert!(matches!(data, Ok(Reply::Json(_))));
    }

    #[test]
    fn org_and_count_from_the_reference() {
        let body =
            br#"{"org":[{"id":"4150868000000002175","company_name":"Zylker","domain_name":"zylker",
            "time_zone":"Asia/Kolkata","currency":"INR","type":"production","max_per_page":200}]}"#;
        let org = parse_org(classify("org", "", 200, body).expect("json")).expect("org");
        assert_eq!(
            org,
            OrgInfo {
                id: "4150868000000002175".into(),
                name: "Zylker".into(),
                time_zone: "Asia/Kolkata".into()
            }
        );
        assert_eq!(
            parse_count(classify("count", "Leads", 200, br#"{"count": 42}"#).expect("json")).ok(),
            Some(42)
        );
        assert!(parse_org(Reply::Empty).is_err());
    }
}
