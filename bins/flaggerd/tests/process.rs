//! The real `flaggerd` binary, as a process, against kube-sim: JSON logs with `msg`,
//! `/metrics`, and `kubectl get canaries` showing its progress through a release.

use std::process::Stdio;
use std::time::Duration;

use canary_api::Canary;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

#[path = "support/cluster.rs"]
mod support;
use support::{deployment, free_port, kube_sim, reaches, set_image};

const CANARY: &str = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  provider: kubernetes
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
  analysis:
    interval: 1s
    threshold: 2
    iterations: 2
"#;

/// The real kubectl; the test fails, saying how to install it, when it is missing.
fn kubectl(kubeconfig: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "kubectl is not on PATH ({e}): install it (https://kubernetes.io/docs/tasks/tools/)"
            )
        });
    assert!(
        out.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_a_release_against_kube_sim() {
    let (sim, client) = kube_sim().await;
    deployment(&client, "podinfo", 2).await;
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    canaries
        .create(
            &PostParams::default(),
            &Canary::from_yaml(CANARY).expect("canary"),
        )
        .await
        .expect("canary");

    let port = free_port();
    let kubeconfig = sim.kubeconfig_path().display().to_string();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_flaggerd"))
        .args([
            "-kubeconfig",
            &kubeconfig,
            "-mesh-provider",
            "kubernetes",
            "-min-analysis-interval",
            "1s",
            "-port",
            &port.to_string(),
            "-log-level",
            "info",
        ])
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("flaggerd starts");
    let mut logs = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let log_lines = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Ok(Some(line)) = logs.next_line().await {
            out.push(line);
        }
        out
    });

    let wait =
        |want: canary_core::Phase| reaches(&client, "podinfo", want, Duration::from_secs(20));
    assert!(wait(canary_core::Phase::Initialized).await, "initialized");
    let kc = kubeconfig.clone();
    let table = tokio::task::spawn_blocking(move || kubectl(&kc, &["get", "canaries", "-A"]))
        .await
        .expect("kubectl");
    assert!(table.contains("Initialized"), "{table}");
    set_image(&client, "podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1").await;
    assert!(wait(canary_core::Phase::Succeeded).await, "promoted");
    let kc = kubeconfig.clone();
    let table = tokio::task::spawn_blocking(move || kubectl(&kc, &["get", "canaries", "-A"]))
        .await
        .expect("kubectl");
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row[..4], ["test", "podinfo", "Succeeded", "0"], "{table}");
    let metrics = http_get(port, "/metrics").await;
    assert!(
        metrics.contains("flagger_canary_status{name=\"podinfo\",namespace=\"test\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("flagger_canary_successes_total{name=\"podinfo\",namespace=\"test\",deployment_strategy=\"blue-green\",analysis_status=\"completed\"} 1"), "{metrics}");
    assert!(metrics.contains("flagger_info{version="), "{metrics}");
    assert_eq!(http_get(port, "/healthz").await.trim(), "OK");

    let _ = child.kill().await;
    let lines = log_lines.await.expect("logs");
    let msgs: Vec<String> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["msg"].as_str().map(String::from))
        .collect();
    assert!(
        msgs.contains(&"Initialization done! podinfo.test".to_string()),
        "{lines:#?}"
    );
    assert!(
        msgs.contains(&"Promotion completed! Scaling down podinfo.test".to_string()),
        "{lines:#?}"
    );
}

async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for _ in 0..50 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let req =
                format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            if s.write_all(req.as_bytes()).await.is_ok() {
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf).await;
                let text = String::from_utf8_lossy(&buf).into_owned();
                return text
                    .split("\r\n\r\n")
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    String::new()
}

