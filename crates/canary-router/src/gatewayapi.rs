//! Gateway API: the HTTPRoute `<apex>` attached to `service.gatewayRefs` (a Gateway, or the
//! apex Service itself for mesh routing, as Linkerd uses it), with weighted backendRefs
//! (flagger-behaviour.md 3.4).

use canary_api::Canary;
use canary_core::Routes;
use canary_core::spec::{HttpMatch, StringMatch};
use serde_json::{Map, Value, json};

use crate::{Error, Result, apex_name, cookie_attributes, managed_metadata, matches};

/// The HTTPRoute of API `version` (`v1` or `v1beta1`) with `routes`, and the iterations done
/// (mirroring is for blue/green only).
pub fn http_route(canary: &Canary, routes: Routes, version: &str) -> Result<Value> {
    let spec: &canary_core::CanarySpec = &canary.spec;
    let s = &spec.service;
    if s.gateway_refs.is_empty() {
        return Err(Error::Invalid(
            "spec.service.gatewayRefs: required by the Gateway API provider".into(),
        ));
    }
    let apex = apex_name(canary);
    let backend = |name: String, weight: u32| json!({"group": "", "kind": "Service", "name": name, "port": s.port, "weight": weight});
    let mut filters: Vec<Value> = Vec::new();
    if let Some(h) = &s.headers {
        for (kind, ops) in [
            ("RequestHeaderModifier", &h.request),
            ("ResponseHeaderModifier", &h.response),
        ] {
            if let Some(ops) = ops {
                let key = if kind == "RequestHeaderModifier" {
                    "requestHeaderModifier"
                } else {
                    "responseHeaderModifier"
                };
                let pairs = |m: &std::collections::BTreeMap<String, String>| {
                    m.iter()
                        .map(|(k, v)| json!({"name": k, "value": v}))
                        .collect::<Vec<_>>()
                };
                let mut f = json!({"type": kind, key: {}});
                if !ops.set.is_empty() {
                    f[key]["set"] = json!(pairs(&ops.set));
                }
                if !ops.add.is_empty() {
                    f[key]["add"] = json!(pairs(&ops.add));
                }
                if !ops.remove.is_empty() {
                    f[key]["remove"] = json!(ops.remove);
                }
                filters.push(f);
            }
        }
    }
    if let Some(r) = &s.rewrite {
        let mut f = json!({"type": "URLRewrite", "urlRewrite": {}});
        if let Some(host) = &r.authority {
            f["urlRewrite"]["hostname"] = json!(host);
        }
        if let Some(uri) = &r.uri {
            let kind = r.kind.clone().unwrap_or_else(|| "ReplaceFullPath".into());
            let field = if kind == "ReplacePrefixMatch" {
                "replacePrefixMatch"
            } else {
                "replaceFullPath"
            };
            f["urlRewrite"]["path"] = json!({"type": kind, field: uri});
        }
        filters.push(f);
    }
    filters.extend(s.mirror.iter().cloned());
    if let Some(cors) = &s.cors_policy {
        let mut c = serde_json::Map::new();
        if !cors.allow_origin.is_empty() {
            c.insert("allowOrigins".into(), json!(cors.allow_origin));
        }
        for (key, list) in [
            ("allowMethods", &cors.allow_methods),
            ("allowHeaders", &cors.allow_headers),
            ("exposeHeaders", &cors.expose_headers),
        ] {
            if !list.is_empty() {
                c.insert(key.into(), json!(list));
            }
        }
        if let Some(age) = cors
            .max_age
            .as_deref()
            .and_then(|a| canary_core::duration::parse(a).ok())
        {
            c.insert("maxAge".into(), json!(age.as_secs()));
        }
        if let Some(creds) = cors.allow_credentials {
            c.insert("allowCredentials".into(), json!(creds));
        }
        filters.push(json!({"type": "CORS", "cors": c}));
    }
    let mirror_to_canary = routes.mirrored;
    let rule = |matches: Vec<Value>, p: u32, c: u32, mirror: bool| {
        let mut r = Map::new();
        r.insert("matches".into(), json!(matches));
        let mut fs = filters.clone();
        if mirror {
            fs.push(json!({"type": "RequestMirror", "requestMirror": {"backendRef": {"group": "", "kind": "Service", "name": format!("{apex}-canary"), "port": s.port}}}));
        }
        if !fs.is_empty() {
            r.insert("filters".into(), json!(fs));
        }
        r.insert(
            "backendRefs".into(),
            json!([
                backend(format!("{apex}-primary"), p),
                backend(format!("{apex}-canary"), c)
            ]),
        );
        let mut timeouts = Map::new();
        if let Some(t) = &s.timeout {
            timeouts.insert("request".into(), json!(t));
        }
        if let Some(t) = &s.backend_timeout {
            timeouts.insert("backendRequest".into(), json!(t));
        }
        if !timeouts.is_empty() {
            r.insert("timeouts".into(), Value::Object(timeouts));
        }
        Value::Object(r)
    };
    let base: Vec<Value> = if s.r#match.is_empty() {
        vec![json!({"path": {"type": "PathPrefix", "value": "/"}})]
    } else {
        s.r#match.iter().map(gateway_match).collect()
    };
    let ab = spec
        .analysis()
        .map(|a| a.r#match.clone())
        .unwrap_or_default();
    let rules = if ab.is_empty() {
        vec![rule(base, routes.primary, routes.canary, mirror_to_canary)]
    } else {
        let merged: Vec<Value> = matches::merge(&ab, &s.r#match)
            .iter()
            .map(gateway_match)
            .collect();
        vec![
            rule(merged, routes.primary, routes.canary, false),
            rule(base, 100, 0, false),
        ]
    };
    let rules = match spec.analysis().and_then(|a| a.session_affinity.as_ref()) {
        Some(affinity) => with_session_affinity(canary, affinity, routes, rules, &apex, s.port),
        None => rules,
    };
    let parent_refs: Vec<Value> = s
        .gateway_refs
        .iter()
        .map(|r| serde_json::to_value(r).unwrap_or_default())
        .collect();
    let mut route_spec = json!({"parentRefs": parent_refs, "rules": rules});
    if !s.hosts.is_empty() {
        route_spec["hostnames"] = json!(s.hosts);
    }
    Ok(json!({
        "apiVersion": format!("gateway.networking.k8s.io/{version}"),
        "kind": "HTTPRoute",
        "metadata": managed_metadata(canary, &apex, true),
        "spec": route_spec,
    }))
}

/// Sticky sessions, as for Istio: a first rule sends requests with the revision's cookie to
/// the canary, whose responses set it; once traffic is back on the primary, a rule expires
/// the previous cookie.
fn with_session_affinity(
    canary: &Canary,
    affinity: &canary_core::spec::SessionAffinity,
    routes: Routes,
    mut rules: Vec<Value>,
    apex: &str,
    port: i32,
) -> Vec<Value> {
    let status = canary.status.clone().unwrap_or_default();
    let backend = |name: String, weight: u32| json!({"group": "", "kind": "Service", "name": name, "port": port, "weight": weight});
    let set_cookie = |mut b: Value, value: String| {
        b["filters"] = json!([{"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": "Set-Cookie", "value": value}]}}]);
        b
    };
    let cookie_match = |cookie: &str| json!([{"headers": [{"type": "RegularExpression", "name": "Cookie", "value": format!(".*{cookie}.*")}]}]);
    let max_age = affinity.max_age.unwrap_or(86400);
    if routes.canary > 0 {
        let cookie =
            canary_core::hash::session_cookie(&affinity.cookie_name, &status.last_applied_spec);
        let value = format!("{cookie}{}", cookie_attributes(affinity, max_age));
        if let Some(weighted) = rules.first_mut() {
            weighted["backendRefs"][1] =
                set_cookie(weighted["backendRefs"][1].clone(), value.clone());
        }
        let sticky = json!({"matches": cookie_match(&cookie), "backendRefs": [backend(format!("{apex}-primary"), 0), set_cookie(backend(format!("{apex}-canary"), 100), value)]});
        rules.insert(0, sticky);
    } else if let Some(previous) = status
        .session_affinity_cookie
        .or(status.previous_session_affinity_cookie)
    {
        let expire = json!({"matches": cookie_match(&previous), "backendRefs": [set_cookie(backend(format!("{apex}-primary"), 100), format!("{previous}; Max-Age=-1")), backend(format!("{apex}-canary"), 0)]});
        rules.insert(0, expire);
    }
    rules
}

