//! Bearer-token authentication of every API route but the probes.
//!
//! Tokens are compared in constant time: both sides are hashed with SHA-256 first, so neither the
//! content nor the length of a configured token leaks through timing, and every configured token
//! is compared (no early exit on the first match).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::api::error::ApiError;

/// The accepted tokens, kept only as SHA-256 digests.
#[derive(Clone)]
pub struct Tokens {
    digests: Arc<Vec<[u8; 32]>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.digests.len())
    }
}

impl Tokens {
    pub fn new(tokens: &[SecretString]) -> Self {
        Self {
            digests: Arc::new(
                tokens
                    .iter()
                    .map(|t| digest(t.expose_secret().as_bytes()))
                    .collect(),
            ),
        }
    }

    /// Whether `presented` is one of the tokens, in time independent of which or whether.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let presented = digest(presented);
        let matched = self
            .digests
            .iter()
            .fold(Choice::from(0), |acc, known| acc | known.ct_eq(&presented));
        bool::from(matched)
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(request: &Request) -> Option<&[u8]> {
    let value = request.headers().get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| token.trim_ascii())
}

/// Middleware: 401 unless the request carries an accepted bearer token.
pub async fn require_token(State(tokens): State<Tokens>, request: Request, next: Next) -> Response {
    match bearer(&request) {
        Some(token) if !token.is_empty() && tokens.accepts(token) => next.run(request).await,
        _ => {
            metrics::counter!("pledgesync_api_unauthorized_total").increment(1);
            ApiError::unauthorized().into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_tokens() {
        let tokens = Tokens::new(&[
            SecretString::from("first-token-0123456789"),
            SecretString::from("second-token-0123456789"),
        ]);
        assert!(tokens.accepts(b"first-token-0123456789"));
        assert!(tokens.accepts(b"second-token-0123456789"));
        assert!(!tokens.accepts(b"first-token-012345678"));
        assert!(!tokens.accepts(b""));
        assert!(!format!("{tokens:?}").contains("first"));
    }

    #[test]
    fn reads_the_bearer_scheme() {
        let request = |value: &str| {
            Request::builder()
                .header(header::AUTHORIZATION, value)
                .body(axum::body::Body::empty())
                .expect("request")
        };
        assert_eq!(bearer(&request("Bearer abc")), Some(&b"abc"[..]));
        assert_eq!(bearer(&request("bearer  abc ")), Some(&b"abc"[..]));
        assert_eq!(bearer(&request("Basic abc")), None);
        assert_eq!(bearer(&request("Bear")), None);
    }
}
