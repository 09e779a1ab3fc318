//! The HTTP API: routes, the middleware every request passes, and the handlers by resource.
//!
//! Every route but the probes needs a bearer token. Every answer that is not a success has the
//! shape of [`error::ApiError`]: unknown routes, wrong methods, oversized or malformed bodies,
//! bad paths and queries, and even a panic in a handler.

pub mod audiences;
pub mod auth;
pub mod connect;
pub mod dead_letters;
pub mod error;
pub mod extract;
pub mod integrations;
mod observe;
pub mod openapi;
pub mod runs;
pub mod setup;
pub mod views;

use std::any::Any;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put, MethodRouter};
use axum::{middleware, Extension, Router};
use pledgesync_core::probes::{self, ReadinessCheck};
use tower_http::catch_panic::CatchPanicLayer;

use crate::api::auth::Tokens;
use crate::api::error::ApiError;
use crate::api::extract::BodyLimit;
use crate::state::AppState;

/// One authenticated route: its method, its path template and its handler.
pub struct ApiRoute {
    /// The HTTP method.
    pub method: Method,
    /// The path template as axum and the OpenAPI document spell it (`/v1/runs/{id}`).
    pub path: &'static str,
    /// The handler.
    pub handler: MethodRouter<AppState>,
}

fn route(method: Method, path: &'static str, handler: MethodRouter<AppState>) -> ApiRoute {
    ApiRoute {
        method,
        path,
        handler,
    }
}

/// Every authenticated route. The router is built from this table, and a test checks that the
/// OpenAPI document describes each entry, so the two cannot drift apart.
pub fn api_routes() -> Vec<ApiRoute> {
    vec![
        route(Method::GET, "/openapi.json", get(openapi::document)),
        route(Method::POST, "/v1/audiences", post(audiences::create)),
        route(Method::GET, "/v1/audiences", get(audiences::list)),
        route(Method::GET, "/v1/audiences/{id}", get(audiences::get)),
        route(
            Method::GET,
            "/v1/audiences/{id}/members",
            get(audiences::members),
        ),
        route(Method::POST, "/v1/integrations", post(connect::create)),
        route(Method::GET, "/v1/integrations", get(integrations::list)),
        route(Method::GET, "/v1/integrations/{id}", get(integrations::get)),
        route(
            Method::PATCH,
            "/v1/integrations/{id}",
            patch(integrations::update),
        ),
        route(
            Method::DELETE,
            "/v1/integrations/{id}",
            delete(integrations::delete),
        ),
        route(
            Method::PUT,
            "/v1/integrations/{id}/audience",
            put(integrations::map_audience),
        ),
        route(
            Method::PUT,
            "/v1/integrations/{id}/credentials",
            put(connect::reconnect),
        ),
        route(
            Method::POST,
            "/v1/integrations/{id}/disable",
            post(integrations::disable),
        ),
        route(
            Method::POST,
            "/v1/integrations/{id}/enable",
            post(integrations::enable),
        ),
        route(
            Method::POST,
            "/v1/integrations/{id}/syncs",
            post(runs::start),
        ),
        route(Method::GET, "/v1/integrations/{id}/runs", get(runs::list)),
        route(Method::GET, "/v1/runs/{id}", get(runs::get)),
        route(Method::POST, "/v1/runs/{id}/cancel", post(runs::cancel)),
        route(Method::GET, "/v1/dead-letters", get(dead_letters::list)),
        route(
            Method::POST,
            "/v1/dead-letters/redrive",
            post(dead_letters::redrive),
        ),
    ]
}

/// The routes open without a token: the probes.
pub const OPEN_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The whole application router.
pub fn router(state: AppState, tokens: Tokens, body_limit: usize) -> Router {
    let authenticated = api_routes()
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler))
        .route_layer(middleware::from_fn_with_state(tokens, auth::require_token))
        .with_state(state.clone());
    let readiness: ReadinessCheck = Arc::new(move || {
        let state = state.clone();
        Box::pin(async move { state.readiness().await })
    });
    Router::new()
        .merge(authenticated)
        .merge(probes::router(readiness))
        // The setup pages: static shells that call this same API with the user's bearer token.
        .merge(pledgesync_ui::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(Extension(BodyLimit(body_limit)))
        // Inside `observe`, so that a (buggy) panic is still counted and traced as a 500.
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(observe::observe))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /openapi.json for the API")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see /openapi.json",
    )
}

/// A panic in a handler is a bug; the caller still gets the API's error shape.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    metrics::counter!("pledgesync_api_panics_total").increment(1);
    ApiError::internal(&detail).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn a_panicking_handler_still_answers_in_the_error_shape() {
        let router: Router = Router::new()
            .route(
                "/boom",
                get(|| async {
                    panic!("handler bug");
                    #[allow(unreachable_code)]
                    StatusCode::OK
                }),
            )
            .layer(CatchPanicLayer::custom(panic_response));
        let request = Request::builder()
            .uri("/boom")
            .body(Body::empty())
            .expect("request");
        let response = router.oneshot(request).await.expect("answer");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(body["error"]["code"], "internal");
        assert!(
            !body.to_string().contains("handler bug"),
            "details stay in the log: {body}"
        );
    }
}
