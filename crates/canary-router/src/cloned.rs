//! The providers whose routing object is a copy of an object the user wrote, named in the
//! canary: NGINX and Skipper (the Ingress `spec.ingressRef`, copied to `<ingress>-canary`)
//! and APISIX (the ApisixRoute `spec.routeRef`, copied to `<route>-<service>-canary`).
//! [`CloneRouter`] reads the original through [`Objects`] and applies the copy its [`Flavor`]
//! builds, always from the original, so a change of the original reaches the copy at the
//! next reconcile.

use async_trait::async_trait;
use canary_api::Canary;
use canary_core::Routes;
use kube::core::ApiResource;
use serde_json::{Map, Value, json};

use crate::object::{Objects, namespace};
use crate::{Error, Result, TrafficRouter, apisix, flux_annotations, ingress, nginx, skipper};

/// How a provider copies the original and switches traffic with the copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// ingress-nginx's canary annotations under this prefix (`-ingress-annotations-prefix`).
    Nginx(String),
    /// Skipper's `zalando.org/backend-weights` between the primary and the canary.
    Skipper,
    /// APISIX's weighted backends in a copy of the ApisixRoute.
    Apisix,
}

impl Flavor {
    /// The kind of the original and of its copy.
    pub fn resource(&self) -> ApiResource {
        match self {
            Flavor::Nginx(_) | Flavor::Skipper => ingress::resource(),
            Flavor::Apisix => apisix::resource(),
        }
    }

    /// The field that names the original and its value.
    fn original_name<'c>(&self, canary: &'c Canary) -> Result<(&'static str, &'c str)> {
        match self {
            Flavor::Nginx(_) | Flavor::Skipper => {
                Ok(("spec.ingressRef.name", ingress::ingress_name(canary)?))
            }
            Flavor::Apisix => Ok(("spec.routeRef.name", apisix::route_name(canary)?)),
        }
    }

    /// The copy's name.
    pub fn copy_name(&self, canary: &Canary) -> Result<String> {
        match self {
            Flavor::Nginx(_) | Flavor::Skipper => ingress::canary_ingress_name(canary),
            Flavor::Apisix => apisix::canary_route_name(canary),
        }
    }

    /// The copy for `routes`, built from `original`.
    pub fn build(&self, canary: &Canary, original: &Value, routes: Routes) -> Result<Value> {
        match self {
            Flavor::Nginx(prefix) => nginx::canary_ingress(canary, original, routes, prefix),
            Flavor::Skipper => skipper::canary_ingress(canary, original, routes),
            Flavor::Apisix => apisix::canary_route(canary, original, routes),
        }
    }

    /// The weights a copy holds.
    pub fn routes_of(&self, copy: &Value, canary: &Canary) -> Result<Routes> {
        match self {
            Flavor::Nginx(prefix) => nginx::routes_of(copy, canary, prefix),
            Flavor::Skipper => skipper::routes_of(copy, canary),
            Flavor::Apisix => apisix::routes_of(copy, canary),
        }
    }
}

/// The router of the providers that copy a user's object.
pub struct CloneRouter {
    pub(crate) objects: Objects,
    pub(crate) flavor: Flavor,
}

impl CloneRouter {
    /// The original the canary names; a missing one is an error naming the field.
    async fn original(&self, canary: &Canary) -> Result<Value> {
        let (field, name) = self.flavor.original_name(canary)?;
        let resource = self.flavor.resource();
        self.objects
            .get(canary, &resource, name)
            .await?
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{field}: {} {name}.{} not found",
                    resource.kind.to_lowercase(),
                    namespace(canary)
                ))
            })
    }

    async fn current(&self, canary: &Canary) -> Result<Option<Value>> {
        let name = self.flavor.copy_name(canary)?;
        self.objects
            .get(canary, &self.flavor.resource(), &name)
            .await
    }

    async fn write(&self, canary: &Canary, routes: Routes) -> Result<()> {
        let original = self.original(canary).await?;
        let obj = self.flavor.build(canary, &original, routes)?;
        self.objects
            .apply(canary, &self.flavor.resource(), &obj)
            .await
    }
}

#[async_trait]
impl TrafficRouter for CloneRouter {
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
                "{} {}.{} not found",
                self.flavor.resource().kind.to_lowercase(),
                self.flavor.copy_name(canary)?,
                namespace(canary)
            ))),
        }
    }

    /// NGINX and APISIX: traffic goes back to the primary and the copy is garbage-collected
    /// with the canary (Flagger leaves it as it is). Skipper: the copy is deleted, as
    /// Flagger does.
    async fn finalize(&self, canary: &Canary) -> Result<()> {
        match self.current(canary).await? {
            Some(current) if crate::owned_by(&current, canary) => match self.flavor {
                Flavor::Skipper => {
                    let name = self.flavor.copy_name(canary)?;
                    self.objects
                        .delete(canary, &self.flavor.resource(), &name)
                        .await
                }
                _ => self.write(canary, Routes::default()).await,
            },
            _ => Ok(()),
        }
    }
}

/// A copy's metadata: owned by the canary, named `name`, the original's labels, its
/// annotations that `keep` accepts (never kubectl's last-applied copy), Flux's, then `added`.
pub(crate) fn copy_metadata(
    canary: &Canary,
    original: &Value,
    name: &str,
    keep: impl Fn(&str) -> bool,
    added: Map<String, Value>,
) -> Value {
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
    let mut metadata = crate::managed_metadata(canary, name, false);
    metadata["annotations"] = json!(annotations);
    if let Some(labels) = original["metadata"]["labels"].as_object() {
        metadata["labels"] = json!(labels);
    }
    metadata
}
