//! Kuma: a request for a Service that a TrafficRoute's destination names
//! (`kuma.io/service: <name>_<namespace>_svc_<port>`, any source) is split by the route's
//! `conf.split` weights among the Services its destinations name, as Kuma's sidecars do.
//!
//! Where Kuma runs (a TrafficRoute exists), every request carries the Kuma service of the
//! Service that answered, the `service` label Kuma's dataplanes put on their inbound Envoy
//! series ([`dataplane`]), however the request reached it.

use serde_json::Value;

use super::{Decision, Pick, Proxy, Route, ServiceRef, Upstream, backend, weighted};
use crate::cluster::Snapshot;

/// `<name>_<namespace>_svc_<port>` as (name, namespace, port).
fn parse(kuma_service: &str) -> Option<(&str, &str, &str)> {
    let (rest, port) = kuma_service.rsplit_once("_svc_")?;
    let (name, ns) = rest.rsplit_once('_')?;
    Some((name, ns, port))
}

/// The route of a request for `svc`, if a TrafficRoute claims it.
pub(super) fn route(s: &Snapshot, svc: &ServiceRef, pick: &mut dyn Pick) -> Option<Route> {
    let claims = |tr: &&Value| {
        tr["spec"]["destinations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["match"]["kuma.io/service"].as_str())
            .filter_map(parse)
            .any(|(name, ns, _)| name == svc.1 && ns == svc.0)
    };
    let tr = s.trafficroutes.iter().find(claims)?;
    let items: Vec<(String, u64)> = tr["spec"]["conf"]["split"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| {
            let to = x["destination"]["kuma.io/service"].as_str()?;
            Some((to.to_string(), x["weight"].as_u64().unwrap_or(0)))
        })
        .collect();
    let chosen = weighted(&items, pick)?;
    let (name, ns, _) = parse(&chosen)?;
    let decision = Decision {
        via: format!(
            "Kuma TrafficRoute {} -> {chosen}",
            tr["metadata"]["name"].as_str().unwrap_or_default()
        ),
        to: (ns.to_string(), name.to_string()),
        mirror: None,
        headers: Vec::new(),
    };
    Some(backend(s, decision, pick))
}

/// The Kuma service of `svc` (`<name>_<namespace>_svc_<port>`, its first port) when Kuma runs
/// in the cluster.
pub(super) fn dataplane(s: &Snapshot, svc: &ServiceRef) -> Option<Upstream> {
    if s.trafficroutes.is_empty() {
        return None;
    }
    let port = super::service(s, svc)?["spec"]["ports"][0]["port"].as_u64()?;
    Some(Upstream {
        proxy: Proxy::Kuma,
        name: format!("{}_{}_svc_{port}", svc.1, svc.0),
        method: String::new(),
    })
}
