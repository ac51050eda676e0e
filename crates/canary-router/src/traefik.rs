//! Traefik: the TraefikService `<apex>`, a weighted round robin of `<apex>-primary` and, while
//! it has traffic, `<apex>-canary`, which the user's IngressRoute routes to
//! (flagger-behaviour.md 3.1).
//!
//! Flagger leaves a weight of 0 out of its Go object, and Traefik reads a missing weight as 1;
//! flaggerd writes the primary's weight even when it is 0, so a release at 100% canary sends
//! the primary nothing (listed in docs/compatibility.md).

use canary_api::Canary;
use canary_core::Routes;
use serde_json::{Value, json};

use crate::{Error, Result, apex_name, managed_metadata, object::namespace};

/// The TraefikService with `routes`.
pub fn traefik_service(canary: &Canary, routes: Routes) -> Value {
    let apex = apex_name(canary);
    let ns = namespace(canary);
    let port = canary.spec.service.port;
    let mut services = vec![
        json!({"name": format!("{apex}-primary"), "namespace": ns, "port": port, "weight": routes.primary}),
    ];
    if routes.canary > 0 {
        services.push(json!({"name": format!("{apex}-canary"), "namespace": ns, "port": port, "weight": routes.canary}));
    }
    json!({
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": managed_metadata(canary, &apex, true),
        "spec": {"weighted": {"services": services}},
    })
}

/// The weights a TraefikService holds: the primary's, and the canary's (0 when it is not
/// listed).
pub fn routes_of(ts: &Value, canary: &Canary) -> Result<Routes> {
    let apex = apex_name(canary);
    let services = &ts["spec"]["weighted"]["services"];
    let weight = |name: String| crate::weight_of(services, "name", &name, 0);
    match weight(format!("{apex}-primary")) {
        Some(primary) => Ok(Routes {
            primary,
            canary: weight(format!("{apex}-canary")).unwrap_or(0),
            mirrored: false,
        }),
        None => Err(Error::Invalid(format!(
            "traefikservice {apex} has no weighted service {apex}-primary"
        ))),
    }
}
