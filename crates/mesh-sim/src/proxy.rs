//! The HTTP proxy: clients reach cluster names through it (`http_proxy=http://127.0.0.1:PORT`,
//! or a request to the proxy with the cluster name in `Host`). Each request is routed by
//! [`crate::routing::resolve`] over the latest [`Snapshot`], answered by the podinfo backend
//! of the chosen revision (in process) or forwarded to a registered upstream process, and
//! counted in [`Metrics`]. Requests naming the proxy itself (an IP address or `localhost`)
//! get its own endpoints: `/metrics` (the meshes' series), `/healthz`, `/resolve?host=H`.
//!
//! `CONNECT host:port` (what gRPC clients send to `HTTPS_PROXY`) opens a tunnel whose
//! requests, HTTP/1 or HTTP/2 (gRPC), are routed one by one as above, as a mesh's sidecar
//! routes each gRPC call.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::convert::Infallible;
use tower::ServiceExt;

use crate::cluster::Snapshot;
use crate::metrics::Metrics;
use crate::podinfo;
use crate::routing::{self, IngressHit, Route, Upstream, Workload};

/// The largest request body carried (the loadtester's payloads are small).
const MAX_BODY: usize = 16 * 1024 * 1024;
/// How long a forwarded request to an upstream process may take (acceptance tests run long).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(300);

/// The proxy's shared state.
pub(crate) struct Proxy {
    pub(crate) snapshot: Arc<RwLock<Snapshot>>,
    upstreams: BTreeMap<String, String>,
    pub(crate) metrics: Metrics,
    backends: Mutex<BTreeMap<Workload, Router>>,
    counter: AtomicU64,
    http: reqwest::Client,
}

type Shared = Arc<Proxy>;

impl Proxy {
    pub(crate) fn new(upstreams: BTreeMap<String, String>) -> Result<Proxy, reqwest::Error> {
        Ok(Proxy {
            snapshot: Arc::new(RwLock::new(Snapshot::default())),
            upstreams,
            metrics: Metrics::default(),
            backends: Mutex::new(BTreeMap::new()),
            counter: AtomicU64::new(0),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(UPSTREAM_TIMEOUT)
                .build()?,
        })
    }

    /// A well-spread number in `0..n` from a counter (Fibonacci hashing), so weights hold
    /// over any run of requests without a random number generator.
    fn pick(&self, n: u64) -> u64 {
        let i = self.counter.fetch_add(1, Ordering::Relaxed);
        (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16) % n.max(1)
    }

    fn resolve(&self, req: &routing::Request) -> Route {
        let snapshot = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        routing::resolve(&snapshot, &self.upstreams, req, &mut |n| self.pick(n))
    }

    fn backend(&self, w: &Workload) -> Router {
        let mut backends = self.backends.lock().unwrap_or_else(|e| e.into_inner());
        backends
            .entry(w.clone())
            .or_insert_with(|| podinfo::router(&w.pod, &w.image))
            .clone()
    }
}

/// Serves the proxy on `listener` until the process ends.
pub(crate) async fn serve(listener: tokio::net::TcpListener, state: Shared) {
    let app = Router::new().fallback(handle).with_state(state);
    let _ = axum::serve(listener, app).await;
}

/// The authority a request is for: the absolute URI's (a proxy request) or the Host header.
fn authority(req: &Request) -> String {
    req.uri()
        .authority()
        .map(|a| a.to_string())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn is_self(authority: &str) -> bool {
    let host = match authority.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    host.is_empty()
        || host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok()
}

async fn handle(State(state): State<Shared>, req: Request) -> Response {
    if req.method() == Method::CONNECT {
        return tunnel(state, req);
    }
    let authority = authority(&req);
    if is_self(&authority) {
        return own(&state, &req);
    }
    let decision = routing::Request {
        host: authority.clone(),
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        headers: req
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
    };
    let route = state.resolve(&decision);
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            "mesh-sim: request body too large\n",
        )
            .into_response();
    };
    match route {
        Route::Upstream(addr) => {
            forward(&state, &addr, parts.method, &path, &parts.headers, body).await
        }
        Route::NoRoute(why) => {
            tracing::warn!(host = %authority, "no route: {why}");
            (StatusCode::BAD_GATEWAY, format!("mesh-sim: {why}\n")).into_response()
        }
        Route::Unavailable(why) => {
            tracing::warn!(host = %authority, "unavailable: {why}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no healthy upstream\nmesh-sim: {why}\n"),
            )
                .into_response()
        }
        Route::Backend {
            workload,
            mirror,
            response_headers,
            via,
            ingress,
            upstream,
        } => {
            tracing::debug!(host = %authority, path = %path, pod = %workload.pod, "{via}");
            if let Some(m) = mirror {
                let (state, method, path, headers, body) = (
                    state.clone(),
                    parts.method.clone(),
                    path.clone(),
                    parts.headers.clone(),
                    body.clone(),
                );
                tokio::spawn(async move {
                    call_backend(&state, &m, Hits::default(), method, &path, &headers, body).await
                });
            }
            let (method, headers) = (parts.method, &parts.headers);
            let mut response = call_backend(
                &state,
                &workload,
                Hits {
                    ingress: ingress.as_ref(),
                    upstream: upstream.as_ref(),
                },
                method,
                &path,
                headers,
                body,
            )
            .await;
            for (name, value) in response_headers {
                if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                    response.headers_mut().append(n, v);
                }
            }
            response
        }
    }
}

