//! Kuma: the cluster-scoped TrafficRoute `<service>` (`kuma.io/v1alpha1`) in the mesh the
//! canary's `kuma.io/mesh` annotation names (`default` otherwise), sending every source's
//! requests for `<service>_<ns>_svc_<port>` to `<service>-primary_…` and `<service>-canary_…`
//! by weight (flagger-behaviour.md 3.1).
//!
//! A cluster-scoped object cannot be owned by a Canary: as Flagger, flaggerd writes it
//! without an owner reference; unlike Flagger, it marks it with `flaggerd.app/canary:
//! <ns>/<name>`, so a TrafficRoute of that name that a user wrote is taken over and restored
//! rather than silently overwritten, one another canary routes (same service name in another
//! namespace) is refused with a message instead of fought over, and `revertOnDeletion`
//! deletes the canary's own (left behind, it would route to the deleted primary).

use canary_api::Canary;
use canary_core::Routes;
use serde_json::{Value, json};

use crate::object::{CANARY_ANNOTATION, namespace};
use crate::{Result, apex_name, weight_pair};

/// Kuma's name of a Service: `<name>_<namespace>_svc_<port>`.
fn kuma_service(canary: &Canary, name: &str) -> String {
    format!(
        "{name}_{}_svc_{}",
        namespace(canary),
        canary.spec.service.port
    )
}

/// The TrafficRoute with `routes`.
pub fn traffic_route(canary: &Canary, routes: Routes) -> Value {
    let apex = apex_name(canary);
    let mesh = canary
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kuma.io/mesh"))
        .cloned()
        .unwrap_or_else(|| "default".into());
    let mut metadata = crate::managed_metadata(canary, &apex, true);
    if let Some(m) = metadata.as_object_mut() {
        m.remove("namespace");
        m.remove("ownerReferences");
    }
    metadata["annotations"][CANARY_ANNOTATION] = json!(crate::marker(canary));
    let split = |name: String, weight: u32| json!({"weight": weight, "destination": {"kuma.io/service": kuma_service(canary, &name)}});
    json!({
        "apiVersion": "kuma.io/v1alpha1",
        "kind": "TrafficRoute",
        "mesh": mesh,
        "metadata": metadata,
        "spec": {
            "sources": [{"match": {"kuma.io/service": "*"}}],
            "destinations": [{"match": {"kuma.io/service": kuma_service(canary, &apex)}}],
            "conf": {"split": [
                split(format!("{apex}-primary"), routes.primary),
                split(format!("{apex}-canary"), routes.canary),
            ]},
        },
    })
}

/// The weights a TrafficRoute's split holds.
pub fn routes_of(tr: &Value, canary: &Canary) -> Result<Routes> {
    let split = tr["spec"]["conf"]["split"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    weight_pair(&apex_name(canary), "trafficroute", |name| {
        let wanted = kuma_service(canary, name);
        split
            .iter()
            .find(|s| s["destination"]["kuma.io/service"] == wanted.as_str())
            .map(|s| s["weight"].as_u64().unwrap_or(0) as u32)
    })
}
