//! A kube-sim cluster with the CRDs, namespace `test` and podinfo (Deployment and HPA), and
//! a controller running against it with mocked metrics and webhooks.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use canary_api::Canary;
use canary_controller::{Context, Settings};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Event, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_sim::{FaultConfig, KubeSim, Options, WorkloadConfig};
use serde_json::json;

/// The test cluster.
pub struct Cluster {
    pub sim: KubeSim,
    pub client: Client,
}

/// Metric values the mocked provider answers: success rate and duration.
pub type MetricScript = Arc<dyn Fn(&str) -> canary_core::MetricOutcome + Send + Sync>;

pub fn healthy() -> MetricScript {
    Arc::new(|name: &str| {
        canary_core::MetricOutcome::Value(if name == "request-duration" {
            120.0
        } else {
            99.9
        })
    })
}

pub async fn cluster(faults: FaultConfig) -> Cluster {
    let options = Options {
        workloads: WorkloadConfig {
            startup: Duration::from_millis(200),
            ..Default::default()
        },
        faults,
        ..Default::default()
    };
    let sim = KubeSim::start_with(options).await.expect("kube-sim");
    let client = sim.client().await.expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PostParams::default();
    for crd in canary_api::crd_objects() {
        persist(|| crds.create(&pp, &crd)).await;
    }
    let ns: Api<Namespace> = Api::all(client.clone());
    let test_ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "test"}})).expect("ns");
    persist(|| ns.create(&pp, &test_ns)).await;
    for doc in include_str!("../fixtures/podinfo.yaml").split("\n---\n") {
        let obj: serde_json::Value = canary_api::from_yaml("fixture", doc).expect("yaml");
        if obj["kind"] == "Deployment" {
            let api: Api<Deployment> = Api::namespaced(client.clone(), "test");
            let d: Deployment = serde_json::from_value(obj).expect("deploy");
            persist(|| api.create(&pp, &d)).await;
        } else {
            let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "test");
            let h: HorizontalPodAutoscaler = serde_json::from_value(obj).expect("hpa");
            persist(|| api.create(&pp, &h)).await;
        }
    }
    Cluster { sim, client }
}

/// Installs the mesh CRDs the routers write (test fixtures of canary-router).
pub async fn install_mesh_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PostParams::default();
    for doc in [
        include_str!("../../../mesh-sim/crds/meshes.yaml"),
        include_str!("../../../mesh-sim/crds/contour.yaml"),
        include_str!("../../../mesh-sim/crds/knative.yaml"),
        include_str!("../../../mesh-sim/crds/traefik.yaml"),
        include_str!("../../../mesh-sim/crds/apisix.yaml"),
        include_str!("../../../mesh-sim/crds/keda.yaml"),
    ]
    .concat()
    .split("\n---\n")
    .skip(1)
    {
        let crd: CustomResourceDefinition = canary_api::from_yaml("crd", doc).expect("crd");
        persist(|| crds.create(&pp, &crd)).await;
    }
}

/// Repeats a request through injected faults; "already exists" counts as done.
pub async fn persist<T, F, Fut>(mut call: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    for _ in 0..50 {
        match call().await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("request kept failing");
}

/// `kubectl -n test set image deployment/podinfo podinfod=<image>`, through injected faults.
pub async fn set_image(client: &Client, image: &str) {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "podinfod", "image": image}]}}}});
    let (params, patch) = (PatchParams::default(), Patch::Strategic(&patch));
    persist(|| deploys.patch("podinfo", &params, &patch)).await;
}

/// The image podinfo-primary runs.
pub async fn primary_image(client: &Client) -> Option<String> {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let p = deploys.get("podinfo-primary").await.ok()?;
    p.spec
        .template
        .spec
        .and_then(|s| s.containers[0].image.clone())
}

/// Seed 001's canary with the kubernetes provider, a 1s interval and `iterations`.
pub fn seed_canary(iterations: Option<i32>) -> Canary {
    let mut canary =
        Canary::from_yaml(include_str!("../fixtures/001-linkerd.yaml")).expect("seed 001");
    let analysis = canary.spec.analysis.as_mut().expect("analysis");
    analysis.interval = Some("1s".into());
    if let Some(i) = iterations {
        analysis.iterations = Some(i);
        analysis.step_weight = None;
        analysis.max_weight = None;
    }
    canary.spec.provider = Some("kubernetes".into());
    canary
}

pub fn context(client: Client, metrics_script: MetricScript) -> Arc<Context> {
    context_for(client, metrics_script, "kubernetes")
}

pub fn context_for(client: Client, metrics_script: MetricScript, provider: &str) -> Arc<Context> {
    let mut settings = Settings::default();
    settings.engine.default_provider = provider.into();
    settings.engine.min_interval = Duration::from_millis(500);
    settings.port = 0;
    let mut ctx = Context::new(client, settings).expect("context");
    let mut metrics = canary_metrics::MockMetricsProvider::new();
    metrics
        .expect_query()
        .returning(move |_, m| metrics_script(&m.name));
    metrics.expect_check_online().returning(|_| Ok(()));
    ctx.metrics = Arc::new(metrics);
    let mut hooks = canary_webhooks::MockWebhookClient::new();
    hooks.expect_call().returning(|_, _| Ok(()));
    ctx.webhooks = Arc::new(hooks);
    Arc::new(ctx)
}

/// A running controller; stopped gracefully by `stop`.
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), canary_controller::StartError>>,
    ctx: Arc<Context>,
}

pub fn start(ctx: Arc<Context>) -> Running {
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(canary_controller::run(ctx.clone(), async move {
        let _ = rx.await;
    }));
    Running { stop, task, ctx }
}

impl Running {
    /// Waits for the canaries' background work (the effects of a step whose status a test
    /// just saw) to finish, then stops the controller.
    pub async fn stop(self) {
        self.settle().await;
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }

    /// Waits until no canary has background work running (twice in a row, 50 ms apart:
    /// a decision's effects start right after its status is written).
    pub async fn settle(&self) {
        let mut idle = 0;
        for _ in 0..400 {
            if self.ctx.tasks_running() == 0 {
                idle += 1;
                if idle == 2 {
                    return;
                }
            } else {
                idle = 0;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub async fn canary(api: &Api<Canary>) -> Canary {
    loop {
        if let Ok(c) = api.get("podinfo").await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn wait_for_phase(
    api: &Api<Canary>,
    phase: canary_core::Phase,
    limit: Duration,
) -> Canary {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let c = canary(api).await;
        if c.status.as_ref().and_then(|s| s.phase) == Some(phase) {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "canary did not reach {phase} in {limit:?}: {:?}",
            c.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The canary's event messages in the order they were first recorded.
pub async fn messages(client: &Client) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), "test");
    let list = loop {
        if let Ok(l) = events
            .list(
                &ListParams::default()
                    .fields("involvedObject.kind=Canary,involvedObject.name=podinfo"),
            )
            .await
        {
            break l.items;
        }
    };
    let mut list = list;
    list.sort_by_key(|e| e.metadata.uid.clone().unwrap_or_default());
    list.into_iter().filter_map(|e| e.message).collect()
}

/// The messages without the ones whose count depends on timing.
pub fn steady(messages: &[String]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| {
            !m.starts_with("Waiting for")
                && !m.contains("kubernetes provider")
                && !m.starts_with("Setting canaryAnalysis")
                && !m.starts_with("waiting for the primary")
        })
        .cloned()
        .collect()
}
