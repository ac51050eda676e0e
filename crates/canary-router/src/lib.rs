//! canary-router: how traffic reaches the primary and the canary.
//!
//! The [`TrafficRouter`] trait is what the controller asks of a provider: create its routing
//! objects, set and read the weights, and revert on deletion. Each provider is a pure
//! builder (canary and weights to the desired object, snapshot-tested) and the generic
//! [`ObjectRouter`], which applies it with server-side apply under flaggerd's field manager,
//! so fields users add to a route survive. The `kubernetes` provider has no routing object
//! (blue/green through the ClusterIP services). This crate never decides when to move
//! traffic: canary-core does.

pub mod apisix;
pub mod appmesh;
pub mod cached;
pub mod cloned;
pub mod contour;
pub mod gatewayapi;
pub mod gloo;
pub mod ingress;
pub mod istio;
pub mod knative;
pub mod kuma;
pub mod managed;
mod matches;
pub mod nginx;
mod object;
mod object_router;
pub mod skipper;
pub mod smi;
pub mod traefik;

pub use object::{CANARY_ANNOTATION, MANAGER, ORIGINAL, Objects, cluster_scoped, marker, owned_by};
pub use object_router::ObjectRouter;

use async_trait::async_trait;
use canary_api::Canary;
use canary_core::Routes;
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

/// Errors of a router.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The provider is not one Flagger knows.
    #[error("unknown provider {0:?}; expected one of {list}", list = canary_core::spec::KNOWN_PROVIDERS.join(", "))]
    UnknownProvider(String),
    /// A routing object could not be read or written.
    #[error("cannot {verb} {object}")]
    Kube {
        /// What was attempted: `get`, `apply`, `restore`.
        verb: &'static str,
        /// The object: `virtualservice test/podinfo`.
        object: String,
        /// The API server's or the client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// A routing object or the canary does not hold what routing needs (a weight, a
    /// route, a selector): the message names the object and the field.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// The underlying API error, if any: the controller retries a transient one.
    pub fn kube_error(&self) -> Option<&kube::Error> {
        match self {
            Error::Kube { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A provider's control of traffic between `<name>-primary` and `<name>-canary`.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait TrafficRouter: Send + Sync {
    /// Creates or updates the provider's objects for the canary, keeping current weights.
    async fn reconcile(&self, canary: &Canary) -> Result<()>;
    /// Sets the weights (and mirroring).
    async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<()>;
    /// Reads the weights back from the provider's objects.
    async fn get_routes(&self, canary: &Canary) -> Result<Routes>;
    /// Restores what `revertOnDeletion` promises.
    async fn finalize(&self, canary: &Canary) -> Result<()>;
}

/// The `kubernetes` provider: no routing object. The engine derives its routes from the
/// iterations, so setting routes is a no-op and reading them answers all-primary.
#[derive(Clone, Copy, Debug, Default)]
pub struct KubernetesRouter;

#[async_trait]
impl TrafficRouter for KubernetesRouter {
    async fn reconcile(&self, _: &Canary) -> Result<()> {
        Ok(())
    }
    async fn set_routes(&self, _: &Canary, _: Routes) -> Result<()> {
        Ok(())
    }
    async fn get_routes(&self, _: &Canary) -> Result<Routes> {
        Ok(Routes::default())
    }
    async fn finalize(&self, _: &Canary) -> Result<()> {
        Ok(())
    }
}

/// What routers read from the controller's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// `-ingress-annotations-prefix`: the prefix of the NGINX canary annotations.
    pub ingress_annotations_prefix: String,
    /// `-ingress-class`: the `ingressClassName` of Contour's HTTPProxies (none when empty).
    pub ingress_class: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ingress_annotations_prefix: nginx::DEFAULT_PREFIX.into(),
            ingress_class: String::new(),
        }
    }
}

/// The router for a provider name, with the default [`Options`]. App Mesh needs the
/// target's pod selector (its VirtualNodes select pods).
pub fn for_provider(
    provider: &str,
    client: kube::Client,
    selector: Option<appmesh::PodSelector>,
) -> Result<Box<dyn TrafficRouter>> {
    for_provider_cached(provider, client, selector, None, &Options::default())
}

/// [`for_provider`], reading routing objects through `cache` and skipping writes the cached
/// object already holds.
pub fn for_provider_cached(
    provider: &str,
    client: kube::Client,
    selector: Option<appmesh::PodSelector>,
    cache: Option<std::sync::Arc<dyn cached::ObjectCache>>,
    options: &Options,
) -> Result<Box<dyn TrafficRouter>> {
    let local = client.clone();
    router(provider, client, local, selector, cache, true, options)
}

