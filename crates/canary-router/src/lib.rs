//! canary-router: how traffic reaches the primary and the canary.
//!
//! The [`TrafficRouter`] trait is what the controller asks of a provider: create its routing
//! objects, set and read the weights, and revert on deletion. Each provider is a pure
//! builder (canary and weights to the desired object, snapshot-tested) and the generic
//! [`ObjectRouter`], which applies it with server-side apply under flaggerd's field manager,
//! so fields users add to a route survive. The `kubernetes` provider has no routing object
//! (blue/green through the ClusterIP services). This crate never decides when to move
//! traffic: canary-core does.

pub mod appmesh;
pub mod cached;
pub mod gatewayapi;
pub mod istio;
pub mod managed;
mod matches;
pub mod smi;

use async_trait::async_trait;
use canary_api::Canary;
use canary_core::Routes;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

/// Errors of a router.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The provider is not one Flagger knows.
    #[error("unknown provider {0:?}; expected one of {list}", list = canary_core::spec::KNOWN_PROVIDERS.join(", "))]
    UnknownProvider(String),
    /// The provider is known but flaggerd does not route with it yet.
    #[error(
        "provider {0:?} is not supported yet; supported: kubernetes, istio, linkerd, smi:v1alpha1|2|3, gatewayapi:v1, gatewayapi:v1beta1"
    )]
    Unsupported(String),
    /// The routing objects could not be read or written.
    #[error("{0}")]
    Io(String),
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

/// The router for a provider name. App Mesh needs the target's pod selector (its
/// VirtualNodes select pods).
pub fn for_provider(
    provider: &str,
    client: kube::Client,
    selector: Option<appmesh::PodSelector>,
) -> Result<Box<dyn TrafficRouter>> {
    for_provider_cached(provider, client, selector, None)
}

/// [`for_provider`], reading routing objects through `cache` and skipping writes the cached
/// object already holds.
pub fn for_provider_cached(
    provider: &str,
    client: kube::Client,
    selector: Option<appmesh::PodSelector>,
    cache: Option<std::sync::Arc<dyn cached::ObjectCache>>,
) -> Result<Box<dyn TrafficRouter>> {
    router(provider, client, selector, cache, true)
}

fn router(
    provider: &str,
    client: kube::Client,
    selector: Option<appmesh::PodSelector>,
    cache: Option<std::sync::Arc<dyn cached::ObjectCache>>,
    owner_references: bool,
) -> Result<Box<dyn TrafficRouter>> {
    if !canary_core::validate::is_known_provider(provider) {
        return Err(Error::UnknownProvider(provider.to_string()));
    }
    let Some(kind) = kind_of(provider)? else {
        return Ok(Box::new(KubernetesRouter));
    };
    Ok(Box::new(ObjectRouter {
        client,
        kind,
        selector,
        cache,
        owner_references,
    }))
}

/// The routing object kind of a known provider; `None` for `kubernetes`, which routes
/// nothing.
fn kind_of(provider: &str) -> Result<Option<Kind>> {
    Ok(Some(match provider {
        "kubernetes" => return Ok(None),
        "istio" => Kind::Istio,
        "linkerd" | "smi:v1alpha1" => Kind::Smi("v1alpha1"),
        "osm" | "smi:v1alpha2" => Kind::Smi("v1alpha2"),
        "smi:v1alpha3" => Kind::Smi("v1alpha3"),
        "gatewayapi:v1" => Kind::GatewayApi("v1"),
        "gatewayapi:v1beta1" => Kind::GatewayApi("v1beta1"),
        "appmesh" | "appmesh:v1beta2" => Kind::AppMesh,
        p if p.starts_with("smi:v1alpha1:") => Kind::Smi("v1alpha1"),
        p if p.starts_with("smi:v1alpha2:") => Kind::Smi("v1alpha2"),
        p if p.starts_with("smi:v1alpha3:") => Kind::Smi("v1alpha3"),
        other => return Err(Error::Unsupported(other.to_string())),
    }))
}

