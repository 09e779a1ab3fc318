//! The headers every page and asset is answered with.
//!
//! The Content-Security-Policy allows scripts, styles, images and fetches from this origin only,
//! and nothing inline: data the API returns can never run as script in these pages, even if a
//! bug put it into the DOM as markup. Pages may not be framed (clickjacking of Sync Now) and
//! send no referrer.

use axum::http::{header, HeaderValue};
use axum::response::Response;

/// The policy of every answer of this router.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// Middleware (`map_response`): adds the security headers, and `no-cache` unless set.
pub async fn headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    // Pages and assets change with the binary: revalidate rather than serve a stale script.
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache"));
    response
}