/// The router of `provider`: its routing objects read and written with `client`, the
/// objects of the canary's own cluster (the Services Gloo reads, a Knative Service target)
/// with `local`.
fn router(
    provider: &str,
    client: kube::Client,
    local: kube::Client,
    selector: Option<appmesh::PodSelector>,
    cache: Option<std::sync::Arc<dyn cached::ObjectCache>>,
    owner_references: bool,
    options: &Options,
) -> Result<Box<dyn TrafficRouter>> {
    if !canary_core::validate::is_known_provider(provider) {
        return Err(Error::UnknownProvider(provider.to_string()));
    }
    let mut objects = Objects {
        client,
        local,
        selector,
        cache,
        owner_references,
        options: options.clone(),
    };
    let flavor = match provider {
        "kubernetes" => return Ok(Box::new(KubernetesRouter)),
        "nginx" => cloned::Flavor::Nginx(options.ingress_annotations_prefix.clone()),
        "skipper" => cloned::Flavor::Skipper,
        "apisix" => cloned::Flavor::Apisix,
        // The target is the routing object: it lives in the canary's cluster.
        "knative" => {
            objects.client = objects.local.clone();
            return Ok(Box::new(knative::KnativeRouter { objects }));
        }
        other => {
            let kind = kind_of(other)?;
            return Ok(Box::new(ObjectRouter { objects, kind }));
        }
    };
    Ok(Box::new(cloned::CloneRouter { objects, flavor }))
}

/// The routing object kind of a provider whose objects are built from the canary alone.
fn kind_of(provider: &str) -> Result<Kind> {
    Ok(match provider {
        "istio" => Kind::Istio,
        "linkerd" | "smi:v1alpha1" => Kind::Smi("v1alpha1"),
        "osm" | "smi:v1alpha2" => Kind::Smi("v1alpha2"),
        "smi:v1alpha3" => Kind::Smi("v1alpha3"),
        "gatewayapi:v1" => Kind::GatewayApi("v1"),
        "gatewayapi:v1beta1" => Kind::GatewayApi("v1beta1"),
        "appmesh" | "appmesh:v1beta2" => Kind::AppMesh,
        "contour" => Kind::Contour,
        "traefik" => Kind::Traefik,
        "kuma" => Kind::Kuma,
        "gloo" => Kind::Gloo,
        p if p.starts_with("smi:v1alpha1:") => Kind::Smi("v1alpha1"),
        p if p.starts_with("smi:v1alpha2:") => Kind::Smi("v1alpha2"),
        p if p.starts_with("smi:v1alpha3:") => Kind::Smi("v1alpha3"),
        other => return Err(Error::UnknownProvider(other.to_string())),
    })
}

/// [`for_provider`] for routing objects kept in another cluster than the canary (Flagger's
/// `-kubeconfig-service-mesh`, `client`): written without owner references, which cannot
/// point to an object of another cluster. What lives with the canary is read with `local`:
/// the Services Gloo's Upstreams name, and a Knative Service target (routed where it is, as
/// Flagger's Knative router uses its local client).
pub fn for_provider_remote(
    provider: &str,
    client: kube::Client,
    local: kube::Client,
    selector: Option<appmesh::PodSelector>,
    options: &Options,
) -> Result<Box<dyn TrafficRouter>> {
    router(provider, client, local, selector, None, false, options)
}

