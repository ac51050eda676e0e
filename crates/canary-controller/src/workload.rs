//! The generated workload: `<target>-primary`, a copy of the target (Deployment or
//! DaemonSet) with its selector label rewritten, built as Flagger builds it (section 3.7 of
//! flagger-behaviour.md), and the operations on the target (scaling, promotion).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value, json};

use crate::Error;
use crate::configs::items;

/// Annotation whose new value on each promotion forces the primary to roll.
pub const FLAGGER_ID: &str = "flagger-id";
/// Node selector that keeps a DaemonSet's pods off every node ("scaled to zero").
pub const SCALE_TO_ZERO: &str = "flagger.app/scale-to-zero";

/// How the target's pods are selected, and the names derived from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// The selector label, e.g. `app`.
    pub label: String,
    /// Its value on the target, e.g. `podinfo`.
    pub value: String,
}

impl Selector {
    /// The value selecting the primary: `<value>-primary`.
    pub fn primary_value(&self) -> String {
        format!("{}-primary", self.value)
    }
}

/// Finds the first of `candidates` (Flagger's `-selector-labels`) in the target's
/// `spec.selector.matchLabels`.
pub fn selector(
    target: &Value,
    kind: &str,
    display: &str,
    candidates: &[String],
) -> Result<Selector, String> {
    let labels = &target["spec"]["selector"]["matchLabels"];
    for label in candidates {
        if let Some(value) = labels.get(label).and_then(Value::as_str) {
            return Ok(Selector {
                label: label.clone(),
                value: value.to_string(),
            });
        }
    }
    Err(format!(
        "{} {display} spec.selector.matchLabels must contain one of [{}]",
        kind.to_lowercase(),
        candidates.join(" ")
    ))
}

/// Annotations Kubernetes' workload controllers write on each Deployment or DaemonSet.
const CONTROLLER_ANNOTATIONS: [&str; 2] = [
    "deployment.kubernetes.io/revision",
    "deprecated.daemonset.template.generation",
];

/// Keeps the labels or annotations whose keys start with one of `prefixes` (`*` keeps all),
/// never Flux's toolkit keys nor kubectl's last-applied configuration.
pub fn filter_metadata(map: &Value, prefixes: &[String]) -> Map<String, Value> {
    map.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !k.contains("toolkit.fluxcd.io")
                        && *k != "kubectl.kubernetes.io/last-applied-configuration"
                })
                .filter(|(k, _)| {
                    prefixes
                        .iter()
                        .any(|p| p == "*" || k.starts_with(p.as_str()))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The owner reference of generated objects: the Canary, as controller.
pub fn owner_reference(canary: &canary_api::Canary) -> Value {
    json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "name": canary.metadata.name,
        "uid": canary.metadata.uid,
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The desired `<target>-primary` for `target`.
///
/// `configs` are the tracked ConfigMaps and Secrets (`configmap/<name>`, `secret/<name>`)
/// whose references become `-primary`; `flagger_id` is new at every promotion.
pub fn primary(
    target: &Value,
    canary: &canary_api::Canary,
    sel: &Selector,
    configs: &BTreeSet<String>,
    flagger_id: &str,
    include_prefixes: &[String],
) -> Value {
    let kind = target["kind"].as_str().unwrap_or("Deployment");
    let name = format!(
        "{}-primary",
        target["metadata"]["name"].as_str().unwrap_or_default()
    );
    let primary_value = sel.primary_value();
    let mut labels = filter_metadata(&target["metadata"]["labels"], include_prefixes);
    labels.insert(sel.label.clone(), json!(primary_value));
    let mut annotations = filter_metadata(&target["metadata"]["annotations"], &["*".to_string()]);
    annotations.remove(FLAGGER_ID);
    // Kubernetes' controllers keep these for each workload; the target's are not the primary's.
    for key in CONTROLLER_ANNOTATIONS {
        annotations.remove(key);
    }

    let mut template = target["spec"]["template"].clone();
    // Flux's keys stay on the target's pods only, as Flagger's primary template drops them.
    for field in ["labels", "annotations"] {
        if let Some(m) = template["metadata"][field].as_object_mut() {
            m.retain(|k, _| !k.contains("toolkit.fluxcd.io"));
        }
    }
    template["metadata"]["labels"][&sel.label] = json!(primary_value);
    template["metadata"]["annotations"][FLAGGER_ID] = json!(flagger_id);
    if let Some(pod) = template.get_mut("spec") {
        rename_config_refs(pod, configs);
        rename_label_selectors(pod, &sel.label, &sel.value, &primary_value);
        if kind == "DaemonSet"
            && let Some(ns) = pod.get_mut("nodeSelector").and_then(Value::as_object_mut)
        {
            ns.remove(SCALE_TO_ZERO);
        }
    }
    let t = &target["spec"];
    let mut spec = json!({
        "selector": {"matchLabels": {&sel.label: primary_value}},
        "template": template,
    });
    for field in ["minReadySeconds", "revisionHistoryLimit"] {
        if !t[field].is_null() {
            spec[field] = t[field].clone();
        }
    }
    if kind == "Deployment" {
        spec["replicas"] = json!(canary_core::scaling::primary(
            t["replicas"].as_i64(),
            None,
            false
        ));
        for field in ["progressDeadlineSeconds", "strategy"] {
            if !t[field].is_null() {
                spec[field] = t[field].clone();
            }
        }
    } else if !t["updateStrategy"].is_null() {
        spec["updateStrategy"] = t["updateStrategy"].clone();
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": target["metadata"]["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(canary)],
        },
        "spec": spec,
    })
}

