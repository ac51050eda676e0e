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
use crate::api::{ApiError, PatchKind, Target};
use crate::registry::ResourceType;
use crate::requests::{self, RequestKey};
use crate::select::{FieldSelector, LabelSelector};
use crate::store::{Change, ChangeType};
use crate::table;

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
    let key = parse_path(&state, &path).and_then(|req| {
        let resource = req.plural?;
        let query = parse_query(uri.query().unwrap_or(""));
        let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
        let apply = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.contains("apply-patch"));
        let named = req.name.is_some() && !watch;
        Some(RequestKey {
            verb: requests::verb(method.as_str(), req.name.is_some(), watch, apply),
            group: req.group,
            version: req.version,
            resource,
            subresource: req.sub.unwrap_or_default(),
            scope: match (named, req.namespace.is_some()) {
                (true, _) => "resource",
                (false, true) => "namespace",
                (false, false) => "cluster",
            },
            code: 0,
        })
    });
    let response = serve(state.clone(), method, uri, headers, body).await;
    if let Some(mut key) = key {
        key.code = response.status().as_u16();
        state.requests.count(key);
    }
    response
}

async fn serve(
    state: Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/').to_string();
    let query = parse_query(uri.query().unwrap_or(""));
    if path.starts_with("/kube-sim/") {
        return control(&state, &method, &path, &body);
    }
    // kubectl sends no credentials over plain HTTP, so anonymous loopback requests are
    // served (as an API server with anonymous auth would); a wrong token is refused.
    let authorized = headers
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
    match path.as_str() {
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
    if path == "/openapi/v3" {
        let reg = state
            .cluster
            .registry
            .read()
            .map(|r| crate::openapi::root(&r));
        return reg
            .map(ok)
            .unwrap_or_else(|_| text(500, "registry unavailable"));
    }
    if let Some(gv) = path.strip_prefix("/openapi/v3/") {
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
    if path.starts_with("/openapi") || path.starts_with("/swagger") {
        return error(&ApiError {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: json!({}),
        });
    }
    let Some(req) = parse_path(&state, &path) else {
        return error(&ApiError {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: json!({}),
        });
    };
    let (group, version) = (req.group.clone(), req.version.clone());
    let Some(plural) = req.plural.clone() else {
        return resource_list(&state, &group, &version);
    };
    let Some(rt) = state.cluster.resource(&group, &version, &plural) else {
        return error(&ApiError {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: json!({}),
        });
    };
    if let Some(delay) = state.faults.latency() {
        tokio::time::sleep(delay).await;
    }
    let write = method != Method::GET;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut body = body;
    if write && content_type.contains("protobuf") {
        if let Some(obj) = crate::proto::decode(&body) {
            body = Bytes::from(obj.to_string());
        } else {
            return error(&ApiError {
                code: 415,
                reason: "UnsupportedMediaType",
                message:
                    "kube-sim reads protobuf only for Namespace, ConfigMap and Secret; send JSON"
                        .into(),
                details: json!({}),
            });
        }
    } else if write && content_type.contains("cbor") {
        // JSON only: clients fall back to JSON on 415, as they do with a real API server
        // that does not speak their binary encoding.
        return error(&ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml; got {content_type:?}"
            ),
            details: json!({}),
        });
    }
    if let Some(code) = state.faults.error(write) {
        return injected(code);
    }
    let manager = query
        .get("fieldManager")
        .cloned()
        .unwrap_or_else(|| user_agent(&headers));
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .unwrap_or_default();
    let table = accept.contains("as=Table");
    // `as=PartialObjectMetadata`: metadata-only lists, objects and watch events.
    let partial = !table && accept.contains("as=PartialObjectMetadata");
    let include = query.get("includeObject").cloned().unwrap_or_default();
    let target = match req.sub.as_deref() {
        None => Target::Main,
        Some("status") if rt.status => Target::Status,
        Some(other) => {
            return error(&ApiError {
                code: 404,
                reason: "NotFound",
                message: format!("the server could not find the requested resource ({other})"),
                details: json!({}),
            });
        }
    };
    let ns = req.namespace.clone().unwrap_or_default();
    let c = &state.cluster;
    let result = match (&method, req.name.as_deref()) {
        (&Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            return watch(state.clone(), rt, ns, query, partial);
        }
        (&Method::GET, Some(name))
            if query.get("watch").is_some_and(|w| w == "true" || w == "1") =>
        {
            let mut q = query.clone();
            q.insert("fieldSelector".into(), format!("metadata.name={name}"));
            return watch(state.clone(), rt, ns, q, partial);
        }
        (&Method::GET, None) => list(c, &rt, &ns, &query, table, &include)
            .map(|l| if partial { partial_list(l) } else { l }),
        (&Method::GET, Some(name)) => c.get(&rt, &ns, name).map(|o| {
            if table {
                table::table(&rt, std::slice::from_ref(&o), rv_of(&o), &include)
            } else if partial {
                partial_object(&o)
            } else {
                o
            }
        }),
        (&Method::POST, None) => parse_body(&body)
            .and_then(|b| c.create(&rt, &ns, b, &manager))
            .map(return_created),
        (&Method::PUT, Some(name)) => {
            parse_body(&body).and_then(|b| c.update(&rt, &ns, name, b, target, &manager))
        }
        (&Method::PATCH, Some(name)) => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let force = query.get("force").is_some_and(|f| f == "true");
            let kind = match content_type.split(';').next().unwrap_or_default().trim() {
                "application/merge-patch+json" => Some(PatchKind::Merge),
                "application/json-patch+json" => Some(PatchKind::Json),
                "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
                "application/apply-patch+yaml" | "application/apply-patch+json" => {
                    Some(PatchKind::Apply { force })
                }
                _ => None,
            };
            match kind {
                None => Err(ApiError {
                    code: 415,
                    reason: "UnsupportedMediaType",
                    message: format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml; got {content_type:?}"
                    ),
                    details: json!({}),
                }),
                Some(kind) => {
                    let parsed = if matches!(kind, PatchKind::Apply { .. }) {
                        parse_yaml(&body)
                    } else {
                        parse_body(&body)
                    };
                    parsed.and_then(|b| c.patch(&rt, &ns, name, kind, b, target, &manager))
                }
            }
        }
        (&Method::DELETE, Some(name)) => {
            let options: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let policy = query
                .get("propagationPolicy")
                .cloned()
                .or_else(|| options["propagationPolicy"].as_str().map(String::from));
            let orphan = policy.as_deref() == Some("Orphan")
                || options["orphanDependents"] == Value::Bool(true);
            c.delete(&rt, &ns, name, orphan)
        }
        (&Method::DELETE, None) => {
            let (items, _) = c.list(&rt, &ns);
            let selected = select(items, &query);
            match selected {
                Ok(items) => {
                    for o in &items {
                        let (ons, oname) = (
                            o["metadata"]["namespace"].as_str().unwrap_or_default(),
                            o["metadata"]["name"].as_str().unwrap_or_default(),
                        );
                        let _ = c.delete(&rt, ons, oname, false);
                    }
                    Ok(
                        json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": {}, "items": items}),
                    )
                }
                Err(e) => Err(e),
            }
        }
        _ => Err(ApiError {
            code: 405,
            reason: "MethodNotAllowed",
            message: format!(
                "the server does not allow this method on the requested resource ({method})"
            ),
            details: json!({}),
        }),
    };
    match result {
        Ok(v) if v.get("__created").is_some() => {
            let mut v = v;
            if let Some(m) = v.as_object_mut() {
                m.remove("__created");
            }
            respond(201, &v)
        }
        Ok(v) => ok(v),
        Err(e) => error(&e),
    }
}

