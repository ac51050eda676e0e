//! App Mesh v1beta2 (flagger-behaviour.md 3.5, seed 002): VirtualNodes `<apex>-primary` and
//! `<apex>-canary`, VirtualRouters `<apex>` (weighted) and `<apex>-canary`, VirtualServices
//! `<apex>` and `<apex>-canary`.

use canary_api::Canary;
use canary_core::Routes;
use serde_json::{Value, json};

use crate::{Result, apex_name, managed_metadata, weight_pair};

const API: &str = "appmesh.k8s.aws/v1beta2";

/// The selector of the target's pods: label and value (`app`, `podinfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSelector {
    /// Label name.
    pub label: String,
    /// Value on the target (the primary's is `<value>-primary`).
    pub value: String,
}

fn protocol(canary: &Canary) -> &'static str {
    if canary
        .spec
        .service
        .port_name
        .as_deref()
        .is_some_and(|n| n.contains("grpc"))
    {
        "grpc"
    } else {
        "http"
    }
}

fn port(canary: &Canary) -> i32 {
    match &canary.spec.service.target_port {
        Some(canary_core::spec::IntOrString::Int(p)) => *p,
        _ => canary.spec.service.port,
    }
}

fn millis(duration: &str) -> Option<Value> {
    canary_core::duration::parse(duration)
        .ok()
        .map(|d| json!({"unit": "ms", "value": d.as_millis() as u64}))
}

/// The two VirtualNodes.
pub fn virtual_nodes(canary: &Canary, sel: &PodSelector) -> [Value; 2] {
    let apex = apex_name(canary);
    let ns = canary.metadata.namespace.clone().unwrap_or_default();
    let s = &canary.spec.service;
    let backends: Vec<Value> = s
        .backends
        .iter()
        .map(|b| {
            if b.starts_with("arn:aws") {
                json!({"virtualService": {"virtualServiceARN": b}})
            } else {
                json!({"virtualService": {"virtualServiceRef": {"name": b}}})
            }
        })
        .collect();
    [(format!("{apex}-primary"), format!("{}-primary", sel.value)), (format!("{apex}-canary"), sel.value.clone())].map(|(name, value)| {
        let mut listener = json!({"portMapping": {"port": port(canary), "protocol": protocol(canary)}});
        if let Some(t) = s.timeout.as_deref().and_then(millis) {
            listener["timeout"] = json!({protocol(canary): {"perRequest": t}});
        }
        let mut spec = json!({
            "listeners": [listener],
            "serviceDiscovery": {"dns": {"hostname": format!("{name}.{ns}.svc.cluster.local")}},
            "podSelector": {"matchLabels": {&sel.label: value}},
        });
        if !backends.is_empty() {
            spec["backends"] = json!(backends);
        }
        if let Some(mesh) = &s.mesh_name {
            spec["meshRef"] = json!({"name": mesh});
        }
        if canary.metadata.annotations.as_ref().and_then(|a| a.get("appmesh.flagger.app/accesslog")).map(String::as_str) == Some("enabled") {
            spec["logging"] = json!({"accessLog": {"file": {"path": "/dev/stdout"}}});
        }
        json!({"apiVersion": API, "kind": "VirtualNode", "metadata": managed_metadata(canary, &name, true), "spec": spec})
    })
}

