//! What every backend test shares: a cluster (kube-sim) holding the MetricTemplate and its
//! Secret, the canary and metric that use it, a vendor stand-in on a loopback port, and the
//! assertions on a failure's message (backend, template, cause, no credential).

use std::collections::BTreeMap;

use canary_api::Canary;
use canary_core::MetricOutcome;
use canary_core::spec::Metric;
use canary_metrics::{Metrics, MetricsProvider};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

/// Serves `app` on a loopback port; answers its base URL.
pub async fn serve(app: axum::Router) -> String {
    mesh_sim::vendors::serve(app)
        .await
        .expect("a loopback port")
}

/// A loopback address nothing listens on.
pub async fn unreachable() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// A cluster with Flagger's CRDs and the namespace `test`, and the provider reading it.
pub struct World {
    #[allow(dead_code, reason = "dropping it stops the cluster")]
    pub sim: kube_sim::KubeSim,
    pub client: kube::Client,
    pub metrics: Metrics,
}

impl World {
    pub async fn new() -> World {
        let sim = kube_sim::KubeSim::start().await.expect("kube-sim");
        let client = sim.client().await.expect("client");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in canary_api::crd_objects() {
            crds.create(&PostParams::default(), &crd)
                .await
                .expect("crd");
        }
        let ns: Api<Namespace> = Api::all(client.clone());
        ns.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "test"}})).expect("ns"),
        )
        .await
        .expect("namespace");
        let metrics = Metrics::new(
            "http://prometheus.invalid:9090",
            canary_core::Settings::new("istio"),
            Some(client.clone()),
        )
        .expect("metrics");
        World {
            sim,
            client,
            metrics,
        }
    }

    /// (Re)creates the Secret `name` in `test` with `data`.
    pub async fn secret(&self, name: &str, data: &[(&str, &str)]) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), "test");
        let _ = api.delete(name, &DeleteParams::default()).await;
        let data: BTreeMap<&str, &str> = data.iter().copied().collect();
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                .expect("secret"),
        )
        .await
        .expect("create secret");
    }

    /// (Re)creates the MetricTemplate `name` in `test` with `provider` and `query`.
    pub async fn template(&self, name: &str, provider: Value, query: &str) {
        let api: Api<canary_api::MetricTemplate> = Api::namespaced(self.client.clone(), "test");
        let _ = api.delete(name, &DeleteParams::default()).await;
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
                "metadata": {"name": name},
                "spec": {"provider": provider, "query": query}}))
            .expect("template"),
        )
        .await
        .expect("create template");
    }

    /// The check of a metric of canary `podinfo.test` using template `name`, interval `1m`.
    pub async fn check(&self, name: &str) -> MetricOutcome {
        let (canary, metric) = canary(name);
        self.metrics.query(&canary, &metric).await
    }

    /// The availability check of that canary's providers.
    pub async fn online(&self, name: &str) -> Result<(), String> {
        let (canary, _) = canary(name);
        self.metrics
            .check_online(&canary)
            .await
            .map_err(|e| canary_core::error_chain(&e))
    }
}

/// Canary `podinfo.test` with one metric `m` on template `name`.
pub fn canary(name: &str) -> (Canary, Metric) {
    let canary: Canary = serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "threshold": 5, "metrics": [
                {"name": "m", "templateRef": {"name": name}, "interval": "1m",
                 "thresholdRange": {"max": 1}}]}}}))
    .expect("canary");
    let metric = canary.spec.analysis().expect("analysis").metrics[0].clone();
    (canary, metric)
}

/// The value of a passing check, or a panic naming what came instead.
pub fn value(outcome: MetricOutcome) -> f64 {
    match outcome {
        MetricOutcome::Value(v) => v,
        other => panic!("expected a value, got {other:?}"),
    }
}

/// The message of a "no data" outcome.
pub fn no_data(outcome: MetricOutcome) -> String {
    match outcome {
        MetricOutcome::NoData(m) => m,
        other => panic!("expected no data, got {other:?}"),
    }
}

/// The message of an error outcome.
pub fn error(outcome: MetricOutcome) -> String {
    match outcome {
        MetricOutcome::Error(m) => m,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// `message` names the backend and template (`<kind> metric template <name>.test: `), holds
/// `cause`, and holds none of `secrets`.
#[track_caller]
pub fn names(message: &str, kind: &str, template: &str, cause: &str, secrets: &[&str]) {
    let start = format!("{kind} metric template {template}.test: ");
    assert!(
        message.starts_with(&start),
        "{message:?} should start with {start:?}"
    );
    assert!(message.contains(cause), "{message:?} should hold {cause:?}");
    for s in secrets {
        assert!(!message.contains(s), "{message:?} leaks {s:?}");
    }
}
