//! A fault layer for the operator's client: it counts the writes that reach the API server,
//! can "crash" the operator right after write k (no later request gets out, no response of
//! write k gets back), fails a random share of requests (500, 429 with Retry-After, 409, a
//! connection reset before or after the request reached the server, a timeout) and cuts
//! watch streams at random. It also remembers every object a write created.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Frame};
use kube::client::{Body, ClientBuilder};
use tower::layer::layer_fn;
use tower::{BoxError, Service};

use crate::chaos::Rng;

type OutBody = UnsyncBoxBody<Bytes, BoxError>;

/// What the layer does to the requests it sees.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Share of requests (0..=1) that fail with an injected fault.
    pub fault_rate: f64,
    /// Cut a watch stream (with the same share as `fault_rate`) after a random 1–10 s.
    pub cut_watches: bool,
    pub seed: u64,
    /// A write whose path ends in [`PanicOn::path_suffix`] panics in the task that awaits its
    /// response (the kube client polls the layer's future there): a bug on purpose.
    pub panic_on: Option<PanicOn>,
    /// Every write whose path ends in this suffix is refused with a 500 whose message names
    /// the attempt, so no two refusals read alike.
    pub refuse_writes_to: Option<String>,
}

/// Where and how [`Plan::panic_on`] panics.
#[derive(Debug, Clone)]
pub struct PanicOn {
    pub path_suffix: String,
    pub message: String,
}

/// What the layer saw and did; shared by every client built from the same [`Faults`].
pub struct Tally {
    /// Successful writes (POST, PUT, PATCH, DELETE answered 2xx).
    writes: AtomicUsize,
    /// The write count at which to crash (`usize::MAX`: never); see [`Faults::crash_after`].
    crash_at: AtomicUsize,
    /// True once the crash point is reached; from then on no request gets out.
    crashed: tokio::sync::watch::Sender<bool>,
    /// Injected faults by kind.
    pub injected: Mutex<BTreeMap<&'static str, u64>>,
    /// Each object a write created (answered 201), by "collection path/name", with the
    /// number of times and the first created body.
    created: Mutex<BTreeMap<String, (u32, serde_json::Value)>>,
    /// Successful writes in order: "METHOD path status".
    pub log: Mutex<Vec<String>>,
    /// When each write of [`Plan::refuse_writes_to`] was refused.
    refused: tokio::sync::watch::Sender<Vec<Instant>>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            writes: AtomicUsize::new(0),
            crash_at: AtomicUsize::new(usize::MAX),
            crashed: tokio::sync::watch::Sender::new(false),
            injected: Mutex::default(),
            created: Mutex::default(),
            log: Mutex::default(),
            refused: tokio::sync::watch::Sender::new(Vec::new()),
        }
    }
}

impl Tally {
    /// Waits until the crash point is reached (at most `timeout`); false if it never was.
    pub async fn wait_crashed(&self, timeout: Duration) -> bool {
        let mut crashed = self.crashed.subscribe();
        tokio::time::timeout(timeout, crashed.wait_for(|c| *c))
            .await
            .is_ok()
    }

    /// Waits (at most `timeout`) until `count` writes were refused; returns when each was.
    pub async fn wait_refused(&self, count: usize, timeout: Duration) -> Option<Vec<Instant>> {
        let mut refused = self.refused.subscribe();
        let seen = tokio::time::timeout(timeout, refused.wait_for(|at| at.len() >= count));
        seen.await.ok()?.ok().map(|at| at.clone())
    }

    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    pub fn injected_total(&self) -> u64 {
        self.injected.lock().unwrap().values().sum()
    }

    /// Objects that writes created more than once (excluding Events, which are created anew
    /// on purpose).
    pub fn created_twice(&self) -> Vec<String> {
        self.created
            .lock()
            .unwrap()
            .iter()
            .filter(|(key, (count, _))| *count > 1 && !key.contains("/events/"))
            .map(|(key, (count, _))| format!("{key} ({count}x)"))
            .collect()
    }

    /// The body the first create of `collection/name` returned.
    pub fn first_created(&self, key_suffix: &str) -> Option<serde_json::Value> {
        self.created
            .lock()
            .unwrap()
            .iter()
            .find(|(key, _)| key.ends_with(key_suffix))
            .map(|(_, (_, body))| body.clone())
    }
}