/// [`for_provider`] for routing objects kept in another cluster than the canary (Flagger's
/// `-kubeconfig-service-mesh`): written without owner references, which cannot point to
/// an object of another cluster.
pub fn for_provider_remote(
    provider: &str,
    client: kube::Client,
    selector: Option<appmesh::PodSelector>,
) -> Result<Box<dyn TrafficRouter>> {
    router(provider, client, selector, None, false)
}

/// The providers whose routing is one object with two weighted destinations.
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
        };
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
    }

    /// The desired routing object.
    pub fn build(self, canary: &Canary, routes: Routes) -> Result<Value> {
        match self {
            Kind::Istio => Ok(istio::virtual_service(canary, routes)),
            Kind::Smi(v) => Ok(smi::traffic_split(canary, routes, v)),
            Kind::GatewayApi(v) => gatewayapi::http_route(canary, routes, v),
            Kind::AppMesh => {
                let [apex, _] = appmesh::virtual_routers(canary, routes);
                Ok(apex)
            }
        }
    }

    /// The weights a routing object holds.
    pub fn routes_of(self, obj: &Value, canary: &Canary) -> Result<Routes> {
        match self {
            Kind::Istio => istio::routes_of(obj, canary),
            Kind::Smi(_) => smi::routes_of(obj, canary),
            Kind::GatewayApi(_) => gatewayapi::routes_of(obj, canary),
            Kind::AppMesh => appmesh::routes_of(obj, canary),
        }
    }
}

/// Applies a provider's routing object with server-side apply (field manager `flaggerd`),
/// reading through a cache when it has one.
pub struct ObjectRouter {
    client: kube::Client,
    kind: Kind,
    selector: Option<appmesh::PodSelector>,
    cache: Option<std::sync::Arc<dyn cached::ObjectCache>>,
    /// Whether the objects are owned by the canary (not when they live in another cluster).
    owner_references: bool,
}

/// The field manager of the routing objects.
pub const MANAGER: &str = "flaggerd";

impl ObjectRouter {
    fn api(&self, canary: &Canary, resource: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            canary.metadata.namespace.as_deref().unwrap_or("default"),
            resource,
        )
    }

    async fn current(&self, canary: &Canary) -> Result<Option<Value>> {
        self.get(canary, &self.kind.resource(), &apex_name(canary))
            .await
    }

    /// An object, from the cache when it knows it.
    async fn get(
        &self,
        canary: &Canary,
        resource: &ApiResource,
        name: &str,
    ) -> Result<Option<Value>> {
        let ns = namespace(canary);
        if let Some(known) = self
            .cache
            .as_ref()
            .and_then(|c| c.lookup(resource, ns, name))
        {
            return Ok(known);
        }
        let obj = self
            .api(canary, resource)
            .get_opt(name)
            .await
            .map_err(io)?
            .and_then(|o| serde_json::to_value(o).ok());
        if let Some(c) = &self.cache {
            c.fill(resource, ns, name, obj.as_ref());
        }
        Ok(obj)
    }

    /// Applies `obj`, unless the current object already holds it. An object someone else
    /// made (not owned by the canary) is taken over as Flagger does: never owned, and its
    /// spec as it was kept in `flagger.kubernetes.io/original-configuration` (unless kubectl's
    /// last-applied configuration already holds it), for [`TrafficRouter::finalize`].
    async fn apply(&self, canary: &Canary, resource: &ApiResource, obj: &Value) -> Result<()> {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let ns = namespace(canary);
        let current = self.get(canary, resource, name).await?;
        let mut obj = std::borrow::Cow::Borrowed(obj);
        if let Some(current) = current.as_ref().filter(|c| !self.ours(c, canary)) {
            let meta = &mut obj.to_mut()["metadata"];
            if let Some(m) = meta.as_object_mut() {
                m.remove("ownerReferences");
            }
            let kept = &current["metadata"]["annotations"];
            let original = match kept[ORIGINAL].as_str() {
                Some(text) => Some(text.to_string()),
                None if kept[LAST_APPLIED].is_string() => None,
                None => Some(serde_json::to_string(&current["spec"]).unwrap_or_default()),
            };
            if let Some(text) = original {
                meta["annotations"][ORIGINAL] = json!(text);
            }
        } else if !self.owner_references
            && let Some(m) = obj.to_mut()["metadata"].as_object_mut()
        {
            m.remove("ownerReferences");
        }
        if current.as_ref().is_some_and(|c| cached::holds(c, &obj)) {
            return Ok(());
        }
        let written = managed::apply(&self.api(canary, resource), name, &obj, MANAGER)
            .await
            .map_err(io)?;
        if let (Some(c), Ok(v)) = (&self.cache, serde_json::to_value(written)) {
            c.written(resource, ns, name, &v);
        }
        Ok(())
    }
}

