//! Gloo Edge: a request to Gloo's gateway proxy Service (selector `gloo: gateway-proxy`, as
//! the project's chart makes it) is routed by its `Host` through the `gateway.solo.io`
//! VirtualService whose `virtualHost.domains` lists that host (`*` as a fallback), as Gloo
//! builds Envoy's routes:
//!
//! - routes are tried in the order written; a route without matchers matches every path
//!   (Gloo's default prefix `/`);
//! - a matcher holds when the path matches its `prefix`, `exact` or `regex`, every header
//!   matcher holds (`value` exact, or a whole-value regular expression with `regex`; no value:
//!   present; `invertMatch` negates) and the method is one of its `methods`;
//! - a `delegateAction` (`ref` or the older inline name and namespace) hands the request to a
//!   RouteTable's routes, each under the parent's header and method matchers and, with
//!   `inheritablePathMatchers`, its path matchers too, to a depth of 8;
//! - a `routeAction` sends it to a `single` upstream or picks one of the `multi` destinations
//!   by weight (no weight: 0).
//!
//! An Upstream names its Kubernetes Service in `spec.kube`; each request carries the Envoy
//! cluster Gloo names the upstream: `<upstream>_<namespace>`, the `envoy_cluster_name` of
//! Envoy's series.

use serde_json::Value;

use super::{
    Decision, Pick, Proxy, Request, Route, Upstream, backend_of, name_of, ns_of, regex_full,
    weighted,
};
use crate::cluster::Snapshot;

/// The most nested delegations followed.
const MAX_DEPTH: usize = 8;

/// True when the request reached Gloo's gateway proxy.
pub(super) fn is_gateway(service: &Value) -> bool {
    service["spec"]["selector"]["gloo"] == "gateway-proxy"
}

/// True when a Gloo VirtualService serves `host`.
pub(super) fn serves(s: &Snapshot, host: &str) -> bool {
    virtual_service(s, host).is_some()
}

/// The VirtualService for `host`: one listing it, else one listing `*`.
fn virtual_service<'a>(s: &'a Snapshot, host: &str) -> Option<&'a Value> {
    let lists = |vs: &&Value, wanted: &str| {
        vs["spec"]["virtualHost"]["domains"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == wanted))
    };
    let all = &s.gloo_virtualservices;
    all.iter()
        .find(|vs| lists(vs, host))
        .or_else(|| all.iter().find(|vs| lists(vs, "*")))
}

/// What a route's parents require of the request besides its own matchers.
#[derive(Clone, Default)]
struct Inherited<'a> {
    /// Path matchers handed down (`inheritablePathMatchers`).
    paths: Vec<&'a Value>,
    /// Header and method conditions of every parent.
    conditions: Vec<&'a Value>,
}

/// Routes a request that reached Gloo's gateway proxy for `host`.
pub(super) fn route(s: &Snapshot, host: &str, req: &Request, pick: &mut dyn Pick) -> Route {
    let Some(vs) = virtual_service(s, host) else {
        return Route::NoRoute(format!("Gloo has no VirtualService for host {host:?}"));
    };
    let routes = &vs["spec"]["virtualHost"]["routes"];
    let via = format!("Gloo VirtualService {}/{}", ns_of(vs), name_of(vs));
    match first_match(s, routes, ns_of(vs), &Inherited::default(), req, 0) {
        Some((action, table)) => act(s, action, table.unwrap_or(via), req, pick),
        None => Route::NoRoute(format!("{via} has no route for {:?}", req.path)),
    }
}

