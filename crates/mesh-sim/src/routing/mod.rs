//! Where a request goes: a pure function of the cluster's objects ([`Snapshot`]) and the
//! request, as each mesh's data plane would decide it.
//!
//! A host names a Service (`podinfo`, `podinfo.test`, `podinfo.test.svc.cluster.local`, with
//! an optional port) or a gateway host listed by a routing object (`app.example.com`). The
//! routing object of the first mesh that claims the Service decides the destination Service,
//! in this order:
//!
//! 1. an Istio VirtualService listing the host, bound to the `mesh` gateway (or, for a
//!    gateway host, to any other gateway): `http` routes in order, `match` on uri, method and
//!    headers, weighted `route` destinations, `mirror`/`mirrorPercentage`, response headers;
//! 2. an App Mesh VirtualService whose `awsName` is the host: its VirtualRouter's routes by
//!    priority, prefix and header matches, weighted targets to VirtualNodes, whose DNS
//!    hostname names the Service;
//! 3. an SMI TrafficSplit whose `service` is the host: weighted backends;
//! 4. a Gateway API HTTPRoute with the Service as parent (or the host in `hostnames`): the most
//!    specific matching rule, weighted `backendRefs`, `requestMirror`, response header filters;
//! 5. a Kuma TrafficRoute whose destination is the Service: weighted splits (see `kuma.rs`);
//! 6. otherwise the Service itself (the kubernetes provider).
//!
//! A request to an ingress gateway's Service (Istio's, selecting `istio: ingressgateway`, or
//! a Gateway API Gateway's, labelled `gateway.networking.k8s.io/gateway-name`) is routed by
//! its `Host` header as that gateway would: through VirtualServices bound to a gateway other
//! than `mesh`, or HTTPRoutes attached to that Gateway. A request to ingress-nginx's
//! controller Service is routed by its `Host` and path through the Ingresses and their canary
//! Ingresses, as ingress-nginx does (see `nginx.rs`); one to Contour's Envoy Service through
//! the HTTPProxies (see `contour.rs`); one to Traefik's through the IngressRoutes and
//! TraefikServices (see `traefik.rs`); one to Skipper's through the Ingresses of class
//! `skipper` and their weights (see `skipper.rs`); one to APISIX's gateway through the
//! ApisixRoutes (see `apisix.rs`); one to Gloo's gateway proxy through the VirtualServices,
//! their RouteTables and Upstreams (see `gloo.rs`). A Knative Service's host (directly, or
//! through Kourier's gateway) goes to a revision by its `status.traffic` (see `knative.rs`).
//!
//! The destination Service's selector then picks a ready Deployment, the endpoint: its
//! namespace, name, image and a pod name in Kubernetes' `<deployment>-<hash>-<5 chars>` form.
//! Regular expressions match the whole value, as Envoy's do.
//!
//! Simplifications, deliberate for a test data plane: Gateway API rule precedence ranks an
//! exact path, then the longest path, then the most header matches (no method or query
//! parameter rank); Istio matches read `uri`, `method`, `headers` and `withoutHeaders` only;
//! on a cluster that serves EndpointSlices the endpoints are the ready Pods behind the
//! Service (a Deployment's or a DaemonSet's), elsewhere (kube-sim) only Deployments are; a
//! bare name resolves only when one namespace has a Service of that name.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::cluster::Snapshot;

mod apisix;
mod appmesh;
mod contour;
mod endpoints;
mod gatewayapi;
mod gateways;
mod gloo;
mod istio;
mod knative;
mod kuma;
mod nginx;
mod skipper;
mod smi;
mod traefik;

use appmesh::appmesh;
use endpoints::endpoint;
use gatewayapi::httproute;
use istio::istio;
pub use nginx::IngressHit;
use smi::smi;

/// The parts of a request that routing reads.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The authority: `podinfo-canary.test:9898`.
    pub host: String,
    /// The HTTP method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Header names in lower case, with their values.
    pub headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A ready revision of a Deployment: what answers a request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Workload {
    /// Its namespace.
    pub namespace: String,
    /// The workload's name: the Deployment (`podinfo`, `podinfo-primary`) or DaemonSet.
    pub deployment: String,
    /// The first container's image (its tag is the version podinfo reports).
    pub image: String,
    /// A pod name of this revision.
    pub pod: String,
}

/// The routing decision for one request.
#[derive(Clone, Debug, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one short-lived value per request; boxing would only obscure the matches"
)]
pub enum Route {
    /// A workload of the cluster answers.
    Backend {
        /// The chosen endpoint.
        workload: Workload,
        /// A copy of the request goes there too; its answer is dropped.
        mirror: Option<Workload>,
        /// Headers added to the response (session affinity cookies).
        response_headers: Vec<(String, String)>,
        /// How the decision was taken, for the log: `istio VirtualService test/podinfo ...`.
        via: String,
        /// The Ingress that routed it, when ingress-nginx did: what its series are labelled
        /// with.
        ingress: Option<IngressHit>,
        /// The upstream as the ingress proxy that routed it names it (Contour's Envoy,
        /// Traefik), for that proxy's series.
        upstream: Option<Upstream>,
    },
    /// A process outside the cluster registered under this host (the loadtester).
    Upstream(String),
    /// Nothing answers to this host (a 502 from the proxy).
    NoRoute(String),
    /// The Service exists but has no ready endpoint (Envoy's 503 "no healthy upstream").
    Unavailable(String),
}