/// Points ConfigMap and Secret references of a pod spec at their `-primary` copies (every
/// place [`crate::configs::visit_refs`] visits).
pub fn rename_config_refs(pod: &mut Value, configs: &BTreeSet<String>) {
    crate::configs::visit_refs(pod, &mut |kind, holder, key| {
        if let Some(name) = holder[key].as_str()
            && configs.contains(&format!("{kind}/{name}"))
        {
            holder[key] = json!(format!("{name}-primary"));
        }
    });
}

/// Anti-affinity and topology-spread selectors that name the target select the primary.
/// Fields that are absent stay absent: the primary's pod spec is the target's but for the
/// renamed values.
fn rename_label_selectors(pod: &mut Value, label: &str, from: &str, to: &str) {
    let fix = |sel: Option<&mut Value>| {
        let Some(sel) = sel else { return };
        if let Some(v) = sel.pointer_mut(&format!("/matchLabels/{}", pointer_escape(label)))
            && v == from
        {
            *v = json!(to);
        }
        for expr in items(sel, "matchExpressions") {
            if expr["key"] == label {
                for v in items(expr, "values").filter(|v| *v == from) {
                    *v = json!(to);
                }
            }
        }
    };
    if let Some(affinity) = pod.get_mut("affinity") {
        for kind in ["podAntiAffinity", "podAffinity"] {
            let Some(terms) = affinity.get_mut(kind) else {
                continue;
            };
            for t in items(terms, "requiredDuringSchedulingIgnoredDuringExecution") {
                fix(t.get_mut("labelSelector"));
            }
            for t in items(terms, "preferredDuringSchedulingIgnoredDuringExecution") {
                fix(t.pointer_mut("/podAffinityTerm/labelSelector"));
            }
        }
    }
    for c in items(pod, "topologySpreadConstraints") {
        fix(c.get_mut("labelSelector"));
    }
}

/// A JSON pointer token for `key` (`~` and `/` escaped).
fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Removes nulls and empty objects, as the revision fingerprint has always been taken.
fn strip_nulls(v: &mut Value) {
    if let Value::Object(m) = v {
        m.retain(|_, x| !x.is_null());
        for x in m.values_mut() {
            strip_nulls(x);
        }
        m.retain(|_, x| !matches!(x, Value::Object(o) if o.is_empty()));
    }
}

/// The fingerprint of a target's revision: a workload's pod template, without the node
/// selector flaggerd itself adds to keep a DaemonSet's pods off every node (Flagger ignores it
/// too); a Service's spec, without what the API server assigns; a Knative Service's latest
/// revision name.
pub fn revision_hash(kind: &str, target: &Value) -> String {
    if kind == crate::knative::SERVICE {
        return crate::knative::revision_hash(target);
    }
    if kind == "Service" {
        return canary_core::hash::spec_hash(&crate::services::copyable_spec(target));
    }
    let mut template = target["spec"]["template"].clone();
    if let Some(selector) = template["spec"]["nodeSelector"].as_object_mut() {
        selector.remove(SCALE_TO_ZERO);
    }
    strip_nulls(&mut template);
    if template["spec"]["nodeSelector"]
        .as_object()
        .is_some_and(|m| m.is_empty())
        && let Some(spec) = template["spec"].as_object_mut()
    {
        spec.remove("nodeSelector");
    }
    canary_core::hash::spec_hash(&template)
}