/// Answers `CONNECT host:port` with 200, then serves the tunnel's requests (HTTP/1, or
/// HTTP/2 with prior knowledge as gRPC sends it) through [`handle`]; a request without an
/// authority of its own is for the CONNECT target.
fn tunnel(state: Shared, mut req: Request) -> Response {
    let Some(target) = req.uri().authority().map(|a| a.to_string()) else {
        return (
            StatusCode::BAD_REQUEST,
            "mesh-sim: CONNECT needs host:port\n",
        )
            .into_response();
    };
    if is_self(&target) {
        return (
            StatusCode::BAD_REQUEST,
            format!("mesh-sim: CONNECT {target}: tunnels are for cluster hosts\n"),
        )
            .into_response();
    }
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let io = match upgrade.await {
            Ok(io) => io,
            Err(e) => {
                tracing::warn!(host = %target, "CONNECT upgrade failed: {e}");
                return;
            }
        };
        let service =
            hyper::service::service_fn(move |mut inner: hyper::Request<hyper::body::Incoming>| {
                let state = state.clone();
                if inner.uri().authority().is_none()
                    && !inner.headers().contains_key(header::HOST)
                    && let Ok(v) = HeaderValue::try_from(target.as_str())
                {
                    inner.headers_mut().insert(header::HOST, v);
                }
                async move { Ok::<_, Infallible>(handle(State(state), inner.map(Body::new)).await) }
            });
        let builder =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        if let Err(e) = builder.serve_connection(io, service).await {
            tracing::debug!("tunnel closed: {e}");
        }
    });
    StatusCode::OK.into_response()
}

/// Serves a request with the workload's podinfo backend and counts it (for the Ingress that
/// routed it too, if one did).
/// What an ingress labels a request with, besides the workload that answered it.
#[derive(Clone, Copy, Default)]
struct Hits<'a> {
    ingress: Option<&'a IngressHit>,
    upstream: Option<&'a Upstream>,
}

async fn call_backend(
    state: &Shared,
    w: &Workload,
    hits: Hits<'_>,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = Request::new(Body::from(body));
    *req.method_mut() = method;
    *req.uri_mut() = path.parse().unwrap_or_else(|_| Uri::from_static("/"));
    *req.headers_mut() = headers.clone();
    let started = Instant::now();
    let response = match state.backend(w).oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    // The whole body (and its trailers: gRPC's status) is read before the request counts as
    // answered, as a proxy would.
    let (bytes, trailers) = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(all) => {
            let trailers = all.trailers().cloned();
            (all.to_bytes(), trailers)
        }
        Err(_) => (Bytes::new(), None),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    state.metrics.record(w, parts.status.as_u16(), ms);
    if let Some(hit) = hits.ingress {
        state.metrics.record_ingress(hit, parts.status.as_u16(), ms);
    }
    if let Some(u) = hits.upstream {
        state.metrics.record_upstream(u, parts.status.as_u16(), ms);
    }
    let body = match trailers {
        None => Body::from(bytes),
        Some(t) => {
            let frames = [Frame::data(bytes), Frame::trailers(t)].map(Ok::<_, Infallible>);
            Body::new(StreamBody::new(futures::stream::iter(frames)))
        }
    };
    Response::from_parts(parts, body)
}

/// Forwards a request to an upstream process (outside the cluster's workloads).
async fn forward(
    state: &Shared,
    addr: &str,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let mut out = HeaderMap::new();
    for (n, v) in headers {
        let skip = n == header::HOST
            || n == header::CONNECTION
            || n == header::PROXY_AUTHORIZATION
            || n.as_str() == "proxy-connection"
            || n == header::CONTENT_LENGTH;
        if !skip {
            out.append(n.clone(), v.clone());
        }
    }
    let result = state
        .http
        .request(method, format!("http://{addr}{path}"))
        .headers(out)
        .body(body)
        .send()
        .await;
    let upstream = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(upstream = %addr, "upstream failed: {e}");
            return (
                StatusCode::BAD_GATEWAY,
                format!("mesh-sim: upstream {addr}: {e}\n"),
            )
                .into_response();
        }
    };
    let status = upstream.status();
    let mut headers = upstream.headers().clone();
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::CONNECTION);
    let body = upstream.bytes().await.unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The proxy's own endpoints.
fn own(state: &Shared, req: &Request) -> Response {
    match req.uri().path() {
        "/metrics" => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            state.metrics.render(),
        )
            .into_response(),
        "/healthz" => "ok\n".into_response(),
        "/resolve" => {
            let host = req
                .uri()
                .query()
                .unwrap_or_default()
                .split('&')
                .find_map(|kv| kv.strip_prefix("host="))
                .unwrap_or_default();
            let route = state.resolve(&routing::Request {
                host: host.to_string(),
                method: "GET".into(),
                path: "/".into(),
                headers: Vec::new(),
            });
            format!("{route:?}\n").into_response()
        }
        other => (
            StatusCode::NOT_FOUND,
            format!("mesh-sim: no endpoint {other} (have /metrics, /healthz, /resolve?host=H); cluster requests need a cluster host\n"),
        )
            .into_response(),
    }
}