/// Issue 12's start-up failures: API errors when flaggerd starts, and canaries it cannot run
/// already stored (one whose stepWeight overflows i32, with 200 KB of annotations, one whose
/// interval overflows Go's durations). flaggerd waits out the errors, reports each bad
/// canary in one log line without dumping it, and promotes the good one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_starts_through_api_errors_and_among_canaries_it_cannot_run() {
    let (sim, client) = kube_sim().await;
    for name in ["podinfo", "overflow", "forever"] {
        deployment(&client, name, 1).await;
    }
    let gvk = kube::core::GroupVersionKind::gvk("flagger.app", "v1beta1", "Canary");
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        "test",
        &kube::core::ApiResource::from_gvk_with_plural(&gvk, "canaries"),
    );
    let bad = |name: &str, analysis: serde_json::Value, annotations: serde_json::Value| {
        json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": name, "namespace": "test", "annotations": annotations},
            "spec": {"provider": "kubernetes",
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "service": {"port": 9898}, "analysis": analysis},
        })
    };
    let secret_url = "http://user:hunter2@hooks.example.com/notify";
    for doc in [
        bad(
            "overflow",
            json!({"interval": "1s", "threshold": 1, "stepWeight": 99_999_999_999i64,
                "webhooks": [{"name": "notify", "type": "post-rollout", "url": secret_url}]}),
            json!({"blob": "x".repeat(200_000)}),
        ),
        bad(
            "forever",
            json!({"interval": "180000000000m", "threshold": 1, "iterations": 1}),
            json!({}),
        ),
    ] {
        let obj: kube::api::DynamicObject = serde_json::from_value(doc).expect("object");
        raw.create(&PostParams::default(), &obj)
            .await
            .expect("bad canary");
    }
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    canaries
        .create(
            &PostParams::default(),
            &Canary::from_yaml(CANARY).expect("canary"),
        )
        .await
        .expect("canary");

    // Every request fails while flaggerd starts.
    sim.faults().set(kube_sim::FaultConfig {
        error_rate: 1.0,
        error_codes: vec![500],
        ..Default::default()
    });
    let kubeconfig = sim.kubeconfig_path().display().to_string();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_flaggerd"))
        .args([
            "-kubeconfig",
            &kubeconfig,
            "-mesh-provider",
            "kubernetes",
            "-min-analysis-interval",
            "1s",
            "-port",
            &free_port().to_string(),
            "-log-level",
            "info",
        ])
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("flaggerd starts");
    let mut logs = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let (line_tx, mut line_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok(Some(line)) = logs.next_line().await {
            let _ = line_tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !lines
        .iter()
        .any(|l: &String| l.contains("cannot list canaries.flagger.app yet"))
    {
        let line = tokio::time::timeout_at(deadline, line_rx.recv())
            .await
            .expect("flaggerd says it retries")
            .expect("flaggerd is running");
        lines.push(line);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        child.try_wait().expect("status").is_none(),
        "flaggerd exited on a transient error: {lines:#?}"
    );
    sim.faults().set(kube_sim::FaultConfig::default());

    let wait =
        |want: canary_core::Phase| reaches(&client, "podinfo", want, Duration::from_secs(30));
    assert!(wait(canary_core::Phase::Initialized).await, "initialized");
    set_image(&client, "podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1").await;
    assert!(wait(canary_core::Phase::Succeeded).await, "promoted");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = child.kill().await;
    while let Ok(line) = line_rx.try_recv() {
        lines.push(line);
    }
    let overflow = "spec.analysis.stepWeight: 99999999999 is out of range";
    let forever = "spec.analysis.interval: duration \\\"180000000000m\\\" is too long";
    for problem in [overflow, forever] {
        let n = lines.iter().filter(|l| l.contains(problem)).count();
        assert_eq!(n, 1, "one log line for {problem}: {lines:#?}");
    }
    let longest = lines.iter().map(String::len).max().unwrap_or_default();
    assert!(longest < 4096, "a log line of {longest} bytes");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("hunter2") || l.contains("xxxxxxxx")),
        "an object was dumped into the log"
    );
}

/// Without the CRDs flaggerd stops at once with the error that says how to install them,
/// instead of watching nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_crds_the_binary_exits_saying_how_to_install_them() {
    let sim = kube_sim::KubeSim::start().await.expect("kube-sim");
    let kubeconfig = sim.kubeconfig_path().display().to_string();
    let port = free_port().to_string();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_flaggerd"))
        .args(["-kubeconfig", &kubeconfig, "-port", &port])
        .args([
            "-mesh-provider",
            "kubernetes",
            "-enable-leader-election=false",
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("flaggerd exits within 30s")
        .expect("flaggerd runs");
    assert!(!out.status.success(), "flaggerd must fail: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "the CRD canaries.flagger.app is not installed (the API server answers 404 for canaries); install it with: kubectl apply -k deploy/crds"
        ),
        "{stderr}"
    );
}
