//! NGINX (ingress-nginx, the `nginx` provider): `<ingress>-canary`, a copy of the Ingress
//! `spec.ingressRef` names whose backends that reach the apex Service reach `<apex>-canary`
//! instead, switched by ingress-nginx's canary annotations (flagger-behaviour.md 3.1):
//! `<prefix>/canary: "true"` always, `<prefix>/canary-weight` for the canary's share, and in
//! an A/B analysis `canary-by-header`, `canary-by-header-value`, `canary-by-header-pattern`
//! and `canary-by-cookie` from `analysis.match`. The prefix is `-ingress-annotations-prefix`
//! (`nginx.ingress.kubernetes.io`). Mirroring and session affinity are not NGINX features
//! Flagger drives: they are ignored, as in Flagger.

use async_trait::async_trait;
use canary_api::Canary;
use canary_core::Routes;
use serde_json::{Map, Value, json};

use crate::{Error, ObjectRouter, Result, TrafficRouter, apex_name, flux_annotations};

/// ingress-nginx's own annotation prefix, the default of `-ingress-annotations-prefix`.
pub const DEFAULT_PREFIX: &str = "nginx.ingress.kubernetes.io";

/// The name of the Ingress the canary clones (`spec.ingressRef.name`).
pub fn ingress_name(canary: &Canary) -> Result<&str> {
    canary
        .spec
        .ingress_ref
        .as_ref()
        .map(|r| r.name.as_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            Error::Invalid(
                "spec.ingressRef: the nginx provider needs the Ingress to clone (ingressRef.name)"
                    .into(),
            )
        })
}

/// `<ingress>-canary`.
pub fn canary_ingress_name(canary: &Canary) -> Result<String> {
    Ok(format!("{}-canary", ingress_name(canary)?))
}

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
    let mut annotations: Map<String, Value> = original["metadata"]["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !k.contains(&canary_key)
                        && *k != "kubectl.kubernetes.io/last-applied-configuration"
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    annotations.extend(flux_annotations());
    annotations.extend(canary_annotations(canary, routes, prefix));
    let mut metadata = crate::managed_metadata(canary, &canary_ingress_name(canary)?, false);
    metadata["annotations"] = json!(annotations);
    if let Some(labels) = original["metadata"]["labels"].as_object() {
        metadata["labels"] = json!(labels);
    }
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

/// `networking.k8s.io/v1` Ingress.
pub fn resource() -> kube::core::ApiResource {
    crate::Kind::Nginx.resource()
}

/// The `nginx` provider's router: the canary Ingress written with server-side apply (through
/// [`ObjectRouter`]'s reads and writes), always rebuilt from the Ingress it clones, so a
/// change of that Ingress reaches the canary one at the next reconcile.
pub struct IngressRouter {
    pub(crate) objects: ObjectRouter,
    pub(crate) prefix: String,
}

impl IngressRouter {
    /// The Ingress `spec.ingressRef` names; a missing one is an error naming the field.
    async fn original(&self, canary: &Canary) -> Result<Value> {
        let name = ingress_name(canary)?;
        self.objects
            .get(canary, &resource(), name)
            .await?
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "spec.ingressRef.name: ingress {name}.{} not found",
                    crate::object::namespace(canary)
                ))
            })
    }

    async fn current(&self, canary: &Canary) -> Result<Option<Value>> {
        self.objects
            .get(canary, &resource(), &canary_ingress_name(canary)?)
            .await
    }

    async fn write(&self, canary: &Canary, routes: Routes) -> Result<()> {
        let original = self.original(canary).await?;
        let obj = canary_ingress(canary, &original, routes, &self.prefix)?;
        self.objects.apply(canary, &resource(), &obj).await
    }
}

#[async_trait]
impl TrafficRouter for IngressRouter {
    async fn reconcile(&self, canary: &Canary) -> Result<()> {
        let routes = match self.current(canary).await? {
            Some(obj) => routes_of(&obj, canary, &self.prefix).unwrap_or_default(),
            None => Routes::default(),
        };
        self.write(canary, routes).await
    }

    async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<()> {
        self.write(canary, routes).await
    }

    async fn get_routes(&self, canary: &Canary) -> Result<Routes> {
        match self.current(canary).await? {
            Some(obj) => routes_of(&obj, canary, &self.prefix),
            None => Err(Error::Invalid(format!(
                "ingress {}.{} not found",
                canary_ingress_name(canary)?,
                crate::object::namespace(canary)
            ))),
        }
    }

    /// Traffic goes back to the primary; the canary Ingress is garbage-collected with the
    /// canary (Flagger leaves it as it is).
    async fn finalize(&self, canary: &Canary) -> Result<()> {
        match self.current(canary).await? {
            Some(current) if crate::owned_by(&current, canary) => {
                self.write(canary, Routes::default()).await
            }
            _ => Ok(()),
        }
    }
}