/// The `-primary` HorizontalPodAutoscaler copied from the target's, `hpa`: its spec aimed at
/// `<target>-primary` with the bounds [`canary_core::scaling::primary_bounds`] gives, and all
/// its labels but Flux's, as Flagger gives the primary's.
pub fn primary_autoscaler(hpa: &Value, canary: &canary_api::Canary) -> Result<Value, Error> {
    let ns = canary.metadata.namespace.clone().unwrap_or_default();
    let target: HorizontalPodAutoscaler = serde_json::from_value(hpa.clone()).map_err(|e| {
        Error::Encode(format!(
            "horizontalpodautoscaler {ns}/{}: {e}",
            hpa["metadata"]["name"].as_str().unwrap_or_default()
        ))
    })?;
    let mut spec = target.spec;
    spec.scale_target_ref.name = format!("{}-primary", canary.spec.target_ref.name);
    let overrides = canary.spec.autoscaler_ref.as_ref();
    (spec.min_replicas, spec.max_replicas) = canary_core::scaling::primary_bounds(
        (spec.min_replicas, spec.max_replicas),
        overrides.and_then(|a| a.primary_scaler_replicas.as_ref()),
    );
    let labels = filter_metadata(&hpa["metadata"]["labels"], &["*".to_string()])
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
        .collect();
    let copy = HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-primary",
                target.metadata.name.unwrap_or_default()
            )),
            namespace: Some(ns),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    };
    let mut obj = serde_json::to_value(copy).map_err(|e| Error::Encode(e.to_string()))?;
    obj["metadata"]["ownerReferences"] = json!([owner_reference(canary)]);
    Ok(obj)
}

/// KEDA's annotation that holds a ScaledObject's target at a fixed count.
pub const PAUSED_REPLICAS: &str = "autoscaling.keda.sh/paused-replicas";

/// The `-primary` KEDA ScaledObject copied from the target's, `so`, as Flagger makes it:
/// aimed at `<target>-primary` (kind, apiVersion and `envSourceContainerName` kept), the
/// polling, cooldown, replica counts (`primaryScalerReplicas` first), `advanced` (its HPA
/// name, if set, with `-primary`), `fallback` and `idleReplicaCount`, and the triggers with
/// their queries aimed at the primary: with `primaryScalerQueries`, the triggers it names get
/// its queries and the others keep theirs (as Flagger); without it, every query is rewritten
/// by [`canary_core::scaling::primary_query`]. Its labels and annotations are the target's but
/// Flux's and KEDA's pause, so pausing the target never pauses the primary.
pub fn primary_scaled_object(so: &Value, canary: &canary_api::Canary) -> Value {
    let target = &canary.spec.target_ref.name;
    let a = canary.spec.autoscaler_ref.as_ref();
    let spec = &so["spec"];
    let mut scale_target = json!({"name": format!("{target}-primary")});
    for key in ["kind", "apiVersion", "envSourceContainerName"] {
        if let Some(v) = spec["scaleTargetRef"][key].as_str() {
            scale_target[key] = json!(v);
        }
    }
    let mut out = json!({"scaleTargetRef": scale_target});
    for key in [
        "pollingInterval",
        "cooldownPeriod",
        "minReplicaCount",
        "maxReplicaCount",
        "fallback",
        "idleReplicaCount",
    ] {
        if !spec[key].is_null() {
            out[key] = spec[key].clone();
        }
    }
    let overrides = a.and_then(|a| a.primary_scaler_replicas.as_ref());
    if let Some(min) = overrides.and_then(|o| o.min_replicas) {
        out["minReplicaCount"] = json!(min);
    }
    if let Some(max) = overrides.and_then(|o| o.max_replicas) {
        out["maxReplicaCount"] = json!(max);
    }
    let mut advanced = spec["advanced"].clone();
    if !advanced.is_object() {
        advanced = json!({});
    }
    if !advanced["horizontalPodAutoscalerConfig"].is_object() {
        advanced["horizontalPodAutoscalerConfig"] = json!({});
    }
    if let Some(name) = advanced["horizontalPodAutoscalerConfig"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
    {
        advanced["horizontalPodAutoscalerConfig"]["name"] = json!(format!("{name}-primary"));
    }
    out["advanced"] = advanced;
    let queries = a.map(|a| &a.primary_scaler_queries);
    let mut triggers = spec["triggers"].clone();
    for t in triggers.as_array_mut().into_iter().flatten() {
        let named = t["name"]
            .as_str()
            .and_then(|n| queries.and_then(|q| q.get(n)));
        let query = match (queries.is_some_and(|q| !q.is_empty()), named) {
            (_, Some(q)) => Some(q.clone()),
            (true, None) => None,
            (false, None) => t["metadata"]["query"]
                .as_str()
                .map(|q| canary_core::scaling::primary_query(q, target)),
        };
        if let (Some(q), Some(m)) = (query, t["metadata"].as_object_mut()) {
            m.insert("query".into(), json!(q));
        }
    }
    out["triggers"] = triggers;
    let keep = |v: &Value| -> Value {
        let mut m = filter_metadata(v, &["*".to_string()]);
        m.remove(PAUSED_REPLICAS);
        m.remove("autoscaling.keda.sh/paused");
        Value::Object(m)
    };
    json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {
            "name": format!("{}-primary", so["metadata"]["name"].as_str().unwrap_or_default()),
            "namespace": canary.metadata.namespace,
            "labels": keep(&so["metadata"]["labels"]),
            "annotations": keep(&so["metadata"]["annotations"]),
            "ownerReferences": [owner_reference(canary)],
        },
        "spec": out,
    })
}

