//! SMI TrafficSplit (the `linkerd` provider, `smi:v1alpha1|2|3`): backends `<apex>-canary`
//! and `<apex>-primary` with their weights (flagger-behaviour.md 3.3).

use canary_api::Canary;
use canary_core::Routes;
use serde_json::{Value, json};

use crate::{Result, apex_name, managed_metadata, weight_pair};

/// The TrafficSplit of API `version` (`v1alpha1` writes weights as quantities).
pub fn traffic_split(canary: &Canary, routes: Routes, version: &str) -> Value {
    let apex = apex_name(canary);
    let service = canary
        .spec
        .service
        .hosts
        .first()
        .cloned()
        .unwrap_or_else(|| apex.clone());
    let weight = |w: u32| {
        if version == "v1alpha1" {
            json!(w.to_string())
        } else {
            json!(w)
        }
    };
    json!({
        "apiVersion": format!("split.smi-spec.io/{version}"),
        "kind": "TrafficSplit",
        "metadata": managed_metadata(canary, &apex, true),
        "spec": {
            "service": service,
            "backends": [
                {"service": format!("{apex}-canary"), "weight": weight(routes.canary)},
                {"service": format!("{apex}-primary"), "weight": weight(routes.primary)},
            ],
        },
    })
}

/// The weights a TrafficSplit holds.
pub fn routes_of(ts: &Value, canary: &Canary) -> Result<Routes> {
    let backends = ts["spec"]["backends"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    weight_pair(&apex_name(canary), "trafficsplit", |name| {
        backends
            .iter()
            .find(|b| b["service"] == name)
            .map(|b| match &b["weight"] {
                Value::String(s) => s.trim_end_matches('m').parse::<u32>().unwrap_or(0),
                v => v.as_u64().unwrap_or(0) as u32,
            })
    })
}
