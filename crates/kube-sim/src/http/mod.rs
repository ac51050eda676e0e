//! The HTTP face of kube-sim: Kubernetes' REST paths, discovery, watches as streams of JSON
//! lines, `Table` responses, bearer-token authentication and the fault hooks.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::Shared;
use crate::api::{ApiError, PatchKind, Target, WriteTo};
use crate::registry::ResourceType;
use crate::requests::{self, RequestKey};
use crate::select::{FieldSelector, LabelSelector};
use crate::store::{Change, ChangeType};
use crate::table;

mod list;
mod resource;
mod watch;

use list::*;
use watch::*;

/// The Kubernetes version kube-sim reports.
pub const KUBE_VERSION: &str = "v1.32.0";

/// Serves one request, counting resource requests in `apiserver_request_total`.
pub async fn handle(
    state: Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/').to_string();
    let query = parse_query(uri.query().unwrap_or(""));
    let api = parse_path(&state, &path);
    let key = api.as_ref().and_then(|req| {
        let resource = req.plural.clone()?;
        let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
        let apply = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.contains("apply-patch"));
        let named = req.name.is_some() && !watch;
        Some(RequestKey {
            verb: requests::verb(method.as_str(), req.name.is_some(), watch, apply),
            group: req.group.clone(),
            version: req.version.clone(),
            resource,
            subresource: req.sub.clone().unwrap_or_default(),
            scope: match (named, req.namespace.is_some()) {
                (true, _) => "resource",
                (false, true) => "namespace",
                (false, false) => "cluster",
            },
            code: 0,
        })
    });
    let request = Incoming {
        method,
        path,
        query,
        headers,
        body,
        api,
    };
    let response = serve(state.clone(), request).await;
    if let Some(mut key) = key {
        key.code = response.status().as_u16();
        state.requests.count(key);
    }
    response
}

/// A request as read once by [`handle`]: the path without its trailing slash, the decoded
/// query and, for an API path, its parts.
struct Incoming {
    method: Method,
    path: String,
    query: BTreeMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
    api: Option<PathRequest>,
}

