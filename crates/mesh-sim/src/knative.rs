//! Knative Serving's controller, as much of it as a canary on a Knative Service needs, for the
//! local cluster (real Knative runs a webhook, an autoscaler and an activator besides):
//!
//! - each change of a Service's `spec.template` makes a Revision `<service>-<00001…>` (or the
//!   template's own `metadata.name`), labelled with its Service and configuration, with the
//!   template's spec; and, as Knative's revision reconciler does, a Deployment
//!   `<revision>-deployment` running it and a Service `<revision>` selecting its pods;
//! - a Revision is `Ready` when its Deployment has an available replica;
//! - the Service's status: `latestCreatedRevisionName`, `latestReadyRevisionName`, its URL
//!   (`http://<service>.<namespace>.example.com`), and `traffic` resolved from
//!   `spec.traffic` (a `latestRevision` entry to the latest ready revision; all traffic to it
//!   when `spec.traffic` is empty). While an entry names a Revision that does not exist, the
//!   traffic stays as it was and `RoutesReady` is `False`, as Knative keeps it.
//!
//! [`plan`] is pure (what to write for one Service, given the cluster); [`run`] applies plans
//! as the cluster changes.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::cluster::Snapshot;

/// The field manager of what the simulated controller writes.
const MANAGER: &str = "knative-serving";
/// The label Knative puts on a Revision and its pods.
const REVISION_LABEL: &str = "serving.knative.dev/revision";
/// The label naming a Revision's Service.
const SERVICE_LABEL: &str = "serving.knative.dev/service";
/// The annotation holding the fingerprint of the template a Revision was made from.
const TEMPLATE_HASH: &str = "mesh-sim.flaggerd.app/template-hash";
/// How often the cluster is looked at.
const PERIOD: Duration = Duration::from_millis(250);

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn ns_of(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or("default")
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

/// What to write for one Knative Service.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Objects to create (server-side apply), in order: a Revision, its Deployment and Service.
    pub creates: Vec<(ApiResource, Value)>,
    /// Status updates: the object's kind, namespace, name and new status.
    pub statuses: Vec<(ApiResource, String, String, Value)>,
}

/// The fingerprint of a template.
fn template_hash(template: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    template.to_string().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The Revisions of `service`, oldest first.
fn revisions<'a>(s: &'a Snapshot, service: &Value) -> Vec<&'a Value> {
    let mut out: Vec<&Value> = s
        .revisions
        .iter()
        .filter(|r| ns_of(r) == ns_of(service))
        .filter(|r| r["metadata"]["labels"][SERVICE_LABEL] == name_of(service))
        .collect();
    out.sort_by_key(|r| {
        r["metadata"]["labels"]["serving.knative.dev/configurationGeneration"]
            .as_str()
            .and_then(|g| g.parse::<u64>().ok())
            .unwrap_or(0)
    });
    out
}

/// True when the Revision's Deployment has an available replica.
fn deployment_ready(s: &Snapshot, ns: &str, revision: &str) -> bool {
    let name = format!("{revision}-deployment");
    s.deployments.iter().any(|d| {
        ns_of(d) == ns
            && name_of(d) == name
            && d["status"]["availableReplicas"].as_i64().unwrap_or(0) > 0
    })
}

/// What Knative's controller would write for `service` now.
pub fn plan(s: &Snapshot, service: &Value) -> Plan {
    let mut plan = Plan::default();
    let (ns, name) = (ns_of(service), name_of(service));
    let template = &service["spec"]["template"];
    let hash = template_hash(template);
    let existing = revisions(s, service);
    let current = existing
        .last()
        .is_some_and(|r| r["metadata"]["annotations"][TEMPLATE_HASH] == hash.as_str());
    let mut latest = existing.last().map(|r| name_of(r).to_string());
    if !current {
        let generation = existing.len() + 1;
        let rev = template["metadata"]["name"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| format!("{name}-{generation:05}"));
        plan.creates = revision_objects(service, &rev, generation, &hash);
        latest = Some(rev);
    }
    // Each Revision's readiness.
    let mut ready: Vec<&str> = Vec::new();
    for r in &existing {
        let is_ready = deployment_ready(s, ns, name_of(r));
        if is_ready {
            ready.push(name_of(r));
        }
        let status = json!({"conditions": [condition("Ready", is_ready, "")]});
        if !holds(&r["status"], &status) {
            let rev = resource("serving.knative.dev", "v1", "Revision", "revisions");
            plan.statuses
                .push((rev, ns.into(), name_of(r).into(), status));
        }
    }
    let latest_ready = ready.last().copied();
    let (traffic, routes_ready) = traffic(service, latest_ready, &existing);
    let mut status = json!({
        "observedGeneration": service["metadata"]["generation"],
        "latestCreatedRevisionName": latest,
        "latestReadyRevisionName": latest_ready,
        "url": format!("http://{name}.{ns}.example.com"),
        "address": {"url": format!("http://{name}.{ns}.svc.cluster.local")},
        "conditions": [
            condition("Ready", latest_ready.is_some() && latest_ready == latest.as_deref() && routes_ready.is_ok(), ""),
            condition("RoutesReady", routes_ready.is_ok(), routes_ready.as_ref().err().map_or("", String::as_str)),
        ],
    });
    match traffic {
        Some(t) => status["traffic"] = t,
        None => status["traffic"] = service["status"]["traffic"].clone(),
    }
    if !holds(&service["status"], &status) {
        let svc = resource("serving.knative.dev", "v1", "Service", "services");
        plan.statuses.push((svc, ns.into(), name.into(), status));
    }
    plan
}

