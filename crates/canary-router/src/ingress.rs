//! The providers that clone the Ingress `spec.ingressRef` names into `<ingress>-canary`:
//! NGINX (`nginx.rs`, canary annotations) and Skipper (`skipper.rs`, weighted backends).
//! [`IngressRouter`] reads the original through [`Objects`] and applies the clone, always
//! rebuilt from it, so a change of the original reaches the clone at the next reconcile.

use async_trait::async_trait;
use canary_api::Canary;
use canary_core::Routes;
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Map, Value, json};

use crate::object::{Objects, namespace};
use crate::{Error, Result, TrafficRouter, flux_annotations, nginx, skipper};

/// `networking.k8s.io/v1` Ingress.
pub fn resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("networking.k8s.io", "v1", "Ingress");
    ApiResource::from_gvk_with_plural(&gvk, "ingresses")
}

/// The name of the Ingress the canary clones (`spec.ingressRef.name`).
pub fn ingress_name(canary: &Canary) -> Result<&str> {
    canary
        .spec
        .ingress_ref
        .as_ref()
        .map(|r| r.name.as_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "spec.ingressRef: the {} provider needs the Ingress to clone (ingressRef.name)",
                canary.spec.provider.as_deref().unwrap_or_default()
            ))
        })
}

/// `<ingress>-canary`.
pub fn canary_ingress_name(canary: &Canary) -> Result<String> {
    Ok(format!("{}-canary", ingress_name(canary)?))
}

/// The clone's metadata: owned by the canary, named `<ingress>-canary`, the original's labels,
/// its annotations that `keep` accepts (never kubectl's last-applied copy), Flux's, then
/// `added`.
pub(crate) fn clone_metadata(
    canary: &Canary,
    original: &Value,
    keep: impl Fn(&str) -> bool,
    added: Map<String, Value>,
) -> Result<Value> {
    let mut annotations: Map<String, Value> = original["metadata"]["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    keep(k) && *k != "kubectl.kubernetes.io/last-applied-configuration"
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    annotations.extend(flux_annotations());
    annotations.extend(added);
    let mut metadata = crate::managed_metadata(canary, &canary_ingress_name(canary)?, false);
    metadata["annotations"] = json!(annotations);
    if let Some(labels) = original["metadata"]["labels"].as_object() {
        metadata["labels"] = json!(labels);
    }
    Ok(metadata)
}

/// How a provider switches traffic with its canary Ingress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// ingress-nginx's canary annotations under this prefix (`-ingress-annotations-prefix`).
    Nginx(String),
    /// Skipper's `zalando.org/backend-weights` between the primary and the canary.
    Skipper,
}

impl Flavor {
    /// The canary Ingress for `routes`, cloned from `original`.
    pub fn build(&self, canary: &Canary, original: &Value, routes: Routes) -> Result<Value> {
        match self {
            Flavor::Nginx(prefix) => nginx::canary_ingress(canary, original, routes, prefix),
            Flavor::Skipper => skipper::canary_ingress(canary, original, routes),
        }
    }

    /// The weights a canary Ingress holds.
    pub fn routes_of(&self, ingress: &Value, canary: &Canary) -> Result<Routes> {
        match self {
            Flavor::Nginx(prefix) => nginx::routes_of(ingress, canary, prefix),
            Flavor::Skipper => skipper::routes_of(ingress, canary),
        }
    }
}

/// The router of the providers that clone an Ingress.
pub struct IngressRouter {
    pub(crate) objects: Objects,
    pub(crate) flavor: Flavor,
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
                    namespace(canary)
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
        let obj = self.flavor.build(canary, &original, routes)?;
        self.objects.apply(canary, &resource(), &obj).await
    }
}

#[async_trait]
impl TrafficRouter for IngressRouter {
    async fn reconcile(&self, canary: &Canary) -> Result<()> {
        let routes = match self.current(canary).await? {
            Some(obj) => self.flavor.routes_of(&obj, canary).unwrap_or_default(),
            None => Routes::default(),
        };
        self.write(canary, routes).await
    }

    async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<()> {
        self.write(canary, routes).await
    }

    async fn get_routes(&self, canary: &Canary) -> Result<Routes> {
        match self.current(canary).await? {
            Some(obj) => self.flavor.routes_of(&obj, canary),
            None => Err(Error::Invalid(format!(
                "ingress {}.{} not found",
                canary_ingress_name(canary)?,
                namespace(canary)
            ))),
        }
    }

    /// NGINX: traffic goes back to the primary and the canary Ingress is garbage-collected
    /// with the canary (Flagger leaves it as it is). Skipper: the canary Ingress is deleted,
    /// as Flagger does.
    async fn finalize(&self, canary: &Canary) -> Result<()> {
        match self.current(canary).await? {
            Some(current) if crate::owned_by(&current, canary) => match self.flavor {
                Flavor::Nginx(_) => self.write(canary, Routes::default()).await,
                Flavor::Skipper => {
                    let name = canary_ingress_name(canary)?;
                    self.objects.delete(canary, &resource(), &name).await
                }
            },
            _ => Ok(()),
        }
    }
}
