//! A DaemonSet target with the kubernetes provider: the primary DaemonSet, the target
//! "scaled to zero" by Flagger's node selector, and a promotion.

#[path = "support/cluster.rs"]
mod support;

use std::time::Duration;

use canary_api::Canary;
use canary_core::Phase;
use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_sim::FaultConfig;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_is_initialized_and_promoted() {
    let c = cluster(FaultConfig::default()).await;
    let ds: Api<DaemonSet> = Api::namespaced(c.client.clone(), "test");
    let agent = json!({"metadata": {"name": "agent", "labels": {"app": "agent"}},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "agent", "image": "agent:1", "ports": [{"containerPort": 9898}]}]}}}});
    ds.create(
        &PostParams::default(),
        &serde_json::from_value(agent).expect("ds"),
    )
    .await
    .expect("daemonset");
    let mut canary = seed_canary(Some(2));
    canary.metadata.name = Some("podinfo".into());
    canary.spec.target_ref.kind = "DaemonSet".into();
    canary.spec.target_ref.name = "agent".into();
    canary.spec.autoscaler_ref = None;
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    canaries
        .create(&PostParams::default(), &canary)
        .await
        .expect("canary");
    let running = start(context(c.client.clone(), healthy()));
    wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;
    // The status is recorded before the step's effects (scaling the target) are carried out.
    running.settle().await;
    let primary = ds.get("agent-primary").await.expect("primary daemonset");
    assert_eq!(
        primary
            .spec
            .selector
            .match_labels
            .unwrap_or_default()
            .get("app")
            .map(String::as_str),
        Some("agent-primary")
    );
    let scaled_down = |d: &DaemonSet| {
        d.spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.node_selector.clone())
            .unwrap_or_default()
            .get("flagger.app/scale-to-zero")
            .map(String::as_str)
            == Some("true")
    };
    assert!(
        scaled_down(&ds.get("agent").await.expect("target")),
        "the target is kept off every node"
    );

    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}});
    ds.patch("agent", &PatchParams::default(), &Patch::Strategic(&image))
        .await
        .expect("set image");
    wait_for_phase(&canaries, Phase::Succeeded, Duration::from_secs(40)).await;
    running.stop().await;
    let primary = ds.get("agent-primary").await.expect("primary");
    assert_eq!(
        primary
            .spec
            .template
            .spec
            .and_then(|s| s.containers[0].image.clone())
            .as_deref(),
        Some("agent:2")
    );
    assert!(
        scaled_down(&ds.get("agent").await.expect("target")),
        "scaled down again after promotion"
    );
    let events = steady(&messages(&c.client).await);
    assert!(
        events.contains(&"Promotion completed! Scaling down agent.test".to_string()),
        "{events:#?}"
    );
}