/// An upstream as the ingress proxy that routed a request names it in its series.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Upstream {
    /// The proxy.
    pub proxy: Proxy,
    /// Its name for the upstream: Contour's Envoy cluster `test_podinfo-canary_9898`,
    /// Traefik's service `test-podinfo-canary-9898@kubernetescrd`.
    pub name: String,
    /// The request's method (Traefik labels its series with it).
    pub method: String,
}

/// The ingress proxies whose series name upstreams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proxy {
    /// An Envoy-based ingress, Contour's or Gloo's: `envoy_cluster_upstream_rq{envoy_cluster_name}`.
    Envoy,
    /// Traefik: `traefik_service_requests_total{service}`.
    Traefik,
    /// Skipper: `skipper_serve_route_duration_seconds{route}`.
    Skipper,
    /// APISIX: `apisix_http_status{route}`.
    Apisix,
    /// Kuma's sidecars: Envoy's series with the Kuma `service` of the dataplane.
    Kuma,
}

/// A source of numbers in `0..n` for weighted choices (a counter in the proxy, fixed in
/// tests).
pub trait Pick {
    /// A number in `0..n` (`n > 0`).
    fn pick(&mut self, n: u64) -> u64;
}

impl<F: FnMut(u64) -> u64> Pick for F {
    fn pick(&mut self, n: u64) -> u64 {
        self(n) % n.max(1)
    }
}

/// A Service by namespace and name.
type ServiceRef = (String, String);

/// What a routing object chose: the destination Service, a mirror, headers, and how.
struct Decision {
    to: ServiceRef,
    mirror: Option<ServiceRef>,
    headers: Vec<(String, String)>,
    via: String,
}

/// Decides where `req` goes. `upstreams` maps hosts (without port) to `ip:port` of processes
/// outside the cluster.
pub fn resolve(
    s: &Snapshot,
    upstreams: &BTreeMap<String, String>,
    req: &Request,
    pick: &mut dyn Pick,
) -> Route {
    let (host, port) = split_port(&req.host);
    if let Some(addr) = upstreams.get(host) {
        return Route::Upstream(addr.clone());
    }
    let decision = match service_named(s, host, None) {
        Some(svc) => {
            if let Err(e) = port_open(s, &svc, port) {
                return Route::NoRoute(e);
            }
            if let Some(entry) = gateways::entry_point(s, &svc) {
                return gateways::through(s, &svc, &entry, req, pick);
            }
            if let Some(route) = kuma::route(s, &svc, pick) {
                return route;
            }
            mesh_decision(s, &svc, req, pick).unwrap_or_else(|| Decision {
                via: format!("Service {}/{}", svc.0, svc.1),
                to: svc,
                mirror: None,
                headers: Vec::new(),
            })
        }
        None => return gateways::by_host(s, host, req, pick),
    };
    backend(s, decision, pick)
}

/// The endpoint (and mirror) of the Service a routing decision chose.
fn backend(s: &Snapshot, decision: Decision, pick: &mut dyn Pick) -> Route {
    let workload = match endpoint(s, &decision.to, pick) {
        Ok(w) => w,
        Err(e) => return Route::Unavailable(format!("{e} (routed by {})", decision.via)),
    };
    let mirror = decision
        .mirror
        .as_ref()
        .and_then(|m| endpoint(s, m, pick).ok());
    Route::Backend {
        workload,
        mirror,
        response_headers: decision.headers,
        upstream: kuma::dataplane(s, &decision.to),
        via: decision.via,
        ingress: None,
    }
}

/// [`backend`], the request labelled with the upstream the ingress proxy that routed it names.
fn backend_of(s: &Snapshot, decision: Decision, pick: &mut dyn Pick, upstream: Upstream) -> Route {
    let mut route = backend(s, decision, pick);
    if let Route::Backend { upstream: u, .. } = &mut route {
        *u = Some(upstream);
    }
    route
}

fn split_port(authority: &str) -> (&str, u16) {
    match authority.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h, p.parse().unwrap_or(80)),
        _ => (authority, 80),
    }
}

