//! Requests that reach an ingress: through an ingress gateway's Service (Istio's ingress
//! gateway, a Gateway API Gateway's Service, ingress-nginx's controller, Contour's Envoy,
//! Traefik, Skipper, APISIX's gateway, Gloo's gateway proxy, Kourier), routed by their `Host`
//! as that ingress would; or for a host that names no Service, routed by the first ingress
//! that serves it.

use serde_json::Value;

use super::{
    Decision, Pick, Request, Route, ServiceRef, apisix, backend, contour, gateways, gloo,
    httproute, istio, knative, nginx, ns_of, service, skipper, split_port, strings, traefik,
};
use crate::cluster::Snapshot;

/// Routes a request that reached the Service `svc` of the ingress `entry`, by its `Host`.
pub(super) fn through(
    s: &Snapshot,
    svc: &ServiceRef,
    entry: &Entry,
    req: &Request,
    pick: &mut dyn Pick,
) -> Route {
    let host = req.header("host").map_or("", |h| split_port(h).0);
    match entry {
        Entry::Nginx => nginx::route(s, host, req, pick),
        Entry::Contour => contour::route(s, host, req, pick),
        Entry::Traefik => traefik::route(s, host, req, pick),
        Entry::Skipper => skipper::route(s, host, req, pick),
        Entry::Apisix => apisix::route(s, host, req, pick),
        Entry::Gloo => gloo::route(s, host, req, pick),
        Entry::Kourier => match knative::serving(s, host) {
            Some(k) => knative::route(s, k, req, pick),
            None => Route::NoRoute(format!("Kourier has no Knative Service for host {host:?}")),
        },
        Entry::Istio | Entry::Gateway(_) => {
            match gateway_decision(s, host, req, pick, Some(entry)) {
                Some(d) => backend(s, d, pick),
                None => Route::NoRoute(format!(
                    "the gateway behind Service {}/{} has no route for host {host:?}",
                    svc.0, svc.1
                )),
            }
        }
    }
}

/// Whether an ingress serves a host, and how it routes a request for it.
type Ingress = (
    fn(&Snapshot, &str) -> bool,
    fn(&Snapshot, &str, &Request, &mut dyn Pick) -> Route,
);

/// The ingresses that route by host, in the order a host no Service has is looked for.
const INGRESSES: [Ingress; 6] = [
    (nginx::serves, nginx::route),
    (contour::serves, contour::route),
    (traefik::serves, traefik::route),
    (skipper::serves, skipper::route),
    (apisix::serves, apisix::route),
    (gloo::serves, gloo::route),
];

/// Routes a request for a host that names no Service: an ingress host of an Istio gateway
/// or a Gateway API route, else of the first ingress that serves it, else a Knative
/// Service's.
pub(super) fn by_host(s: &Snapshot, host: &str, req: &Request, pick: &mut dyn Pick) -> Route {
    if let Some(d) = gateway_decision(s, host, req, pick, None) {
        return backend(s, d, pick);
    }
    if let Some((_, route)) = INGRESSES.iter().find(|(serves, _)| serves(s, host)) {
        return route(s, host, req, pick);
    }
    match knative::serving(s, host) {
        Some(k) => knative::route(s, k, req, pick),
        None => Route::NoRoute(format!("no Service and no gateway route for host {host:?}")),
    }
}

/// An ingress gateway in front of a Service.
pub(super) enum Entry {
    /// Istio's ingress gateway: VirtualServices bound to a gateway other than `mesh`.
    Istio,
    /// A Gateway API Gateway (namespace, name): the HTTPRoutes attached to it.
    Gateway(ServiceRef),
    /// ingress-nginx's controller: the Ingresses and their canary Ingresses.
    Nginx,
    /// Contour's Envoy: the root HTTPProxies and what they include.
    Contour,
    /// Traefik: the IngressRoutes and the TraefikServices they name.
    Traefik,
    /// Skipper: the Ingresses of class `skipper`, weighted by their annotations.
    Skipper,
    /// APISIX's gateway: the ApisixRoutes.
    Apisix,
    /// Gloo's gateway proxy: the VirtualServices and the RouteTables they delegate to.
    Gloo,
    /// Kourier's gateway: the Knative Services by host.
    Kourier,
}

/// The gateway a Service fronts, if it is one: Istio's ingress gateway (its selector has
/// `istio: ingressgateway`), ingress-nginx's controller (its selector has
/// `app.kubernetes.io/name: ingress-nginx`, as the project's chart and manifests make it) or the Service a Gateway API implementation makes for a Gateway
/// (label `gateway.networking.k8s.io/gateway-name`, as Istio's and Envoy Gateway's carry).
pub(super) fn entry_point(s: &Snapshot, svc: &ServiceRef) -> Option<Entry> {
    let o = service(s, svc)?;
    if o["spec"]["selector"]["istio"] == "ingressgateway" {
        return Some(Entry::Istio);
    }
    if o["spec"]["selector"]["app.kubernetes.io/name"] == "ingress-nginx" {
        return Some(Entry::Nginx);
    }
    if contour::is_envoy(o) {
        return Some(Entry::Contour);
    }
    if traefik::is_traefik(o) {
        return Some(Entry::Traefik);
    }
    if skipper::is_skipper(o) {
        return Some(Entry::Skipper);
    }
    if apisix::is_gateway(o) {
        return Some(Entry::Apisix);
    }
    if gloo::is_gateway(o) {
        return Some(Entry::Gloo);
    }
    if knative::is_gateway(o) {
        return Some(Entry::Kourier);
    }
    let name = o["metadata"]["labels"]["gateway.networking.k8s.io/gateway-name"].as_str()?;
    Some(Entry::Gateway((svc.0.clone(), name.to_string())))
}

/// A host that is no Service, or a request through an ingress gateway's Service: an ingress
/// host of an Istio gateway or of a Gateway API route (attached to the `entry` Gateway, when
/// the request came through one).
fn gateway_decision(
    s: &Snapshot,
    host: &str,
    req: &Request,
    pick: &mut dyn Pick,
    entry: Option<&Entry>,
) -> Option<Decision> {
    if !matches!(entry, Some(Entry::Gateway(_)))
        && let Some(vs) = s.istio.iter().find(|vs| {
            strings(&vs["spec"]["hosts"]).any(|h| h == host) && gateways(vs).any(|g| g != "mesh")
        })
    {
        return istio(s, vs, req, pick);
    }
    if matches!(entry, Some(Entry::Istio)) {
        return None;
    }
    let attached = |r: &Value| match entry {
        Some(Entry::Gateway((ns, name))) => r["spec"]["parentRefs"].as_array().is_some_and(|ps| {
            ps.iter().any(|p| {
                p["kind"].as_str().unwrap_or("Gateway") == "Gateway"
                    && p["name"].as_str() == Some(name.as_str())
                    && p["namespace"].as_str().unwrap_or(ns_of(r)) == ns
            })
        }),
        _ => true,
    };
    let route = s
        .httproutes
        .iter()
        .find(|r| strings(&r["spec"]["hostnames"]).any(|h| h == host) && attached(r))?;
    httproute(s, route, req, pick)
}
