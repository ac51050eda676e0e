//! Skipper (the `skipper` provider): `<ingress>-canary`, a copy of the Ingress
//! `spec.ingressRef` names in which every path to the apex Service goes to `<apex>-primary`
//! and a copy of that path to `<apex>-canary`, weighted by `zalando.org/backend-weights`
//! (flagger-behaviour.md 3.1). `zalando.org/skipper-predicate` starts with `Weight(100)` while
//! the canary has traffic, so Skipper prefers the canary Ingress's routes to the original's,
//! and with `False()` when it has none, so the original Ingress (to the apex Service, that is
//! the primary) answers; the original's own predicates follow.
//!
//! One difference from Flagger (docs/compatibility.md): the clone is disabled (`False()`)
//! whenever the canary has no traffic, also before the first release; Flagger writes
//! `Weight(100)` at 100/0 until a release has ended.

use canary_api::Canary;
use canary_core::Routes;
use serde_json::{Map, Value, json};

use crate::cloned::copy_metadata;
use crate::ingress::{canary_ingress_name, ingress_name};
use crate::{Error, Result, apex_name};

/// The backend weights annotation.
pub const BACKEND_WEIGHTS: &str = "zalando.org/backend-weights";
/// The route predicate annotation.
pub const PREDICATE: &str = "zalando.org/skipper-predicate";

/// The canary Ingress for `routes`, cloned from `original`.
pub fn canary_ingress(canary: &Canary, original: &Value, routes: Routes) -> Result<Value> {
    let apex = apex_name(canary);
    let mut spec = original["spec"].clone();
    let mut found = false;
    for rule in spec["rules"].as_array_mut().into_iter().flatten() {
        let Some(paths) = rule
            .get_mut("http")
            .and_then(|h| h.get_mut("paths"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        let mut copies = Vec::new();
        for path in paths.iter_mut() {
            if path["backend"]["service"]["name"] == apex.as_str() {
                path["backend"]["service"]["name"] = json!(format!("{apex}-primary"));
                let mut copy = path.clone();
                copy["backend"]["service"]["name"] = json!(format!("{apex}-canary"));
                copies.push(copy);
                found = true;
            }
        }
        paths.extend(copies);
    }
    if !found {
        return Err(Error::Invalid(format!(
            "ingress {}.{}: no path of spec.rules has the backend service {apex}; the canary ingress needs one to split between {apex}-primary and {apex}-canary",
            ingress_name(canary)?,
            crate::object::namespace(canary)
        )));
    }
    // Go's encoding/json writes a map's keys in order: `-canary` before `-primary`.
    let weights = format!(
        r#"{{"{apex}-canary":{},"{apex}-primary":{}}}"#,
        routes.canary, routes.primary
    );
    let first = if routes.canary > 0 {
        "Weight(100)"
    } else {
        "False()"
    };
    let theirs = original["metadata"]["annotations"][PREDICATE]
        .as_str()
        .unwrap_or_default();
    let predicate = std::iter::once(first)
        .chain(
            theirs
                .split("&&")
                .map(str::trim)
                .filter(|p| !p.is_empty() && *p != "Weight(100)" && *p != "False()"),
        )
        .collect::<Vec<_>>()
        .join(" && ");
    let mut added = Map::new();
    added.insert(BACKEND_WEIGHTS.into(), json!(weights));
    added.insert(PREDICATE.into(), json!(predicate));
    let metadata = copy_metadata(
        canary,
        original,
        &canary_ingress_name(canary)?,
        |_| true,
        added,
    );
    Ok(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": spec,
    }))
}

/// The weights of `zalando.org/backend-weights`.
pub fn routes_of(ingress: &Value, canary: &Canary) -> Result<Routes> {
    let apex = apex_name(canary);
    let name = ingress["metadata"]["name"].as_str().unwrap_or_default();
    let text = ingress["metadata"]["annotations"][BACKEND_WEIGHTS]
        .as_str()
        .ok_or_else(|| Error::Invalid(format!("ingress {name} has no {BACKEND_WEIGHTS}")))?;
    let weights: std::collections::BTreeMap<String, f64> =
        serde_json::from_str(text).map_err(|e| {
            Error::Invalid(format!(
                "ingress {name}: {BACKEND_WEIGHTS} is not a JSON object of weights: {e}"
            ))
        })?;
    crate::weight_pair(&apex, "ingress", |svc| {
        weights.get(svc).map(|w| w.round().clamp(0.0, 100.0) as u32)
    })
}
