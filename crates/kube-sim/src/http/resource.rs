//! Requests for a resource: get, list, watch, create, update, patch and delete, with the
//! faults tests inject and the body formats clients send.

use super::*;

/// A request for a resource (`rt`) at the path `req` names: injected faults, the body
/// decoded, then the verb.
pub(super) async fn serve(
    state: Arc<Shared>,
    method: Method,
    req: PathRequest,
    rt: ResourceType,
    query: BTreeMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(delay) = state.faults.latency() {
        tokio::time::sleep(delay).await;
    }
    let write = method != Method::GET;
    let content_type = header_text(&headers, header::CONTENT_TYPE);
    let body = if write {
        match decode_body(content_type, body) {
            Ok(b) => b,
            Err(e) => return error(&e),
        }
    } else {
        body
    };
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
            let to = WriteTo {
                rt: &rt,
                ns: &ns,
                name,
                target,
                manager: &manager,
            };
            patch(c, &to, content_type, &query, &body)
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
        (&Method::DELETE, None) => delete_collection(c, &rt, &ns, &query),
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

pub(super) fn return_created(mut o: Value) -> Value {
    o["__created"] = Value::Bool(true);
    o
}

/// A request header as text (empty when absent or not text).
fn header_text(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The body of a write as JSON text: protobuf decoded for the kinds kube-sim reads in it,
/// CBOR refused (clients fall back to JSON on 415, as with an API server that does not
/// speak their binary encoding).
fn decode_body(content_type: &str, body: Bytes) -> Result<Bytes, ApiError> {
    if content_type.contains("protobuf") {
        return crate::proto::decode(&body)
            .map(|obj| Bytes::from(obj.to_string()))
            .ok_or_else(|| ApiError {
                code: 415,
                reason: "UnsupportedMediaType",
                message:
                    "kube-sim reads protobuf only for Namespace, ConfigMap and Secret; send JSON"
                        .into(),
                details: json!({}),
            });
    }
    if content_type.contains("cbor") {
        return Err(ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml; got {content_type:?}"
            ),
            details: json!({}),
        });
    }
    Ok(body)
}

/// A PATCH: the patch format from the content type, then the write.
fn patch(
    c: &crate::api::Cluster,
    to: &WriteTo<'_>,
    content_type: &str,
    query: &BTreeMap<String, String>,
    body: &Bytes,
) -> Result<Value, ApiError> {
    let force = query.get("force").is_some_and(|f| f == "true");
    let kind = match content_type.split(';').next().unwrap_or_default().trim() {
        "application/merge-patch+json" => PatchKind::Merge,
        "application/json-patch+json" => PatchKind::Json,
        "application/strategic-merge-patch+json" => PatchKind::Strategic,
        "application/apply-patch+yaml" | "application/apply-patch+json" => {
            PatchKind::Apply { force }
        }
        _ => {
            return Err(ApiError {
                code: 415,
                reason: "UnsupportedMediaType",
                message: format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml; got {content_type:?}"
                ),
                details: json!({}),
            });
        }
    };
    let parsed = if matches!(kind, PatchKind::Apply { .. }) {
        parse_yaml(body)
    } else {
        parse_body(body)
    };
    parsed.and_then(|b| c.patch(to, kind, b))
}

/// DELETE of a collection: every object the selectors pick.
fn delete_collection(
    c: &crate::api::Cluster,
    rt: &ResourceType,
    ns: &str,
    query: &BTreeMap<String, String>,
) -> Result<Value, ApiError> {
    let (items, _) = c.list(rt, ns);
    let items = select(items, query)?;
    for o in &items {
        let (ons, oname) = (
            o["metadata"]["namespace"].as_str().unwrap_or_default(),
            o["metadata"]["name"].as_str().unwrap_or_default(),
        );
        let _ = c.delete(rt, ons, oname, false);
    }
    Ok(
        json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": {}, "items": items}),
    )
}