/// The VirtualRouters: `<apex>` with the weights (and A/B routes), `<apex>-canary` to the canary.
pub fn virtual_routers(canary: &Canary, routes: Routes) -> [Value; 2] {
    let apex = apex_name(canary);
    let s = &canary.spec.service;
    let proto = protocol(canary);
    let route_key = if proto == "grpc" {
        "grpcRoute"
    } else {
        "httpRoute"
    };
    let prefix = s
        .r#match
        .first()
        .and_then(|m| m.uri.as_ref())
        .and_then(|u| u.prefix.clone())
        .unwrap_or_else(|| "/".into());
    let targets = |c: u32, p: u32| json!([{"virtualNodeRef": {"name": format!("{apex}-canary")}, "weight": c}, {"virtualNodeRef": {"name": format!("{apex}-primary")}, "weight": p}]);
    let route_body = |targets: Value, headers: Option<Value>| {
        let mut r = json!({"match": {"prefix": prefix}, "action": {"weightedTargets": targets}});
        if let Some(h) = headers {
            r["match"]["headers"] = h;
        }
        if let Some(t) = s.timeout.as_deref().and_then(millis) {
            r["timeout"] = json!({"perRequest": t});
        }
        if let Some(retries) = &s.retries {
            let per_try = retries
                .per_try_timeout
                .as_deref()
                .and_then(millis)
                .unwrap_or(json!({"unit": "ms", "value": 250}));
            let events: Vec<String> = retries
                .retry_on
                .as_deref()
                .map(|r| r.split(',').map(|e| e.trim().to_string()).collect())
                .unwrap_or_else(|| vec!["gateway-error".into()]);
            r["retryPolicy"] = json!({"maxRetries": retries.attempts.unwrap_or(1), "perRetryTimeout": per_try, "httpRetryEvents": events});
        }
        r
    };
    let ab = canary
        .spec
        .analysis()
        .map(|a| a.r#match.clone())
        .unwrap_or_default();
    let main_routes = if ab.is_empty() {
        json!([{"name": apex, route_key: route_body(targets(routes.canary, routes.primary), None)}])
    } else {
        let headers: Vec<Value> = ab
            .iter()
            .flat_map(|m| m.headers.iter())
            .map(|(name, v)| {
                let mut m = serde_json::Map::new();
                for (k, val) in [
                    ("exact", &v.exact),
                    ("prefix", &v.prefix),
                    ("suffix", &v.suffix),
                    ("regex", &v.regex),
                ] {
                    if let Some(val) = val {
                        m.insert(k.into(), json!(val));
                    }
                }
                json!({"name": name, "match": m})
            })
            .collect();
        json!([
            {"name": format!("{apex}-a"), "priority": 10, route_key: route_body(targets(routes.canary, routes.primary), Some(json!(headers)))},
            {"name": format!("{apex}-b"), "priority": 20, route_key: route_body(targets(0, 100), None)},
        ])
    };
    let listener = json!([{"portMapping": {"port": port(canary), "protocol": proto}}]);
    let canary_only = json!([{"name": format!("{apex}-canary"), route_key: route_body(json!([{"virtualNodeRef": {"name": format!("{apex}-canary")}, "weight": 100}]), None)}]);
    [(apex.clone(), main_routes), (format!("{apex}-canary"), canary_only)].map(|(name, routes)| {
        json!({"apiVersion": API, "kind": "VirtualRouter", "metadata": managed_metadata(canary, &name, true), "spec": {"listeners": listener, "routes": routes}})
    })
}

/// The VirtualServices `<apex>` and `<apex>-canary`, each backed by its router.
pub fn virtual_services(canary: &Canary) -> [Value; 2] {
    let apex = apex_name(canary);
    let ns = canary.metadata.namespace.clone().unwrap_or_default();
    let s = &canary.spec.service;
    [apex.clone(), format!("{apex}-canary")].map(|name| {
        let mut metadata = managed_metadata(canary, &name, true);
        if name == apex && !s.hosts.is_empty() {
            metadata["annotations"]["gateway.appmesh.k8s.aws/expose"] = json!("true");
            // Flagger's form, which its App Mesh gateway reads: each host followed by a comma,
            // the timeout when set, the retries when there is at least one attempt.
            let domain: String = s.hosts.iter().map(|h| format!("{h},")).collect();
            metadata["annotations"]["gateway.appmesh.k8s.aws/domain"] = json!(domain);
            if let Some(t) = s.timeout.as_ref().filter(|t| !t.is_empty()) {
                metadata["annotations"]["gateway.appmesh.k8s.aws/timeout"] = json!(t);
            }
            if let Some(r) = s.retries.as_ref().and_then(|r| r.attempts).filter(|a| *a > 0) {
                metadata["annotations"]["gateway.appmesh.k8s.aws/retries"] = json!(r.to_string());
            }
        }
        json!({
            "apiVersion": API, "kind": "VirtualService", "metadata": metadata,
            "spec": {"awsName": format!("{name}.{ns}"), "provider": {"virtualRouter": {"virtualRouterRef": {"name": name}}}},
        })
    })
}

/// The weights of the apex VirtualRouter (its first route).
pub fn routes_of(router: &Value, canary: &Canary) -> Result<Routes> {
    let route = &router["spec"]["routes"][0];
    let targets = route["httpRoute"]["action"]["weightedTargets"]
        .as_array()
        .or(route["grpcRoute"]["action"]["weightedTargets"].as_array())
        .cloned()
        .unwrap_or_default();
    weight_pair(&apex_name(canary), "virtualrouter", |name| {
        targets
            .iter()
            .find(|t| t["virtualNodeRef"]["name"] == name)
            .map(|t| t["weight"].as_u64().unwrap_or(0) as u32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_annotations_take_flaggers_form() {
        let yaml = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\nspec:\n  provider: appmesh\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n  service: {port: 9898, hosts: [app.example.com, www.example.com], timeout: 15s, retries: {attempts: 0}}\n  skipAnalysis: true\n";
        let canary = Canary::from_yaml(yaml).expect("canary");
        let [apex, other] = virtual_services(&canary);
        let a = &apex["metadata"]["annotations"];
        assert_eq!(a["gateway.appmesh.k8s.aws/expose"], "true");
        assert_eq!(
            a["gateway.appmesh.k8s.aws/domain"],
            "app.example.com,www.example.com,"
        );
        assert_eq!(a["gateway.appmesh.k8s.aws/timeout"], "15s");
        assert!(
            a["gateway.appmesh.k8s.aws/retries"].is_null(),
            "no retries at 0 attempts"
        );
        assert!(other["metadata"]["annotations"]["gateway.appmesh.k8s.aws/expose"].is_null());
    }
}
