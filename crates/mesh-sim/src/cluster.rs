//! What mesh-sim knows of the cluster: the objects that decide where a request goes, read
//! from the API server (kube-sim) by listing them, and kept as plain JSON so the routing
//! rules ([`crate::routing`]) stay pure functions of a [`Snapshot`].

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value;

/// One list of objects per kind mesh-sim routes by. A kind whose CRD is not installed is
/// an empty list, as for a mesh that is not there.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// core/v1 Services.
    pub services: Vec<Value>,
    /// apps/v1 Deployments (their pod template labels and ready replicas are the endpoints).
    pub deployments: Vec<Value>,
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
}

/// The kinds read, as (group, versions to try in order, kind, plural).
const KINDS: [(&str, &[&str], &str, &str); 8] = [
    ("", &["v1"], "Service", "services"),
    ("apps", &["v1"], "Deployment", "deployments"),
    (
        "networking.istio.io",
        &["v1", "v1beta1"],
        "VirtualService",
        "virtualservices",
    ),
    (
        "split.smi-spec.io",
        &["v1alpha4", "v1alpha3", "v1alpha2", "v1alpha1"],
        "TrafficSplit",
        "trafficsplits",
    ),
    (
        "gateway.networking.k8s.io",
        &["v1", "v1beta1"],
        "HTTPRoute",
        "httproutes",
    ),
    (
        "appmesh.k8s.aws",
        &["v1beta2"],
        "VirtualService",
        "virtualservices",
    ),
    (
        "appmesh.k8s.aws",
        &["v1beta2"],
        "VirtualRouter",
        "virtualrouters",
    ),
    (
        "appmesh.k8s.aws",
        &["v1beta2"],
        "VirtualNode",
        "virtualnodes",
    ),
];

impl Snapshot {
    /// Lists every kind in all namespaces. A kind the server does not serve (404) is empty;
    /// any other error is returned, so a caller keeps its previous snapshot.
    pub async fn load(client: &Client) -> Result<Snapshot, kube::Error> {
        let mut lists = Vec::with_capacity(KINDS.len());
        for (group, versions, kind, plural) in KINDS {
            lists.push(list_first_served(client, group, versions, kind, plural).await?);
        }
        let mut it = lists.into_iter();
        let mut next = || it.next().unwrap_or_default();
        Ok(Snapshot {
            services: next(),
            deployments: next(),
            istio: next(),
            splits: next(),
            httproutes: next(),
            appmesh_services: next(),
            appmesh_routers: next(),
            appmesh_nodes: next(),
        })
    }
}

async fn list_first_served(
    client: &Client,
    group: &str,
    versions: &[&str],
    kind: &str,
    plural: &str,
) -> Result<Vec<Value>, kube::Error> {
    for version in versions {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                return Ok(list
                    .items
                    .into_iter()
                    .filter_map(|o| serde_json::to_value(o).ok())
                    .collect());
            }
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Vec::new())
}