/// A condition of Knative's form.
fn condition(kind: &str, ok: bool, message: &str) -> Value {
    let mut c = json!({"type": kind, "status": if ok { "True" } else { "Unknown" }});
    if !message.is_empty() {
        c["status"] = json!("False");
        c["message"] = json!(message);
    }
    c
}

/// True when `current` already has every field of `desired` with the same value.
fn holds(current: &Value, desired: &Value) -> bool {
    match desired {
        Value::Object(d) => d.iter().all(|(k, v)| holds(&current[k], v)),
        other => current == other,
    }
}

/// The resolved `status.traffic`, or `None` (keep the current one) with the reason when an
/// entry names a Revision that does not exist or nothing is ready yet.
fn traffic(
    service: &Value,
    latest_ready: Option<&str>,
    existing: &[&Value],
) -> (Option<Value>, Result<(), String>) {
    let spec: Vec<Value> = match service["spec"]["traffic"].as_array() {
        Some(t) if !t.is_empty() => t.clone(),
        _ => vec![json!({"latestRevision": true, "percent": 100})],
    };
    let mut out = Vec::new();
    for t in &spec {
        let latest = t["latestRevision"] == true || t["revisionName"].is_null();
        let revision = match latest {
            true => latest_ready.map(String::from),
            false => t["revisionName"].as_str().map(String::from),
        };
        let Some(revision) = revision else {
            return (None, Err("no revision is ready yet".into()));
        };
        if !existing.iter().any(|r| name_of(r) == revision) {
            return (
                None,
                Err(format!(
                    "Revision {revision:?} referenced in traffic not found"
                )),
            );
        }
        out.push(json!({
            "revisionName": revision,
            "latestRevision": latest,
            "percent": t["percent"].as_u64().unwrap_or(0),
        }));
    }
    (Some(json!(out)), Ok(()))
}

/// A new Revision `rev` of `service`, its Deployment and its Service.
fn revision_objects(
    service: &Value,
    rev: &str,
    generation: usize,
    hash: &str,
) -> Vec<(ApiResource, Value)> {
    let (ns, name) = (ns_of(service), name_of(service));
    let template = &service["spec"]["template"];
    let owner = json!([{
        "apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": name,
        "uid": service["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
    }]);
    let labels = json!({
        SERVICE_LABEL: name,
        "serving.knative.dev/configuration": name,
        "serving.knative.dev/configurationGeneration": generation.to_string(),
    });
    let revision = json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Revision",
        "metadata": {"name": rev, "namespace": ns, "labels": labels,
            "annotations": {TEMPLATE_HASH: hash}, "ownerReferences": owner},
        "spec": template["spec"],
    });
    let mut pod_labels = template["metadata"]["labels"].clone();
    if !pod_labels.is_object() {
        pod_labels = json!({});
    }
    pod_labels[REVISION_LABEL] = json!(rev);
    pod_labels[SERVICE_LABEL] = json!(name);
    let mut containers = template["spec"]["containers"].clone();
    for (i, c) in containers.as_array_mut().into_iter().flatten().enumerate() {
        if c["name"].is_null() {
            c["name"] = json!(if i == 0 {
                "user-container".to_string()
            } else {
                format!("user-container-{i}")
            });
        }
    }
    let port = containers[0]["ports"][0]["containerPort"]
        .as_u64()
        .unwrap_or(8080);
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": format!("{rev}-deployment"), "namespace": ns,
            "labels": {REVISION_LABEL: rev, SERVICE_LABEL: name}, "ownerReferences": owner},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {REVISION_LABEL: rev}},
            "template": {"metadata": {"labels": pod_labels}, "spec": {"containers": containers}},
        },
    });
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": rev, "namespace": ns,
            "labels": {REVISION_LABEL: rev, SERVICE_LABEL: name}, "ownerReferences": owner},
        "spec": {"selector": {REVISION_LABEL: rev}, "ports": [{"name": "http", "port": 80, "targetPort": port}]},
    });
    vec![
        (
            resource("serving.knative.dev", "v1", "Revision", "revisions"),
            revision,
        ),
        (
            resource("apps", "v1", "Deployment", "deployments"),
            deployment,
        ),
        (resource("", "v1", "Service", "services"), svc),
    ]
}

