//! APISIX: a request to APISIX's gateway Service (selector `app.kubernetes.io/name: apisix`,
//! as its Helm chart makes it) is routed through the ApisixRoutes' HTTP routes as APISIX does:
//!
//! - a route holds when one of its `match.hosts` is the `Host` (a `*.` wildcard covers
//!   subdomains), one of its `match.paths` the path (a trailing `*` matches any rest), and one
//!   of its `match.methods` the method (each list, when present);
//! - the highest `priority` wins (0 by default), then the first written;
//! - its backends are weighted (a missing weight is 100).
//!
//! Each request carries the route's name as APISIX's ingress controller makes it,
//! `<namespace>_<apisixroute>_<http route>`, the `route` of APISIX's series.

use serde_json::Value;

use super::{
    Decision, Pick, Proxy, Request, Route, Upstream, backend_of, name_of, ns_of, weighted,
};
use crate::cluster::Snapshot;

/// True when the request reached APISIX's gateway.
pub(super) fn is_gateway(service: &Value) -> bool {
    service["spec"]["selector"]["app.kubernetes.io/name"] == "apisix"
}

/// True when an ApisixRoute lists `host` (a name only an ingress serves reaches it).
pub(super) fn serves(s: &Snapshot, host: &str) -> bool {
    routes(s).any(|(_, r)| host_matches(&r["match"]["hosts"], host))
}

fn routes(s: &Snapshot) -> impl Iterator<Item = (&Value, &Value)> {
    s.apisixroutes.iter().flat_map(|ar| {
        ar["spec"]["http"]
            .as_array()
            .into_iter()
            .flatten()
            .map(move |r| (ar, r))
    })
}

fn host_matches(hosts: &Value, host: &str) -> bool {
    match hosts.as_array() {
        None => true,
        Some(list) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|h| match h.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => h.eq_ignore_ascii_case(host),
            }),
    }
}

fn holds(r: &Value, host: &str, req: &Request) -> bool {
    let m = &r["match"];
    let path_ok = m["paths"].as_array().is_none_or(|ps| {
        ps.iter()
            .filter_map(Value::as_str)
            .any(|p| match p.strip_suffix('*') {
                Some(prefix) => req.path.starts_with(prefix),
                None => req.path == p,
            })
    });
    let method_ok = m["methods"]
        .as_array()
        .is_none_or(|ms| ms.iter().any(|x| x.as_str() == Some(req.method.as_str())));
    host_matches(&m["hosts"], host) && path_ok && method_ok
}

/// Routes a request that reached APISIX for `host`.
pub(super) fn route(s: &Snapshot, host: &str, req: &Request, pick: &mut dyn Pick) -> Route {
    let best = routes(s)
        .enumerate()
        .filter(|(_, (_, r))| holds(r, host, req))
        .max_by_key(|(i, (_, r))| (r["priority"].as_i64().unwrap_or(0), std::cmp::Reverse(*i)))
        .map(|(_, found)| found);
    let Some((ar, r)) = best else {
        return Route::NoRoute(format!(
            "APISIX has no route for host {host:?}, path {:?} and method {}",
            req.path, req.method
        ));
    };
    let items: Vec<(String, u64)> = r["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| {
            Some((
                b["serviceName"].as_str()?.to_string(),
                b["weight"].as_u64().unwrap_or(100),
            ))
        })
        .collect();
    let Some(service) = weighted(&items, pick) else {
        return Route::NoRoute(format!(
            "ApisixRoute {}/{} has no backend",
            ns_of(ar),
            name_of(ar)
        ));
    };
    let ns = ns_of(ar).to_string();
    let name = format!(
        "{ns}_{}_{}",
        name_of(ar),
        r["name"].as_str().unwrap_or_default()
    );
    let decision = Decision {
        via: format!("APISIX route {name} -> Service {ns}/{service}"),
        to: (ns, service),
        mirror: None,
        headers: Vec::new(),
    };
    let upstream = Upstream {
        proxy: Proxy::Apisix,
        name,
        method: req.method.clone(),
    };
    backend_of(s, decision, pick, upstream)
}
