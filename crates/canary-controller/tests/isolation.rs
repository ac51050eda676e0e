//! One canary's slow webhook or panic never holds up another: webhooks run in the
//! canary's own task, and a panic is caught, reported on its canary and retried with
//! backoff. (How much a slow neighbour costs in time is measured by
//! `cargo xtask bench isolation`, not here.)

#[path = "support/cluster.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use canary_api::Canary;
use canary_core::Phase;
use canary_core::spec::Webhook;
use canary_webhooks::{Payload, WebhookClient};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use kube_sim::FaultConfig;
use serde_json::json;
use support::*;

/// Answers every webhook at once, except those of the canary `slow`, which never answer.
struct OneSlowCanary;

#[async_trait]
impl WebhookClient for OneSlowCanary {
    async fn call(&self, _: &Webhook, payload: &Payload) -> Result<(), canary_webhooks::Error> {
        if payload.name == "slow" {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Ok(())
    }
}

async fn second_target(client: &kube::Client, name: &str) {
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "ghcr.io/stefanprodan/podinfo:6.0.0"}]}}}
    }))
    .expect("deployment");
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let pp = PostParams::default();
    persist(|| deploys.create(&pp, &deploy)).await;
}

fn canary_on(name: &str, provider: &str) -> Canary {
    let mut c = seed_canary(Some(2));
    c.metadata.name = Some(name.into());
    c.spec.target_ref.name = name.into();
    c.spec.autoscaler_ref = None;
    c.spec.provider = Some(provider.into());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_never_answers_holds_only_its_canary() {
    let c = cluster(FaultConfig::default()).await;
    second_target(&c.client, "slow").await;
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    canaries
        .create(&PostParams::default(), &seed_canary(Some(2)))
        .await
        .expect("podinfo");
    let mut slow = canary_on("slow", "kubernetes");
    slow.spec.analysis.as_mut().expect("analysis").webhooks = vec![Webhook {
        name: "load-test".into(),
        url: "http://flagger-loadtester.test/".into(),
        timeout: Some("1h".into()),
        ..Default::default()
    }];
    canaries
        .create(&PostParams::default(), &slow)
        .await
        .expect("slow");
    let ctx = context(c.client.clone(), healthy());
    let mut ctx = Arc::try_unwrap(ctx).ok().expect("sole owner");
    ctx.webhooks = Arc::new(OneSlowCanary);
    // One reconcile worker: before isolation, the slow hook held it for an hour.
    ctx.settings.threadiness = 1;
    let running = start(Arc::new(ctx));
    let slow_api = canaries.clone();
    let slow_phase = || async {
        slow_api
            .get("slow")
            .await
            .ok()
            .and_then(|c| c.status?.phase)
    };
    wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;
    for _ in 0..200 {
        if slow_phase().await == Some(Phase::Initialized) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both release at once; the slow canary's rollout hook never answers.
    set_image(&c.client, "ghcr.io/stefanprodan/podinfo:6.0.1").await;
    let slow_image = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "ghcr.io/stefanprodan/podinfo:6.0.1"}]}}}});
    let deploys: Api<Deployment> = Api::namespaced(c.client.clone(), "test");
    deploys
        .patch(
            "slow",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(&slow_image),
        )
        .await
        .expect("slow image");
    wait_for_phase(&canaries, Phase::Succeeded, Duration::from_secs(30)).await;
    assert_eq!(
        slow_phase().await,
        Some(Phase::Progressing),
        "the slow canary waits on its hook"
    );
    // A new revision supersedes the step that waits on the hook.
    let third = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "ghcr.io/stefanprodan/podinfo:6.0.2"}]}}}});
    deploys
        .patch(
            "slow",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(&third),
        )
        .await
        .expect("slow image");
    let events: Api<Event> = Api::namespaced(c.client.clone(), "test");
    let mut restarted = false;
    for _ in 0..200 {
        let list = events
            .list(&ListParams::default().fields("involvedObject.name=slow"))
            .await
            .expect("events");
        restarted = list.items.iter().any(|e| {
            e.message.as_deref() == Some("New revision detected! Restarting analysis for slow.test")
        });
        if restarted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(running);
    assert!(
        restarted,
        "the waiting step was superseded by the new revision"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_one_canary_is_reported_on_it_and_the_others_go_on() {
    let c = cluster(FaultConfig::default()).await;
    second_target(&c.client, "boom").await;
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    canaries
        .create(&PostParams::default(), &seed_canary(Some(2)))
        .await
        .expect("podinfo");
    canaries
        .create(&PostParams::default(), &canary_on("boom", "istio"))
        .await
        .expect("boom");
    let ctx = context(c.client.clone(), healthy());
    let mut ctx = Arc::try_unwrap(ctx).ok().expect("sole owner");
    let client = c.client.clone();
    ctx.routers = Box::new(move |provider, selector| {
        assert_ne!(provider, "istio", "a bug in the router factory");
        canary_router::for_provider(provider, client.clone(), selector)
    });
    let running = start(Arc::new(ctx));
    wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;
    set_image(&c.client, "ghcr.io/stefanprodan/podinfo:6.0.1").await;
    wait_for_phase(&canaries, Phase::Succeeded, Duration::from_secs(30)).await;
    running.stop().await;
    let events: Api<Event> = Api::namespaced(c.client.clone(), "test");
    let list = events
        .list(&ListParams::default().fields("involvedObject.name=boom"))
        .await
        .expect("events");
    let reported = list.items.iter().find(|e| {
        e.message.as_deref().is_some_and(|m| {
            m.starts_with("flaggerd failed to reconcile this canary and will retry:")
                && m.contains("a bug in the router factory")
        })
    });
    let reported = reported.unwrap_or_else(|| {
        panic!(
            "the panic is reported on its canary: {:#?}",
            list.items
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
        )
    });
    assert_eq!(reported.type_.as_deref(), Some("Warning"));
}