/// Plays Knative's controller on its own, without the proxy (for the controller's tests):
/// a view of the cluster kept by watches, and the controller's loop. Abort the tasks to stop.
pub async fn spawn(client: Client) -> Result<Vec<tokio::task::JoinHandle<()>>, kube::Error> {
    let shared = Arc::new(RwLock::new(Snapshot::load(&client).await?));
    let mut tasks = crate::cluster::watch_all(client.clone(), shared.clone());
    tasks.push(tokio::spawn(run(client, shared)));
    Ok(tasks)
}

/// Plays Knative's controller for every Knative Service of the cluster until aborted.
pub(crate) async fn run(client: Client, shared: Arc<RwLock<Snapshot>>) {
    loop {
        tokio::time::sleep(PERIOD).await;
        let plans: Vec<Plan> = {
            let s = shared.read().unwrap_or_else(|e| e.into_inner());
            s.knative_services.iter().map(|svc| plan(&s, svc)).collect()
        };
        for p in plans {
            if let Err(e) = write(&client, p).await {
                tracing::debug!("knative: {e}");
            }
        }
    }
}

async fn write(client: &Client, plan: Plan) -> Result<(), kube::Error> {
    let apply = PatchParams::apply(MANAGER).force();
    for (res, obj) in plan.creates {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns_of(&obj), &res);
        api.patch(name_of(&obj), &apply, &Patch::Apply(&obj))
            .await?;
    }
    let merge = PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    for (res, ns, name, status) in plan.statuses {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &res);
        let patch = json!({"status": status});
        api.patch_status(&name, &merge, &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(image: &str, traffic: Value) -> Value {
        json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "u1", "generation": 2},
            "spec": {"template": {"spec": {"containers": [{"image": image,
                "ports": [{"containerPort": 9898}]}]}}, "traffic": traffic},
            "status": {}})
    }

    /// The cluster after the plan's objects were made, their Deployments available.
    fn made(s: &mut Snapshot, plan: &Plan) {
        for (res, obj) in &plan.creates {
            match res.kind.as_str() {
                "Revision" => s.revisions.push(obj.clone()),
                "Deployment" => {
                    let mut d = obj.clone();
                    d["status"] = json!({"availableReplicas": 1});
                    s.deployments.push(d);
                }
                _ => s.services.push(obj.clone()),
            }
        }
    }

    fn status_of(plan: &Plan, kind: &str) -> Value {
        plan.statuses
            .iter()
            .find(|(r, ..)| r.kind == kind)
            .map(|(.., st)| st.clone())
            .unwrap_or(Value::Null)
    }

    #[test]
    fn revisions_follow_the_template_and_the_traffic_follows_the_spec() {
        let mut s = Snapshot::default();
        let mut svc = service("podinfo:6.0.0", Value::Null);
        let first = plan(&s, &svc);
        let names: Vec<&str> = first.creates.iter().map(|(_, o)| name_of(o)).collect();
        assert_eq!(
            names,
            ["podinfo-00001", "podinfo-00001-deployment", "podinfo-00001"]
        );
        assert_eq!(
            status_of(&first, "Service")["latestCreatedRevisionName"],
            "podinfo-00001"
        );
        made(&mut s, &first);
        let ready = plan(&s, &svc);
        assert!(ready.creates.is_empty(), "the template did not change");
        let st = status_of(&ready, "Service");
        assert_eq!(st["latestReadyRevisionName"], "podinfo-00001");
        assert_eq!(
            st["traffic"],
            json!([{"revisionName": "podinfo-00001", "latestRevision": true, "percent": 100}])
        );
        // flaggerd's split, then a new image: a second revision; the split resolves to it.
        svc["status"] = st;
        svc["spec"]["traffic"] = json!([{"latestRevision": true, "percent": 10},
            {"revisionName": "podinfo-00001", "percent": 90}]);
        svc["spec"]["template"]["spec"]["containers"][0]["image"] = json!("podinfo:6.0.1");
        let second = plan(&s, &svc);
        assert_eq!(name_of(&second.creates[0].1), "podinfo-00002");
        assert_eq!(
            status_of(&second, "Service")["latestCreatedRevisionName"],
            "podinfo-00002"
        );
        made(&mut s, &second);
        let split = status_of(&plan(&s, &svc), "Service");
        assert_eq!(
            split["traffic"],
            json!([{"revisionName": "podinfo-00002", "latestRevision": true, "percent": 10},
                {"revisionName": "podinfo-00001", "latestRevision": false, "percent": 90}])
        );
        // An entry for a revision that does not exist keeps the traffic as it was.
        svc["status"] = split.clone();
        svc["spec"]["traffic"][1]["revisionName"] = json!("podinfo-00009");
        let kept = status_of(&plan(&s, &svc), "Service");
        assert_eq!(kept["traffic"], split["traffic"]);
        assert_eq!(kept["conditions"][1]["status"], "False");
    }
}