fn ns_of(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or("default")
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

/// The Service a host names, relative to `base` (the namespace of the object that names it)
/// or, for a bare name with no base, the only Service of that name in the cluster.
fn service_named(s: &Snapshot, host: &str, base: Option<&str>) -> Option<ServiceRef> {
    let short = host
        .strip_suffix(".svc.cluster.local")
        .or_else(|| host.strip_suffix(".svc"))
        .unwrap_or(host);
    let exists = |ns: &str, name: &str| {
        s.services
            .iter()
            .any(|o| ns_of(o) == ns && name_of(o) == name)
    };
    match short.split_once('.') {
        Some((name, ns)) if !ns.contains('.') => {
            exists(ns, name).then(|| (ns.to_string(), name.to_string()))
        }
        Some(_) => None,
        None => match base {
            Some(ns) => exists(ns, short).then(|| (ns.to_string(), short.to_string())),
            None => {
                let mut found = s.services.iter().filter(|o| name_of(o) == short);
                match (found.next(), found.next()) {
                    (Some(o), None) => Some((ns_of(o).to_string(), short.to_string())),
                    _ => None,
                }
            }
        },
    }
}

fn service<'a>(s: &'a Snapshot, svc: &ServiceRef) -> Option<&'a Value> {
    s.services
        .iter()
        .find(|o| ns_of(o) == svc.0 && name_of(o) == svc.1)
}

fn port_open(s: &Snapshot, svc: &ServiceRef, port: u16) -> Result<(), String> {
    let ports: Vec<u64> = service(s, svc)
        .and_then(|o| o["spec"]["ports"].as_array())
        .map(|ps| ps.iter().filter_map(|p| p["port"].as_u64()).collect())
        .unwrap_or_default();
    if ports.is_empty() || ports.contains(&u64::from(port)) {
        Ok(())
    } else {
        Err(format!(
            "Service {}/{} has no port {port} (it has {ports:?}): connection refused",
            svc.0, svc.1
        ))
    }
}

/// The names a host of Service `svc` may be written as in a routing object.
fn aliases(svc: &ServiceRef) -> [String; 4] {
    let (ns, name) = svc;
    [
        name.clone(),
        format!("{name}.{ns}"),
        format!("{name}.{ns}.svc"),
        format!("{name}.{ns}.svc.cluster.local"),
    ]
}

fn mesh_decision(
    s: &Snapshot,
    svc: &ServiceRef,
    req: &Request,
    pick: &mut dyn Pick,
) -> Option<Decision> {
    let names = aliases(svc);
    let named = |v: &Value| v.as_str().is_some_and(|h| names.iter().any(|n| n == h));
    let in_ns = |o: &&Value| ns_of(o) == svc.0;
    if let Some(vs) = s.istio.iter().filter(in_ns).find(|vs| {
        strings(&vs["spec"]["hosts"]).any(|h| names.iter().any(|n| n == h))
            && gateways(vs).any(|g| g == "mesh")
    }) {
        return istio(s, vs, req, pick);
    }
    if let Some(avs) = s
        .appmesh_services
        .iter()
        .filter(in_ns)
        .find(|o| named(&o["spec"]["awsName"]))
    {
        return appmesh(s, avs, req, pick);
    }
    if let Some(ts) = s
        .splits
        .iter()
        .filter(in_ns)
        .find(|o| named(&o["spec"]["service"]))
    {
        return smi(s, ts, pick);
    }
    let parent = |r: &&Value| {
        r["spec"]["parentRefs"].as_array().is_some_and(|ps| {
            ps.iter().any(|p| {
                p["kind"].as_str() == Some("Service")
                    && p["name"].as_str() == Some(svc.1.as_str())
                    && p["namespace"].as_str().unwrap_or(ns_of(r)) == svc.0
            })
        })
    };
    if let Some(route) = s.httproutes.iter().find(parent) {
        return httproute(s, route, req, pick);
    }
    None
}

fn strings(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str)
}

fn gateways(vs: &Value) -> impl Iterator<Item = &str> {
    let listed = vs["spec"]["gateways"]
        .as_array()
        .is_some_and(|g| !g.is_empty());
    strings(&vs["spec"]["gateways"]).chain((!listed).then_some("mesh"))
}

/// Chooses one of `(item, weight)` in proportion to the weights; all zero picks the first.
fn weighted<T: Clone>(items: &[(T, u64)], pick: &mut dyn Pick) -> Option<T> {
    let total: u64 = items.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return items.first().map(|(t, _)| t.clone());
    }
    let mut n = pick.pick(total);
    for (t, w) in items {
        if n < *w {
            return Some(t.clone());
        }
        n -= w;
    }
    None
}

/// Matches `value` against a whole-value regular expression.
fn regex_full(pattern: &str, value: &str) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|r| r.is_match(value))
}

/// Istio's StringMatch (`exact`, `prefix`, `regex`).
fn string_match(m: &Value, value: Option<&str>) -> bool {
    let Some(value) = value else { return false };
    if let Some(e) = m["exact"].as_str() {
        return value == e;
    }
    if let Some(p) = m["prefix"].as_str() {
        return value.starts_with(p);
    }
    if let Some(r) = m["regex"].as_str() {
        return regex_full(r, value);
    }
    true
}
