//! The HTTPS accept loop: rustls in front of the axum router, with the
//! client's certificate chain handed to each request; graceful shutdown;
//! the access log; the optional plain-HTTP metrics listener.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Result;
use axum::extract::MatchedPath;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::pki_types::CertificateDer;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tower_http::trace::TraceLayer;
use tracing::field::Empty;
use tracing::Span;

use crate::auth::AuthenticatedChain;
use crate::state::AppState;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Target of the access log's events (filter with
/// `RUST_LOG=…,govtrust::access=off` to silence it).
pub const ACCESS_LOG_TARGET: &str = "govtrust::access";

/// The certificate chain the client presented in the TLS handshake (empty
/// if none). Only the `Agency` extractor may draw conclusions from it.
#[derive(Clone, Debug, Default)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

/// Per connection: the agency authentication of its peer chain, once made
/// (see [`crate::auth::AuthenticatedChain`]), so that requests on a
/// keep-alive connection do not re-verify the same chain's signatures.
#[derive(Clone, Debug, Default)]
pub struct ConnectionAuth(pub Arc<OnceLock<AuthenticatedChain>>);

/// Serves `app` over TLS on `listener` until `shutdown` resolves; then
/// stops accepting, lets the requests in flight finish for up to `grace`
/// (keep-alive connections are closed after their current request), and
/// cuts whatever is still open after that.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer_addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        connections.spawn(async move {
            let _ = stream.set_nodelay(true);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer_addr, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer_addr, "TLS handshake timed out");
                    return;
                }
            };
            let peer = PeerCertificates(Arc::new(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
                    .unwrap_or_default(),
            ));
            let auth = ConnectionAuth::default();
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(peer.clone());
                    request.extensions_mut().insert(auth.clone());
                    app.clone().oneshot(request)
                },
            );
            let builder = Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer_addr, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(
        connections = connections.len(),
        grace_secs = grace.as_secs(),
        "stopped accepting; draining requests in flight"
    );
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections drained"),
        Err(_) => tracing::warn!(
            open = connections.len(),
            "shutdown grace period over; closing the remaining connections"
        ),
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Serves `GET /metrics` (and nothing else) over plain HTTP on `listener`
/// until `shutdown` resolves (`metrics_listen`).
pub async fn serve_metrics(
    listener: TcpListener,
    svc: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = Router::new()
        .route(
            "/metrics",
            axum::routing::get(
                |axum::extract::State(svc): axum::extract::State<AppState>| async move {
                    crate::gauges::scrape(&svc).await
                },
            ),
        )
        .with_state(svc);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::warn!(error = %e, "metrics listener failed");
    }
}

/// Wraps the API router in the access log (tower-http's `TraceLayer`): one
/// event per request at INFO, target [`ACCESS_LOG_TARGET`], in a span
/// `request` with
///
/// * `method`: the HTTP method;
/// * `path`: the route template (`/v1/certificates/{serial}`), never the
///   raw path, so no serial, authority ID or user ID lands in the log by
///   way of the URL; `-` for paths that match no route;
/// * `caller`: `agency:<authority ID>` or `operator:<token name>` once the
///   request has authenticated (absent for public endpoints and refused
///   credentials);
///
/// and the event's own fields `status` (the response status) and
/// `latency_ms`. No query string, header, client address, Matrix user or
/// device ID, or body is logged: what a caller did is the audit log's job.
pub fn with_access_log(router: Router) -> Router {
    router.layer(
        TraceLayer::new_for_http()
            .make_span_with(access_span as fn(&axum::http::Request<axum::body::Body>) -> Span)
            .on_request(())
            .on_response(
                access_event as fn(&axum::http::Response<axum::body::Body>, Duration, &Span),
            )
            .on_body_chunk(())
            .on_eos(())
            .on_failure(()),
    )
}

fn access_span(request: &axum::http::Request<axum::body::Body>) -> Span {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("-", MatchedPath::as_str);
    tracing::info_span!(
        target: ACCESS_LOG_TARGET,
        "request",
        method = %request.method(),
        path = %path,
        caller = Empty,
    )
}

fn access_event(response: &axum::http::Response<axum::body::Body>, latency: Duration, span: &Span) {
    let _enter = span.enter();
    tracing::info!(
        target: ACCESS_LOG_TARGET,
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request"
    );
}

/// Names the authenticated caller in the current request's access-log
/// span (`agency:<authority ID>` or `operator:<token name>`); a no-op
/// outside a request.
pub fn record_caller(caller: &str) {
    Span::current().record("caller", tracing::field::display(caller));
}