/// A fault plan plus what it did, to build clients from.
#[derive(Clone)]
pub struct Faults {
    plan: Plan,
    rng: Arc<Mutex<Rng>>,
    pub tally: Arc<Tally>,
}

impl Faults {
    pub fn new(plan: Plan) -> Self {
        Self {
            rng: Arc::new(Mutex::new(Rng::new(plan.seed))),
            plan,
            tally: Arc::default(),
        }
    }

    /// A client for `config` behind this layer.
    pub fn client(&self, config: kube::Config) -> kube::Client {
        let faults = self.clone();
        ClientBuilder::try_from(config)
            .unwrap()
            .with_layer(&layer_fn(move |inner| FaultService {
                inner,
                faults: faults.clone(),
            }))
            .build()
    }

    /// A [`crate::MakeClient`] for the harness.
    pub fn make_client(&self) -> crate::MakeClient {
        let faults = self.clone();
        Arc::new(move |config| faults.client(config))
    }

    /// Crashes right after `k` more successful writes (1: the next one).
    pub fn crash_after(&self, k: usize) {
        let now = self.tally.writes();
        self.tally.crash_at.store(now + k, Ordering::SeqCst);
    }

    fn draw(&self, write: bool, watch: bool) -> Option<Fault> {
        let mut rng = self.rng.lock().unwrap();
        if self.plan.fault_rate <= 0.0 || !rng.chance(self.plan.fault_rate) {
            return None;
        }
        let choices: &[Fault] = match (write, watch) {
            (true, _) => &[
                Fault::Status(500),
                Fault::Status(429),
                Fault::Status(409),
                Fault::ResetBefore,
                Fault::ResetAfter,
                Fault::Timeout,
            ],
            (false, true) => &[Fault::Status(500), Fault::ResetBefore],
            (false, false) => &[
                Fault::Status(500),
                Fault::Status(429),
                Fault::ResetBefore,
                Fault::Timeout,
            ],
        };
        Some(*rng.pick(choices))
    }

    /// When to cut a new watch stream, if at all.
    fn cut_after(&self) -> Option<Duration> {
        let mut rng = self.rng.lock().unwrap();
        (self.plan.cut_watches && rng.chance(self.plan.fault_rate))
            .then(|| Duration::from_millis(1000 + rng.below(9000)))
    }

    fn count(&self, kind: &'static str) {
        *self.tally.injected.lock().unwrap().entry(kind).or_default() += 1;
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Status(u16),
    /// The connection drops before the request reaches the server.
    ResetBefore,
    /// The request reaches the server; its response is lost.
    ResetAfter,
    /// No answer for a while, then a timeout.
    Timeout,
}

#[derive(Clone)]
struct FaultService<S> {
    inner: S,
    faults: Faults,
}

fn reason(code: u16) -> &'static str {
    match code {
        409 => "Conflict",
        429 => "TooManyRequests",
        _ => "InternalError",
    }
}

fn status_response(code: u16, message: &str) -> http::Response<OutBody> {
    let reason = reason(code);
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": message, "reason": reason, "code": code,
        "details": {"retryAfterSeconds": 1},
    });
    let mut response = http::Response::new(boxed(Full::new(Bytes::from(body.to_string()))));
    *response.status_mut() = http::StatusCode::from_u16(code).unwrap();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if code == 429 {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
    }
    response
}

fn boxed<B>(body: B) -> OutBody
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

fn io_error(kind: std::io::ErrorKind, what: &str) -> BoxError {
    Box::new(std::io::Error::new(kind, format!("injected fault: {what}")))
}

/// The collection path plus the created object's name: `/api/v1/namespaces/n/secrets/x-ca`.
fn created_key(path: &str, method: &http::Method, body: &serde_json::Value) -> String {
    let name = body
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .unwrap_or_default();
    if *method == http::Method::POST {
        format!("{}/{name}", path.trim_end_matches('/'))
    } else {
        path.to_string()
    }
}

