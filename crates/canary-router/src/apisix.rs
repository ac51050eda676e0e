//! APISIX (the `apisix` provider): `<route>-<service>-canary`, a copy of the ApisixRoute
//! (`apisix.apache.org/v2`) `spec.routeRef` names, holding only its HTTP route whose one
//! backend is the apex Service, at priority 10000, with two weighted backends:
//! `<service>-primary` (the original backend's fields) and `<service>-canary` (its port,
//! resolve granularity and subset) (flagger-behaviour.md 3.1).

use canary_api::Canary;
use canary_core::Routes;
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Map, Value, json};

use crate::cloned::copy_metadata;
use crate::object::namespace;
use crate::{Error, Result, apex_name};

/// The priority of the copied HTTP route, above the original's.
const PRIORITY: u32 = 10000;

/// `apisix.apache.org/v2` ApisixRoute.
pub fn resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("apisix.apache.org", "v2", "ApisixRoute");
    ApiResource::from_gvk_with_plural(&gvk, "apisixroutes")
}

/// The ApisixRoute the canary copies (`spec.routeRef.name`).
pub fn route_name(canary: &Canary) -> Result<&str> {
    canary
        .spec
        .route_ref
        .as_ref()
        .map(|r| r.name.as_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            Error::Invalid(
                "spec.routeRef: the apisix provider needs the ApisixRoute to copy (routeRef.name)"
                    .into(),
            )
        })
}

/// `<route>-<service>-canary`.
pub fn canary_route_name(canary: &Canary) -> Result<String> {
    Ok(format!(
        "{}-{}-canary",
        route_name(canary)?,
        apex_name(canary)
    ))
}

/// The canary ApisixRoute for `routes`, copied from `original`.
pub fn canary_route(canary: &Canary, original: &Value, routes: Routes) -> Result<Value> {
    let apex = apex_name(canary);
    let name = route_name(canary)?;
    let ns = namespace(canary);
    let http = original["spec"]["http"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if http.is_empty() {
        return Err(Error::Invalid(format!(
            "apisixroute {name}.{ns}: spec.http is empty"
        )));
    }
    let Some(mut route) = http.into_iter().find(|r| {
        r["backends"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["serviceName"] == apex.as_str()))
    }) else {
        return Err(Error::Invalid(format!(
            "apisixroute {name}.{ns}: no spec.http route has the backend {apex}"
        )));
    };
    let backends = route["backends"].as_array().cloned().unwrap_or_default();
    let [original_backend] = backends.as_slice() else {
        return Err(Error::Invalid(format!(
            "apisixroute {name}.{ns}: http route {} has {} backends; only one is supported",
            route["name"].as_str().unwrap_or_default(),
            backends.len()
        )));
    };
    let mut primary = original_backend.clone();
    primary["serviceName"] = json!(format!("{apex}-primary"));
    primary["weight"] = json!(routes.primary);
    let mut canary_backend = json!({
        "serviceName": format!("{apex}-canary"),
        "servicePort": original_backend["servicePort"],
        "weight": routes.canary,
    });
    for key in ["resolveGranularity", "subset"] {
        if !original_backend[key].is_null() {
            canary_backend[key] = original_backend[key].clone();
        }
    }
    route["priority"] = json!(PRIORITY);
    route["backends"] = json!([primary, canary_backend]);
    // Only the HTTP route (and the ingress class): the original's stream routes stay its own.
    let mut spec = json!({"http": [route]});
    if let Some(class) = original["spec"]["ingressClassName"].as_str() {
        spec["ingressClassName"] = json!(class);
    }
    let metadata = copy_metadata(
        canary,
        original,
        &canary_route_name(canary)?,
        |_| true,
        Map::new(),
    );
    Ok(json!({
        "apiVersion": "apisix.apache.org/v2",
        "kind": "ApisixRoute",
        "metadata": metadata,
        "spec": spec,
    }))
}

/// The weights of the copy's HTTP route with the primary backend.
pub fn routes_of(route: &Value, canary: &Canary) -> Result<Routes> {
    let apex = apex_name(canary);
    let primary = format!("{apex}-primary");
    let backends = route["spec"]["http"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| &r["backends"])
        .find(|b| crate::weight_of(b, "serviceName", &primary, 100).is_some())
        .unwrap_or(&Value::Null);
    crate::weight_pair(&apex, "apisixroute", |svc| {
        crate::weight_of(backends, "serviceName", svc, 100)
    })
}
