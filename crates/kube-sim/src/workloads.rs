//! The workload simulator: the part the kubelet and the controller-manager play. Deployments
//! and DaemonSets report rollouts (observedGeneration, replicas, availability, conditions)
//! after a start-up delay; HorizontalPodAutoscalers report and set their target's replicas.
//!
//! A pod template annotated `kube-sim.flaggerd.io/never-ready: "true"` never becomes
//! available, and its Deployment reports `ProgressDeadlineExceeded` after its
//! `progressDeadlineSeconds`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::Shared;
use crate::api::Target;
use crate::store::ChangeType;

/// The annotation that keeps a revision from ever becoming ready.
pub const NEVER_READY: &str = "kube-sim.flaggerd.io/never-ready";
/// The node-selector key Flagger uses to scale a DaemonSet to zero.
const SCALE_TO_ZERO: &str = "flagger.app/scale-to-zero";
const MANAGER: &str = "kube-sim-controller";

/// Settings of the simulator.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// Time from a new revision (or scale-up) to all replicas available.
    pub startup: Duration,
    /// Nodes a DaemonSet schedules on.
    pub nodes: i64,
    /// How often workloads are reconciled.
    pub period: Duration,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            startup: Duration::from_millis(500),
            nodes: 2,
            period: Duration::from_millis(50),
        }
    }
}

#[derive(Clone)]
struct Rollout {
    generation: i64,
    replicas: i64,
    since: tokio::time::Instant,
    since_wall: String,
}

/// A workload: kind, namespace, name.
type WorkloadKey = (String, String, String);

/// What the simulator remembers between ticks.
#[derive(Default)]
struct Sim {
    rollouts: HashMap<WorkloadKey, Rollout>,
    /// The store's resourceVersion up to which changes are handled.
    rv: u64,
    /// Workloads whose status still changes with time (starting up, before their deadline).
    pending: BTreeSet<WorkloadKey>,
}

/// Runs the simulator until the process ends. Each tick looks only at the workloads that
/// changed since the last one and those still starting, so a cluster of many settled
/// Deployments costs nothing between changes.
pub async fn run(state: Arc<Shared>) {
    let mut sim = Sim::default();
    let mut tick = tokio::time::interval(state.workloads.period);
    loop {
        tick.tick().await;
        reconcile(&state, &mut sim);
    }
}

fn reconcile(state: &Shared, sim: &mut Sim) {
    let c = &state.cluster;
    let (Some(deploy), Some(ds), Some(hpa)) = (
        c.resource("apps", "v1", "deployments"),
        c.resource("apps", "v1", "daemonsets"),
        c.resource("autoscaling", "v2", "horizontalpodautoscalers"),
    ) else {
        return;
    };
    let kinds = [(&deploy, "Deployment"), (&ds, "DaemonSet")];
    let (changes, rv) = c.changes_after(sim.rv);
    if changes.as_ref().is_some_and(Vec::is_empty) && sim.pending.is_empty() {
        return;
    }
    sim.rv = rv;
    let mut look: BTreeSet<WorkloadKey> = std::mem::take(&mut sim.pending);
    match changes {
        Some(changes) => {
            for change in changes {
                let Some((_, kind)) = kinds.iter().find(|(rt, _)| rt.storage == change.storage)
                else {
                    continue;
                };
                let k = key(kind, &change.object);
                if change.kind == ChangeType::Deleted {
                    sim.rollouts.remove(&k);
                    look.remove(&k);
                } else {
                    look.insert(k);
                }
            }
        }
        // The history no longer holds every change: look at every workload.
        None => {
            let mut live = HashSet::new();
            for (rt, kind) in kinds {
                for o in c.list(rt, "").0 {
                    live.insert(key(kind, &o));
                }
            }
            sim.rollouts.retain(|k, _| live.contains(k));
            look.extend(live);
        }
    }
    for h in c.list(&hpa, "").0 {
        autoscale(state, &hpa, &deploy, &h);
    }
    let now = tokio::time::Instant::now();
    let wall = crate::api::now();
    for k in look {
        let (rt, kind) = if k.0 == "Deployment" {
            (&deploy, "Deployment")
        } else {
            (&ds, "DaemonSet")
        };
        let Ok(o) = c.get(rt, &k.1, &k.2) else {
            sim.rollouts.remove(&k);
            continue;
        };
        let generation = o["metadata"]["generation"].as_i64().unwrap_or(1);
        let replicas = desired(state, kind, &o);
        let entry = sim.rollouts.entry(k.clone()).or_insert_with(|| Rollout {
            generation,
            replicas,
            since: now,
            since_wall: wall.clone(),
        });
        if entry.generation != generation || (entry.replicas == 0 && replicas > 0) {
            *entry = Rollout {
                generation,
                replicas,
                since: now,
                since_wall: wall.clone(),
            };
        }
        entry.replicas = replicas;
        let never = o["spec"]["template"]["metadata"]["annotations"][NEVER_READY] == "true";
        let ready =
            replicas == 0 || (!never && now.duration_since(entry.since) >= state.workloads.startup);
        let deadline =
            Duration::from_secs(o["spec"]["progressDeadlineSeconds"].as_u64().unwrap_or(600));
        let stuck = !ready && now.duration_since(entry.since) > deadline;
        if !ready && !stuck {
            sim.pending.insert(k.clone());
        }
        let status = match kind {
            "Deployment" => {
                deployment_status(&o, generation, replicas, ready, stuck, &entry.since_wall)
            }
            _ => daemonset_status(generation, replicas, ready),
        };
        if !same_status(&o["status"], &status) {
            let mut next = o.clone();
            next["status"] = keep_condition_times(&o["status"], status);
            let _ = c.update(rt, &k.1, &k.2, next, Target::Status, MANAGER);
        }
    }
}