/// The patch that scales a target: `spec.replicas` for a Deployment, the scale-to-zero node
/// selector for a DaemonSet.
pub fn scale_patch(kind: &str, replicas: i64) -> Value {
    if kind == "DaemonSet" {
        let value = if replicas == 0 {
            json!("true")
        } else {
            Value::Null
        };
        json!({"spec": {"template": {"spec": {"nodeSelector": {SCALE_TO_ZERO: value}}}}})
    } else {
        json!({"spec": {"replicas": replicas}})
    }
}

/// A workload's rollout status as canary-core reads it; `display` is `<name>.<namespace>`.
pub fn status(kind: &str, obj: &Value, display: String) -> canary_core::WorkloadStatus {
    let s = &obj["status"];
    let int = |v: &Value| v.as_i64().unwrap_or(0) as i32;
    let unavailable_since = s["conditions"].as_array().and_then(|cs| {
        cs.iter()
            .find(|c| {
                c["type"] == "Available"
                    && c["status"] == "False"
                    && c["reason"] == "MinimumReplicasUnavailable"
            })
            .and_then(|c| c["lastUpdateTime"].as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc())
    });
    let progressing_reason = s["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"))
        .and_then(|c| c["reason"].as_str())
        .map(String::from);
    let generation = obj["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed_generation = s["observedGeneration"].as_i64().unwrap_or(0);
    if kind == "Service" {
        return canary_core::WorkloadStatus::ready(canary_core::WorkloadKind::Service, display, 1);
    }
    if kind == "DaemonSet" {
        return canary_core::WorkloadStatus {
            kind: canary_core::WorkloadKind::DaemonSet,
            name: display,
            generation,
            observed_generation,
            desired_replicas: int(&s["desiredNumberScheduled"]),
            replicas: int(&s["currentNumberScheduled"]),
            updated_replicas: int(&s["updatedNumberScheduled"]),
            available_replicas: int(&s["numberAvailable"]),
            progressing_reason: None,
            unavailable_since: None,
        };
    }
    canary_core::WorkloadStatus {
        kind: canary_core::WorkloadKind::Deployment,
        name: display,
        generation,
        observed_generation,
        desired_replicas: obj["spec"]["replicas"].as_i64().unwrap_or(1) as i32,
        replicas: int(&s["replicas"]),
        updated_replicas: int(&s["updatedReplicas"]),
        available_replicas: int(&s["availableReplicas"]),
        progressing_reason,
        unavailable_since,
    }
}