/// Where Flagger keeps the spec of a routing object it took over.
pub const ORIGINAL: &str = "flagger.kubernetes.io/original-configuration";
/// kubectl's copy of what was last applied, which Flagger restores from first.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// True when `obj` (in the canary's namespace) has an owner reference to `canary`: a
/// `flagger.app` Canary of its name, whatever its uid, as Flagger judges it. A Canary deleted
/// and made again under the same name so recognises its predecessor's objects (whose stale
/// reference its next apply replaces) instead of taking them over as a user's.
pub fn owned_by(obj: &Value, canary: &Canary) -> bool {
    let name = canary.metadata.name.as_deref().unwrap_or_default();
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter().any(|r| {
                r["kind"] == "Canary"
                    && r["apiVersion"]
                        .as_str()
                        .is_some_and(|v| v.starts_with("flagger.app/"))
                    && r["name"] == name
            })
        })
}

/// The spec a taken-over object had before: kubectl's last-applied configuration, else
/// flaggerd's (and Flagger's) annotation.
fn original_spec(obj: &Value) -> Option<Value> {
    let kept = &obj["metadata"]["annotations"];
    if let Some(text) = kept[LAST_APPLIED].as_str() {
        return serde_json::from_str::<Value>(text)
            .ok()
            .map(|v| v["spec"].clone());
    }
    kept[ORIGINAL]
        .as_str()
        .and_then(|t| serde_json::from_str(t).ok())
}

fn namespace(canary: &Canary) -> &str {
    canary.metadata.namespace.as_deref().unwrap_or("default")
}

#[async_trait]
impl TrafficRouter for ObjectRouter {
    async fn reconcile(&self, canary: &Canary) -> Result<()> {
        let routes = match self.current(canary).await? {
            Some(obj) => self.kind.routes_of(&obj, canary).unwrap_or_default(),
            None => Routes::default(),
        };
        for (resource, obj) in self.objects(canary, routes)? {
            self.apply(canary, &resource, &obj).await?;
        }
        Ok(())
    }

    async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<()> {
        let obj = self.kind.build(canary, routes)?;
        self.apply(canary, &self.kind.resource(), &obj).await
    }

    async fn get_routes(&self, canary: &Canary) -> Result<Routes> {
        match self.current(canary).await? {
            Some(obj) => self.kind.routes_of(&obj, canary),
            None => Err(Error::Io(format!(
                "{} {} not found",
                self.kind.resource().kind.to_lowercase(),
                apex_name(canary)
            ))),
        }
    }

