//! The token endpoint's answers, read the way Zoho writes them: errors come as HTTP 200 with an
//! `error` field, the throttle as `"error":"Access Denied"` (200 or 400), lifetimes in seconds or,
//! in the legacy form, `expires_in_sec` with `expires_in` in milliseconds.
//!
//! Parsing never quotes the body back: a successful body holds tokens, so errors say only what was
//! missing.

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};
use url::Url;

use crate::endpoints::parse_api_domain;
use crate::secret::{AccessToken, RefreshToken};

/// Zoho's documented access-token lifetime, assumed when an answer omits it.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The scopes the product asks creators to grant.
pub const REQUIRED_SCOPES: [&str; 2] = ["ZohoCRM.modules.ALL", "ZohoCRM.org.READ"];

/// A granted token set.
#[derive(Clone, Debug)]
pub struct TokenGrant {
    /// The new access token.
    pub access_token: AccessToken,
    /// Present on a code exchange; Zoho does not rotate refresh tokens on refresh.
    pub refresh_token: Option<RefreshToken>,
    /// How long the access token lives from the moment Zoho minted it.
    pub lifetime: Duration,
    /// The CRM API domain of the org's data centre, if Zoho sent one.
    pub api_domain: Option<Url>,
    /// The granted scopes, if Zoho listed them (refresh answers may not).
    pub scopes: Option<Scopes>,
}

/// Why the token endpoint said no.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `invalid_code`: a grant code expired, used or unknown, or a revoked/unknown refresh token.
    InvalidCode,
    /// `invalid_client`: the client id is unknown in this data centre.
    InvalidClient,
    /// `invalid_client_secret`: the secret does not match the client id.
    InvalidClientSecret,
    /// `Access Denied`: too many tokens requested; wait out Zoho's window.
    Throttled,
    /// Any other `error` value (sanitised: letters, digits, `_`, `-` and spaces, at most 64).
    Other(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::InvalidCode => f.write_str("invalid_code"),
            Refusal::InvalidClient => f.write_str("invalid_client"),
            Refusal::InvalidClientSecret => f.write_str("invalid_client_secret"),
            Refusal::Throttled => f.write_str("Access Denied"),
            Refusal::Other(code) => f.write_str(code),
        }
    }
}

/// A token endpoint answer.
#[derive(Clone, Debug)]
pub enum TokenReply {
    /// Tokens.
    Granted(TokenGrant),
    /// A refusal Zoho spelled out.
    Refused(Refusal),
}

/// An answer that is neither tokens nor a refusal: an outage or a proxy's error page.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the Zoho accounts server answered HTTP {status} without a usable token response ({what})")]
pub struct UnreadableReply {
    /// The HTTP status.
    pub status: u16,
    /// What was wrong, never the body itself.
    pub what: &'static str,
}

/// Reads a token endpoint answer.
pub fn parse_token_reply(status: u16, body: &[u8]) -> Result<TokenReply, UnreadableReply> {
    let unreadable = |what| UnreadableReply { status, what };
    let map: Map<String, Value> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(unreadable("not a JSON object")),
        Err(_) => return Err(unreadable("not JSON")),
    };
    if let Some(error) = map.get("error") {
        let text = error.as_str().unwrap_or_default();
        return Ok(TokenReply::Refused(classify_refusal(text)));
    }
    let access = map
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unreadable("no access_token"))?;
    let refresh = map
        .get("refresh_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(RefreshToken::new);
    let api_domain = map
        .get("api_domain")
        .and_then(Value::as_str)
        .and_then(parse_api_domain);
    let scopes = map.get("scope").and_then(Value::as_str).map(Scopes::parse);
    Ok(TokenReply::Granted(TokenGrant {
        access_token: AccessToken::new(access),
        refresh_token: refresh,
        lifetime: lifetime(&map),
        api_domain,
        scopes,
    }))
}

fn classify_refusal(text: &str) -> Refusal {
    let normalized = text.trim().to_ascii_lowercase().replace(' ', "_");
    match normalized.as_str() {
        "invalid_code" => Refusal::InvalidCode,
        "invalid_client" => Refusal::InvalidClient,
        "invalid_client_secret" => Refusal::InvalidClientSecret,
        // "Access Denied" is the refresh throttle; "access_denied" the grant-code throttle.
        "access_denied" => Refusal::Throttled,
        _ => Refusal::Other(
            text.chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' '))
                .take(64)
                .collect(),
        ),
    }
}