/// Labels as a map, for comparisons.
pub fn labels(obj: &Value) -> BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_to_zero_node_selector_is_not_a_new_revision() {
        let ds = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:1"}]}}}});
        let mut down = ds.clone();
        down["spec"]["template"]["spec"]["nodeSelector"] = json!({SCALE_TO_ZERO: "true"});
        assert_eq!(
            revision_hash("DaemonSet", &ds),
            revision_hash("DaemonSet", &down)
        );
        let mut other = ds.clone();
        other["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"});
        assert_ne!(
            revision_hash("DaemonSet", &ds),
            revision_hash("DaemonSet", &other)
        );
    }

    #[test]
    fn the_primary_selects_its_own_pods_and_uses_the_config_copies() {
        let target = json!({"kind": "Deployment", "metadata": {"name": "podinfo", "namespace": "test", "labels": {"app": "podinfo", "team": "a"},
                "annotations": {"deployment.kubernetes.io/revision": "7", "team": "a"}},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "podinfo"}},
                "template": {"metadata": {"labels": {"app": "podinfo", "kustomize.toolkit.fluxcd.io/name": "apps"}}, "spec": {
                    "containers": [{"name": "app", "envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "untracked"}}]}],
                    "volumes": [{"name": "v", "secret": {"secretName": "tls"}}, {"name": "tmp", "emptyDir": {}}],
                    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                        "labelSelector": {"matchLabels": {"app": "podinfo"}}}],
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 1, "podAffinityTerm": {"topologyKey": "host", "labelSelector": {
                            "matchExpressions": [{"key": "app", "operator": "In", "values": ["podinfo", "other"]}]}}}]}}}}}});
        let canary = canary_api::Canary::new("podinfo", canary_api::CanarySpec::default());
        let sel = Selector {
            label: "app".into(),
            value: "podinfo".into(),
        };
        let tracked: BTreeSet<String> = ["configmap/cfg".to_string(), "secret/tls".into()].into();
        let p = primary(&target, &canary, &sel, &tracked, "id-1", &[]);
        assert_eq!(p["metadata"]["name"], "podinfo-primary");
        assert_eq!(
            p["metadata"]["labels"],
            json!({"app": "podinfo-primary"}),
            "only prefixed labels are copied (none by default)"
        );
        assert_eq!(
            p["metadata"]["annotations"],
            json!({"team": "a"}),
            "the target's annotations but the Deployment controller's revision"
        );
        assert_eq!(
            p["spec"]["replicas"], 1,
            "a target at zero gives a primary of one"
        );
        assert_eq!(
            p["spec"]["selector"]["matchLabels"]["app"],
            "podinfo-primary"
        );
        let pod = &p["spec"]["template"];
        assert_eq!(pod["metadata"]["labels"], json!({"app": "podinfo-primary"}));
        assert_eq!(pod["metadata"]["annotations"][FLAGGER_ID], "id-1");
        assert_eq!(
            pod["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"],
            "cfg-primary"
        );
        assert_eq!(
            pod["spec"]["containers"][0]["envFrom"][1]["secretRef"]["name"],
            "untracked"
        );
        assert_eq!(
            pod["spec"]["volumes"][0]["secret"]["secretName"],
            "tls-primary"
        );
        assert_eq!(
            pod["spec"]["volumes"][1],
            json!({"name": "tmp", "emptyDir": {}}),
            "what is not renamed is copied as it is"
        );
        assert_eq!(
            pod["spec"]["topologySpreadConstraints"][0]["labelSelector"],
            json!({"matchLabels": {"app": "podinfo-primary"}})
        );
        assert_eq!(
            pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
                [0]["podAffinityTerm"]["labelSelector"]["matchExpressions"][0]["values"],
            json!(["podinfo-primary", "other"])
        );
        assert!(pod["spec"]["affinity"].get("podAffinity").is_none());
        assert!(pod["spec"]["containers"][0].get("env").is_none());
    }

    #[test]
    fn the_primary_scaled_object_aims_at_the_primary_and_is_never_paused() {
        let so = json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "podinfo-so", "namespace": "test",
                "labels": {"team": "a", "kustomize.toolkit.fluxcd.io/name": "x"},
                "annotations": {PAUSED_REPLICAS: "0", "note": "kept"}},
            "spec": {"scaleTargetRef": {"name": "podinfo", "kind": "Deployment"},
                "pollingInterval": 10, "cooldownPeriod": 20, "minReplicaCount": 1, "maxReplicaCount": 3,
                "advanced": {"horizontalPodAutoscalerConfig": {"name": "podinfo-hpa"}},
                "triggers": [
                    {"type": "prometheus", "name": "rps", "metadata": {"query": "sum(rate(x{app=\"podinfo\"}[30s]))", "threshold": "5"}},
                    {"type": "cpu", "metadata": {"value": "50"}}]}});
        let mut spec = canary_api::CanarySpec::default();
        spec.target_ref.name = "podinfo".into();
        let mut canary = canary_api::Canary::new("podinfo", spec);
        canary.metadata.namespace = Some("test".into());
        canary.spec.autoscaler_ref = serde_json::from_value(json!({"apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject", "name": "podinfo-so", "primaryScalerReplicas": {"maxReplicas": 5}}))
        .expect("ref");
        let copy = primary_scaled_object(&so, &canary);
        assert_eq!(copy["metadata"]["name"], "podinfo-so-primary");
        assert_eq!(copy["metadata"]["labels"], json!({"team": "a"}));
        assert_eq!(copy["metadata"]["annotations"], json!({"note": "kept"}));
        let spec = &copy["spec"];
        assert_eq!(
            spec["scaleTargetRef"],
            json!({"name": "podinfo-primary", "kind": "Deployment"})
        );
        assert_eq!(
            (
                spec["minReplicaCount"].as_i64(),
                spec["maxReplicaCount"].as_i64()
            ),
            (Some(1), Some(5))
        );
        assert_eq!(
            spec["advanced"]["horizontalPodAutoscalerConfig"]["name"],
            "podinfo-hpa-primary"
        );
        assert_eq!(
            spec["triggers"][0]["metadata"]["query"],
            "sum(rate(x{app=\"podinfo-primary\"}[30s]))"
        );
        assert_eq!(spec["triggers"][1]["metadata"], json!({"value": "50"}));
        canary
            .spec
            .autoscaler_ref
            .as_mut()
            .expect("ref")
            .primary_scaler_queries = [("rps".to_string(), "sum(primary)".to_string())].into();
        let copy = primary_scaled_object(&so, &canary);
        assert_eq!(
            copy["spec"]["triggers"][0]["metadata"]["query"],
            "sum(primary)"
        );
    }

    #[test]
    fn the_primary_autoscaler_aims_at_the_primary_with_its_own_bounds() {
        let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "podinfo", "namespace": "test", "resourceVersion": "9",
                "labels": {"team": "a", "kustomize.toolkit.fluxcd.io/name": "apps"}},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "minReplicas": 1, "maxReplicas": 4,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}}]},
            "status": {"currentReplicas": 2, "desiredReplicas": 2}});
        let mut spec = canary_api::CanarySpec::default();
        spec.target_ref.name = "podinfo".into();
        spec.autoscaler_ref = serde_json::from_value(json!({"apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler", "name": "podinfo",
            "primaryScalerReplicas": {"minReplicas": 2}}))
        .ok();
        let mut canary = canary_api::Canary::new("podinfo", spec);
        canary.metadata.namespace = Some("test".into());
        let copy = primary_autoscaler(&hpa, &canary).expect("a copy");
        assert_eq!(copy["apiVersion"], "autoscaling/v2");
        assert_eq!(copy["metadata"]["name"], "podinfo-primary");
        assert_eq!(copy["metadata"]["labels"], json!({"team": "a"}));
        assert_eq!(copy["metadata"]["ownerReferences"][0]["kind"], "Canary");
        assert!(copy["metadata"]["resourceVersion"].is_null());
        assert!(copy["status"].is_null());
        assert_eq!(copy["spec"]["scaleTargetRef"]["name"], "podinfo-primary");
        assert_eq!(
            (&copy["spec"]["minReplicas"], &copy["spec"]["maxReplicas"]),
            (&json!(2), &json!(4))
        );
        assert_eq!(copy["spec"]["metrics"], hpa["spec"]["metrics"]);
    }
}
