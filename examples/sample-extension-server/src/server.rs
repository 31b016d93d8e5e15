//! The HTTPS server: accepts TLS connections, serves HTTP/1.1 and HTTP/2 on
//! them, and runs each request through health → authn → authz → API.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::api::{self, Reply, Route};
use crate::auth::RequestHeaderAuth;
use crate::authz::{Attributes, Authorizer, forbidden_message};
use crate::objects::Stored;
use crate::served::Served;

/// Everything a request handler needs.
pub struct State {
    pub authn: RequestHeaderAuth,
    pub authz: Authorizer,
    /// The group, versions and resources served.
    pub served: Served,
    pub objects: Vec<Stored>,
}

/// Serves until `shutdown` completes, then lets open connections finish (up to 10 s).
pub async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => { warn!("accept failed: {e}"); continue; }
            },
            () = &mut shutdown => break,
        };
        let (tls, state, watcher) = (tls.clone(), state.clone(), graceful.watcher());
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp));
            let stream = match handshake.await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => return debug!(%peer, "TLS handshake timed out"),
            };
            // The client's certificate chain, if it sent one (leaf first).
            let certs: Arc<[CertificateDer<'static>]> = stream
                .get_ref()
                .1
                .peer_certificates()
                .unwrap_or_default()
                .into();
            let service = service_fn(move |req| {
                let (state, certs) = (state.clone(), certs.clone());
                async move { Ok::<_, Infallible>(to_response(handle(req, &certs, &state).await)) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn).await {
                debug!(%peer, "connection ended: {e}");
            }
        });
    }
    info!("shutting down");
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        warn!("some connections did not finish in time");
    }
}

/// Health checks, then authentication, authorization, and finally the API.
async fn handle(req: Request<Incoming>, certs: &[CertificateDer<'static>], state: &State) -> Reply {
    let path = req.uri().path();
    let route = api::route(&state.served, path);
    if route == Route::Health {
        return Reply::text(StatusCode::OK, "ok");
    }
    let user = match state.authn.authenticate(certs, req.headers()) {
        Ok(user) => user,
        Err(why) => {
            info!(method = %req.method(), path, "401: {why}");
            return api::status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
        }
    };
    if req.method() != Method::GET {
        let message = "the server does not allow this method on the requested resource";
        return api::status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message);
    }
    let attrs = Attributes::for_route(&route, path);
    let reply = match state.authz.authorize(&user, &attrs).await {
        Ok(decision) if decision.allowed => api::respond(&state.served, &route, &state.objects),
        Ok(decision) => {
            let message = forbidden_message(&user, &attrs, &decision.reason);
            api::status(StatusCode::FORBIDDEN, "Forbidden", message)
        }
        Err(e) => {
            warn!("SubjectAccessReview failed: {e:#}");
            api::status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "authorization check failed",
            )
        }
    };
    info!(user = %user.name, groups = ?user.groups, path, code = reply.code.as_u16(), "request");
    reply
}

fn to_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = reply.code;
    let content_type = header::HeaderValue::from_static(reply.content_type);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}