fn key(kind: &str, o: &Value) -> WorkloadKey {
    (
        kind.to_string(),
        o["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .into(),
        o["metadata"]["name"].as_str().unwrap_or_default().into(),
    )
}

fn desired(state: &Shared, kind: &str, o: &Value) -> i64 {
    if kind == "Deployment" {
        return o["spec"]["replicas"].as_i64().unwrap_or(1);
    }
    let selector = &o["spec"]["template"]["spec"]["nodeSelector"];
    if selector.get(SCALE_TO_ZERO).is_some() {
        0
    } else {
        state.workloads.nodes
    }
}

fn deployment_status(
    o: &Value,
    generation: i64,
    replicas: i64,
    ready: bool,
    stuck: bool,
    since: &str,
) -> Value {
    let available = if ready { replicas } else { 0 };
    let mut conditions = vec![if ready {
        json!({"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.", "lastUpdateTime": since, "lastTransitionTime": since})
    } else {
        json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability.", "lastUpdateTime": since, "lastTransitionTime": since})
    }];
    let name = o["metadata"]["name"].as_str().unwrap_or_default();
    conditions.push(if stuck {
        json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": format!("ReplicaSet \"{name}\" has timed out progressing."), "lastUpdateTime": since, "lastTransitionTime": since})
    } else if ready {
        json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet \"{name}\" has successfully progressed."), "lastUpdateTime": since, "lastTransitionTime": since})
    } else {
        json!({"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": format!("ReplicaSet \"{name}\" is progressing."), "lastUpdateTime": since, "lastTransitionTime": since})
    });
    let mut status = json!({
        "observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
        "readyReplicas": available, "availableReplicas": available, "conditions": conditions,
    });
    if replicas > available {
        status["unavailableReplicas"] = json!(replicas - available);
    }
    status
}

fn daemonset_status(generation: i64, desired: i64, ready: bool) -> Value {
    let available = if ready { desired } else { 0 };
    json!({
        "observedGeneration": generation, "desiredNumberScheduled": desired, "currentNumberScheduled": desired,
        "updatedNumberScheduled": desired, "numberReady": available, "numberAvailable": available,
        "numberUnavailable": desired - available, "numberMisscheduled": 0,
    })
}

/// Equal ignoring condition timestamps.
fn same_status(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(cs) = v["conditions"].as_array_mut() {
            for c in cs {
                if let Some(m) = c.as_object_mut() {
                    m.remove("lastUpdateTime");
                    m.remove("lastTransitionTime");
                }
            }
        }
        v
    };
    strip(old) == strip(new)
}

fn keep_condition_times(old: &Value, mut new: Value) -> Value {
    if let Some(cs) = new["conditions"].as_array_mut() {
        for c in cs {
            let previous = old["conditions"]
                .as_array()
                .and_then(|a| a.iter().find(|p| p["type"] == c["type"]));
            if let Some(p) = previous
                && p["status"] == c["status"]
            {
                c["lastTransitionTime"] = p["lastTransitionTime"].clone();
                if p["reason"] == c["reason"] {
                    c["lastUpdateTime"] = p["lastUpdateTime"].clone();
                }
            }
        }
    }
    new
}

/// An HPA keeps its target's replicas within [min, max] (not when the target is at zero:
/// Kubernetes disables scaling then) and reports current and desired replicas.
fn autoscale(
    state: &Shared,
    hpa_rt: &crate::registry::ResourceType,
    deploy_rt: &crate::registry::ResourceType,
    h: &Value,
) {
    let c = &state.cluster;
    let ns = h["metadata"]["namespace"].as_str().unwrap_or_default();
    let target_ref = &h["spec"]["scaleTargetRef"];
    if target_ref["kind"] != "Deployment" {
        return;
    }
    let Ok(target) = c.get(
        deploy_rt,
        ns,
        target_ref["name"].as_str().unwrap_or_default(),
    ) else {
        return;
    };
    let current = target["spec"]["replicas"].as_i64().unwrap_or(1);
    let min = h["spec"]["minReplicas"].as_i64().unwrap_or(1);
    let max = h["spec"]["maxReplicas"].as_i64().unwrap_or(min).max(min);
    let desired = if current == 0 {
        0
    } else {
        current.clamp(min, max)
    };
    if desired != current {
        let name = target["metadata"]["name"].as_str().unwrap_or_default();
        let to = crate::api::WriteTo {
            rt: deploy_rt,
            ns,
            name,
            target: Target::Main,
            manager: MANAGER,
        };
        let _ = c.patch(
            &to,
            crate::api::PatchKind::Merge,
            json!({"spec": {"replicas": desired}}),
        );
    }
    let status = json!({"currentReplicas": current, "desiredReplicas": desired});
    if h["status"]["currentReplicas"] != status["currentReplicas"]
        || h["status"]["desiredReplicas"] != status["desiredReplicas"]
    {
        let mut next = h.clone();
        next["status"] = status;
        let name = h["metadata"]["name"].as_str().unwrap_or_default();
        let _ = c.update(hpa_rt, ns, name, next, Target::Status, MANAGER);
    }
}
