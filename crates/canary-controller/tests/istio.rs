//! The controller with the real Istio router against kube-sim: seed 004's canary advances the
//! VirtualService weights 5, 10, ... 50, is promoted, and traffic returns to the primary.

#[path = "support/cluster.rs"]
mod support;

use std::time::Duration;

use canary_api::Canary;
use canary_core::Phase;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube_sim::FaultConfig;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_004_moves_the_virtual_service_weights_step_by_step() {
    let c = cluster(FaultConfig::default()).await;
    install_mesh_crds(&c.client).await;
    let mut canary = Canary::from_yaml(include_str!(
        "../../canary-core/tests/fixtures/004-istio.yaml"
    ))
    .expect("seed 004");
    canary.spec.analysis.as_mut().expect("analysis").interval = Some("1s".into());
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    canaries
        .create(&PostParams::default(), &canary)
        .await
        .expect("canary");
    let running = start(context_for(c.client.clone(), healthy(), "istio"));
    wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;

    let vs_api: Api<DynamicObject> = Api::namespaced_with(
        c.client.clone(),
        "test",
        &ApiResource {
            group: "networking.istio.io".into(),
            version: "v1beta1".into(),
            api_version: "networking.istio.io/v1beta1".into(),
            kind: "VirtualService".into(),
            plural: "virtualservices".into(),
        },
    );
    let weights = |vs: &DynamicObject| {
        let v = serde_json::to_value(vs).unwrap_or_default();
        let route = &v["spec"]["http"][0]["route"];
        (
            route[0]["weight"].as_u64().unwrap_or(0),
            route[1]["weight"].as_u64().unwrap_or(0),
        )
    };
    assert_eq!(
        weights(&vs_api.get("podinfo").await.expect("virtualservice")),
        (100, 0)
    );

    let deploys: Api<Deployment> = Api::namespaced(c.client.clone(), "test");
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:6.0.1"}]}}}});
    deploys
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Strategic(&image),
        )
        .await
        .expect("set image");
    let mut seen: Vec<u64> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (primary, canary_weight) = weights(&vs_api.get("podinfo").await.expect("vs"));
        assert_eq!(primary + canary_weight, 100, "weights add up to 100");
        if seen.last() != Some(&canary_weight) {
            seen.push(canary_weight);
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
        assert!(
            tokio::time::Instant::now() < deadline,
            "not promoted; weights seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    running.stop().await;
    let expected: Vec<u64> = std::iter::once(0)
        .chain((5..=50).step_by(5))
        .chain(std::iter::once(0))
        .collect();
    assert_eq!(
        seen, expected,
        "the canary weight in the VirtualService at each step"
    );
    let events = steady(&messages(&c.client).await);
    let tail: Vec<&str> = events
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "Copying podinfo.test template spec to podinfo-primary.test",
            "Routing all traffic to primary",
            "Promotion completed! Scaling down podinfo.test"
        ]
    );
}