impl<S, B> Service<http::Request<Body>> for FaultService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<OutBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let faults = self.faults.clone();
        let tally = faults.tally.clone();
        if *tally.crashed.borrow() {
            return Box::pin(futures::future::pending());
        }
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let write = !matches!(method, http::Method::GET | http::Method::HEAD);
        let watch = request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
        if let Some(panic) = faults
            .plan
            .panic_on
            .clone()
            .filter(|p| write && path.ends_with(&p.path_suffix))
        {
            // Nothing is sent; the panic surfaces where the response is awaited.
            return Box::pin(async move { panic!("{}", panic.message) });
        }
        if write
            && faults
                .plan
                .refuse_writes_to
                .as_ref()
                .is_some_and(|suffix| path.ends_with(suffix))
        {
            let mut attempt = 0;
            tally.refused.send_modify(|at| {
                at.push(Instant::now());
                attempt = at.len();
            });
            let message = format!("injected refusal, attempt {attempt}");
            return Box::pin(async move { Ok(status_response(500, &message)) });
        }
        let fault = faults.draw(write, watch);
        let forwarded = match fault {
            None | Some(Fault::ResetAfter) => Some(self.inner.call(request)),
            _ => None,
        };
        Box::pin(async move {
            match fault {
                Some(Fault::Status(code)) => {
                    faults.count(match code {
                        409 => "409",
                        429 => "429",
                        _ => "500",
                    });
                    let message = format!("injected fault: {}", reason(code));
                    return Ok(status_response(code, &message));
                }
                Some(Fault::ResetBefore) => {
                    faults.count("reset");
                    return Err(io_error(std::io::ErrorKind::ConnectionReset, "reset"));
                }
                Some(Fault::Timeout) => {
                    faults.count("timeout");
                    let wait = Duration::from_millis(1000 + faults.rng.lock().unwrap().below(2000));
                    tokio::time::sleep(wait).await;
                    return Err(io_error(std::io::ErrorKind::TimedOut, "timeout"));
                }
                Some(Fault::ResetAfter) | None => {}
            }
            let Some(forwarded) = forwarded else {
                unreachable!("every fault that does not forward returned above")
            };
            let response = forwarded.await.map_err(Into::into)?;
            let (parts, body) = response.into_parts();
            if watch {
                let body = match faults.cut_after() {
                    Some(after) => {
                        faults.count("watch cut");
                        boxed(Cut {
                            inner: boxed(body),
                            deadline: Box::pin(tokio::time::sleep(after)),
                            clean: faults.rng.lock().unwrap().chance(0.5),
                        })
                    }
                    None => boxed(body),
                };
                return Ok(http::Response::from_parts(parts, body));
            }
            let bytes = body.collect().await.map_err(Into::into)?.to_bytes();
            if write && parts.status.is_success() {
                let k = tally.writes.fetch_add(1, Ordering::SeqCst) + 1;
                tally
                    .log
                    .lock()
                    .unwrap()
                    .push(format!("{method} {path} {}", parts.status.as_u16()));
                if parts.status == http::StatusCode::CREATED {
                    let json: serde_json::Value =
                        serde_json::from_slice(&bytes).unwrap_or_default();
                    let key = created_key(&path, &method, &json);
                    let mut created = tally.created.lock().unwrap();
                    let entry = created.entry(key).or_insert((0, json));
                    entry.0 += 1;
                }
                if tally.crash_at.load(Ordering::SeqCst) == k {
                    tally.crashed.send_replace(true);
                    return futures::future::pending().await;
                }
            }
            if matches!(fault, Some(Fault::ResetAfter)) {
                faults.count("reset after write");
                return Err(io_error(
                    std::io::ErrorKind::ConnectionReset,
                    "reset after write",
                ));
            }
            Ok(http::Response::from_parts(parts, boxed(Full::new(bytes))))
        })
    }
}

/// A watch body that ends (cleanly or with an error) at `deadline`.
struct Cut {
    inner: OutBody,
    deadline: Pin<Box<tokio::time::Sleep>>,
    clean: bool,
}

impl hyper::body::Body for Cut {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(if self.clean {
                None
            } else {
                Some(Err(io_error(
                    std::io::ErrorKind::ConnectionReset,
                    "watch cut",
                )))
            });
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }
}
