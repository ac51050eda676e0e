//! The controller against kube-sim with the kubernetes provider: seed 001's podinfo canary
//! initializes into the objects the seed lists, and `set image` leads to the blue/green
//! iterations, promotion and Flagger's events. Metrics and webhooks are mocked here.

use std::sync::Arc;
use std::time::Duration;

use canary_api::Canary;
use canary_controller::{Context, Settings};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Event, Namespace, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt};
use kube_sim::{KubeSim, Options, WorkloadConfig};
use serde_json::json;

struct Cluster {
    sim: KubeSim,
    client: Client,
}

async fn cluster() -> Cluster {
    let options = Options {
        workloads: WorkloadConfig {
            startup: Duration::from_millis(200),
            ..Default::default()
        },
        ..Default::default()
    };
    let sim = KubeSim::start_with(options).await.expect("kube-sim");
    let client = sim.client().await.expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Canary::crd())
        .await
        .expect("crd");
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "test"}})).expect("ns"),
    )
    .await
    .expect("ns");
    for doc in include_str!("fixtures/podinfo.yaml").split("\n---\n") {
        let obj: serde_json::Value = serde_yaml_value(doc);
        let kind = obj["kind"].as_str().expect("kind");
        match kind {
            "Deployment" => {
                let api: Api<Deployment> = Api::namespaced(client.clone(), "test");
                api.create(
                    &PostParams::default(),
                    &serde_json::from_value(obj).expect("deploy"),
                )
                .await
                .expect("create");
            }
            _ => {
                let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "test");
                api.create(
                    &PostParams::default(),
                    &serde_json::from_value(obj).expect("hpa"),
                )
                .await
                .expect("create");
            }
        }
    }
    Cluster { sim, client }
}

fn serde_yaml_value(doc: &str) -> serde_json::Value {
    let canary: Result<serde_json::Value, _> = canary_api::from_yaml("fixture", doc);
    canary.expect("yaml")
}

fn seed_canary() -> Canary {
    let mut canary =
        Canary::from_yaml(include_str!("fixtures/001-linkerd.yaml")).expect("seed 001");
    // Intervals shortened for speed; everything else is the seed's.
    canary.spec.analysis.as_mut().expect("analysis").interval = Some("1s".into());
    canary.spec.provider = Some("kubernetes".into());
    canary
}

fn context(client: Client) -> Arc<Context> {
    let mut settings = Settings::default();
    settings.engine.default_provider = "kubernetes".into();
    settings.engine.min_interval = Duration::from_millis(500);
    settings.port = 0;
    let mut ctx = Context::new(client, settings).expect("context");
    let mut metrics = canary_metrics::MockMetricsProvider::new();
    metrics.expect_query().returning(|_, m| {
        canary_core::MetricOutcome::Value(if m.name == "request-duration" {
            120.0
        } else {
            99.9
        })
    });
    metrics.expect_check_online().returning(|_| Ok(()));
    ctx.metrics = Arc::new(metrics);
    let mut hooks = canary_webhooks::MockWebhookClient::new();
    hooks.expect_call().returning(|_, _| Ok(()));
    ctx.webhooks = Arc::new(hooks);
    Arc::new(ctx)
}

