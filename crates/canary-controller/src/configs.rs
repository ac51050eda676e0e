//! Config tracking (flagger-behaviour.md 3.8): the ConfigMaps and Secrets a target's pods
//! use, their checksums (a change starts an analysis) and their `-primary` copies.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

/// Annotation that opts a ConfigMap or Secret out of tracking (any value starting with
/// `disable`).
pub const TRACKING_ANNOTATION: &str = "flagger.app/config-tracking";

/// A reference from a pod spec.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigRef {
    /// `configmap` or `secret`.
    pub kind: &'static str,
    /// Object name.
    pub name: String,
    /// `optional: true`: may be missing.
    pub optional: bool,
}

/// The ConfigMaps and Secrets a pod spec references.
pub fn referenced(pod: &Value) -> BTreeSet<ConfigRef> {
    let mut out = BTreeSet::new();
    let mut add = |kind: &'static str, v: &Value, key: &str| {
        if let Some(name) = v[key].as_str() {
            out.insert(ConfigRef {
                kind,
                name: name.to_string(),
                optional: v["optional"] == true,
            });
        }
    };
    for volume in pod["volumes"].as_array().into_iter().flatten() {
        add("configmap", &volume["configMap"], "name");
        add("secret", &volume["secret"], "secretName");
        for source in volume["projected"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
        {
            add("configmap", &source["configMap"], "name");
            add("secret", &source["secret"], "name");
        }
    }
    for list in ["containers", "initContainers"] {
        for c in pod[list].as_array().into_iter().flatten() {
            for env in c["env"].as_array().into_iter().flatten() {
                add("configmap", &env["valueFrom"]["configMapKeyRef"], "name");
                add("secret", &env["valueFrom"]["secretKeyRef"], "name");
            }
            for from in c["envFrom"].as_array().into_iter().flatten() {
                add("configmap", &from["configMapRef"], "name");
                add("secret", &from["secretRef"], "name");
            }
        }
    }
    out
}

/// True when an object takes part in tracking: not opted out, and for Secrets one of the
/// types Flagger tracks.
pub fn trackable(kind: &str, obj: &Value) -> bool {
    let opted_out = obj["metadata"]["annotations"][TRACKING_ANNOTATION]
        .as_str()
        .is_some_and(|v| v.starts_with("disable"));
    let secret_ok = kind != "secret"
        || matches!(
            obj["type"].as_str().unwrap_or("Opaque"),
            "Opaque" | "kubernetes.io/basic-auth" | "kubernetes.io/ssh-auth" | "kubernetes.io/tls"
        );
    !opted_out && secret_ok
}

/// The checksum of a tracked object's data, keyed `configmap/<name>` or `secret/<name>`.
pub fn checksum(obj: &Value) -> String {
    let data = json!({"data": obj["data"], "binaryData": obj["binaryData"]});
    canary_core::hash::config_checksum(&data)
}

/// The `-primary` copy of a tracked object: same data and type, prefixed labels, owned by
/// the canary (other canaries' owner references are kept as non-controller ones).
pub fn primary_copy(
    obj: &Value,
    canary: &canary_api::Canary,
    include_prefixes: &[String],
) -> Value {
    let name = format!(
        "{}-primary",
        obj["metadata"]["name"].as_str().unwrap_or_default()
    );
    let mut copy = json!({
        "apiVersion": "v1",
        "kind": obj["kind"],
        "metadata": {
            "name": name,
            "namespace": obj["metadata"]["namespace"],
            "labels": crate::workload::filter_metadata(&obj["metadata"]["labels"], include_prefixes),
            "ownerReferences": [crate::workload::owner_reference(canary)],
        },
    });
    for field in ["data", "binaryData", "type", "stringData"] {
        if !obj[field].is_null() {
            copy[field] = obj[field].clone();
        }
    }
    copy
}

/// The tracked configs of a revision: key to (checksum, object).
pub type Tracked = BTreeMap<String, (String, Value)>;
