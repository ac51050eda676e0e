//! What mesh-sim knows of the cluster: the objects that decide where a request goes, kept
//! fresh by one watch per kind (as a mesh's control plane watches the API server), and kept
//! as plain JSON so the routing rules ([`crate::routing`]) stay pure functions of a
//! [`Snapshot`].

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::runtime::watcher::{self, Event};
use serde_json::Value;

/// One list of objects per kind mesh-sim routes by. A kind whose CRD is not installed is
/// an empty list, as for a mesh that is not there.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// core/v1 Services.
    pub services: Vec<Value>,
    /// apps/v1 Deployments (their pod template labels and ready replicas are the endpoints
    /// where the API server has no EndpointSlices, as kube-sim).
    pub deployments: Vec<Value>,
    /// apps/v1 DaemonSets (endpoints as the Deployments, where there are no EndpointSlices).
    pub daemonsets: Vec<Value>,
    /// core/v1 Pods (the endpoints' images and owners).
    pub pods: Vec<Value>,
    /// discovery.k8s.io/v1 EndpointSlices: a Service's ready endpoints, as kube-proxy and the
    /// meshes take them.
    pub endpoint_slices: Vec<Value>,
    /// Whether the API server serves EndpointSlices; if so they alone decide the endpoints.
    pub has_endpoint_slices: bool,
    /// networking.istio.io VirtualServices.
    pub istio: Vec<Value>,
    /// split.smi-spec.io TrafficSplits (Linkerd, OSM).
    pub splits: Vec<Value>,
    /// gateway.networking.k8s.io HTTPRoutes.
    pub httproutes: Vec<Value>,
    /// appmesh.k8s.aws VirtualServices.
    pub appmesh_services: Vec<Value>,
    /// appmesh.k8s.aws VirtualRouters.
    pub appmesh_routers: Vec<Value>,
    /// appmesh.k8s.aws VirtualNodes.
    pub appmesh_nodes: Vec<Value>,
    /// networking.k8s.io Ingresses (ingress-nginx's).
    pub ingresses: Vec<Value>,
    /// projectcontour.io HTTPProxies.
    pub httpproxies: Vec<Value>,
    /// traefik.io IngressRoutes.
    pub ingressroutes: Vec<Value>,
    /// traefik.io TraefikServices.
    pub traefikservices: Vec<Value>,
    /// apisix.apache.org ApisixRoutes.
    pub apisixroutes: Vec<Value>,
    /// kuma.io TrafficRoutes (cluster-scoped).
    pub trafficroutes: Vec<Value>,
    /// gateway.solo.io VirtualServices (Gloo's).
    pub gloo_virtualservices: Vec<Value>,
    /// gateway.solo.io RouteTables.
    pub routetables: Vec<Value>,
    /// gloo.solo.io Upstreams.
    pub gloo_upstreams: Vec<Value>,
    /// serving.knative.dev Services.
    pub knative_services: Vec<Value>,
    /// serving.knative.dev Revisions.
    pub revisions: Vec<Value>,
}

/// One kind mesh-sim reads: group, versions to try in order, kind, and where its objects go
/// in the [`Snapshot`]. Every plural is the kind's lowercase name with an `s` (`es` after an
/// `s`: `ingresses`; `ies` for a final `y`: `httpproxies`).
struct KindSpec {
    group: &'static str,
    versions: &'static [&'static str],
    kind: &'static str,
    slot: fn(&mut Snapshot) -> &mut Vec<Value>,
}

impl KindSpec {
    fn plural(&self) -> String {
        let kind = self.kind.to_lowercase();
        if let Some(stem) = kind.strip_suffix('y') {
            return format!("{stem}ies");
        }
        match kind.ends_with('s') {
            true => format!("{kind}es"),
            false => format!("{kind}s"),
        }
    }
}

/// `KindSpec` in one line.
const fn read(
    group: &'static str,
    versions: &'static [&'static str],
    kind: &'static str,
    slot: fn(&mut Snapshot) -> &mut Vec<Value>,
) -> KindSpec {
    KindSpec {
        group,
        versions,
        kind,
        slot,
    }
}

const SMI: &[&str] = &["v1alpha4", "v1alpha3", "v1alpha2", "v1alpha1"];

