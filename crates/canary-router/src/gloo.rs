//! Gloo Edge: two Upstreams (`gloo.solo.io/v1`) that point Gloo at the `-primary` and
//! `-canary` Services, and the RouteTable `<apex>` (`gateway.solo.io/v1`) that the user's
//! VirtualService delegates to, weighting the two (flagger-behaviour.md 3.1).
//!
//! The Upstreams are `<ns>-<apex>-primaryupstream-<port>` and `<ns>-<apex>-canaryupstream-<port>`
//! (the names Gloo's Envoy clusters and the builtin queries carry): a Kubernetes upstream of
//! the Service (its name, namespace, the canary's port and the Service's selector) with the
//! connection settings of the Upstream `spec.upstreamRef` names (labels, TLS, circuit
//! breakers, connection, load balancing, HTTP/2, window sizes, proxy host name). The RouteTable's
//! first route inherits the VirtualService's path matchers, matches the analysis' headers and
//! methods in A/B testing, and carries the weights (a weight of 0 is left out, as Gloo's Go
//! types write it).
//!
//! Where flaggerd differs from Flagger (listed in docs/compatibility.md): both Upstreams are
//! written whole at each reconcile (Flagger creates them once and then syncs only the load
//! balancer settings), so a change of the Service's selector or of any copied setting
//! reaches them; in A/B testing a second route sends the requests without the headers to the
//! primary (Flagger's only route matches the headers, so Gloo answers every other request
//! with 404); a header's prefix or suffix becomes a regular expression (Flagger writes an
//! empty value, which matches any value); the proxy host name is copied (Flagger's Go type
//! spells the field `httpProxyHostName`, so it never copies Gloo's `httpProxyHostname`).

use canary_api::Canary;
use canary_core::Routes;
use canary_core::spec::StringMatch;
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Map, Value, json};

use crate::object::namespace;
use crate::{Error, Result, apex_name, managed_metadata};

/// Gloo's Upstream kind.
pub fn upstream_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("gloo.solo.io", "v1", "Upstream");
    ApiResource::from_gvk_with_plural(&gvk, "upstreams")
}

/// Gloo's RouteTable kind.
pub fn route_table_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("gateway.solo.io", "v1", "RouteTable");
    ApiResource::from_gvk_with_plural(&gvk, "routetables")
}

/// The core Service kind (the Upstreams copy the `-primary` and `-canary` Services' selectors).
pub fn service_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Service"), "services")
}

/// The two sides an Upstream is made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// `<apex>-primary`.
    Primary,
    /// `<apex>-canary`.
    Canary,
}

impl Side {
    fn word(self) -> &'static str {
        match self {
            Side::Primary => "primary",
            Side::Canary => "canary",
        }
    }

    /// The Service the side's Upstream points at.
    pub fn service_name(self, canary: &Canary) -> String {
        format!("{}-{}", apex_name(canary), self.word())
    }

    /// The side's Upstream: `<ns>-<apex>-<side>upstream-<port>`.
    pub fn upstream_name(self, canary: &Canary) -> String {
        format!(
            "{}-{}-{}upstream-{}",
            namespace(canary),
            apex_name(canary),
            self.word(),
            canary.spec.service.port
        )
    }
}

/// The fields of the `upstreamRef` Upstream copied into both Upstreams, when it has them
/// (`labels` and `useHttp2` are in Flagger's Go type but not in Gloo's current schema).
const COPIED: [&str; 9] = [
    "labels",
    "sslConfig",
    "circuitBreakers",
    "connectionConfig",
    "loadBalancerConfig",
    "useHttp2",
    "initialStreamWindowSize",
    "initialConnectionWindowSize",
    "httpProxyHostname",
];

/// The Upstream of `side`, pointing at `service` (the side's Service as read from the API
/// server), with the settings of `config` (the `upstreamRef` Upstream, when there is one).
pub fn upstream(canary: &Canary, side: Side, service: &Value, config: Option<&Value>) -> Value {
    let mut spec = Map::new();
    for field in COPIED {
        if let Some(v) = config.map(|c| &c["spec"][field])
            && !v.is_null()
        {
            spec.insert(field.into(), v.clone());
        }
    }
    let mut kube = json!({
        "serviceName": service["metadata"]["name"],
        "serviceNamespace": namespace(canary),
        "servicePort": canary.spec.service.port,
    });
    if let Some(sel) = service["spec"]["selector"].as_object()
        && !sel.is_empty()
    {
        kube["selector"] = json!(sel);
    }
    spec.insert("kube".into(), kube);
    let metadata = managed_metadata(canary, &side.upstream_name(canary), false);
    json!({
        "apiVersion": "gloo.solo.io/v1",
        "kind": "Upstream",
        "metadata": metadata,
        "spec": spec,
    })
}

