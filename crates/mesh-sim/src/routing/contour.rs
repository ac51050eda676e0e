//! Contour: a request to Contour's Envoy Service (selector `app: envoy`, as the project's
//! manifests make it) is routed by its `Host` through the root HTTPProxy whose
//! `virtualhost.fqdn` is that host, and the HTTPProxies it includes, as Contour builds
//! Envoy's routes:
//!
//! - an include's conditions are prepended to the included proxy's routes (prefixes joined,
//!   header conditions added), to a depth of 8 (Contour refuses include cycles);
//! - a route matches when the path starts with its prefix and every header condition holds
//!   (`exact`, `notexact`, `contains`, `notcontains`, `present`, `notpresent`, `regex` on
//!   the whole value);
//! - the most specific match wins: the longest prefix, then the most header conditions, then
//!   the first written;
//! - its services are weighted; a service without a weight gets none while another has one,
//!   and when no service has a weight they share traffic evenly.
//!
//! Each request carries the Envoy cluster Contour names the upstream:
//! `<namespace>_<service>_<port>`, the `envoy_cluster_name` of Envoy's series.

use serde_json::Value;

use super::{
    Decision, Pick, Proxy, Request, Route, Upstream, backend_of, name_of, ns_of, regex_full,
    weighted,
};
use crate::cluster::Snapshot;

/// A route with the conditions of the includes that lead to it.
struct Flat<'a> {
    namespace: &'a str,
    proxy: &'a str,
    prefix: String,
    headers: Vec<&'a Value>,
    services: &'a Value,
}

/// True when the request reached Contour's Envoy (a Service selecting `app: envoy`).
pub(super) fn is_envoy(service: &Value) -> bool {
    service["spec"]["selector"]["app"] == "envoy"
}

/// True when a root HTTPProxy serves `host` (a name only an ingress serves reaches it too).
pub(super) fn serves(s: &Snapshot, host: &str) -> bool {
    s.httpproxies
        .iter()
        .any(|p| p["spec"]["virtualhost"]["fqdn"] == host)
}

/// Routes a request that reached Contour's Envoy for `host`.
pub(super) fn route(s: &Snapshot, host: &str, req: &Request, pick: &mut dyn Pick) -> Route {
    let Some(root) = s
        .httpproxies
        .iter()
        .find(|p| p["spec"]["virtualhost"]["fqdn"] == host)
    else {
        return Route::NoRoute(format!("Contour has no root HTTPProxy for host {host:?}"));
    };
    let mut flat = Vec::new();
    collect(s, root, "", &[], 0, &mut flat);
    let best = flat
        .iter()
        .enumerate()
        .filter(|(_, r)| matches(r, req))
        .max_by_key(|(i, r)| (r.prefix.len(), r.headers.len(), std::cmp::Reverse(*i)));
    let Some((_, r)) = best else {
        return Route::NoRoute(format!(
            "HTTPProxy {}/{} has no route for {:?}",
            ns_of(root),
            name_of(root),
            req.path
        ));
    };
    let services: Vec<&Value> = r.services.as_array().into_iter().flatten().collect();
    let weighted_any = services.iter().any(|svc| svc["weight"].as_u64().is_some());
    let items: Vec<(&Value, u64)> = services
        .iter()
        .map(|svc| {
            let w = match weighted_any {
                true => svc["weight"].as_u64().unwrap_or(0),
                false => 1,
            };
            (*svc, w)
        })
        .collect();
    let Some(chosen) = weighted(&items, pick) else {
        return Route::NoRoute(format!(
            "HTTPProxy {}/{} route has no services",
            r.namespace, r.proxy
        ));
    };
    let name = chosen["name"].as_str().unwrap_or_default().to_string();
    let port = chosen["port"].as_u64().unwrap_or(80);
    let upstream = Upstream {
        proxy: Proxy::Envoy,
        name: format!("{}_{name}_{port}", r.namespace),
        method: req.method.clone(),
    };
    let decision = Decision {
        via: format!(
            "Contour HTTPProxy {}/{} (prefix {:?}, {} header conditions) -> Service {}/{name}",
            r.namespace,
            r.proxy,
            r.prefix,
            r.headers.len(),
            r.namespace
        ),
        to: (r.namespace.to_string(), name),
        mirror: None,
        headers: Vec::new(),
    };
    backend_of(s, decision, pick, upstream)
}

/// The routes of `proxy` under the conditions of the includes above it.
fn collect<'a>(
    s: &'a Snapshot,
    proxy: &'a Value,
    prefix: &str,
    headers: &[&'a Value],
    depth: usize,
    out: &mut Vec<Flat<'a>>,
) {
    if depth > 8 {
        return;
    }
    let ns = ns_of(proxy);
    for r in proxy["spec"]["routes"].as_array().into_iter().flatten() {
        let (own_prefix, own_headers) = conditions(&r["conditions"]);
        let mut all = headers.to_vec();
        all.extend(own_headers);
        out.push(Flat {
            namespace: ns,
            proxy: name_of(proxy),
            prefix: join(prefix, &own_prefix),
            headers: all,
            services: &r["services"],
        });
    }
    for inc in proxy["spec"]["includes"].as_array().into_iter().flatten() {
        let inc_ns = inc["namespace"].as_str().unwrap_or(ns);
        let Some(child) = s
            .httpproxies
            .iter()
            .find(|p| ns_of(p) == inc_ns && name_of(p) == inc["name"].as_str().unwrap_or_default())
        else {
            continue;
        };
        let (inc_prefix, inc_headers) = conditions(&inc["conditions"]);
        let mut all = headers.to_vec();
        all.extend(inc_headers);
        collect(s, child, &join(prefix, &inc_prefix), &all, depth + 1, out);
    }
}

/// The prefix and header conditions of a condition list.
fn conditions(list: &Value) -> (String, Vec<&Value>) {
    let mut prefix = String::new();
    let mut headers = Vec::new();
    for c in list.as_array().into_iter().flatten() {
        if let Some(p) = c["prefix"].as_str() {
            prefix = p.to_string();
        }
        if c["header"].is_object() {
            headers.push(&c["header"]);
        }
    }
    (prefix, headers)
}

/// An include's prefix joined with a route's (`/api` + `/v1` = `/api/v1`, `/` adds nothing).
fn join(outer: &str, inner: &str) -> String {
    let outer = outer.trim_end_matches('/');
    match inner {
        "" | "/" if outer.is_empty() => "/".into(),
        "" | "/" => outer.into(),
        _ => format!("{outer}{inner}"),
    }
}

fn matches(r: &Flat<'_>, req: &Request) -> bool {
    req.path.starts_with(&r.prefix) && r.headers.iter().all(|h| header_holds(h, req))
}

/// One Contour header condition against the request.
fn header_holds(h: &Value, req: &Request) -> bool {
    let value = req.header(h["name"].as_str().unwrap_or_default());
    if h["present"] == true {
        return value.is_some();
    }
    if h["notpresent"] == true {
        return value.is_none();
    }
    let v = value.unwrap_or_default();
    if let Some(e) = h["exact"].as_str() {
        return value.is_some() && v == e;
    }
    if let Some(e) = h["notexact"].as_str() {
        return v != e;
    }
    if let Some(c) = h["contains"].as_str() {
        return value.is_some() && v.contains(c);
    }
    if let Some(c) = h["notcontains"].as_str() {
        return !v.contains(c);
    }
    if let Some(r) = h["regex"].as_str() {
        return value.is_some() && regex_full(r, v);
    }
    true
}
