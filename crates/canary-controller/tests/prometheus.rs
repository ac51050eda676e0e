//! The kubernetes-provider release of seed 001 with the real Prometheus backend: Debian's
//! `prometheus` scrapes an exporter of podinfo's own `http_request_duration_seconds` (99.9%
//! success, P99 under 100 ms), and flaggerd's builtin checks read it.

#[path = "support/cluster.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use canary_api::Canary;
use canary_core::Phase;
use canary_metrics::{Metrics, MetricsProvider};
use kube::api::{Api, PostParams};
use kube_sim::FaultConfig;
use support::*;

const POD: &str = r#"kubernetes_namespace="test",kubernetes_pod_name="podinfo-6d9f8b6c5-x2k4m""#;

async fn exporter() -> u16 {
    let scrapes = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let n = scrapes.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let (ok, bad) = (999 * n, n);
                format!(
                    "# TYPE http_request_duration_seconds histogram\n\
                     http_request_duration_seconds_bucket{{{POD},status=\"200\",le=\"0.05\"}} {ok}\n\
                     http_request_duration_seconds_bucket{{{POD},status=\"200\",le=\"+Inf\"}} {ok}\n\
                     http_request_duration_seconds_count{{{POD},status=\"200\"}} {ok}\n\
                     http_request_duration_seconds_bucket{{{POD},status=\"500\",le=\"0.05\"}} {bad}\n\
                     http_request_duration_seconds_bucket{{{POD},status=\"500\",le=\"+Inf\"}} {bad}\n\
                     http_request_duration_seconds_count{{{POD},status=\"500\"}} {bad}\n"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_001_is_promoted_on_metrics_from_a_real_prometheus() {
    let target = exporter().await;
    let prom = mesh_sim::prometheus::Prometheus::start(&[format!("127.0.0.1:{target}")])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = prom.address.clone();

    let c = cluster(FaultConfig::default()).await;
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    let canary = seed_canary(Some(3));
    canaries
        .create(&PostParams::default(), &canary)
        .await
        .expect("canary");
    let mut settings = canary_core::Settings::new("kubernetes");
    settings.min_interval = Duration::from_millis(500);
    let provider = Metrics::new(&address, settings, Some(c.client.clone())).expect("provider");
    // Wait until Prometheus has two samples, so the seed's rate() windows have data.
    let metrics = canary.spec.analysis().expect("analysis").metrics.clone();
    let mut ready = false;
    for _ in 0..60 {
        if matches!(
            provider.query(&canary, &metrics[0]).await,
            canary_core::MetricOutcome::Value(_)
        ) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ready, "Prometheus answers the builtin success-rate query");
    let ctx = context(c.client.clone(), healthy());
    let mut ctx = Arc::try_unwrap(ctx).ok().expect("sole owner");
    ctx.metrics = Arc::new(provider);
    let running = start(Arc::new(ctx));
    wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;
    set_image(&c.client, "ghcr.io/stefanprodan/podinfo:6.0.1").await;
    let done = wait_for_phase(&canaries, Phase::Succeeded, Duration::from_secs(60)).await;
    running.stop().await;
    drop(prom);
    let report = done
        .status
        .and_then(|s| s.analysis)
        .expect("status.analysis");
    let rate = report
        .checks
        .iter()
        .find(|c| c.name == "request-success-rate")
        .and_then(|c| c.value)
        .expect("success rate");
    let p99 = report
        .checks
        .iter()
        .find(|c| c.name == "request-duration")
        .and_then(|c| c.value)
        .expect("duration");
    assert!((rate - 99.9).abs() < 0.01, "success rate {rate}");
    assert!(p99 > 0.0 && p99 <= 50.0, "P99 {p99} ms");
}