/// The RouteTable with `routes`.
pub fn route_table(canary: &Canary, routes: Routes) -> Value {
    let ns = namespace(canary);
    let destination = |side: Side, weight: u32| {
        let mut d = json!({"destination": {"upstream": {
            "name": side.upstream_name(canary),
            "namespace": ns,
        }}});
        if weight > 0 {
            d["weight"] = json!(weight);
        }
        d
    };
    let route = |matchers: Option<Value>, destinations: Vec<Value>| {
        let mut r = json!({
            "inheritablePathMatchers": true,
            "routeAction": {"multi": {"destinations": destinations}},
        });
        if let Some(m) = matchers {
            r["matchers"] = m;
        }
        r
    };
    let weighted = vec![
        destination(Side::Primary, routes.primary),
        destination(Side::Canary, routes.canary),
    ];
    let mut list = Vec::new();
    match matchers(canary) {
        None => list.push(route(None, weighted)),
        Some(m) => {
            list.push(route(Some(m), weighted));
            list.push(route(None, vec![destination(Side::Primary, 100)]));
        }
    }
    json!({
        "apiVersion": "gateway.solo.io/v1",
        "kind": "RouteTable",
        "metadata": managed_metadata(canary, &apex_name(canary), true),
        "spec": {"routes": list},
    })
}

/// The A/B matcher: the analysis' headers and methods, in one matcher (as Flagger writes it);
/// none without either.
fn matchers(canary: &Canary) -> Option<Value> {
    let ab = canary
        .spec
        .analysis()
        .map(|a| a.r#match.clone())
        .unwrap_or_default();
    let headers: Vec<Value> = ab
        .iter()
        .flat_map(|m| m.headers.iter())
        .map(|(name, value)| header_matcher(name, value))
        .collect();
    let methods: Vec<Value> = ab
        .iter()
        .filter_map(|m| m.method.as_ref())
        .map(|m| json!(m.exact.clone().unwrap_or_default()))
        .collect();
    if headers.is_empty() && methods.is_empty() {
        return None;
    }
    let mut m = Map::new();
    if !headers.is_empty() {
        m.insert("headers".into(), json!(headers));
    }
    if !methods.is_empty() {
        m.insert("methods".into(), json!(methods));
    }
    Some(json!([m]))
}

/// A header matcher: the exact value, or a regular expression (Gloo's match the whole value)
/// for a regex, prefix or suffix.
fn header_matcher(name: &str, m: &StringMatch) -> Value {
    let regex = match (&m.regex, &m.prefix, &m.suffix) {
        (Some(r), _, _) => Some(r.clone()),
        (None, Some(p), _) => Some(format!("{}.*", regex::escape(p))),
        (None, None, Some(s)) => Some(format!(".*{}", regex::escape(s))),
        _ => None,
    };
    match regex {
        Some(r) => json!({"name": name, "value": r, "regex": true}),
        None => json!({"name": name, "value": m.exact.clone().unwrap_or_default()}),
    }
}

/// The weights the RouteTable's first route holds: the primary Upstream's, the rest for the
/// canary.
pub fn routes_of(rt: &Value, canary: &Canary) -> Result<Routes> {
    let apex = apex_name(canary);
    let destinations = &rt["spec"]["routes"][0]["routeAction"]["multi"]["destinations"];
    if destinations.as_array().map_or(0, Vec::len) < 2 {
        return Err(Error::Invalid(format!(
            "routetable {apex}.{}: spec.routes[0].routeAction.multi.destinations has fewer than 2 destinations",
            namespace(canary)
        )));
    }
    let primary = Side::Primary.upstream_name(canary);
    let entries = destinations.as_array().into_iter().flatten();
    let weight = entries
        .filter(|d| d["destination"]["upstream"]["name"] == primary.as_str())
        .map(|d| d["weight"].as_u64().unwrap_or(0) as u32)
        .next();
    match weight {
        Some(p) => Ok(Routes {
            primary: p,
            canary: 100u32.saturating_sub(p),
            mirrored: false,
        }),
        None => Err(Error::Invalid(format!(
            "routetable {apex}.{} has no destination for upstream {primary}",
            namespace(canary)
        ))),
    }
}