/// `expires_in_sec` (seconds, legacy) wins; otherwise `expires_in` is seconds.
fn lifetime(map: &Map<String, Value>) -> Duration {
    let number = |key: &str| -> Option<f64> {
        match map.get(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    number("expires_in_sec")
        .or_else(|| number("expires_in"))
        .filter(|secs| secs.is_finite() && *secs > 0.0 && *secs < 1e9)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_LIFETIME)
}

/// A set of OAuth scopes, compared case-insensitively.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// Parses a comma- (API Console) or space- (OAuth) separated list.
    pub fn parse(text: &str) -> Self {
        Self(
            text.split([',', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// The scopes as listed.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Whether `required` (one of [`REQUIRED_SCOPES`]) is granted. `ZohoCRM.modules.READ` is
    /// accepted for `ZohoCRM.modules.ALL` because pledgesync only reads.
    pub fn covers(&self, required: &str) -> bool {
        let accepted: &[&str] = if required.eq_ignore_ascii_case("ZohoCRM.modules.ALL") {
            &["ZohoCRM.modules.ALL", "ZohoCRM.modules.READ"]
        } else if required.eq_ignore_ascii_case("ZohoCRM.org.READ") {
            &["ZohoCRM.org.READ", "ZohoCRM.org.ALL"]
        } else {
            std::slice::from_ref(&required)
        };
        self.0
            .iter()
            .any(|granted| accepted.iter().any(|a| granted.eq_ignore_ascii_case(a)))
    }

    /// The product's required scopes that this set lacks, in [`REQUIRED_SCOPES`] order.
    pub fn missing(&self) -> Vec<&'static str> {
        REQUIRED_SCOPES
            .into_iter()
            .filter(|s| !self.covers(s))
            .collect()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(body: &str) -> TokenGrant {
        match parse_token_reply(200, body.as_bytes()) {
            Ok(TokenReply::Granted(grant)) => grant,
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    fn refused(status: u16, body: &str) -> Refusal {
        match parse_token_reply(status, body.as_bytes()) {
            Ok(TokenReply::Refused(refusal)) => refusal,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn code_exchange_answer_from_the_reference() {
        let grant = granted(
            r#"{"access_token":"1000.2dea.cf24","refresh_token":"1000.1ee1.c6d4","scope":"ZohoCRM.modules.ALL",
               "api_domain":"https://www.zohoapis.com","token_type":"Bearer","expires_in":3600}"#,
        );
        assert_eq!(grant.access_token.expose(), "1000.2dea.cf24");
        assert_eq!(
            grant.refresh_token.as_ref().map(|t| t.expose().to_owned()),
            Some("1000.1ee1.c6d4".to_owned())
        );
        assert_eq!(grant.lifetime, Duration::from_secs(3600));
        assert_eq!(
            grant.api_domain.as_ref().map(Url::as_str),
            Some("https://www.zohoapis.com/")
        );
        let scopes = grant.scopes.expect("scopes");
        assert_eq!(scopes.missing(), vec!["ZohoCRM.org.READ"]);
    }

    #[test]
    fn refresh_answer_and_legacy_lifetimes() {
        let grant = granted(
            r#"{"access_token":"1000.a.b","api_domain":"https://www.zohoapis.eu","token_type":"Bearer","expires_in":3600}"#,
        );
        assert!(grant.refresh_token.is_none());
        assert!(grant.scopes.is_none());
        let legacy =
            granted(r#"{"access_token":"1000.a.b","expires_in_sec":3600,"expires_in":3600000}"#);
        assert_eq!(legacy.lifetime, Duration::from_secs(3600));
        let short = granted(r#"{"access_token":"1000.a.b","expires_in":2}"#);
        assert_eq!(short.lifetime, Duration::from_secs(2));
        let missing = granted(r#"{"access_token":"1000.a.b"}"#);
        assert_eq!(missing.lifetime, DEFAULT_LIFETIME);
    }

    #[test]
    fn errors_come_with_http_200() {
        assert_eq!(
            refused(200, r#"{"error":"invalid_code"}"#),
            Refusal::InvalidCode
        );
        assert_eq!(
            refused(200, r#"{"error":"invalid_client"}"#),
            Refusal::InvalidClient
        );
        assert_eq!(
            refused(200, r#"{"error":"invalid_client_secret"}"#),
            Refusal::InvalidClientSecret
        );
        let throttle = r#"{"error_description":"You have made too many requests continuously. Please try again after some time.",
                           "error":"Access Denied","status":"failure"}"#;
        assert_eq!(refused(200, throttle), Refusal::Throttled);
        assert_eq!(refused(400, throttle), Refusal::Throttled);
        assert_eq!(
            refused(200, r#"{"error":"invalid_redirect_uri"}"#),
            Refusal::Other("invalid_redirect_uri".into())
        );
        assert_eq!(
            refused(200, r#"{"error":"<script>x</script>"}"#),
            Refusal::Other("scriptxscript".into())
        );
    }

    #[test]
    fn unreadable_answers_never_quote_the_body() {
        let err = parse_token_reply(502, b"<html>Bad Gateway</html>").expect_err("not json");
        assert_eq!(
            err,
            UnreadableReply {
                status: 502,
                what: "not JSON"
            }
        );
        let err = parse_token_reply(200, br#"{"refresh_token":"1000.secret"}"#)
            .expect_err("no access token");
        assert!(!err.to_string().contains("1000.secret"));
    }

    #[test]
    fn scopes_accept_comma_or_space_and_any_case() {
        let scopes = Scopes::parse("zohocrm.modules.all ZohoCRM.org.READ");
        assert!(scopes.missing().is_empty());
        assert!(Scopes::parse("ZohoCRM.modules.READ,ZohoCRM.org.READ")
            .missing()
            .is_empty());
        assert_eq!(
            Scopes::parse("ZohoCRM.org.READ").missing(),
            vec!["ZohoCRM.modules.ALL"]
        );
        assert_eq!(
            Scopes::parse("ZohoCRM.modules.contacts.READ").missing(),
            REQUIRED_SCOPES.to_vec()
        );
    }
}
