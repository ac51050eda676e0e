//! Skipper: a request to Skipper's Service (selector `application: skipper-ingress`, as
//! Zalando's manifests make it) is routed by its `Host` and path through the Ingresses of
//! class `skipper` (or none), as Skipper's Kubernetes data client builds its routes:
//!
//! - one route per Ingress rule and path; it holds when the host is the rule's (or the rule
//!   has none) and the path starts with the path's (path-prefix mode), and every predicate of
//!   `zalando.org/skipper-predicate` holds: `False()` never, `Header("name", "value")` on an
//!   exact value, `Weight(n)` always (it ranks the route);
//! - the route with the highest `Weight`, then the longest path, then the first wins;
//! - its backends are the Services of that Ingress rule with the same path, weighted by
//!   `zalando.org/backend-weights` (a Service without a weight gets nothing while another has
//!   one; none weighted share evenly).
//!
//! Each request carries Skipper's route ID, the `route` of its series:
//! `kube_<ns>__<ingress>__<host>__<path>__<service>` with every non-word character as `_`.

use serde_json::Value;

use super::nginx::of_class;
use super::{
    Decision, Pick, Proxy, Request, Route, Upstream, backend_of, name_of, ns_of, weighted,
};
use crate::cluster::Snapshot;

/// True when the request reached Skipper.
pub(super) fn is_skipper(service: &Value) -> bool {
    service["spec"]["selector"]["application"] == "skipper-ingress"
}

/// True when an Ingress of class `skipper` has a rule for `host`.
pub(super) fn serves(s: &Snapshot, host: &str) -> bool {
    ingresses(s).any(|i| {
        i["spec"]["rules"]
            .as_array()
            .is_some_and(|rules| rules.iter().any(|r| r["host"] == host))
    })
}

fn ingresses(s: &Snapshot) -> impl Iterator<Item = &Value> {
    s.ingresses.iter().filter(|i| of_class(i, "skipper"))
}

/// One candidate route: its Ingress, rule host, path and rank.
struct Candidate<'a> {
    ingress: &'a Value,
    host: String,
    path: String,
    weight: u64,
}

/// Routes a request that reached Skipper for `host`.
pub(super) fn route(s: &Snapshot, host: &str, req: &Request, pick: &mut dyn Pick) -> Route {
    let mut found: Vec<Candidate<'_>> = Vec::new();
    for ingress in ingresses(s) {
        let Some(weight) = predicates_hold(ingress, req) else {
            continue;
        };
        for rule in ingress["spec"]["rules"].as_array().into_iter().flatten() {
            if rule["host"].as_str().is_some_and(|h| h != host) {
                continue;
            }
            for p in rule["http"]["paths"].as_array().into_iter().flatten() {
                let path = p["path"].as_str().unwrap_or("/");
                if req.path.starts_with(path.trim_end_matches('/')) {
                    found.push(Candidate {
                        ingress,
                        host: rule["host"].as_str().unwrap_or_default().to_string(),
                        path: path.to_string(),
                        weight,
                    });
                }
            }
        }
    }
    let Some(best) = found
        .iter()
        .enumerate()
        .max_by_key(|(i, c)| (c.weight, c.path.len(), std::cmp::Reverse(*i)))
        .map(|(_, c)| c)
    else {
        return Route::NoRoute(format!(
            "Skipper has no Ingress route for host {host:?} and path {:?}",
            req.path
        ));
    };
    let services = backends(best);
    let weights: serde_json::Map<String, Value> =
        best.ingress["metadata"]["annotations"]["zalando.org/backend-weights"]
            .as_str()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
    let items: Vec<(String, u64)> = services
        .iter()
        .map(|svc| {
            let w = match weights.is_empty() {
                true => 1,
                false => weights
                    .get(svc)
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0)
                    .round() as u64,
            };
            (svc.clone(), w)
        })
        .collect();
    let Some(service) = weighted(&items, pick) else {
        return Route::NoRoute(format!("Ingress {} has no backend", name_of(best.ingress)));
    };
    let ns = ns_of(best.ingress).to_string();
    let id = format!(
        "kube_{ns}__{}__{}__{}__{service}",
        name_of(best.ingress),
        best.host,
        best.path
    );
    let upstream = Upstream {
        proxy: Proxy::Skipper,
        name: id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
        method: req.method.clone(),
    };
    let decision = Decision {
        via: format!(
            "Skipper Ingress {ns}/{} (path {:?}, weight {}) -> Service {ns}/{service}",
            name_of(best.ingress),
            best.path,
            best.weight
        ),
        to: (ns, service),
        mirror: None,
        headers: Vec::new(),
    };
    backend_of(s, decision, pick, upstream)
}

/// The Services of the chosen rule's paths equal to the chosen path.
fn backends(c: &Candidate<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for rule in c.ingress["spec"]["rules"].as_array().into_iter().flatten() {
        if rule["host"].as_str().unwrap_or_default() != c.host {
            continue;
        }
        for p in rule["http"]["paths"].as_array().into_iter().flatten() {
            if p["path"].as_str().unwrap_or("/") == c.path
                && let Some(name) = p["backend"]["service"]["name"].as_str()
                && !out.iter().any(|o| o == name)
            {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// `None` when a predicate fails, else the route's `Weight` (0 without one).
fn predicates_hold(ingress: &Value, req: &Request) -> Option<u64> {
    let text = ingress["metadata"]["annotations"]["zalando.org/skipper-predicate"]
        .as_str()
        .unwrap_or_default();
    let mut weight = 0;
    for p in text.split("&&").map(str::trim).filter(|p| !p.is_empty()) {
        let (name, args) = p.split_once('(').unwrap_or((p, ")"));
        let args: Vec<&str> = args
            .trim_end_matches(')')
            .split(',')
            .map(|a| a.trim().trim_matches('"'))
            .collect();
        match name.trim() {
            "False" => return None,
            "Weight" => weight = args[0].parse().unwrap_or(0),
            "Header" if req.header(args[0]) != args.get(1).copied() => return None,
            _ => {}
        }
    }
    Some(weight)
}
