//! Traefik: a request to Traefik's Service (selector `app.kubernetes.io/name: traefik`, as the
//! project's Helm chart makes it) is routed through the IngressRoutes (`traefik.io/v1alpha1`)
//! as Traefik does:
//!
//! - a route's `match` rule holds for the request: `Host`, `PathPrefix`, `Path`, `Header` and
//!   `HeaderRegexp` (and v2's `Headers`, `HeadersRegexp`) joined by `&&` and `||` (no
//!   parentheses or negation);
//! - the route with the highest `priority` wins, by default the longest rule, as Traefik
//!   ranks them;
//! - its services are weighted (a missing weight is 1); a `TraefikService` is followed into
//!   its `weighted.services`, to a depth of 8.
//!
//! Each request carries the Traefik service of the Kubernetes Service that answered:
//! `<namespace>-<name>-<port>@kubernetescrd`, the `service` of Traefik's series.

use serde_json::Value;

use super::{
    Decision, Pick, Proxy, Request, Route, Upstream, backend_of, name_of, ns_of, regex_full,
    split_port, weighted,
};
use crate::cluster::Snapshot;

/// True when the request reached Traefik (a Service selecting `app.kubernetes.io/name:
/// traefik`).
pub(super) fn is_traefik(service: &Value) -> bool {
    service["spec"]["selector"]["app.kubernetes.io/name"] == "traefik"
}

/// True when an IngressRoute's rule names `host` (a name only an ingress serves reaches it).
pub(super) fn serves(s: &Snapshot, host: &str) -> bool {
    let wanted = format!("Host(`{host}`)");
    routes(s).any(|(_, r)| r["match"].as_str().is_some_and(|m| m.contains(&wanted)))
}

fn routes(s: &Snapshot) -> impl Iterator<Item = (&Value, &Value)> {
    s.ingressroutes.iter().flat_map(|ir| {
        ir["spec"]["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(move |r| (ir, r))
    })
}

/// Routes a request that reached Traefik, whose `Host` is `host`.
pub(super) fn route(s: &Snapshot, host: &str, req: &Request, pick: &mut dyn Pick) -> Route {
    let rank = |r: &Value| {
        r["priority"]
            .as_u64()
            .unwrap_or_else(|| r["match"].as_str().map_or(0, str::len) as u64)
    };
    let Some((ir, r)) = routes(s)
        .filter(|(_, r)| rule_holds(r["match"].as_str().unwrap_or_default(), host, req))
        .max_by_key(|(_, r)| rank(r))
    else {
        return Route::NoRoute(format!(
            "Traefik has no IngressRoute for host {host:?} and path {:?}",
            req.path
        ));
    };
    let Some((ns, svc)) = pick_service(s, ns_of(ir), &r["services"], pick, 0) else {
        return Route::NoRoute(format!(
            "IngressRoute {}/{} leads to no Kubernetes Service",
            ns_of(ir),
            name_of(ir)
        ));
    };
    let name = svc["name"].as_str().unwrap_or_default().to_string();
    let port = match &svc["port"] {
        Value::Number(n) => n.to_string(),
        v => v.as_str().unwrap_or("80").to_string(),
    };
    let upstream = Upstream {
        proxy: Proxy::Traefik,
        name: format!("{ns}-{name}-{port}@kubernetescrd"),
        method: req.method.clone(),
    };
    let decision = Decision {
        via: format!(
            "Traefik IngressRoute {}/{} ({}) -> Service {ns}/{name}",
            ns_of(ir),
            name_of(ir),
            r["match"].as_str().unwrap_or_default()
        ),
        to: (ns, name),
        mirror: None,
        headers: Vec::new(),
    };
    backend_of(s, decision, pick, upstream)
}

/// One Kubernetes Service of a weighted list, following TraefikServices: its namespace and
/// the list entry.
fn pick_service<'a>(
    s: &'a Snapshot,
    ns: &str,
    services: &'a Value,
    pick: &mut dyn Pick,
    depth: usize,
) -> Option<(String, &'a Value)> {
    let items: Vec<(&Value, u64)> = services
        .as_array()
        .into_iter()
        .flatten()
        .map(|svc| (svc, svc["weight"].as_u64().unwrap_or(1)))
        .collect();
    let chosen = weighted(&items, pick)?;
    let in_ns = chosen["namespace"].as_str().unwrap_or(ns).to_string();
    if chosen["kind"] != "TraefikService" {
        return Some((in_ns, chosen));
    }
    if depth >= 8 {
        return None;
    }
    let ts = s
        .traefikservices
        .iter()
        .find(|t| ns_of(t) == in_ns && chosen["name"] == name_of(t))?;
    pick_service(
        s,
        &in_ns,
        &ts["spec"]["weighted"]["services"],
        pick,
        depth + 1,
    )
}

/// Whether a Traefik rule holds: alternatives by `||`, each a conjunction by `&&`.
fn rule_holds(rule: &str, host: &str, req: &Request) -> bool {
    rule.split("||").any(|alt| {
        alt.split("&&").all(|term| {
            matcher_holds(
                term.trim().trim_matches(|c| c == '(' || c == ')'),
                host,
                req,
            )
        })
    })
}

/// One matcher, `Name(`arg`, ...)`.
fn matcher_holds(term: &str, host: &str, req: &Request) -> bool {
    let Some((name, rest)) = term.split_once('(') else {
        return false;
    };
    let args: Vec<&str> = rest
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, a)| a)
        .collect();
    let first = args.first().copied().unwrap_or_default();
    match name.trim() {
        "Host" => args
            .iter()
            .any(|h| split_port(host).0.eq_ignore_ascii_case(h)),
        "PathPrefix" => args.iter().any(|p| req.path.starts_with(p)),
        "Path" => args.iter().any(|p| req.path == *p),
        "Header" | "Headers" => req.header(first) == args.get(1).copied(),
        "HeaderRegexp" | "HeadersRegexp" => {
            let value = req.header(first);
            args.get(1)
                .is_some_and(|r| value.is_some_and(|v| regex_full(&format!(".*(?:{r}).*"), v)))
        }
        _ => false,
    }
}