async fn serve(state: Arc<Shared>, r: Incoming) -> Response {
    if r.path.starts_with("/kube-sim/") {
        return control(&state, &r.method, &r.path, &r.body);
    }
    // kubectl sends no credentials over plain HTTP, so anonymous loopback requests are
    // served (as an API server with anonymous auth would); a wrong token is refused.
    let authorized = r
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .is_none_or(|h| h == format!("Bearer {}", state.token));
    if !authorized {
        return error(&ApiError {
            code: 401,
            reason: "Unauthorized",
            message: "Unauthorized".into(),
            details: json!({}),
        });
    }
    match r.path.as_str() {
        "" | "/healthz" | "/readyz" | "/livez" => return text(200, "ok"),
        "/metrics" => {
            return Response::builder()
                .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
                .body(Body::from(state.requests.exposition()))
                .unwrap_or_default();
        }
        "/version" => {
            return ok(
                json!({"major": "1", "minor": "32", "gitVersion": KUBE_VERSION, "gitCommit": "kube-sim",
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc",
                "platform": "linux/amd64"}),
            );
        }
        "/api" => {
            return ok(json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": state.addr.to_string()}]}));
        }
        "/apis" => return ok(group_list(&state)),
        _ => {}
    }
    if r.path == "/openapi/v3" {
        let reg = state
            .cluster
            .registry
            .read()
            .map(|r| crate::openapi::root(&r));
        return reg
            .map(ok)
            .unwrap_or_else(|_| text(500, "registry unavailable"));
    }
    if let Some(gv) = r.path.strip_prefix("/openapi/v3/") {
        let doc = state
            .cluster
            .registry
            .read()
            .ok()
            .and_then(|r| crate::openapi::group_version(&r, gv));
        if let Some(doc) = doc {
            return ok(doc);
        }
    }
    if r.path.starts_with("/openapi") || r.path.starts_with("/swagger") {
        return not_found();
    }
    let Some(req) = r.api else {
        return not_found();
    };
    let (group, version) = (req.group.clone(), req.version.clone());
    let Some(plural) = req.plural.clone() else {
        return resource_list(&state, &group, &version);
    };
    let Some(rt) = state.cluster.resource(&group, &version, &plural) else {
        return not_found();
    };
    resource::serve(state, r.method, req, rt, r.query, r.headers, r.body).await
}

struct PathRequest {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(state: &Shared, path: &str) -> Option<PathRequest> {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let (group, version, rest) = match segs.first()?.as_str() {
        "api" => (String::new(), segs.get(1)?.clone(), &segs[2..]),
        "apis" => {
            let group = segs.get(1)?.clone();
            match segs.get(2) {
                None => {
                    return Some(PathRequest {
                        group,
                        version: String::new(),
                        namespace: None,
                        plural: None,
                        name: None,
                        sub: None,
                    });
                }
                Some(v) => (group, v.clone(), &segs[3..]),
            }
        }
        _ => return None,
    };
    let mut req = PathRequest {
        group: group.clone(),
        version: version.clone(),
        namespace: None,
        plural: None,
        name: None,
        sub: None,
    };
    if rest.is_empty() {
        return Some(req);
    }
    let namespaced_path = rest[0] == "namespaces"
        && rest.len() >= 3
        && state
            .cluster
            .resource(&group, &version, &rest[2])
            .is_some_and(|t| t.namespaced);
    let tail = if namespaced_path {
        req.namespace = Some(rest[1].clone());
        &rest[2..]
    } else {
        rest
    };
    req.plural = tail.first().cloned();
    req.name = tail.get(1).cloned();
    req.sub = tail.get(2).cloned();
    Some(req)
}

fn group_list(state: &Shared) -> Value {
    let groups = state
        .cluster
        .registry
        .read()
        .map(|r| r.groups())
        .unwrap_or_default();
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(name, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                .collect();
            json!({"name": name, "versions": vs, "preferredVersion": vs[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(state: &Shared, group: &str, version: &str) -> Response {
    let reg = match state.cluster.registry.read() {
        Ok(r) => r,
        Err(_) => return error(&ApiError::bad_request("registry unavailable")),
    };
    if version.is_empty() {
        let Some(versions) = reg.groups().get(group).cloned() else {
            return error(&ApiError {
                code: 404,
                reason: "NotFound",
                message: "the server could not find the requested resource".into(),
                details: json!({}),
            });
        };
        let vs: Vec<Value> = versions
            .iter()
            .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
            .collect();
        return ok(
            json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": vs, "preferredVersion": vs[0]}),
        );
    }
    let resources: Vec<Value> = reg
        .all()
        .filter(|t| t.group == group && t.version == version)
        .flat_map(|t| t.discovery())
        .collect();
    if resources.is_empty() {
        return error(&ApiError {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: json!({}),
        });
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    ok(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// `/kube-sim/faults` (GET, PUT), `/kube-sim/faults/counters` (GET), `/kube-sim/compact` (POST).
fn control(state: &Shared, method: &Method, path: &str, body: &Bytes) -> Response {
    match (method, path) {
        (&Method::GET, "/kube-sim/faults") => {
            ok(serde_json::to_value(state.faults.config()).unwrap_or_default())
        }
        (&Method::PUT, "/kube-sim/faults") => match serde_json::from_slice(body) {
            Ok(c) => {
                state.faults.set(c);
                ok(serde_json::to_value(state.faults.config()).unwrap_or_default())
            }
            Err(e) => error(&ApiError::bad_request(format!("invalid fault config: {e}"))),
        },
        (&Method::GET, "/kube-sim/faults/counters") => {
            ok(serde_json::to_value(state.faults.counters()).unwrap_or_default())
        }
        (&Method::POST, "/kube-sim/compact") => {
            state
                .cluster
                .store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .compact();
            text(200, "compacted")
        }
        _ => text(404, "unknown kube-sim control path"),
    }
}

fn injected(code: u16) -> Response {
    let (reason, message) = match code {
        409 => (
            "Conflict",
            "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again (injected by kube-sim)",
        ),
        429 => (
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later (injected by kube-sim)",
        ),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request (injected by kube-sim)",
        ),
        _ => (
            "InternalError",
            "an error on the server has prevented the request from succeeding (injected by kube-sim)",
        ),
    };
    let mut r = error(&ApiError {
        code,
        reason,
        message: message.into(),
        details: json!({"retryAfterSeconds": 1}),
    });
    if code == 429 {
        r.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
    }
    r
}

fn user_agent(headers: &HeaderMap) -> String {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|u| u.to_str().ok())
        .unwrap_or("unknown");
    ua.split('/').next().unwrap_or("unknown").to_string()
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be read as JSON: {e}"
        ))
    })
}

fn parse_yaml(body: &Bytes) -> Result<Value, ApiError> {
    serde_yaml_ng::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be read as YAML: {e}"
        ))
    })
}

fn rv_of(o: &Value) -> u64 {
    o["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(code: u16, body: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

fn ok(body: Value) -> Response {
    respond(200, &body)
}

fn error(e: &ApiError) -> Response {
    respond(e.code, &e.status())
}

fn text(code: u16, body: &'static str) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// The API server's 404 for a path it does not serve.
fn not_found() -> Response {
    error(&ApiError {
        code: 404,
        reason: "NotFound",
        message: "the server could not find the requested resource".into(),
        details: json!({}),
    })
}
