//! Contour: the HTTPProxy `<apex>` that a user's root HTTPProxy includes, with the weighted
//! services `<apex>-primary` and `<apex>-canary` (flagger-behaviour.md 3.1).
//!
//! One route matches the service's path prefix (`service.match[0].uri.prefix`, else `/`); in
//! A/B testing a route matching the analysis' headers comes first and carries the weights,
//! and the prefix route stays on the primary. Each service sets Linkerd's
//! `l5d-dst-override`, so the request keeps its destination through a Linkerd sidecar.
//! `service.timeout` is the response timeout (idle 5m), `service.retries` the retry policy,
//! and `-ingress-class` the `ingressClassName`. A weight of 0 is left out, as Contour's Go
//! types write it (a service without a weight receives no traffic while another has one).
//!
//! Where Flagger's object would be refused by Contour, flaggerd writes the valid one (listed
//! in docs/compatibility.md): the first header condition carries the path prefix and further
//! ones do not (Contour allows one prefix per route), a header's regex becomes Contour's
//! `regex` (Flagger writes an empty `exact`), and an empty `retryOn` is left out (Flagger
//! writes `[""]`, outside the field's enum).

use canary_api::Canary;
use canary_core::Routes;
use canary_core::spec::StringMatch;
use serde_json::{Map, Value, json};

use crate::{Error, Result, apex_name, managed_metadata};

/// The HTTPProxy with `routes`, under ingress class `ingress_class` (none when empty).
pub fn http_proxy(canary: &Canary, routes: Routes, ingress_class: &str) -> Value {
    let apex = apex_name(canary);
    let prefix = path_prefix(canary);
    let ab = canary
        .spec
        .analysis()
        .map(|a| a.r#match.clone())
        .unwrap_or_default();
    let prefix_only = vec![json!({"prefix": prefix})];
    let route_list = if ab.is_empty() {
        vec![route(canary, &apex, prefix_only, routes)]
    } else {
        let mut conditions = Vec::new();
        for m in &ab {
            for (name, value) in &m.headers {
                let mut c = json!({"header": header_condition(name, value)});
                if conditions.is_empty() {
                    c["prefix"] = json!(prefix);
                }
                conditions.push(c);
            }
        }
        if conditions.is_empty() {
            conditions = prefix_only.clone();
        }
        vec![
            route(canary, &apex, conditions, routes),
            route(canary, &apex, prefix_only, Routes::default()),
        ]
    };
    let mut spec = json!({"routes": route_list});
    if !ingress_class.is_empty() {
        spec["ingressClassName"] = json!(ingress_class);
    }
    json!({
        "apiVersion": "projectcontour.io/v1",
        "kind": "HTTPProxy",
        "metadata": managed_metadata(canary, &apex, true),
        "spec": spec,
    })
}

/// `service.match[0].uri.prefix`, else `/`.
fn path_prefix(canary: &Canary) -> String {
    canary
        .spec
        .service
        .r#match
        .first()
        .and_then(|m| m.uri.as_ref())
        .and_then(|u| u.prefix.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into())
}

/// A header condition as Flagger maps an analysis match: `exact`, a prefix or suffix as
/// `contains`, a regex as `regex`.
fn header_condition(name: &str, m: &StringMatch) -> Value {
    let mut h = json!({"name": name});
    if let Some(v) = m.prefix.as_ref().or(m.suffix.as_ref()) {
        h["contains"] = json!(v);
    } else if let Some(v) = &m.regex {
        h["regex"] = json!(v);
    } else {
        h["exact"] = json!(m.exact.clone().unwrap_or_default());
    }
    h
}

fn route(canary: &Canary, apex: &str, conditions: Vec<Value>, routes: Routes) -> Value {
    let s = &canary.spec.service;
    let ns = crate::object::namespace(canary);
    let service = |name: String, weight: u32| {
        let mut svc = json!({
            "name": name,
            "port": s.port,
            "requestHeadersPolicy": {"set": [{
                "name": "l5d-dst-override",
                "value": format!("{name}.{ns}.svc.cluster.local:{}", s.port),
            }]},
        });
        if weight > 0 {
            svc["weight"] = json!(weight);
        }
        svc
    };
    let mut r = Map::new();
    r.insert("conditions".into(), json!(conditions));
    if let Some(t) = &s.timeout {
        r.insert("timeoutPolicy".into(), json!({"response": t, "idle": "5m"}));
    }
    if let Some(retries) = &s.retries {
        let mut policy = json!({"count": retries.attempts.unwrap_or(0)});
        if let Some(t) = retries.per_try_timeout.as_ref().filter(|t| !t.is_empty()) {
            policy["perTryTimeout"] = json!(t);
        }
        let on: Vec<&str> = retries
            .retry_on
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        if !on.is_empty() {
            policy["retryOn"] = json!(on);
        }
        r.insert("retryPolicy".into(), policy);
    }
    r.insert(
        "services".into(),
        json!([
            service(format!("{apex}-primary"), routes.primary),
            service(format!("{apex}-canary"), routes.canary)
        ]),
    );
    Value::Object(r)
}

/// The weights of the HTTPProxy's first route (a missing weight is 0).
pub fn routes_of(proxy: &Value, canary: &Canary) -> Result<Routes> {
    let apex = apex_name(canary);
    let services = &proxy["spec"]["routes"][0]["services"];
    let weight = |name: String| crate::weight_of(services, "name", &name, 0);
    match (
        weight(format!("{apex}-primary")),
        weight(format!("{apex}-canary")),
    ) {
        (Some(primary), Some(canary)) if primary + canary > 0 => Ok(Routes {
            primary,
            canary,
            mirrored: false,
        }),
        _ => Err(Error::Invalid(format!(
            "httpproxy {apex}: its first route has no weights for {apex}-primary and {apex}-canary"
        ))),
    }
}
