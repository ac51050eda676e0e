//! The controller with the real mesh routers against kube-sim: a seed canary advances the
//! weights in the stored routing object 5, 10, ... 50, is promoted, and traffic returns to
//! the primary (Istio, seed 004; App Mesh, seed 002).

#[path = "support/cluster.rs"]
mod support;

use std::time::Duration;

use canary_api::Canary;
use canary_core::Phase;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube_sim::FaultConfig;
use serde_json::Value;
use support::*;

/// Plays a seed through promotion and returns the canary weights seen in the routing object.
async fn play(
    seed: &str,
    provider: &str,
    resource: ApiResource,
    weights: fn(&Value) -> (u64, u64),
) -> (Vec<u64>, Vec<String>) {
    let c = cluster(FaultConfig::default()).await;
    install_mesh_crds(&c.client).await;
    let mut canary = Canary::from_yaml(seed).expect("seed");
    canary.spec.analysis.as_mut().expect("analysis").interval = Some("1s".into());
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    canaries
        .create(&PostParams::default(), &canary)
        .await
        .expect("canary");
    let running = start(context_for(c.client.clone(), healthy(), provider));
    wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;
    running.settle().await;
    let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), "test", &resource);
    let read = || async {
        weights(
            &serde_json::to_value(api.get("podinfo").await.expect("routing object")).expect("json"),
        )
    };
    assert_eq!(read().await, (100, 0));
    set_image(&c.client, "ghcr.io/stefanprodan/podinfo:6.0.1").await;
    let mut seen: Vec<u64> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (primary, canary_weight) = read().await;
        assert_eq!(primary + canary_weight, 100, "weights add up to 100");
        if seen.last() != Some(&canary_weight) {
            seen.push(canary_weight);
        }
        if canaries
            .get("podinfo")
            .await
            .expect("canary")
            .status
            .and_then(|s| s.phase)
            == Some(Phase::Succeeded)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not promoted; weights seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    running.stop().await;
    (seen, steady(&messages(&c.client).await))
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn expected_steps() -> Vec<u64> {
    std::iter::once(0)
        .chain((5..=50).step_by(5))
        .chain(std::iter::once(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_seed_004_moves_the_virtual_service_weights_step_by_step() {
    let vs = resource(
        "networking.istio.io",
        "v1beta1",
        "VirtualService",
        "virtualservices",
    );
    let weights = |v: &Value| {
        let route = &v["spec"]["http"][0]["route"];
        (
            route[0]["weight"].as_u64().unwrap_or(0),
            route[1]["weight"].as_u64().unwrap_or(0),
        )
    };
    let (seen, events) = play(
        include_str!("../../canary-core/tests/fixtures/004-istio.yaml"),
        "istio",
        vs,
        weights,
    )
    .await;
    assert_eq!(
        seen,
        expected_steps(),
        "the canary weight in the VirtualService at each step"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_mesh_seed_002_moves_the_virtual_router_weights_step_by_step() {
    let router = resource(
        "appmesh.k8s.aws",
        "v1beta2",
        "VirtualRouter",
        "virtualrouters",
    );
    let weights = |v: &Value| {
        let targets = &v["spec"]["routes"][0]["httpRoute"]["action"]["weightedTargets"];
        (
            targets[1]["weight"].as_u64().unwrap_or(0),
            targets[0]["weight"].as_u64().unwrap_or(0),
        )
    };
    let (seen, events) = play(
        include_str!("../../canary-core/tests/fixtures/002-appmesh-v1beta2.yaml"),
        "appmesh:v1beta2",
        router,
        weights,
    )
    .await;
    assert_eq!(
        seen,
        expected_steps(),
        "the canary weight in the VirtualRouter at each step"
    );
    assert!(
        events.contains(&"Pre-rollout check acceptance-test passed".to_string()),
        "{events:#?}"
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("Promotion completed! Scaling down podinfo.test")
    );
}
