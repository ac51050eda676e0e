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
    visit_refs(&mut pod.clone(), &mut |kind, holder, key| {
        if let Some(name) = holder[key].as_str() {
            out.insert(ConfigRef {
                kind,
                name: name.to_string(),
                optional: holder["optional"] == true,
            });
        }
    });
    out
}

/// Calls `f(kind, holder, key)` for each place a pod spec names a ConfigMap or Secret:
/// volumes and projected volume sources, `env[].valueFrom` and `envFrom[]` of containers and
/// init containers. `holder` is the object that names it in its field `key`; `kind` is
/// `configmap` or `secret`. Places that are absent are skipped, never created.
pub fn visit_refs(pod: &mut Value, f: &mut dyn FnMut(&'static str, &mut Value, &'static str)) {
    let mut at = |holder: Option<&mut Value>, kind: &'static str, key: &'static str| {
        if let Some(h) = holder.filter(|h| h.is_object()) {
            f(kind, h, key);
        }
    };
    for volume in items(pod, "volumes") {
        at(volume.get_mut("configMap"), "configmap", "name");
        at(volume.get_mut("secret"), "secret", "secretName");
        if let Some(projected) = volume.get_mut("projected") {
            for source in items(projected, "sources") {
                at(source.get_mut("configMap"), "configmap", "name");
                at(source.get_mut("secret"), "secret", "name");
            }
        }
    }
    for containers in ["containers", "initContainers"] {
        for c in items(pod, containers) {
            for env in items(c, "env") {
                if let Some(from) = env.get_mut("valueFrom") {
                    at(from.get_mut("configMapKeyRef"), "configmap", "name");
                    at(from.get_mut("secretKeyRef"), "secret", "name");
                }
            }
            for from in items(c, "envFrom") {
                at(from.get_mut("configMapRef"), "configmap", "name");
                at(from.get_mut("secretRef"), "secret", "name");
            }
        }
    }
}

/// The elements of the array `v[field]`, none when it is absent or not an array.
pub(crate) fn items<'a>(v: &'a mut Value, field: &str) -> impl Iterator<Item = &'a mut Value> {
    v.get_mut(field)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
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

/// The name of a tracked object's `-primary` copy.
pub fn copy_name(obj: &Value) -> String {
    format!(
        "{}-primary",
        obj["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// The `-primary` copy of a tracked object: same data and type, prefixed labels, owned by
/// the canary as controller. The owner references already on the copy (`existing`: another
/// canary whose target uses the same config, a copy Flagger made) are kept as
/// non-controller ones, as Flagger keeps them: the copy is garbage-collected only when the
/// last of its canaries goes, and the API server never sees two controllers.
pub fn primary_copy(
    obj: &Value,
    existing: Option<&Value>,
    canary: &canary_api::Canary,
    include_prefixes: &[String],
) -> Value {
    let name = copy_name(obj);
    let ours = crate::workload::owner_reference(canary);
    let mut owners = vec![ours.clone()];
    for other in existing
        .and_then(|e| e["metadata"]["ownerReferences"].as_array())
        .into_iter()
        .flatten()
        .filter(|r| r["uid"] != ours["uid"])
    {
        let mut other = other.clone();
        other["controller"] = json!(false);
        owners.push(other);
    }
    let mut copy = json!({
        "apiVersion": "v1",
        "kind": obj["kind"],
        "metadata": {
            "name": name,
            "namespace": obj["metadata"]["namespace"],
            "labels": crate::workload::filter_metadata(&obj["metadata"]["labels"], include_prefixes),
            "ownerReferences": owners,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_copy_keeps_the_other_canaries_as_owners() {
        let canary = canary_api::Canary::from_yaml(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: b, namespace: test, uid: uid-b}\nspec:\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: b}\n  service: {port: 80}\n  skipAnalysis: true\n",
        )
        .expect("canary");
        let config = json!({"kind": "ConfigMap", "metadata": {"name": "shared", "namespace": "test"}, "data": {"k": "v"}});
        let existing = json!({"metadata": {"ownerReferences": [
            {"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "a", "uid": "uid-a", "controller": true, "blockOwnerDeletion": true},
            {"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "b", "uid": "uid-b", "controller": false},
        ]}});
        let copy = primary_copy(&config, Some(&existing), &canary, &[]);
        let owners = copy["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let summary: Vec<(String, bool)> = owners
            .iter()
            .map(|o| {
                (
                    o["name"].as_str().unwrap_or_default().to_string(),
                    o["controller"] == true,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [("b".to_string(), true), ("a".to_string(), false)],
            "one controller, both owners"
        );
        assert_eq!(copy["metadata"]["name"], "shared-primary");
        assert_eq!(copy["data"]["k"], "v");
    }
}
