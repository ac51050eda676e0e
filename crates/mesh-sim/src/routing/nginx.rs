//! ingress-nginx: a request to the controller's Service is routed by its `Host` and path
//! through the Ingresses, as ingress-nginx does it.
//!
//! The main Ingress of a host and path is one without `<prefix>/canary: "true"`; the most
//! specific path wins (`Exact`, then the longest prefix). A canary Ingress of the same host
//! and path (annotation `canary: "true"`) is the alternative backend, tried in ingress-nginx's
//! order: `canary-by-header` (with `canary-by-header-value`, else
//! `canary-by-header-pattern`, else the header's value `always` or `never`), then
//! `canary-by-cookie` (the cookie's value `always` or `never`), then `canary-weight` out of
//! `canary-weight-total` (100). The prefix is ingress-nginx's default,
//! `nginx.ingress.kubernetes.io`.
//!
//! Every request carries the labels of ingress-nginx's series: the main Ingress's name and
//! backend Service whichever backend served it, and in `canary` the canary upstream's name
//! (`<namespace>-<service>-<port>`) or nothing.

use serde_json::Value;

use super::{Decision, Pick, Request, Route, ServiceRef, backend, ns_of};
use crate::cluster::Snapshot;

const PREFIX: &str = "nginx.ingress.kubernetes.io";

/// What ingress-nginx labels a request with.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IngressHit {
    /// The main Ingress's namespace.
    pub namespace: String,
    /// The main Ingress's name.
    pub ingress: String,
    /// Its backend Service.
    pub service: String,
    /// The canary upstream that served the request, or empty.
    pub canary: String,
    /// The host the request named.
    pub host: String,
    /// The Ingress path that matched.
    pub path: String,
    /// The request's method.
    pub method: String,
}

/// One path of an Ingress rule: its host, path, match type and backend.
struct IngressPath<'a> {
    ingress: &'a Value,
    path: String,
    exact: bool,
    service: String,
    port: String,
}

fn annotation<'a>(ingress: &'a Value, key: &str) -> Option<&'a str> {
    ingress["metadata"]["annotations"][format!("{PREFIX}/{key}")].as_str()
}

fn is_canary(ingress: &Value) -> bool {
    annotation(ingress, "canary") == Some("true")
}

/// True when an Ingress is for the controller of `class`: its `ingressClassName` or
/// `kubernetes.io/ingress.class`, or none (the default class).
pub(super) fn of_class(ingress: &Value, class: &str) -> bool {
    let named = ingress["spec"]["ingressClassName"]
        .as_str()
        .or(ingress["metadata"]["annotations"]["kubernetes.io/ingress.class"].as_str());
    named.is_none_or(|c| c == class)
}

/// The paths of every Ingress of class `nginx` for `host` that match `path`.
fn paths<'a>(s: &'a Snapshot, host: &str, path: &str) -> Vec<IngressPath<'a>> {
    let mut out = Vec::new();
    for ingress in s.ingresses.iter().filter(|i| of_class(i, "nginx")) {
        for rule in ingress["spec"]["rules"].as_array().into_iter().flatten() {
            if rule["host"].as_str().is_some_and(|h| h != host) {
                continue;
            }
            for p in rule["http"]["paths"].as_array().into_iter().flatten() {
                let text = p["path"].as_str().unwrap_or("/");
                let exact = p["pathType"] == "Exact";
                let matches = if exact {
                    path == text
                } else {
                    let prefix = text.trim_end_matches('/');
                    path == prefix || path.starts_with(&format!("{prefix}/")) || prefix.is_empty()
                };
                let service = &p["backend"]["service"];
                if let (true, Some(name)) = (matches, service["name"].as_str()) {
                    let port = match &service["port"]["number"] {
                        Value::Number(n) => n.to_string(),
                        _ => service["port"]["name"].as_str().unwrap_or("").to_string(),
                    };
                    out.push(IngressPath {
                        ingress,
                        path: text.to_string(),
                        exact,
                        service: name.to_string(),
                        port,
                    });
                }
            }
        }
    }
    out
}