    async fn finalize(&self, canary: &Canary) -> Result<()> {
        if let Some(current) = self.current(canary).await?
            && self.ours(&current, canary)
        {
            // Routes go back to the primary; the objects are garbage-collected with the canary.
            self.set_routes(canary, Routes::default()).await?;
        }
        // Objects someone else made: each gets back its spec as it was before the canary
        // took it over (the apex object, and a user's DestinationRules or App Mesh objects).
        // A spec the provider cannot build still lets the canary go: its apex object alone.
        let objects = self.objects(canary, Routes::default()).unwrap_or_else(|_| {
            vec![(
                self.kind.resource(),
                json!({"metadata": {"name": apex_name(canary)}}),
            )]
        });
        for (resource, obj) in objects {
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            match self.get(canary, &resource, name).await? {
                Some(found) if !self.ours(&found, canary) => {
                    self.restore(canary, &resource, name, &found).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl ObjectRouter {
    /// True when `obj` is one of the canary's routing objects rather than a user's: owned by
    /// the canary, or, in another cluster (no owner references there), written by flaggerd
    /// and never taken over (a user's object carries its original spec after the take-over).
    /// Objects read there come without the caches, so their managed fields are known.
    fn ours(&self, obj: &Value, canary: &Canary) -> bool {
        if owned_by(obj, canary) {
            return true;
        }
        let kept = &obj["metadata"]["annotations"];
        !self.owner_references
            && kept[ORIGINAL].is_null()
            && kept[LAST_APPLIED].is_null()
            && obj["metadata"]["managedFields"]
                .as_array()
                .is_some_and(|m| m.iter().any(|e| e["manager"] == MANAGER))
    }

    /// Every object the provider writes for `canary` at `routes`, in the order they are
    /// applied (what the apex object routes to before the apex object).
    fn objects(&self, canary: &Canary, routes: Routes) -> Result<Vec<(ApiResource, Value)>> {
        let mut out = Vec::new();
        if self.kind == Kind::Istio {
            let gvk = GroupVersionKind::gvk("networking.istio.io", "v1beta1", "DestinationRule");
            let dr = ApiResource::from_gvk_with_plural(&gvk, "destinationrules");
            out.extend(
                istio::destination_rules(canary)
                    .into_iter()
                    .map(|r| (dr.clone(), r)),
            );
        }
        if self.kind != Kind::AppMesh {
            out.push((self.kind.resource(), self.kind.build(canary, routes)?));
            return Ok(out);
        }
        let Some(sel) = &self.selector else {
            return Err(Error::Io(
                "App Mesh needs the target's selector label to build its virtual nodes".into(),
            ));
        };
        let mesh = |kind: &str, plural: &str| {
            let gvk = GroupVersionKind::gvk("appmesh.k8s.aws", "v1beta2", kind);
            ApiResource::from_gvk_with_plural(&gvk, plural)
        };
        let nodes = mesh("VirtualNode", "virtualnodes");
        out.extend(
            appmesh::virtual_nodes(canary, sel)
                .into_iter()
                .map(|n| (nodes.clone(), n)),
        );
        let routers = mesh("VirtualRouter", "virtualrouters");
        let [apex, canary_router] = appmesh::virtual_routers(canary, routes);
        out.push((routers.clone(), canary_router));
        out.push((routers, apex));
        let services = mesh("VirtualService", "virtualservices");
        out.extend(
            appmesh::virtual_services(canary)
                .into_iter()
                .map(|v| (services.clone(), v)),
        );
        Ok(out)
    }

    /// Gives a user's object back its spec from before the take-over. Without a copy it is
    /// left as it is, as Flagger does (a warning, not an error that would hold the canary's
    /// deletion forever).
    async fn restore(
        &self,
        canary: &Canary,
        resource: &ApiResource,
        name: &str,
        current: &Value,
    ) -> Result<()> {
        let Some(spec) = original_spec(current) else {
            tracing::warn!(
                "{} {name}.{}: original configuration not found, unable to revert",
                resource.kind,
                namespace(canary)
            );
            return Ok(());
        };
        let restored = json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": name, "namespace": namespace(canary)},
            "spec": spec,
        });
        let params = PatchParams::apply(MANAGER).force();
        self.api(canary, resource)
            .patch(name, &params, &Patch::Apply(&restored))
            .await
            .map_err(io)?;
        Ok(())
    }
}

fn io(e: kube::Error) -> Error {
    Error::Io(e.to_string())
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
        _ => Err(Error::Io(format!(
            "{what} {apex} has no weights for {apex}-primary and {apex}-canary"
        ))),
    }
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