async fn wait_for_phase(api: &Api<Canary>, phase: canary_core::Phase, limit: Duration) -> Canary {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let c = api.get("podinfo").await.expect("canary");
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

async fn messages(client: &Client) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), "test");
    let mut list = events
        .list(
            &ListParams::default().fields("involvedObject.kind=Canary,involvedObject.name=podinfo"),
        )
        .await
        .expect("events")
        .items;
    list.sort_by_key(|e| {
        e.metadata
            .resource_version
            .clone()
            .unwrap_or_default()
            .parse::<u64>()
            .unwrap_or(0)
    });
    list.into_iter().filter_map(|e| e.message).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_001_initializes_then_promotes_a_new_revision_with_the_kubernetes_provider() {
    let c = cluster().await;
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    canaries
        .create(&PostParams::default(), &seed_canary())
        .await
        .expect("canary");
    let ctx = context(c.client.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(canary_controller::run(ctx, async move {
        let _ = stop_rx.await;
    }));

    let initialized = wait_for_phase(
        &canaries,
        canary_core::Phase::Initialized,
        Duration::from_secs(20),
    )
    .await;
    let promoted = initialized
        .status
        .as_ref()
        .and_then(|s| s.condition("Promoted"))
        .expect("condition");
    assert_eq!(
        (promoted.status.as_str(), promoted.reason.as_str()),
        ("True", "Initialized")
    );
    // The generated objects seed 001 lists, with its selectors.
    let services: Api<Service> = Api::namespaced(c.client.clone(), "test");
    for (name, selector) in [
        ("podinfo", "podinfo-primary"),
        ("podinfo-canary", "podinfo"),
        ("podinfo-primary", "podinfo-primary"),
    ] {
        let svc = services
            .get(name)
            .await
            .unwrap_or_else(|_| panic!("service {name}"));
        let sel = svc.spec.and_then(|s| s.selector).unwrap_or_default();
        assert_eq!(
            sel.get("app").map(String::as_str),
            Some(selector),
            "selector of {name}"
        );
    }
    let deploys: Api<Deployment> = Api::namespaced(c.client.clone(), "test");
    let primary = deploys.get("podinfo-primary").await.expect("primary");
    assert_eq!(
        primary
            .spec
            .selector
            .match_labels
            .unwrap_or_default()
            .get("app")
            .map(String::as_str),
        Some("podinfo-primary")
    );
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(c.client.clone(), "test");
    let hpa = hpas.get("podinfo-primary").await.expect("primary hpa");
    assert_eq!(hpa.spec.scale_target_ref.name, "podinfo-primary");
    let target = deploys.get("podinfo").await.expect("target");
    assert_eq!(
        target.spec.replicas,
        Some(0),
        "the target is scaled to zero"
    );
    let events = messages(&c.client).await;
    assert!(
        events.contains(&"Initialization done! podinfo.test".to_string()),
        "{events:#?}"
    );

    // A new revision.
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:6.0.1"}]}}}});
    let set_at = tokio::time::Instant::now();
    deploys
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Strategic(&image),
        )
        .await
        .expect("set image");
    wait_for_phase(
        &canaries,
        canary_core::Phase::Progressing,
        Duration::from_secs(10),
    )
    .await;
    let detection = set_at.elapsed();
    let done = wait_for_phase(
        &canaries,
        canary_core::Phase::Succeeded,
        Duration::from_secs(60),
    )
    .await;
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), controller).await;

    let events = messages(&c.client).await;
    let from = events
        .iter()
        .position(|m| m == "New revision detected! Scaling up podinfo.test")
        .expect("detected");
    let tail: Vec<&str> = events[from..]
        .iter()
        .map(String::as_str)
        .filter(|m| {
            !m.starts_with("Waiting for")
                && !m.contains("kubernetes provider")
                && !m.starts_with("Setting canaryAnalysis")
        })
        .collect();
    let mut expected = vec![
        "New revision detected! Scaling up podinfo.test",
        "Starting canary analysis for podinfo.test",
        "Pre-rollout check acceptance-test passed",
    ];
    let iterations: Vec<String> = (1..=10)
        .map(|i| format!("Advance podinfo.test canary iteration {i}/10"))
        .collect();
    expected.extend(iterations.iter().map(String::as_str));
    expected.extend([
        "Copying podinfo.test template spec to podinfo-primary.test",
        "Promotion completed! Scaling down podinfo.test",
    ]);
    assert_eq!(tail, expected);
    let primary = deploys.get("podinfo-primary").await.expect("primary");
    let image = primary
        .spec
        .template
        .spec
        .and_then(|s| s.containers[0].image.clone());
    assert_eq!(image.as_deref(), Some("ghcr.io/stefanprodan/podinfo:6.0.1"));
    assert_eq!(
        deploys.get("podinfo").await.expect("target").spec.replicas,
        Some(0)
    );
    assert_eq!(
        done.status.as_ref().map(|s| s.last_promoted_spec.clone()),
        done.status.as_ref().map(|s| s.last_applied_spec.clone())
    );
    assert!(
        detection < Duration::from_secs(2),
        "new revision detected in {detection:?}"
    );
    drop(c.sim);
}
