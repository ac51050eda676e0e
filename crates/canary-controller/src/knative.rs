//! Knative Service targets, as Flagger's Knative controller handles them: no primary
//! workload and no Services, the target's revisions instead. The primary is the revision the
//! Service's `flagger.app/primary-revision` annotation names, the canary is the latest
//! created revision; each must report `Ready`. A new revision is a new release (its name is
//! the revision's fingerprint); promotion moves the annotation to it. The traffic split is
//! the router's (`canary_router::knative`).

use canary_core::{CanarySpec, Routes, WorkloadKind, WorkloadStatus};
use canary_router::knative::{PRIMARY_REVISION, latest_revision, traffic};
use serde_json::{Value, json};

/// The world's name for a Knative Service (a core Service is `Service`).
pub const SERVICE: &str = "KnativeService";
/// The world's name for a Knative Revision.
pub const REVISION: &str = "Revision";

/// The kind the world reads a canary's target as: [`SERVICE`] for a Knative Service, else
/// the target's kind.
pub fn target_kind(spec: &CanarySpec) -> &str {
    match spec.target_ref.is_knative_service() {
        true => SERVICE,
        false => &spec.target_ref.kind,
    }
}

/// The fingerprint of a Knative Service's release: its latest revision's name (Flagger
/// hashes the same name).
pub fn revision_hash(service: &Value) -> String {
    canary_core::hash::spec_hash(&json!(latest_revision(service).unwrap_or_default()))
}

/// The readiness of a revision, `<name>.<ns>` in messages: its `Ready` condition is `True`.
pub fn revision_status(revision: &Value, ns: &str) -> WorkloadStatus {
    let name = revision["metadata"]["name"].as_str().unwrap_or_default();
    let ready = revision["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    WorkloadStatus {
        available_replicas: i32::from(ready),
        ..WorkloadStatus::ready(WorkloadKind::KnativeRevision, format!("{name}.{ns}"), 1)
    }
}

/// The initialization Flagger writes on the Knative Service: its latest revision named
/// primary, with all the traffic. `None` before Knative created a revision.
pub fn initialization(service: &Value) -> Option<Value> {
    let latest = latest_revision(service)?;
    Some(json!({
        "metadata": {"annotations": {PRIMARY_REVISION: latest}},
        "spec": {"traffic": traffic(latest, Routes::default())},
    }))
}

/// The promotion: the latest revision becomes the primary.
pub fn promotion(service: &Value) -> Option<Value> {
    let latest = latest_revision(service)?;
    Some(json!({"metadata": {"annotations": {PRIMARY_REVISION: latest}}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_is_ready_by_its_condition_and_the_release_is_the_latest_revision() {
        let rev = json!({"metadata": {"name": "podinfo-00002"},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        let s = revision_status(&rev, "test");
        assert_eq!(
            (s.name.as_str(), s.available_replicas),
            ("podinfo-00002.test", 0)
        );
        let rev = json!({"metadata": {"name": "podinfo-00002"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(revision_status(&rev, "test").available_replicas, 1);
        let svc = |latest: &str| json!({"status": {"latestCreatedRevisionName": latest}});
        assert_ne!(
            revision_hash(&svc("podinfo-00001")),
            revision_hash(&svc("podinfo-00002"))
        );
        assert_eq!(
            initialization(&svc("podinfo-00001")),
            Some(json!({
                "metadata": {"annotations": {"flagger.app/primary-revision": "podinfo-00001"}},
                "spec": {"traffic": [
                    {"latestRevision": true, "percent": 0},
                    {"revisionName": "podinfo-00001", "percent": 100},
                ]},
            }))
        );
        assert_eq!(initialization(&json!({})), None);
    }
}