/// True for the rules flaggerd adds for session affinity (matched on the Cookie header).
fn is_sticky(rule: &Value) -> bool {
    rule["matches"][0]["headers"][0]["name"] == "Cookie"
        && rule["matches"][0]["headers"][0]["type"] == "RegularExpression"
}

/// A match in Gateway API's form (path, method, headers and query parameters).
fn gateway_match(m: &HttpMatch) -> Value {
    let mut out = Map::new();
    if let Some(uri) = &m.uri {
        let path = match uri {
            StringMatch { exact: Some(v), .. } => json!({"type": "Exact", "value": v}),
            StringMatch { regex: Some(v), .. } => json!({"type": "RegularExpression", "value": v}),
            StringMatch {
                prefix: Some(v), ..
            } => json!({"type": "PathPrefix", "value": v}),
            _ => json!({"type": "PathPrefix", "value": "/"}),
        };
        out.insert("path".into(), path);
    }
    if let Some(StringMatch { exact: Some(m), .. }) = &m.method {
        out.insert("method".into(), json!(m));
    }
    let pairs = |map: &std::collections::BTreeMap<String, StringMatch>| {
        map.iter()
            .map(|(name, v)| match v {
                StringMatch { regex: Some(r), .. } => json!({"type": "RegularExpression", "name": name, "value": r}),
                StringMatch { exact, prefix, suffix, .. } => {
                    json!({"type": "Exact", "name": name, "value": exact.clone().or(prefix.clone()).or(suffix.clone()).unwrap_or_default()})
                }
            })
            .collect::<Vec<_>>()
    };
    if !m.headers.is_empty() {
        out.insert("headers".into(), json!(pairs(&m.headers)));
    }
    if !m.query_params.is_empty() {
        out.insert("queryParams".into(), json!(pairs(&m.query_params)));
    }
    if out.is_empty() {
        out.insert("path".into(), json!({"type": "PathPrefix", "value": "/"}));
    }
    Value::Object(out)
}

/// The weights an HTTPRoute holds: the rule with both backends (the first such rule).
pub fn routes_of(route: &Value, canary: &Canary) -> Result<Routes> {
    let apex = apex_name(canary);
    for rule in route["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| !is_sticky(r))
    {
        let refs = rule["backendRefs"].as_array().cloned().unwrap_or_default();
        let weight = |name: String| {
            refs.iter()
                .find(|b| b["name"] == name.as_str())
                .map(|b| b["weight"].as_u64().unwrap_or(1) as u32)
        };
        if let (Some(p), Some(c)) = (
            weight(format!("{apex}-primary")),
            weight(format!("{apex}-canary")),
        ) {
            let mirrored = rule["filters"].as_array().into_iter().flatten().any(|f| {
                f["type"] == "RequestMirror"
                    && f["requestMirror"]["backendRef"]["name"] == format!("{apex}-canary").as_str()
            });
            return Ok(Routes {
                primary: p,
                canary: c,
                mirrored,
            });
        }
    }
    Err(Error::Invalid(format!(
        "httproute {apex} has no rule with {apex}-primary and {apex}-canary"
    )))
}
