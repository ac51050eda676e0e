//! A Knative Service target against kube-sim with Knative's published CRDs and mesh-sim
//! playing Knative Serving's controller (revisions, their Deployments, `status.traffic`):
//! the canary names the first revision primary, a new image's revision is analysed with the
//! traffic split between the two and promoted by moving the annotation, and deleting a
//! `revertOnDeletion` canary drops the annotation. Metrics are mocked here.

#[path = "support/cluster.rs"]
mod support;

use std::time::Duration;

use canary_api::Canary;
use canary_core::Phase;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube_sim::FaultConfig;
use serde_json::{Value, json};
use support::*;

async fn knative_service(api: &Api<DynamicObject>) -> Value {
    serde_json::to_value(api.get("podinfo").await.expect("knative service")).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knative_service_is_released_revision_by_revision() {
    let c = cluster(FaultConfig::default()).await;
    install_mesh_crds(&c.client).await;
    let knative = mesh_sim::knative::spawn(c.client.clone())
        .await
        .expect("knative controller");
    let services: Api<DynamicObject> = Api::namespaced_with(
        c.client.clone(),
        "test",
        &canary_router::knative::service_resource(),
    );
    let ksvc = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": "podinfo"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "podinfo", "image": "ghcr.io/stefanprodan/podinfo:6.0.0", "ports": [{"containerPort": 9898}]}]}}}});
    let user = PatchParams::apply("user");
    services
        .patch("podinfo", &user, &Patch::Apply(&ksvc))
        .await
        .expect("knative service");
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    let mut canary = seed_canary(None);
    canary.spec.provider = Some("knative".into());
    canary.spec.target_ref = serde_json::from_value(
        json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "podinfo"}),
    )
    .expect("ref");
    canary.spec.autoscaler_ref = None;
    canary.spec.revert_on_deletion = true;
    canaries
        .create(&PostParams::default(), &canary)
        .await
        .expect("canary");
    let running = start(context_for(c.client.clone(), healthy(), "knative"));
    wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;
    running.settle().await;
    let svc = knative_service(&services).await;
    assert_eq!(
        svc["metadata"]["annotations"]["flagger.app/primary-revision"],
        "podinfo-00001"
    );
    assert_eq!(
        svc["spec"]["traffic"],
        json!([{"latestRevision": true, "percent": 0}, {"revisionName": "podinfo-00001", "percent": 100}])
    );
    // A new image: Knative's second revision is the canary.
    let new_image = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": "podinfo"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "podinfo", "image": "ghcr.io/stefanprodan/podinfo:6.0.1", "ports": [{"containerPort": 9898}]}]}}}});
    services
        .patch("podinfo", &user, &Patch::Apply(&new_image))
        .await
        .expect("new image");
    let mut canary_percents = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let svc = knative_service(&services).await;
        let latest = svc["spec"]["traffic"][0]["percent"].as_u64().unwrap_or(0);
        if canary_percents.last() != Some(&latest) {
            canary_percents.push(latest);
        }
        let phase = canaries
            .get("podinfo")
            .await
            .expect("canary")
            .status
            .and_then(|s| s.phase);
        if phase == Some(Phase::Succeeded) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let events = messages(&c.client).await;
            panic!("not promoted: {phase:?}, {canary_percents:?}, {events:#?}, {svc:#}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.settle().await;
    assert!(
        canary_percents.contains(&50),
        "the split reached 50%: {canary_percents:?}"
    );
    let svc = knative_service(&services).await;
    assert_eq!(
        svc["metadata"]["annotations"]["flagger.app/primary-revision"], "podinfo-00002",
        "promotion names the new revision primary"
    );
    assert_eq!(svc["spec"]["traffic"][1]["percent"], 100);
    assert_eq!(
        svc["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/stefanprodan/podinfo:6.0.1",
        "the user's template is theirs"
    );
    let events = steady(&messages(&c.client).await);
    let from = events
        .iter()
        .position(|m| m == "New revision detected! Scaling up podinfo.test")
        .expect("detected");
    assert_eq!(
        events[from..].last().map(String::as_str),
        Some("Promotion completed! Scaling down podinfo.test"),
        "{events:#?}"
    );
    // revertOnDeletion: the annotation goes, the Service stays.
    canaries
        .delete("podinfo", &DeleteParams::default())
        .await
        .expect("delete");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while canaries.get_opt("podinfo").await.expect("get").is_some() {
        assert!(tokio::time::Instant::now() < deadline, "canary not deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.stop().await;
    let svc = knative_service(&services).await;
    assert!(
        svc["metadata"]["annotations"]["flagger.app/primary-revision"].is_null(),
        "{svc}"
    );
    for task in knative {
        task.abort();
    }
}
