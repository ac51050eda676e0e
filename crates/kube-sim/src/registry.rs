//! The resource types kube-sim serves: the built-in kinds flaggerd touches, plus every
//! resource a stored CustomResourceDefinition declares.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// One served resource type (one group, version and plural).
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceType {
    /// API group, empty for the core group.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Plural resource name, e.g. `deployments`.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Has a `/status` subresource.
    pub status: bool,
    /// Has a `/scale` subresource.
    pub scale: bool,
    /// Short names (`deploy`, `svc`...).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Printer columns from a CRD (`additionalPrinterColumns`).
    pub columns: Vec<Value>,
    /// Where objects are stored: the same store for the same resource in another version.
    pub storage: String,
}

impl ResourceType {
    /// `apiVersion` of its objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The API discovery entry.
    pub fn discovery(&self) -> Vec<Value> {
        let verbs = json!([
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ]);
        let mut out = vec![json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
            "shortNames": self.short_names,
            "categories": self.categories,
        })];
        if self.status {
            out.push(json!({"name": format!("{}/status", self.plural), "singularName": "",
                "namespaced": self.namespaced, "kind": self.kind, "verbs": ["get", "patch", "update"]}));
        }
        if self.scale {
            out.push(
                json!({"name": format!("{}/scale", self.plural), "singularName": "",
                "namespaced": self.namespaced, "group": "autoscaling", "version": "v1",
                "kind": "Scale", "verbs": ["get", "patch", "update"]}),
            );
        }
        out
    }
}

fn builtin(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        status: false,
        scale: false,
        short_names: vec![],
        categories: vec![],
        columns: vec![],
        storage: format!("{group}/{plural}"),
    }
}

/// The built-in kinds: what flaggerd and `kubectl apply -k deploy/` need. Pods are not
/// served (see docs/kube-sim.md).
pub fn builtins() -> Vec<ResourceType> {
    let with = |mut r: ResourceType, status: bool, scale: bool, short: &[&str], all: bool| {
        r.status = status;
        r.scale = scale;
        r.short_names = short.iter().map(|s| s.to_string()).collect();
        if all {
            r.categories = vec!["all".into()];
        }
        r
    };
    let mut core_events = builtin("", "v1", "Event", "events", true);
    core_events.short_names = vec!["ev".into()];
    let mut new_events = builtin("events.k8s.io", "v1", "Event", "events", true);
    // Both event APIs share one store, as in Kubernetes; kube-sim converts between them.
    new_events.storage = core_events.storage.clone();
    vec![
        with(
            builtin("", "v1", "Namespace", "namespaces", false),
            true,
            false,
            &["ns"],
            false,
        ),
        with(
            builtin("", "v1", "Service", "services", true),
            true,
            false,
            &["svc"],
            true,
        ),
        with(
            builtin("", "v1", "ConfigMap", "configmaps", true),
            false,
            false,
            &["cm"],
            false,
        ),
        builtin("", "v1", "Secret", "secrets", true),
        with(
            builtin("", "v1", "ServiceAccount", "serviceaccounts", true),
            false,
            false,
            &["sa"],
            false,
        ),
        core_events,
        new_events,
        with(
            builtin("apps", "v1", "Deployment", "deployments", true),
            true,
            true,
            &["deploy"],
            true,
        ),
        with(
            builtin("apps", "v1", "DaemonSet", "daemonsets", true),
            true,
            false,
            &["ds"],
            true,
        ),
        with(
            builtin(
                "autoscaling",
                "v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
                true,
            ),
            true,
            false,
            &["hpa"],
            true,
        ),
        with(
            builtin("networking.k8s.io", "v1", "Ingress", "ingresses", true),
            true,
            false,
            &["ing"],
            false,
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "IngressClass",
            "ingressclasses",
            false,
        ),
        builtin("coordination.k8s.io", "v1", "Lease", "leases", true),
        with(
            builtin(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
            ),
            true,
            false,
            &["crd", "crds"],
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
        ),
        builtin("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
        ),
    ]
}

/// The resource types a CRD object declares (one per served version).
pub fn from_crd(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let mut out = Vec::new();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"] == Value::Bool(false) {
            continue;
        }
        out.push(ResourceType {
            group: group.clone(),
            version: v["name"].as_str().unwrap_or_default().to_string(),
            kind: kind.clone(),
            plural: plural.clone(),
            singular: names["singular"]
                .as_str()
                .map_or_else(|| kind.to_lowercase(), String::from),
            namespaced,
            status: v["subresources"]["status"].is_object(),
            scale: v["subresources"]["scale"].is_object(),
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            columns: v["additionalPrinterColumns"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            storage: format!("{group}/{plural}"),
        });
    }
    out
}

/// All served types, looked up by group, version and plural.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    types: BTreeMap<(String, String, String), ResourceType>,
}

impl Registry {
    /// A registry of the built-in kinds.
    pub fn new() -> Self {
        let mut r = Registry::default();
        for t in builtins() {
            r.add(t);
        }
        r
    }

    /// Serves a type.
    pub fn add(&mut self, t: ResourceType) {
        self.types
            .insert((t.group.clone(), t.version.clone(), t.plural.clone()), t);
    }

    /// Stops serving the types of a CRD's group and plural.
    pub fn remove_crd(&mut self, group: &str, plural: &str) {
        self.types
            .retain(|(g, _, p), _| !(g == group && p == plural));
    }

    /// The type at a group, version and plural.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    /// The type of an object's `apiVersion` and `kind`.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .values()
            .find(|t| t.api_version() == api_version && t.kind == kind)
    }

    /// Every served type.
    pub fn all(&self) -> impl Iterator<Item = &ResourceType> {
        self.types.values()
    }

    /// Groups and their versions, core group excluded, sorted.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self.types.values().filter(|t| !t.group.is_empty()) {
            let versions = out.entry(t.group.clone()).or_default();
            if !versions.contains(&t.version) {
                versions.push(t.version.clone());
            }
        }
        out
    }
}