/// The providers whose routing objects are built from the canary alone (NGINX, Skipper and
/// APISIX copy a user's object: [`cloned::CloneRouter`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// VirtualService (plus DestinationRules).
    Istio,
    /// SMI TrafficSplit of a version.
    Smi(&'static str),
    /// Gateway API HTTPRoute of a version.
    GatewayApi(&'static str),
    /// App Mesh v1beta2: the weights live in the apex VirtualRouter.
    AppMesh,
    /// Contour's HTTPProxy.
    Contour,
    /// Traefik's TraefikService.
    Traefik,
    /// Kuma's cluster-scoped TrafficRoute.
    Kuma,
    /// Gloo's RouteTable (plus the Upstreams it routes to).
    Gloo,
}

impl Kind {
    fn resource(self) -> ApiResource {
        let (group, version, kind, plural) = match self {
            Kind::Istio => (
                "networking.istio.io",
                "v1beta1",
                "VirtualService",
                "virtualservices",
            ),
            Kind::Smi(v) => ("split.smi-spec.io", v, "TrafficSplit", "trafficsplits"),
            Kind::GatewayApi(v) => ("gateway.networking.k8s.io", v, "HTTPRoute", "httproutes"),
            Kind::AppMesh => (
                "appmesh.k8s.aws",
                "v1beta2",
                "VirtualRouter",
                "virtualrouters",
            ),
            Kind::Contour => ("projectcontour.io", "v1", "HTTPProxy", "httpproxies"),
            Kind::Traefik => (
                "traefik.io",
                "v1alpha1",
                "TraefikService",
                "traefikservices",
            ),
            Kind::Kuma => ("kuma.io", "v1alpha1", "TrafficRoute", "trafficroutes"),
            Kind::Gloo => return gloo::route_table_resource(),
        };
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
    }

    /// The desired routing object, under the default [`Options`].
    pub fn build(self, canary: &Canary, routes: Routes) -> Result<Value> {
        self.build_with(canary, routes, &Options::default())
    }

    /// The desired routing object, under the controller's `options`.
    pub fn build_with(self, canary: &Canary, routes: Routes, options: &Options) -> Result<Value> {
        match self {
            Kind::Istio => Ok(istio::virtual_service(canary, routes)),
            Kind::Smi(v) => Ok(smi::traffic_split(canary, routes, v)),
            Kind::GatewayApi(v) => gatewayapi::http_route(canary, routes, v),
            Kind::AppMesh => {
                let [apex, _] = appmesh::virtual_routers(canary, routes);
                Ok(apex)
            }
            Kind::Contour => Ok(contour::http_proxy(canary, routes, &options.ingress_class)),
            Kind::Traefik => Ok(traefik::traefik_service(canary, routes)),
            Kind::Kuma => Ok(kuma::traffic_route(canary, routes)),
            Kind::Gloo => Ok(gloo::route_table(canary, routes)),
        }
    }

    /// The weights a routing object holds.
    pub fn routes_of(self, obj: &Value, canary: &Canary) -> Result<Routes> {
        match self {
            Kind::Istio => istio::routes_of(obj, canary),
            Kind::Smi(_) => smi::routes_of(obj, canary),
            Kind::GatewayApi(_) => gatewayapi::routes_of(obj, canary),
            Kind::AppMesh => appmesh::routes_of(obj, canary),
            Kind::Contour => contour::routes_of(obj, canary),
            Kind::Traefik => traefik::routes_of(obj, canary),
            Kind::Kuma => kuma::routes_of(obj, canary),
            Kind::Gloo => gloo::routes_of(obj, canary),
        }
    }
}

/// Routes from the weights of `<apex>-primary` and `<apex>-canary` in a routing object, or
/// an error naming the object (`what`) when either is missing.
pub(crate) fn weight_pair(
    apex: &str,
    what: &str,
    weight: impl Fn(&str) -> Option<u32>,
) -> Result<Routes> {
    match (
        weight(&format!("{apex}-primary")),
        weight(&format!("{apex}-canary")),
    ) {
        (Some(primary), Some(canary)) => Ok(Routes {
            primary,
            canary,
            mirrored: false,
        }),
        _ => Err(Error::Invalid(format!(
            "{what} {apex} has no weights for {apex}-primary and {apex}-canary"
        ))),
    }
}

/// The `weight` of the entry of `list` whose `key` is `name` (`missing` when it has none);
/// `None` when no entry is named so.
pub(crate) fn weight_of(list: &Value, key: &str, name: &str, missing: u32) -> Option<u32> {
    list.as_array()?
        .iter()
        .find(|e| e[key] == name)
        .map(|e| e["weight"].as_u64().map_or(missing, |w| w as u32))
}

/// `; Max-Age=..; Domain=..; HttpOnly; Partitioned; Path=..; SameSite=..; Secure`.
pub(crate) fn cookie_attributes(a: &canary_core::spec::SessionAffinity, max_age: i32) -> String {
    let mut out = format!("; Max-Age={max_age}");
    if let Some(d) = &a.domain {
        out.push_str(&format!("; Domain={d}"));
    }
    if a.http_only {
        out.push_str("; HttpOnly");
    }
    if a.partitioned {
        out.push_str("; Partitioned");
    }
    if let Some(p) = &a.path {
        out.push_str(&format!("; Path={p}"));
    }
    if let Some(s) = &a.same_site {
        out.push_str(&format!("; SameSite={s}"));
    }
    if a.secure {
        out.push_str("; Secure");
    }
    out
}

/// The apex name: `service.name`, else the target's name.
pub fn apex_name(canary: &Canary) -> String {
    let spec: &canary_core::CanarySpec = &canary.spec;
    spec.service_name().to_string()
}

/// The annotations that keep Flux from reverting what flaggerd manages (Flagger's
/// `filterMetadata`), on routing objects and Services alike.
pub fn flux_annotations() -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert(
        "kustomize.toolkit.fluxcd.io/reconcile".into(),
        json!("disabled"),
    );
    m.insert(
        "helm.toolkit.fluxcd.io/driftDetection".into(),
        json!("disabled"),
    );
    m
}

/// Metadata of a generated routing object: owned by the canary, the apex labels and
/// annotations (`apex`), and the annotations that keep Flux from reverting it.
pub fn managed_metadata(canary: &Canary, name: &str, apex: bool) -> Value {
    let mut labels = serde_json::Map::new();
    let mut annotations = serde_json::Map::new();
    if apex && let Some(m) = &canary.spec.service.apex {
        labels.extend(m.labels.iter().map(|(k, v)| (k.clone(), json!(v))));
        annotations.extend(m.annotations.iter().map(|(k, v)| (k.clone(), json!(v))));
    }
    annotations.extend(flux_annotations());
    let mut meta = json!({
        "name": name,
        "namespace": canary.metadata.namespace,
        "annotations": annotations,
        "ownerReferences": [{
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": canary.metadata.name,
            "uid": canary.metadata.uid, "controller": true, "blockOwnerDeletion": true,
        }],
    });
    if !labels.is_empty() {
        meta["labels"] = json!(labels);
    }
    meta
}
