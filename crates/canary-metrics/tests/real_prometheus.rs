//! The builtin Istio queries against Debian's `prometheus`, scraping an exporter this test
//! serves: each scrape adds 99 successful and 1 failed request, and 100 durations of which
//! 99 are at most 100 ms, so the success rate is 99% and the P99 100 ms.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use canary_api::Canary;
use canary_core::MetricOutcome;
use canary_metrics::{Metrics, MetricsProvider};

const SERIES: &str = r#"reporter="destination",destination_workload_namespace="test",destination_workload="podinfo""#;

async fn exporter() -> u16 {
    let scrapes = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let n = scrapes.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                format!(
                    "# TYPE istio_requests_total counter\n\
                     istio_requests_total{{{SERIES},response_code=\"200\"}} {ok}\n\
                     istio_requests_total{{{SERIES},response_code=\"500\"}} {bad}\n\
                     # TYPE istio_request_duration_milliseconds histogram\n\
                     istio_request_duration_milliseconds_bucket{{{SERIES},le=\"50\"}} {b50}\n\
                     istio_request_duration_milliseconds_bucket{{{SERIES},le=\"100\"}} {b100}\n\
                     istio_request_duration_milliseconds_bucket{{{SERIES},le=\"250\"}} {all}\n\
                     istio_request_duration_milliseconds_bucket{{{SERIES},le=\"+Inf\"}} {all}\n\
                     istio_request_duration_milliseconds_sum{{{SERIES}}} {sum}\n\
                     istio_request_duration_milliseconds_count{{{SERIES}}} {all}\n\
                     # TYPE response_total counter\n\
                     response_total{{namespace=\"test\",deployment=\"podinfo\",direction=\"inbound\",classification=\"success\"}} {ok}\n\
                     response_total{{namespace=\"test\",deployment=\"podinfo\",direction=\"inbound\",classification=\"failure\"}} {bad}\n\
                     # TYPE response_latency_ms histogram\n\
                     response_latency_ms_bucket{{namespace=\"test\",deployment=\"podinfo\",direction=\"inbound\",le=\"50\"}} {b50}\n\
                     response_latency_ms_bucket{{namespace=\"test\",deployment=\"podinfo\",direction=\"inbound\",le=\"100\"}} {b100}\n\
                     response_latency_ms_bucket{{namespace=\"test\",deployment=\"podinfo\",direction=\"inbound\",le=\"+Inf\"}} {all}\n\
                     # TYPE envoy_cluster_upstream_rq counter\n\
                     envoy_cluster_upstream_rq{{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-7d9f8b6c5-x2k4m\",envoy_response_code=\"200\"}} {ok}\n\
                     envoy_cluster_upstream_rq{{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-7d9f8b6c5-x2k4m\",envoy_response_code=\"503\"}} {bad}\n\
                     # TYPE envoy_cluster_upstream_rq_time histogram\n\
                     envoy_cluster_upstream_rq_time_bucket{{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-7d9f8b6c5-x2k4m\",le=\"50\"}} {b50}\n\
                     envoy_cluster_upstream_rq_time_bucket{{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-7d9f8b6c5-x2k4m\",le=\"100\"}} {b100}\n\
                     envoy_cluster_upstream_rq_time_bucket{{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-7d9f8b6c5-x2k4m\",le=\"+Inf\"}} {all}\n\
                     # TYPE http_request_duration_seconds histogram\n\
                     http_request_duration_seconds_bucket{{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-7d9f8b6c5-x2k4m\",status=\"200\",le=\"0.05\"}} {b50}\n\
                     http_request_duration_seconds_bucket{{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-7d9f8b6c5-x2k4m\",status=\"200\",le=\"0.1\"}} {b100_ok}\n\
                     http_request_duration_seconds_bucket{{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-7d9f8b6c5-x2k4m\",status=\"200\",le=\"+Inf\"}} {ok}\n\
                     http_request_duration_seconds_count{{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-7d9f8b6c5-x2k4m\",status=\"200\"}} {ok}\n\
                     http_request_duration_seconds_bucket{{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-7d9f8b6c5-x2k4m\",status=\"500\",le=\"0.05\"}} 0\n\
                     http_request_duration_seconds_bucket{{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-7d9f8b6c5-x2k4m\",status=\"500\",le=\"0.1\"}} 0\n\
                     http_request_duration_seconds_bucket{{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-7d9f8b6c5-x2k4m\",status=\"500\",le=\"+Inf\"}} {bad}\n\
                     http_request_duration_seconds_count{{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-7d9f8b6c5-x2k4m\",status=\"500\"}} {bad}\n",
                    ok = 99 * n,
                    bad = n,
                    b50 = 50 * n,
                    b100 = 99 * n,
                    all = 100 * n,
                    sum = 6000 * n,
                    b100_ok = 99 * n,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

fn canary(interval: &str, target: &str) -> Canary {
    canary_for("istio", interval, target)
}

fn canary_for(provider: &str, interval: &str, target: &str) -> Canary {
    let yaml = format!(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{name: podinfo, namespace: test}}\nspec:\n  provider: {provider}\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: {target}}}\n  service: {{port: 9898}}\n  analysis:\n    interval: 10s\n    threshold: 5\n    stepWeight: 10\n    metrics:\n    - {{name: request-success-rate, interval: {interval}, thresholdRange: {{min: 99}}}}\n    - {{name: request-duration, interval: {interval}, thresholdRange: {{max: 500}}}}\n"
    );
    Canary::from_yaml(&yaml).expect("canary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_istio_queries_against_a_real_prometheus() {
    let target = exporter().await;
    let mut prom = mesh_sim::prometheus::Prometheus::start(&[format!("127.0.0.1:{target}")])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = prom.address.clone();
    let provider =
        Metrics::new(&address, canary_core::Settings::new("istio"), None).expect("provider");
    let c = canary("10s", "podinfo");
    let metrics = c.spec.analysis().expect("analysis").metrics.clone();
    let (mut rate, mut p99) = (None, None);
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let (MetricOutcome::Value(r), MetricOutcome::Value(d)) = (
            provider.query(&c, &metrics[0]).await,
            provider.query(&c, &metrics[1]).await,
        ) {
            rate = Some(r);
            p99 = Some(d);
            break;
        }
    }
    assert!(
        provider.check_online(&c).await.is_ok(),
        "vector(1) answers 1"
    );
    let (rate, p99) = (
        rate.expect("success rate from Prometheus"),
        p99.expect("P99 from Prometheus"),
    );
    assert!((rate - 99.0).abs() < 0.01, "success rate {rate}");
    assert!((p99 - 100.0).abs() < 0.01, "P99 {p99} ms");

    // A target with no series: Flagger's "no values found", a failed check.
    let quiet = canary("10s", "nothing-here");
    let outcome = provider.query(&quiet, &metrics[0]).await;
    assert!(
        matches!(&outcome, MetricOutcome::NoData(e) if e.starts_with("no values found")),
        "{outcome:?}"
    );

    // A query Prometheus rejects, and a Prometheus that is not there.
    let mut bad = metrics[0].clone();
    bad.name = "broken".into();
    bad.query = Some("sum(rate(".into());
    let outcome = provider.query(&c, &bad).await;
    assert!(
        matches!(&outcome, MetricOutcome::Error(e) if e.starts_with("query error from Prometheus:")),
        "{outcome:?}"
    );
    prom.stop().await;
    let gone = Metrics::new(&address, canary_core::Settings::new("istio"), None).expect("provider");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outcome = gone.query(&c, &metrics[0]).await;
    assert!(
        matches!(&outcome, MetricOutcome::Error(e) if e.starts_with("Prometheus unreachable")),
        "{outcome:?}"
    );
}