fn return_created(mut o: Value) -> Value {
    o["__created"] = Value::Bool(true);
    o
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

fn list(
    c: &crate::api::Cluster,
    rt: &ResourceType,
    ns: &str,
    query: &BTreeMap<String, String>,
    table: bool,
    include: &str,
) -> Result<Value, ApiError> {
    let (items, rv) = c.list(rt, ns);
    let selected = query.contains_key("labelSelector") || query.contains_key("fieldSelector");
    let items = select(items, query)?;
    let page = paginate(items, rv, query, selected)?;
    let mut list = if table {
        table::table(rt, &page.items, page.rv, include)
    } else {
        json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
        "metadata": {"resourceVersion": page.rv.to_string()}, "items": page.items})
    };
    if let Some(token) = page.next {
        list["metadata"]["continue"] = json!(token);
    }
    if let Some(remaining) = page.remaining {
        list["metadata"]["remainingItemCount"] = json!(remaining);
    }
    Ok(list)
}

/// One page of a list: its items, the list's resourceVersion, the token of the next page
/// and, without selectors, how many items remain after it.
struct Page {
    items: Vec<Value>,
    rv: u64,
    next: Option<String>,
    remaining: Option<usize>,
}

/// Cuts `items` (in key order: namespace, then name) to `limit`, starting after the key in
/// the `continue` token. The token carries the first page's resourceVersion, which every
/// page reports; unlike etcd, later pages read the current objects (docs/kube-sim.md).
fn paginate(
    items: Vec<Value>,
    rv: u64,
    query: &BTreeMap<String, String>,
    selected: bool,
) -> Result<Page, ApiError> {
    let limit = match query.get("limit").map(|l| l.parse::<i64>()) {
        None => 0,
        Some(Ok(l)) => l.max(0),
        Some(Err(_)) => return Err(ApiError::bad_request("limit must be an integer")),
    };
    let (rv, after) = match query.get("continue").filter(|t| !t.is_empty()) {
        None => (rv, None),
        Some(token) => {
            let (list_rv, key) = continue_token::decode(token).ok_or_else(|| {
                ApiError::bad_request(
                    "continue key is not valid: the token was not issued by this server",
                )
            })?;
            (list_rv, Some(key))
        }
    };
    let key = |o: &Value| {
        format!(
            "{}/{}",
            o["metadata"]["namespace"].as_str().unwrap_or_default(),
            o["metadata"]["name"].as_str().unwrap_or_default()
        )
    };
    let mut items: Vec<Value> = match &after {
        Some(after) => items.into_iter().filter(|o| key(o) > *after).collect(),
        None => items,
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if limit == 0 || items.len() <= limit {
        return Ok(Page {
            items,
            rv,
            next: None,
            remaining: None,
        });
    }
    let remaining = items.len() - limit;
    items.truncate(limit);
    let next = items.last().map(|o| continue_token::encode(rv, &key(o)));
    Ok(Page {
        items,
        rv,
        next,
        remaining: (!selected).then_some(remaining),
    })
}

/// The opaque `continue` token: the list's resourceVersion and the last key served, as
/// JSON in hexadecimal (clients never look inside).
mod continue_token {
    use serde_json::{Value, json};

    pub(super) fn encode(rv: u64, key: &str) -> String {
        let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": key}).to_string();
        raw.bytes().map(|b| format!("{b:02x}")).collect()
    }

    pub(super) fn decode(token: &str) -> Option<(u64, String)> {
        if !token.len().is_multiple_of(2) {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..token.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
            .collect();
        let v: Value = serde_json::from_slice(&bytes?).ok()?;
        Some((v["rv"].as_u64()?, v["start"].as_str()?.to_string()))
    }
}

fn select(items: Vec<Value>, query: &BTreeMap<String, String>) -> Result<Vec<Value>, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(items
        .into_iter()
        .filter(|o| labels.matches(&o["metadata"]["labels"]) && fields.matches(o))
        .collect())
}

/// A watch: replays changes after `resourceVersion` (or lists the current objects), then
/// streams changes, bookmarks and, when the version is too old, a 410 `ERROR` event.
fn watch(
    state: Arc<Shared>,
    rt: ResourceType,
    ns: String,
    query: BTreeMap<String, String>,
    partial: bool,
) -> Response {
    let labels = match LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str)) {
        Ok(l) => l,
        Err(e) => return error(&ApiError::bad_request(e.to_string())),
    };
    let fields = match FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str)) {
        Ok(f) => f,
        Err(e) => return error(&ApiError::bad_request(e.to_string())),
    };
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let initial_events = query.get("sendInitialEvents").is_some_and(|b| b == "true");
    let rv_param = query.get("resourceVersion").cloned().unwrap_or_default();
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let matches = move |o: &Value| labels.matches(&o["metadata"]["labels"]) && fields.matches(o);
    tokio::spawn(async move {
        let in_scope = |c: &Change| {
            c.storage == rt.storage && (ns.is_empty() || !rt.namespaced || c.namespace == ns)
        };
        let setup = {
            let store = state
                .cluster
                .store
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let start = if rv_param.is_empty() || rv_param == "0" || initial_events {
                store.rv()
            } else {
                rv_param.parse().unwrap_or(0)
            };
            let initial: Vec<Value> = if rv_param.is_empty() || rv_param == "0" || initial_events {
                store.list(
                    &rt.storage,
                    (rt.namespaced && !ns.is_empty()).then_some(ns.as_str()),
                )
            } else {
                Vec::new()
            };
            store
                .watch_from(start)
                .map(|(past, live)| (initial, past, live, store.rv()))
        };
        let Some((initial, past, mut live, mut last_rv)) = setup else {
            state.faults.count_gone();
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: {rv_param}"), "reason": "Expired", "code": 410});
            let _ = tx.send(line("ERROR", &status)).await;
            return;
        };
        let (drop_after_events, drop_after) = state.faults.watch_limits();
        let mut sent: u64 = 0;
        let present = |o: Value| {
            let full = state.cluster.present(&rt, o);
            if partial { partial_object(&full) } else { full }
        };
        for o in initial.into_iter().filter(|o| matches(o)) {
            if tx.send(line("ADDED", &present(o))).await.is_err() {
                return;
            }
        }
        if initial_events && bookmarks {
            let b = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": last_rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
            if tx.send(line("BOOKMARK", &b)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::Instant::now()
            + timeout
                .unwrap_or(Duration::from_secs(1800))
                .min(drop_after.unwrap_or(Duration::MAX));
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut pending: std::collections::VecDeque<Change> = past.into();
        loop {
            let change = if let Some(c) = pending.pop_front() {
                c
            } else {
                tokio::select! {
                    r = live.recv() => match r {
                        Ok(c) => c,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            state.faults.count_gone();
                            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410});
                            let _ = tx.send(line("ERROR", &status)).await;
                            return;
                        }
                        Err(_) => return,
                    },
                    _ = tick.tick() => {
                        if bookmarks {
                            let b = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": last_rv.to_string()}});
                            if tx.send(line("BOOKMARK", &b)).await.is_err() { return; }
                        }
                        continue;
                    }
                    _ = tokio::time::sleep_until(deadline) => {
                        if drop_after.is_some() { state.faults.count_drop(); }
                        return;
                    }
                    _ = tx.closed() => return,
                }
            };
            last_rv = last_rv.max(change.rv);
            if !in_scope(&change) || !matches(&change.object) {
                continue;
            }
            let kind = match change.kind {
                ChangeType::Added => "ADDED",
                ChangeType::Modified => "MODIFIED",
                ChangeType::Deleted => "DELETED",
            };
            if tx.send(line(kind, &present(change.object))).await.is_err() {
                return;
            }
            sent += 1;
            if drop_after_events.is_some_and(|n| sent >= n) {
                state.faults.count_drop();
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

/// The `meta.k8s.io/v1` PartialObjectMetadata form of an object.
fn partial_object(o: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
}

fn partial_list(list: Value) -> Value {
    let items: Vec<Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(partial_object)
        .collect();
    json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list["metadata"], "items": items})
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
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
