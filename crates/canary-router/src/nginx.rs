//! NGINX (ingress-nginx, the `nginx` provider): `<ingress>-canary`, a copy of the Ingress
//! `spec.ingressRef` names whose backends that reach the apex Service reach `<apex>-canary`
//! instead, switched by ingress-nginx's canary annotations (flagger-behaviour.md 3.1):
//! `<prefix>/canary: "true"` always, `<prefix>/canary-weight` for the canary's share, and in
//! an A/B analysis `canary-by-header`, `canary-by-header-value`, `canary-by-header-pattern`
//! and `canary-by-cookie` from `analysis.match`. The prefix is `-ingress-annotations-prefix`
//! (`nginx.ingress.kubernetes.io`). Mirroring and session affinity are not NGINX features
//! Flagger drives: they are ignored, as in Flagger.

use canary_api::Canary;
use canary_core::Routes;
use serde_json::{Map, Value, json};

use crate::cloned::copy_metadata;
use crate::ingress::{canary_ingress_name, ingress_name};
use crate::{Error, Result, apex_name};

/// ingress-nginx's own annotation prefix, the default of `-ingress-annotations-prefix`.
pub const DEFAULT_PREFIX: &str = "nginx.ingress.kubernetes.io";

/// The canary Ingress for `routes`, cloned from `original` (the Ingress `ingressRef` names):
/// its labels, its annotations but any canary ones and kubectl's last-applied copy, and its
/// spec with every path whose backend is the apex Service sent to `<apex>-canary` (the port
/// kept). An Ingress with no such path is refused, naming it.
pub fn canary_ingress(
    canary: &Canary,
    original: &Value,
    routes: Routes,
    prefix: &str,
) -> Result<Value> {
    let apex = apex_name(canary);
    let name = ingress_name(canary)?;
    let mut spec = original["spec"].clone();
    let mut found = false;
    for rule in spec["rules"].as_array_mut().into_iter().flatten() {
        let paths = rule
            .get_mut("http")
            .and_then(|h| h.get_mut("paths"))
            .and_then(Value::as_array_mut);
        for path in paths.into_iter().flatten() {
            let service = path
                .get_mut("backend")
                .and_then(|b| b.get_mut("service"))
                .filter(|s| s["name"] == apex.as_str());
            if let Some(service) = service {
                service["name"] = json!(format!("{apex}-canary"));
                found = true;
            }
        }
    }
    if !found {
        return Err(Error::Invalid(format!(
            "ingress {name}.{}: no path of spec.rules has the backend service {apex}; the canary ingress needs one to send to {apex}-canary",
            crate::object::namespace(canary)
        )));
    }
    let canary_key = format!("{prefix}/canary");
    let metadata = copy_metadata(
        canary,
        original,
        &canary_ingress_name(canary)?,
        |k| !k.contains(&canary_key),
        canary_annotations(canary, routes, prefix),
    );
    Ok(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": spec,
    }))
}

/// The canary annotations for `routes`: `canary: "true"`, the canary weight, and while the
/// canary takes traffic in an A/B analysis the header and cookie it is chosen by (the weight
/// then stays 0: ingress-nginx tries the header, then the cookie, then the weight).
fn canary_annotations(canary: &Canary, routes: Routes, prefix: &str) -> Map<String, Value> {
    let key = |k: &str| format!("{prefix}/{k}");
    let mut out = Map::new();
    out.insert(key("canary"), json!("true"));
    let matches = ab_matches(canary);
    if routes.canary == 0 || matches.is_empty() {
        out.insert(key("canary-weight"), json!(routes.canary.to_string()));
        return out;
    }
    out.insert(key("canary-weight"), json!("0"));
    let (header, cookie) = header_and_cookie(&matches);
    if let Some(c) = cookie {
        out.insert(key("canary-by-cookie"), json!(c));
    }
    if let Some((name, m)) = header {
        out.insert(key("canary-by-header"), json!(name));
        if let Some(v) = &m.exact {
            out.insert(key("canary-by-header-value"), json!(v));
        }
        if let Some(r) = &m.regex {
            out.insert(key("canary-by-header-pattern"), json!(r));
        }
    }
    out
}

fn ab_matches(canary: &Canary) -> Vec<canary_core::spec::HttpMatch> {
    canary
        .spec
        .analysis()
        .map(|a| a.r#match.clone())
        .unwrap_or_default()
}

/// The header and the cookie an A/B analysis routes by, as Flagger reads `analysis.match`:
/// the `cookie` header's exact value names the cookie (ingress-nginx sends a request whose
/// cookie of that name is `always` to the canary); of the other headers the last one counts
/// (NGINX routes by one), in the order of the matches and of the header names.
fn header_and_cookie(
    matches: &[canary_core::spec::HttpMatch],
) -> (
    Option<(String, canary_core::spec::StringMatch)>,
    Option<String>,
) {
    let mut header = None;
    let mut cookie = None;
    for (name, m) in matches.iter().flat_map(|m| m.headers.iter()) {
        if name == "cookie" {
            cookie = m.exact.clone();
        } else {
            header = Some((name.clone(), m.clone()));
        }
    }
    (header, cookie)
}

/// The weights a canary Ingress holds: in an A/B analysis all to the canary while a header
/// or cookie routes to it; else `canary-weight` to the canary and the rest to the primary.
pub fn routes_of(ingress: &Value, canary: &Canary, prefix: &str) -> Result<Routes> {
    let annotations = &ingress["metadata"]["annotations"];
    let by = |k: &str| annotations[format!("{prefix}/{k}")].is_string();
    if !ab_matches(canary).is_empty() && (by("canary-by-cookie") || by("canary-by-header")) {
        return Ok(Routes {
            primary: 0,
            canary: 100,
            mirrored: false,
        });
    }
    let weight = match annotations[format!("{prefix}/canary-weight")].as_str() {
        None => 0,
        Some(text) => text.trim().parse::<u32>().ok().filter(|w| *w <= 100).ok_or_else(|| {
            Error::Invalid(format!(
                "ingress {}: annotation {prefix}/canary-weight is {text:?}, not a weight from 0 to 100",
                ingress["metadata"]["name"].as_str().unwrap_or_default()
            ))
        })?,
    };
    Ok(Routes {
        primary: 100 - weight,
        canary: weight,
        mirrored: false,
    })
}
