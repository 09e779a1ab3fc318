//! HTTP wiring: routes (unprefixed and under `/dc/{dc}`), the call-counting middleware, and a
//! listener whose connections a handler can close without answering (the drop_rate knob).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, MatchedPath, Request, State as Shared};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, patch, post};
use axum::serve::IncomingStream;
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::reply::{self, DropConnection};
use crate::state::State;
use crate::{console, count, crm, deleted, edit, meta, oauth};

/// Per-connection switch: once tripped, every write fails, so hyper closes the connection
/// without sending the answer it was about to write.
#[derive(Clone, Debug, Default)]
pub struct KillSwitch(Arc<AtomicBool>);

impl KillSwitch {
    /// Closes the connection at the next write.
    fn trip(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether it was tripped.
    fn tripped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A TCP stream with a [`KillSwitch`].
#[derive(Debug)]
pub struct Stream {
    /// The socket.
    inner: TcpStream,
    /// Its switch.
    kill: KillSwitch,
}

/// The error a killed connection's writes return.
fn killed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection dropped by the drop_rate knob",
    )
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.kill.tripped() {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.kill.tripped() {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A listener handing out [`Stream`]s.
#[derive(Debug)]
pub struct Listener(pub TcpListener);

impl axum::serve::Listener for Listener {
    type Io = Stream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Stream, SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok((inner, addr)) => {
                    let _ = inner.set_nodelay(true);
                    return (
                        Stream {
                            inner,
                            kill: KillSwitch::default(),
                        },
                        addr,
                    );
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, Listener>> for KillSwitch {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Self {
        stream.io().kill.clone()
    }
}

/// The stats key of a call: method plus route template without the `/dc/{dc}` prefix and with the
/// API version spelled out (`GET /crm/v8/{module}`).
fn endpoint_key(method: &str, template: Option<&str>, path: &str) -> String {
    let Some(template) = template else {
        return format!("{method} (unmatched)");
    };
    let template = template.strip_prefix("/dc/{dc}").unwrap_or(template);
    let mut key = format!("{method} {template}");
    if template.contains("{version}") {
        let segments: Vec<&str> = path.split('/').collect();
        let version = segments
            .iter()
            .position(|s| *s == "crm")
            .and_then(|i| segments.get(i + 1))
            .copied()
            .unwrap_or("{version}");
        key = key.replace("{version}", version);
    }
    key
}

/// Counts every Zoho-facing call by endpoint and status, and closes the connection of answers
/// marked [`DropConnection`].
async fn track(Shared(state): Shared<Arc<State>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let console = path.starts_with("/__emulator");
    let key = endpoint_key(
        req.method().as_str(),
        req.extensions().get::<MatchedPath>().map(|m| m.as_str()),
        &path,
    );
    let kill = req
        .extensions()
        .get::<ConnectInfo<KillSwitch>>()
        .map(|c| c.0.clone());
    let resp = next.run(req).await;
    let dropped = resp.extensions().get::<DropConnection>().is_some();
    if dropped {
        if let Some(kill) = kill {
            kill.trip();
        }
    }
    if !console {
        state.stats.with(|c| {
            if dropped {
                c.dropped_connections += 1;
                c.call(&key, "dropped");
            } else {
                c.call(&key, resp.status().as_str());
            }
        });
    }
    resp
}

/// Answers wrong verbs on CRM routes as Zoho does.
async fn crm_method_not_allowed() -> Response {
    reply::invalid_method()
}

/// Unknown paths: Zoho's envelope under `/crm`, a console-style 404 elsewhere.
async fn fallback(req: Request) -> Response {
    let path = req.uri().path();
    let crm = path.starts_with("/crm/") || (path.starts_with("/dc/") && path.contains("/crm/"));
    if crm {
        reply::invalid_url()
    } else {
        reply::console_error(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            "no such emulator endpoint",
        )
    }
}

/// The Zoho-facing routes (accounts and CRM), mounted at `/` and at `/dc/{dc}`.
fn zoho_routes(prefixed: bool) -> Router<Arc<State>> {
    let (token, revoke) = if prefixed {
        (post(oauth::token_dc), post(oauth::revoke_dc))
    } else {
        (post(oauth::token_default), post(oauth::revoke_default))
    };
    let crm = Router::new()
        .route("/crm/{version}/org", get(meta::org))
        .route("/crm/{version}/users", get(meta::users))
        .route("/crm/{version}/settings/modules", get(meta::modules))
        .route(
            "/crm/{version}/settings/modules/{api_name}",
            get(meta::module),
        )
        .route("/crm/{version}/settings/fields", get(meta::fields))
        .route("/crm/{version}/{module}", get(crm::list))
        .route("/crm/{version}/{module}/actions/count", get(count::count))
        .route("/crm/{version}/{module}/deleted", get(deleted::deleted))
        .method_not_allowed_fallback(crm_method_not_allowed);
    Router::new()
        .route("/oauth/v2/token", token)
        .route("/oauth/v2/token/revoke", revoke)
        .merge(crm)
}

/// The console routes.
fn console_routes() -> Router<Arc<State>> {
    Router::new()
        .route("/__emulator/health", get(console::health))
        .route(
            "/__emulator/orgs",
            post(console::create_org).get(console::list_orgs),
        )
        .route("/__emulator/self-clients", post(console::create_client))
        .route("/__emulator/grant-codes", post(console::create_code))
        .route(
            "/__emulator/clock",
            get(console::clock).post(console::advance),
        )
        .route(
            "/__emulator/knobs",
            get(console::knobs).put(console::set_knobs),
        )
        .route("/__emulator/stats", get(console::stats))
        .route("/__emulator/stats/reset", post(console::reset_stats))
        .route("/__emulator/tokens/expire-all", post(console::expire_all))
        .route(
            "/__emulator/tokens/{token}/expire",
            post(console::expire_token),
        )
        .route(
            "/__emulator/records/{module}",
            get(edit::list).post(edit::create),
        )
        .route("/__emulator/records/{module}/mutate", post(edit::mutate))
        .route(
            "/__emulator/records/{module}/{id}",
            patch(edit::update).delete(edit::delete),
        )
        .route("/__emulator/leads/{id}/convert", post(edit::convert))
}

/// The whole application.
pub fn app(state: Arc<State>) -> Router {
    Router::new()
        .merge(zoho_routes(false))
        .nest("/dc/{dc}", zoho_routes(true))
        .merge(console_routes())
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keys_are_templates_without_dc() {
        assert_eq!(
            endpoint_key(
                "GET",
                Some("/dc/{dc}/crm/{version}/{module}"),
                "/dc/eu/crm/v8/Contacts"
            ),
            "GET /crm/v8/{module}"
        );
        assert_eq!(
            endpoint_key(
                "GET",
                Some("/crm/{version}/{module}/deleted"),
                "/crm/v2/Leads/deleted"
            ),
            "GET /crm/v2/{module}/deleted"
        );
        assert_eq!(
            endpoint_key("POST", Some("/oauth/v2/token"), "/oauth/v2/token"),
            "POST /oauth/v2/token"
        );
        assert_eq!(endpoint_key("GET", None, "/x"), "GET (unmatched)");
    }
}