const KINDS: [KindSpec; 22] = [
    read("", &["v1"], "Service", |s| &mut s.services),
    read("apps", &["v1"], "Deployment", |s| &mut s.deployments),
    read("apps", &["v1"], "DaemonSet", |s| &mut s.daemonsets),
    read("", &["v1"], "Pod", |s| &mut s.pods),
    read("discovery.k8s.io", &["v1"], "EndpointSlice", |s| {
        &mut s.endpoint_slices
    }),
    read(
        "networking.istio.io",
        &["v1", "v1beta1"],
        "VirtualService",
        |s| &mut s.istio,
    ),
    read("split.smi-spec.io", SMI, "TrafficSplit", |s| &mut s.splits),
    read("networking.k8s.io", &["v1"], "Ingress", |s| {
        &mut s.ingresses
    }),
    read(
        "gateway.networking.k8s.io",
        &["v1", "v1beta1"],
        "HTTPRoute",
        |s| &mut s.httproutes,
    ),
    read("appmesh.k8s.aws", &["v1beta2"], "VirtualService", |s| {
        &mut s.appmesh_services
    }),
    read("appmesh.k8s.aws", &["v1beta2"], "VirtualRouter", |s| {
        &mut s.appmesh_routers
    }),
    read("appmesh.k8s.aws", &["v1beta2"], "VirtualNode", |s| {
        &mut s.appmesh_nodes
    }),
    read("projectcontour.io", &["v1"], "HTTPProxy", |s| {
        &mut s.httpproxies
    }),
    read("traefik.io", &["v1alpha1"], "IngressRoute", |s| {
        &mut s.ingressroutes
    }),
    read("traefik.io", &["v1alpha1"], "TraefikService", |s| {
        &mut s.traefikservices
    }),
    read("apisix.apache.org", &["v2"], "ApisixRoute", |s| {
        &mut s.apisixroutes
    }),
    read("kuma.io", &["v1alpha1"], "TrafficRoute", |s| {
        &mut s.trafficroutes
    }),
    read("gateway.solo.io", &["v1"], "VirtualService", |s| {
        &mut s.gloo_virtualservices
    }),
    read("gateway.solo.io", &["v1"], "RouteTable", |s| {
        &mut s.routetables
    }),
    read("gloo.solo.io", &["v1"], "Upstream", |s| {
        &mut s.gloo_upstreams
    }),
    read("serving.knative.dev", &["v1"], "Service", |s| {
        &mut s.knative_services
    }),
    read("serving.knative.dev", &["v1"], "Revision", |s| {
        &mut s.revisions
    }),
];

/// How often a kind the API server does not serve (a mesh's CRD not installed yet) is
/// looked for again.
const NOT_SERVED_RETRY: Duration = Duration::from_secs(2);

impl Snapshot {
    /// Lists every kind in all namespaces once. A kind the server does not serve (404) is
    /// empty; any other error is returned.
    pub async fn load(client: &Client) -> Result<Snapshot, kube::Error> {
        let mut snapshot = Snapshot::default();
        for spec in &KINDS {
            if let Some((resource, items)) = list_first_served(client, spec).await? {
                if resource.plural == "endpointslices" {
                    snapshot.has_endpoint_slices = true;
                }
                *(spec.slot)(&mut snapshot) = items;
            }
        }
        Ok(snapshot)
    }
}

/// Keeps `shared` fresh: one task per kind lists it, then follows its watch (relisting
/// after an error or an expired watch), and writes the kind's list into the snapshot on
/// every change, so a route or an endpoint is seen within milliseconds of its change.
pub(crate) fn watch_all(
    client: Client,
    shared: Arc<RwLock<Snapshot>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    KINDS
        .iter()
        .map(|spec| tokio::spawn(watch_kind(client.clone(), spec, shared.clone())))
        .collect()
}

async fn watch_kind(client: Client, spec: &'static KindSpec, shared: Arc<RwLock<Snapshot>>) {
    let resource = loop {
        match served_resource(&client, spec).await {
            Ok(Some(r)) => break r,
            Ok(None) => {}
            Err(e) => tracing::warn!("cannot look up {}: {e}", spec.plural()),
        }
        tokio::time::sleep(NOT_SERVED_RETRY).await;
    };
    if resource.plural == "endpointslices" {
        write(&shared).has_endpoint_slices = true;
    }
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let mut objects: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut next: BTreeMap<(String, String), Value> = BTreeMap::new();
    let stream = watcher::watcher(api, watcher::Config::default());
    futures::pin_mut!(stream);
    let mut failing = false;
    while let Some(event) = stream.next().await {
        let changed = match event {
            Ok(Event::Apply(o)) => {
                objects.insert(key(&o), to_value(o));
                true
            }
            Ok(Event::Delete(o)) => objects.remove(&key(&o)).is_some(),
            Ok(Event::Init) => {
                next.clear();
                false
            }
            Ok(Event::InitApply(o)) => {
                next.insert(key(&o), to_value(o));
                false
            }
            Ok(Event::InitDone) => {
                objects = std::mem::take(&mut next);
                true
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(
                        "watch of {} failed (routing on the last view): {e}",
                        spec.plural()
                    );
                }
                failing = true;
                continue;
            }
        };
        failing = false;
        if changed {
            *(spec.slot)(&mut write(&shared)) = objects.values().cloned().collect();
        }
    }
}

fn write(shared: &RwLock<Snapshot>) -> std::sync::RwLockWriteGuard<'_, Snapshot> {
    shared.write().unwrap_or_else(|e| e.into_inner())
}

fn key(o: &DynamicObject) -> (String, String) {
    (
        o.metadata.namespace.clone().unwrap_or_default(),
        o.metadata.name.clone().unwrap_or_default(),
    )
}

fn to_value(o: DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

/// The first of the kind's versions the server serves, or None.
async fn served_resource(
    client: &Client,
    spec: &KindSpec,
) -> Result<Option<ApiResource>, kube::Error> {
    Ok(list_first_served(client, spec).await?.map(|(r, _)| r))
}

async fn list_first_served(
    client: &Client,
    spec: &KindSpec,
) -> Result<Option<(ApiResource, Vec<Value>)>, kube::Error> {
    for version in spec.versions {
        let gvk = GroupVersionKind::gvk(spec.group, version, spec.kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, &spec.plural());
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                let items = list.items.into_iter().map(to_value).collect();
                return Ok(Some((resource, items)));
            }
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}
