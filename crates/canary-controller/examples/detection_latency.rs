//! Measures the time from `kubectl set image` (a patch of the target's pod template) to the
//! canary's status saying `Progressing` ("New revision detected"), against kube-sim, over 20
//! revisions, and prints the median. Run by `cargo xtask bench`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use canary_api::Canary;
use canary_controller::{Context, Settings};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const RUNS: usize = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = kube_sim::Options {
        workloads: kube_sim::WorkloadConfig {
            startup: Duration::from_millis(100),
            ..Default::default()
        },
        ..Default::default()
    };
    let sim = kube_sim::KubeSim::start_with(options).await?;
    let client = sim.client().await?;
    for crd in canary_api::crd_objects() {
        Api::<CustomResourceDefinition>::all(client.clone())
            .create(&PostParams::default(), &crd)
            .await?;
    }
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "test"}}))?,
        )
        .await?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let deploy = json!({"metadata": {"name": "podinfo"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "podinfo"}},
        "template": {"metadata": {"labels": {"app": "podinfo"}}, "spec": {"containers": [{"name": "podinfod", "image": "podinfo:0"}]}}}});
    deploys
        .create(&PostParams::default(), &serde_json::from_value(deploy)?)
        .await?;
    let canary = Canary::from_yaml(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\nspec:\n  provider: kubernetes\n  skipAnalysis: true\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n  service: {port: 9898}\n  analysis: {interval: 1s, threshold: 1, iterations: 1}\n",
    )?;
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    canaries.create(&PostParams::default(), &canary).await?;
    let mut settings = Settings::default();
    settings.engine.default_provider = "kubernetes".into();
    settings.engine.min_interval = Duration::from_millis(200);
    settings.port = 0;
    let ctx = Arc::new(Context::new(client.clone(), settings)?);
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(canary_controller::run(ctx, async move {
        let _ = rx.await;
    }));
    let phase = |c: &Canary| c.status.as_ref().and_then(|s| s.phase);
    let wait = |want: canary_core::Phase| {
        let canaries = canaries.clone();
        async move {
            for _ in 0..2000 {
                if canaries.get("podinfo").await.ok().as_ref().and_then(phase) == Some(want) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            panic!("canary did not reach {want}");
        }
    };
    wait(canary_core::Phase::Initialized).await;
    let mut samples = Vec::new();
    for i in 1..=RUNS {
        let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "podinfod", "image": format!("podinfo:{i}")}]}}}});
        let start = Instant::now();
        deploys
            .patch(
                "podinfo",
                &PatchParams::default(),
                &Patch::Strategic(&image),
            )
            .await?;
        wait(canary_core::Phase::Progressing).await;
        samples.push(start.elapsed());
        // skipAnalysis promotes on the next step; wait for it before the next revision.
        wait(canary_core::Phase::Succeeded).await;
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), controller).await;
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "detection latency, set image -> Progressing, {RUNS} runs: median {:.1} ms, min {:.1} ms, max {:.1} ms",
        ms(samples[RUNS / 2]),
        ms(samples[0]),
        ms(samples[RUNS - 1])
    );
    Ok(())
}