/// True when an Ingress of class `nginx` has a rule for `host` (a name only an ingress serves, such as
/// `app.example.com`, reaches ingress-nginx: Go clients send `-host` as the proxy request's
/// authority).
pub(super) fn serves(s: &Snapshot, host: &str) -> bool {
    s.ingresses
        .iter()
        .filter(|i| of_class(i, "nginx"))
        .any(|i| {
            i["spec"]["rules"]
                .as_array()
                .is_some_and(|rules| rules.iter().any(|r| r["host"] == host))
        })
}

/// Routes a request that reached ingress-nginx's controller for `host`.
pub(super) fn route(s: &Snapshot, host: &str, req: &Request, pick: &mut dyn Pick) -> Route {
    let found = paths(s, host, &req.path);
    let rank = |p: &IngressPath<'_>| (p.exact, p.path.len());
    let Some(main) = found
        .iter()
        .filter(|p| !is_canary(p.ingress))
        .max_by_key(|p| rank(p))
    else {
        return Route::NoRoute(format!(
            "ingress-nginx has no Ingress for host {host:?} and path {:?}",
            req.path
        ));
    };
    let alternative = found
        .iter()
        .find(|p| is_canary(p.ingress) && p.path == main.path && p.exact == main.exact);
    let ns = ns_of(main.ingress).to_string();
    let main_name = main.ingress["metadata"]["name"]
        .as_str()
        .unwrap_or_default();
    let (chosen, why) = match alternative {
        Some(c) => match to_canary(c.ingress, req, pick) {
            (true, why) => (c, why),
            (false, why) => (main, why),
        },
        None => (main, "no canary Ingress".to_string()),
    };
    let to: ServiceRef = (ns_of(chosen.ingress).to_string(), chosen.service.clone());
    let canary = if std::ptr::eq(chosen, main) {
        String::new()
    } else {
        format!("{}-{}-{}", to.0, to.1, chosen.port)
    };
    let decision = Decision {
        via: format!(
            "ingress-nginx Ingress {ns}/{main_name} -> Service {}/{} ({why})",
            to.0, to.1
        ),
        to,
        mirror: None,
        headers: Vec::new(),
    };
    let mut route = backend(s, decision, pick);
    if let Route::Backend { ingress, .. } = &mut route {
        *ingress = Some(IngressHit {
            namespace: ns,
            ingress: main_name.to_string(),
            service: main.service.clone(),
            canary,
            host: host.to_string(),
            path: main.path.clone(),
            method: req.method.clone(),
        });
    }
    route
}

/// Whether the canary Ingress takes the request, and why, in ingress-nginx's order.
fn to_canary(canary: &Value, req: &Request, pick: &mut dyn Pick) -> (bool, String) {
    if let Some(name) = annotation(canary, "canary-by-header") {
        let value = req.header(name);
        if let Some(wanted) = annotation(canary, "canary-by-header-value") {
            if value == Some(wanted) {
                return (true, format!("header {name}: {wanted}"));
            }
        } else if let Some(pattern) = annotation(canary, "canary-by-header-pattern") {
            // ingress-nginx searches with PCRE: unanchored unless the pattern anchors it.
            let found =
                regex::Regex::new(pattern).is_ok_and(|r| value.is_some_and(|v| r.is_match(v)));
            if found {
                return (true, format!("header {name} matches {pattern}"));
            }
        } else {
            match value {
                Some("always") => return (true, format!("header {name}: always")),
                Some("never") => return (false, format!("header {name}: never")),
                _ => {}
            }
        }
    }
    if let Some(name) = annotation(canary, "canary-by-cookie") {
        let value = req.header("cookie").and_then(|c| {
            c.split(';')
                .filter_map(|kv| kv.trim().split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v)
        });
        match value {
            Some("always") => return (true, format!("cookie {name}=always")),
            Some("never") => return (false, format!("cookie {name}=never")),
            _ => {}
        }
    }
    let weight: u64 = annotation(canary, "canary-weight")
        .and_then(|w| w.parse().ok())
        .unwrap_or(0);
    let total: u64 = annotation(canary, "canary-weight-total")
        .and_then(|w| w.parse().ok())
        .filter(|t| *t > 100)
        .unwrap_or(100);
    (
        pick.pick(total) < weight,
        format!("canary-weight {weight}/{total}"),
    )
}
