//! flaggerd's webhooks through the real loadtester (in-process) with the real HTTP webhook
//! client: the seed's acceptance test (`curl | grep token`, a bash task) gates the release,
//! and a failing one halts it and rolls back.

#[path = "support/cluster.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use canary_api::Canary;
use canary_core::Phase;
use kube::api::{Api, PostParams};
use kube_sim::FaultConfig;
use support::*;

/// mesh-sim's podinfo-like backend (`POST /token` answers a JSON token).
async fn podinfo() -> String {
    let addr = mesh_sim::podinfo::spawn(
        "podinfo-7d9f8b6c5-x2k4m",
        "ghcr.io/stefanprodan/podinfo:6.0.0",
    )
    .await
    .expect("podinfo");
    format!("http://{addr}")
}

async fn loadtester() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = loadtester::Config {
        timeout: Duration::from_secs(30),
        ..Default::default()
    };
    tokio::spawn(loadtester::serve(listener, config));
    format!("http://{addr}/")
}

/// Seed 001's canary with its webhooks pointed at this loadtester and this podinfo (the
/// cluster DNS names need mesh-sim); `grep` is what the acceptance test looks for.
fn canary(tester: &str, app: &str, grep: &str) -> Canary {
    let mut c = seed_canary(Some(2));
    for hook in &mut c.spec.analysis.as_mut().expect("analysis").webhooks {
        hook.url = tester.to_string();
        let meta = hook.metadata.get_or_insert_with(Default::default);
        if hook.name == "acceptance-test" {
            meta.insert(
                "cmd".into(),
                format!("curl -sd 'test' {app}/token | grep {grep}"),
            );
        } else {
            meta.insert("cmd".into(), "sleep 1".into());
        }
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acceptance_test_runs_through_the_loadtester() {
    let (app, tester) = (podinfo().await, loadtester().await);
    let c = cluster(FaultConfig::default()).await;
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    canaries
        .create(&PostParams::default(), &canary(&tester, &app, "token"))
        .await
        .expect("canary");
    let ctx = context(c.client.clone(), healthy());
    let mut ctx = Arc::try_unwrap(ctx).ok().expect("sole owner");
    ctx.webhooks = Arc::new(canary_webhooks::HttpWebhooks::new().expect("client"));
    let ctx = Arc::new(ctx);
    let running = start(ctx.clone());
    wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;
    set_image(&c.client, "ghcr.io/stefanprodan/podinfo:6.0.1").await;
    wait_for_phase(&canaries, Phase::Succeeded, Duration::from_secs(40)).await;
    running.settle().await;
    let events = steady(&messages(&c.client).await);
    assert!(
        events.contains(&"Pre-rollout check acceptance-test passed".to_string()),
        "{events:#?}"
    );

    // Now the acceptance test fails: the release halts on it and rolls back.
    let mut broken = canaries.get("podinfo").await.expect("canary");
    broken.spec = canary(&tester, &app, "no-such-word").spec;
    canaries
        .replace("podinfo", &PostParams::default(), &broken)
        .await
        .expect("edit");
    set_image(&c.client, "ghcr.io/stefanprodan/podinfo:6.0.2").await;
    wait_for_phase(&canaries, Phase::Failed, Duration::from_secs(60)).await;
    running.stop().await;
    let events = steady(&messages(&c.client).await);
    let halt = events.iter().find(|m| m.starts_with("Halt podinfo.test advancement pre-rollout check acceptance-test failed command curl")).cloned();
    assert!(halt.is_some(), "{events:#?}");
    assert_eq!(
        events.last().map(String::as_str),
        Some("Canary failed! Scaling down podinfo.test")
    );
}
