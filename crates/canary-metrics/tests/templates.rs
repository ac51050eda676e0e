//! MetricTemplates read from the cluster (kube-sim): rendering with the canary's values and
//! templateVariables, credentials from the template's secretRef, templates in another
//! namespace, and the errors of a missing template, a backend without its credentials and a
//! template that does not render.

use std::sync::{Arc, Mutex};

use canary_api::Canary;
use canary_core::MetricOutcome;
use canary_metrics::{Metrics, MetricsProvider};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde_json::json;

type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A Prometheus stand-in recording each query and Authorization header; answers 2.5.
async fn fake_prometheus(seen: Seen) -> String {
    let app = axum::Router::new().route(
        "/api/v1/query",
        axum::routing::get(move |q: axum::extract::Query<std::collections::HashMap<String, String>>, h: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                let auth = h.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                seen.lock().expect("lock").push((q.get("query").cloned().unwrap_or_default(), auth));
                json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "2.5"]}]}}).to_string()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn create<K>(api: &Api<K>, obj: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(
        &PostParams::default(),
        &serde_json::from_value(obj).expect("object"),
    )
    .await
    .expect("create");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_render_authenticate_and_fail_clearly() {
    let seen: Seen = Arc::default();
    let prom = fake_prometheus(seen.clone()).await;
    let sim = kube_sim::KubeSim::start().await.expect("kube-sim");
    let client = sim.client().await.expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in canary_api::crd_objects() {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("crd");
    }
    let ns: Api<Namespace> = Api::all(client.clone());
    for n in ["test", "monitoring"] {
        create(&ns, json!({"metadata": {"name": n}})).await;
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "test");
    create(&secrets, json!({"metadata": {"name": "prom-auth"}, "stringData": {"token": "t0k"}, "data": {"token": "dDBr"}})).await;
    let templates: Api<canary_api::MetricTemplate> = Api::namespaced(client.clone(), "test");
    create(&templates, json!({"apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate", "metadata": {"name": "error-rate"},
        "spec": {"provider": {"type": "prometheus", "address": prom, "secretRef": {"name": "prom-auth"}},
                 "query": "sum(rate(errors{ns=\"{{ namespace }}\",app=\"{{ target }}\"}[{{ interval }}])) > {{ variables.limit }}"}})).await;
    create(&templates, json!({"apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate", "metadata": {"name": "dd"},
        "spec": {"provider": {"type": "datadog"}, "query": "avg:x"}})).await;
    create(&templates, json!({"apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate", "metadata": {"name": "broken"},
        "spec": {"provider": {"type": "prometheus", "address": prom}, "query": "sum({{ pods }})"}})).await;
    let shared: Api<canary_api::MetricTemplate> = Api::namespaced(client.clone(), "monitoring");
    create(&shared, json!({"apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate", "metadata": {"name": "latency"},
        "spec": {"provider": {"type": "prometheus", "address": prom}, "query": "p99{app=\"{{ target }}-primary\"}"}})).await;

    let canary = Canary::from_yaml(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\nspec:\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n  service: {port: 9898}\n  analysis:\n    interval: 1m\n    threshold: 5\n    stepWeight: 10\n    metrics:\n    - {name: error-rate, interval: 2m, templateRef: {name: error-rate}, templateVariables: {limit: '3'}, thresholdRange: {max: 1}}\n    - {name: latency, templateRef: {name: latency, namespace: monitoring}, thresholdRange: {max: 500}}\n    - {name: datadog, templateRef: {name: dd}, thresholdRange: {max: 1}}\n    - {name: broken, templateRef: {name: broken}, thresholdRange: {max: 1}}\n    - {name: missing, templateRef: {name: nowhere}, thresholdRange: {max: 1}}\n",
    )
    .expect("canary");
    let provider = Metrics::new(
        "http://127.0.0.1:9",
        canary_core::Settings::new("istio"),
        Some(client),
    )
    .expect("provider");
    let metrics = canary.spec.analysis().expect("analysis").metrics.clone();

    assert_eq!(
        provider.query(&canary, &metrics[0]).await,
        MetricOutcome::Value(2.5)
    );
    assert_eq!(
        provider.query(&canary, &metrics[1]).await,
        MetricOutcome::Value(2.5)
    );
    let recorded = seen.lock().expect("lock").clone();
    assert_eq!(
        recorded[0],
        (
            "sum(rate(errors{ns=\"test\",app=\"podinfo\"}[2m])) > 3".to_string(),
            "Bearer t0k".to_string()
        )
    );
    assert_eq!(
        recorded[1],
        ("p99{app=\"podinfo-primary\"}".to_string(), String::new())
    );

    let err = |o: MetricOutcome| match o {
        MetricOutcome::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    };
    assert_eq!(
        err(provider.query(&canary, &metrics[2]).await),
        "datadog metric template dd.test: credentials are required: spec.provider.secretRef must name a Secret holding datadog_api_key"
    );
    let broken = err(provider.query(&canary, &metrics[3]).await);
    assert!(broken.starts_with("metric template broken.test query render error: template broken.test: function \"pods\" not defined"), "{broken}");
    let missing = err(provider.query(&canary, &metrics[4]).await);
    assert!(
        missing.starts_with("metric template nowhere.test error:"),
        "{missing}"
    );
}
