//! The operator's HTTP endpoints: `/metrics` (Prometheus text), `/healthz`, and `/readyz`
//! (503 until the caches have synced). By default they are served over HTTPS, and `/metrics`
//! answers only a bearer token allowed to `get` it ([`reviews`]); `--metrics-insecure` serves
//! plain HTTP without authorization.

pub mod reviews;
pub mod secure;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::context::Context;
use reviews::{Access, Reviews};

/// Most connections served at once; past it, the next waits in the listen backlog.
pub const MAX_CONNECTIONS: usize = 256;
/// A client that has not finished its TLS handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A client that has not sent a request's headers by then (the first, or the next on a kept
/// connection) is dropped.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    respond(status, "text/plain", body.into())
}

/// Answers one request that passed authorization.
pub fn route(ctx: &Context, path: &str) -> Response<Full<Bytes>> {
    match path {
        "/metrics" => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            ctx.metrics.encode(),
        ),
        "/healthz" | "/livez" => text(StatusCode::OK, "ok"),
        "/readyz" if *ctx.ready.borrow() => text(StatusCode::OK, "ok"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet"),
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

/// Answers one request; with `reviews`, `/metrics` needs an allowed bearer token (the health
/// endpoints never do: the kubelet probes them without one).
async fn answer(
    ctx: &Context,
    reviews: Option<&Reviews>,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let Some(reviews) = reviews.filter(|_| path == "/metrics") else {
        return route(ctx, path);
    };
    let authorization = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match reviews.judge(authorization, path).await {
        Access::Allowed => route(ctx, path),
        Access::Unauthenticated => text(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: send a bearer token the API server accepts",
        ),
        Access::Forbidden => text(
            StatusCode::FORBIDDEN,
            "Forbidden: the token's user may not get the non-resource URL /metrics",
        ),
    }
}

/// Serves one connection; the permit is held until it ends.
async fn connection<S>(
    io: S,
    ctx: Arc<Context>,
    reviews: Option<Arc<Reviews>>,
    _permit: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let (ctx, reviews) = (ctx.clone(), reviews.clone());
        async move { Ok::<_, Infallible>(answer(&ctx, reviews.as_deref(), &request).await) }
    });
    if let Err(error) = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .await
    {
        tracing::debug!(%error, "metrics connection ended");
    }
}

/// Serves the endpoints over plain HTTP, without authorization, until the task is dropped
/// (`--metrics-insecure`).
pub async fn serve(listener: TcpListener, ctx: Arc<Context>) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Some((stream, permit)) = accept(&listener, &limit).await else {
            continue;
        };
        tokio::spawn(connection(stream, ctx.clone(), None, permit));
    }
}

/// The next connection, once fewer than [`MAX_CONNECTIONS`] are open.
async fn accept(
    listener: &TcpListener,
    limit: &Arc<Semaphore>,
) -> Option<(TcpStream, OwnedSemaphorePermit)> {
    let permit = limit.clone().acquire_owned().await.ok()?;
    let (stream, _) = listener.accept().await.ok()?;
    Some((stream, permit))
}

/// Serves the endpoints over HTTPS, `/metrics` only to allowed tokens, until the task is
/// dropped.
pub async fn serve_secure(listener: TcpListener, ctx: Arc<Context>, acceptor: TlsAcceptor) {
    let reviews = Arc::new(Reviews::new(ctx.client.clone()));
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Some((stream, permit)) = accept(&listener, &limit).await else {
            continue;
        };
        let (ctx, reviews, acceptor) = (ctx.clone(), reviews.clone(), acceptor.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => connection(tls, ctx, Some(reviews), permit).await,
                Ok(Err(error)) => tracing::debug!(%error, "metrics TLS handshake failed"),
                Err(_) => tracing::debug!("metrics TLS handshake timed out"),
            }
        });
    }
}

/// Binds the endpoints' address.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}