/// The action of the first route of `routes` (in namespace `ns`) that the request matches,
/// following delegations, with the RouteTable that holds it.
fn first_match<'a>(
    s: &'a Snapshot,
    routes: &'a Value,
    ns: &str,
    up: &Inherited<'a>,
    req: &Request,
    depth: usize,
) -> Option<(&'a Value, Option<String>)> {
    if depth > MAX_DEPTH || !conditions_hold(&up.conditions, req) {
        return None;
    }
    static EVERY_PATH: Value = Value::Null;
    for r in routes.as_array().into_iter().flatten() {
        let mut matchers: Vec<&Value> = r["matchers"].as_array().into_iter().flatten().collect();
        if matchers.is_empty() {
            matchers.push(&EVERY_PATH);
        }
        // With `inheritablePathMatchers`, the parent's path matchers replace the route's own.
        let inherits = r["inheritablePathMatchers"] == true && !up.paths.is_empty();
        let path_holds = |m: &Value| match inherits {
            true => up.paths.iter().any(|p| path_matches(p, req)),
            false => path_matches(m, req),
        };
        let Some(m) = matchers
            .into_iter()
            .find(|m| conditions_hold(&[m], req) && path_holds(m))
        else {
            continue;
        };
        let Some(delegate) = r.get("delegateAction").filter(|d| !d.is_null()) else {
            return Some((&r["routeAction"], None));
        };
        let target = match delegate.get("ref") {
            Some(t) if !t.is_null() => t,
            _ => delegate,
        };
        let t_ns = target["namespace"].as_str().unwrap_or(ns);
        let t_name = target["name"].as_str().unwrap_or_default();
        let Some(table) = s
            .routetables
            .iter()
            .find(|t| ns_of(t) == t_ns && name_of(t) == t_name)
        else {
            continue;
        };
        let mut down = up.clone();
        if !inherits {
            down.paths = vec![m];
        }
        down.conditions.push(m);
        if let Some((action, via)) =
            first_match(s, &table["spec"]["routes"], t_ns, &down, req, depth + 1)
        {
            let via = via.unwrap_or_else(|| format!("Gloo RouteTable {t_ns}/{t_name}"));
            return Some((action, Some(via)));
        }
    }
    None
}

/// The path part of a matcher: `prefix`, `exact` or `regex` (none: every path).
fn path_matches(m: &Value, req: &Request) -> bool {
    if let Some(p) = m["prefix"].as_str() {
        return req.path.starts_with(p);
    }
    if let Some(e) = m["exact"].as_str() {
        return req.path == e;
    }
    if let Some(r) = m["regex"].as_str() {
        return regex_full(r, &req.path);
    }
    true
}

/// The header and method parts of every matcher in `ms`.
fn conditions_hold(ms: &[&Value], req: &Request) -> bool {
    ms.iter().all(|m| {
        let headers = m["headers"].as_array().into_iter().flatten();
        let methods: Vec<&str> = m["methods"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        headers.into_iter().all(|h| header_holds(h, req))
            && (methods.is_empty() || methods.contains(&req.method.as_str()))
    })
}

fn header_holds(h: &Value, req: &Request) -> bool {
    let name = h["name"].as_str().unwrap_or_default().to_ascii_lowercase();
    let value = req.header(&name);
    let want = h["value"].as_str().unwrap_or_default();
    let holds = match (value, want.is_empty(), h["regex"] == true) {
        (None, _, _) => false,
        (Some(_), true, _) => true,
        (Some(v), false, true) => regex_full(want, v),
        (Some(v), false, false) => v == want,
    };
    holds != (h["invertMatch"] == true)
}

/// Sends the request where a `routeAction` says.
fn act(s: &Snapshot, action: &Value, via: String, req: &Request, pick: &mut dyn Pick) -> Route {
    let single = &action["single"]["upstream"];
    let chosen = match single.is_object() {
        true => Some(single.clone()),
        false => {
            let items: Vec<(Value, u64)> = action["multi"]["destinations"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    let w = d["weight"].as_u64().unwrap_or(0);
                    (d["destination"]["upstream"].clone(), w)
                })
                .collect();
            match items.iter().any(|(_, w)| *w > 0) {
                true => weighted(&items, pick),
                false => None,
            }
        }
    };
    let Some(up) = chosen else {
        return Route::NoRoute(format!("{via}: the route has no upstream with a weight"));
    };
    let up_ns = up["namespace"].as_str().unwrap_or("gloo-system");
    let up_name = up["name"].as_str().unwrap_or_default();
    let Some(upstream) = s
        .gloo_upstreams
        .iter()
        .find(|u| ns_of(u) == up_ns && name_of(u) == up_name)
    else {
        return Route::NoRoute(format!("{via}: upstream {up_ns}/{up_name} not found"));
    };
    let kube = &upstream["spec"]["kube"];
    let svc_ns = kube["serviceNamespace"]
        .as_str()
        .unwrap_or(up_ns)
        .to_string();
    let svc = kube["serviceName"].as_str().unwrap_or_default().to_string();
    let decision = Decision {
        via: format!("{via} -> Upstream {up_ns}/{up_name} -> Service {svc_ns}/{svc}"),
        to: (svc_ns, svc),
        mirror: None,
        headers: Vec::new(),
    };
    let upstream = Upstream {
        proxy: Proxy::Envoy,
        name: format!("{up_name}_{up_ns}"),
        method: req.method.clone(),
    };
    backend_of(s, decision, pick, upstream)
}
