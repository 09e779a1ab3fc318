//! `pledgesync-ui`: the product's setup guide as web pages — Integrations, Add Integration, Map
//! Audience and Integration Detail with Sync Now — served from the binary that mounts
//! [`router`] (the scheduler), with every page and asset compiled in.
//!
//! The pages are static shells plus a small vanilla-JavaScript module each. The browser signs in
//! with an API bearer token (kept in the tab's `sessionStorage`) and calls the scheduler's public
//! `/v1` API with it, exactly as any other client does.
//!
//! It must never hold or render data on the server side (no route here reads a token, a secret or
//! the database: there is no privileged back door), never put inline script or style into a page
//! (a strict Content-Security-Policy forbids both), and never serve a route the scheduler owns
//! (`/v1/*`, `/healthz`, `/readyz`, `/metrics`, `/openapi.json`) — only `/`, `/ui` and `/ui/*`.
//!
//! Modules:
//! - [`pages`]: the pages, their layout and the handlers that serve them.
//! - [`assets`]: the embedded stylesheet, scripts and icon.
//! - [`security`]: the headers every answer carries (CSP, no sniffing, no framing, no referrer).

pub mod assets;
pub mod pages;
pub mod security;

use axum::middleware;
use axum::response::Redirect;
use axum::routing::get;
use axum::Router;

/// Where the pages live; everything this crate serves is under it (plus the `/` redirect).
pub const BASE: &str = "/ui";

/// The pages and their assets. Merge it into the scheduler's router at `/`:
/// `Router::new().merge(api_router).merge(pledgesync_ui::router())`. It has no fallback of its
/// own, so the merge keeps the scheduler's JSON 404 for everything outside `/ui`.
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::integrations))
        .route("/ui/sign-in", get(pages::sign_in))
        .route("/ui/integrations/new", get(pages::add_integration))
        .route("/ui/integrations/{id}", get(pages::integration_detail))
        .route("/ui/integrations/{id}/audience", get(pages::map_audience))
        .route("/ui/assets/{file}", get(assets::serve))
        .route("/ui/{*rest}", get(pages::not_found))
        .layer(middleware::map_response(security::headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use tower::ServiceExt as _;

    async fn get(path: &str) -> axum::response::Response {
        router()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    #[tokio::test]
    async fn the_root_and_bare_base_redirect_to_the_pages() {
        for path in ["/", "/ui"] {
            let response = get(path).await;
            assert!(
                response.status().is_redirection(),
                "{path}: {}",
                response.status()
            );
            assert_eq!(response.headers()[header::LOCATION], "/ui/");
        }
    }

    #[tokio::test]
    async fn every_page_is_served_with_the_security_headers() {
        let id = "0190f3b4-6c3e-7d1a-9a55-3f7c2b8e1d20";
        for path in [
            "/ui/".to_owned(),
            "/ui/sign-in".to_owned(),
            "/ui/integrations/new".to_owned(),
            format!("/ui/integrations/{id}"),
            format!("/ui/integrations/{id}/audience"),
        ] {
            let response = get(&path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers();
            assert_eq!(
                headers[header::CONTENT_TYPE],
                "text/html; charset=utf-8",
                "{path}"
            );
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                security::CONTENT_SECURITY_POLICY,
                "{path}"
            );
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        }
    }

    #[tokio::test]
    async fn unknown_pages_and_malformed_ids_are_html_404s() {
        for path in [
            "/ui/nope",
            "/ui/integrations/not-an-id",
            "/ui/integrations/xyz/audience",
            "/ui/assets/missing.js",
        ] {
            let response = get(path).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert!(
                response
                    .headers()
                    .contains_key(header::CONTENT_SECURITY_POLICY),
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn nothing_the_scheduler_owns_is_routed_here() {
        for path in [
            "/v1/integrations",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
        ] {
            assert_eq!(
                get(path).await.status(),
                StatusCode::NOT_FOUND,
                "{path} must stay the scheduler's"
            );
        }
    }

    #[test]
    fn merges_with_a_router_that_has_a_fallback() {
        // The scheduler's router has its own fallback; merging must not panic.
        let api: Router = Router::new()
            .route("/v1/ping", axum::routing::get(|| async { "pong" }))
            .fallback(|| async { "api 404" });
        let _ = api.merge(router());
    }
}
