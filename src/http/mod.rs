//! The operator's HTTP endpoints: `/metrics` (Prometheus text), `/healthz`, and `/readyz`
//! (503 until the caches have synced). By default they are served over HTTPS, and `/metrics`
//! answers only a bearer token allowed to `get` it ([`reviews`]); `--metrics-insecure` serves
//! plain HTTP without authorization.

pub mod reviews;
pub mod secure;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::context::Context;
use reviews::{Access, Reviews};

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

/// Serves one connection.
async fn connection<S>(io: S, ctx: Arc<Context>, reviews: Option<Arc<Reviews>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let (ctx, reviews) = (ctx.clone(), reviews.clone());
        async move { Ok::<_, Infallible>(answer(&ctx, reviews.as_deref(), &request).await) }
    });
    if let Err(error) = http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await
    {
        tracing::debug!(%error, "metrics connection ended");
    }
}

/// Serves the endpoints over plain HTTP, without authorization, until the task is dropped
/// (`--metrics-insecure`).
pub async fn serve(listener: TcpListener, ctx: Arc<Context>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(connection(stream, ctx.clone(), None));
    }
}

/// Serves the endpoints over HTTPS, `/metrics` only to allowed tokens, until the task is
/// dropped.
pub async fn serve_secure(listener: TcpListener, ctx: Arc<Context>, acceptor: TlsAcceptor) {
    let reviews = Arc::new(Reviews::new(ctx.client.clone()));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (ctx, reviews, acceptor) = (ctx.clone(), reviews.clone(), acceptor.clone());
        tokio::spawn(async move {
            match acceptor.accept(stream).await {
                Ok(tls) => connection(tls, ctx, Some(reviews)).await,
                Err(error) => tracing::debug!(%error, "metrics TLS handshake failed"),
            }
        });
    }
}

/// Binds the endpoints' address.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}
