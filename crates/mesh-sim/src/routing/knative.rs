//! Knative: a request for a Knative Service's host (`<service>.<namespace>`, with
//! `.svc.cluster.local`, or its URL's `<service>.<namespace>.example.com`), directly or
//! through Kourier's gateway Service (selector `app: 3scale-kourier-gateway`, as Knative's
//! Kourier installs it), goes to one of the revisions of the Service's `status.traffic` by
//! percent, as Knative's ingress programs it: the revision's Service, then its pods.
//!
//! Each request carries the Envoy cluster Kourier names the revision: `<namespace>/<revision>`,
//! the `envoy_cluster_name` of Envoy's series that Flagger's Knative queries read.

use serde_json::Value;

use super::{
    Decision, Pick, Proxy, Request, Route, Upstream, backend_of, name_of, ns_of, weighted,
};
use crate::cluster::Snapshot;

/// True when the request reached Kourier's gateway.
pub(super) fn is_gateway(service: &Value) -> bool {
    service["spec"]["selector"]["app"] == "3scale-kourier-gateway"
}

/// The Knative Service `host` names.
pub(super) fn serving<'a>(s: &'a Snapshot, host: &str) -> Option<&'a Value> {
    s.knative_services.iter().find(|k| {
        let (name, ns) = (name_of(k), ns_of(k));
        let url_host = k["status"]["url"]
            .as_str()
            .and_then(|u| u.split("://").nth(1));
        [
            format!("{name}.{ns}"),
            format!("{name}.{ns}.svc"),
            format!("{name}.{ns}.svc.cluster.local"),
            format!("{name}.{ns}.example.com"),
        ]
        .iter()
        .any(|h| h == host)
            || url_host == Some(host)
    })
}

/// Routes a request for the Knative Service `ksvc` by its traffic.
pub(super) fn route(s: &Snapshot, ksvc: &Value, req: &Request, pick: &mut dyn Pick) -> Route {
    let ns = ns_of(ksvc);
    let items: Vec<(String, u64)> = ksvc["status"]["traffic"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let rev = t["revisionName"].as_str()?;
            Some((rev.to_string(), t["percent"].as_u64().unwrap_or(0)))
        })
        .collect();
    if !items.iter().any(|(_, p)| *p > 0) {
        return Route::Unavailable(format!(
            "Knative Service {ns}/{} has no revision with traffic",
            name_of(ksvc)
        ));
    }
    let Some(revision) = weighted(&items, pick) else {
        return Route::NoRoute(format!(
            "Knative Service {ns}/{} has no traffic",
            name_of(ksvc)
        ));
    };
    let decision = Decision {
        via: format!(
            "Knative Service {ns}/{} -> Revision {revision}",
            name_of(ksvc)
        ),
        to: (ns.to_string(), revision.clone()),
        mirror: None,
        headers: Vec::new(),
    };
    let upstream = Upstream {
        proxy: Proxy::Envoy,
        name: format!("{ns}/{revision}"),
        method: req.method.clone(),
    };
    backend_of(s, decision, pick, upstream)
}
