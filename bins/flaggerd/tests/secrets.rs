//! No secret value reaches a log line, an event or a canary's status: the test plants known
//! values in every Secret flaggerd reads (a tracked config Secret, MetricTemplate basic and
//! bearer credentials, an AlertProvider's address and token) and in the global notifier's
//! and event webhook's settings, makes every one of them be used and fail (Prometheus
//! refuses the credentials, nothing listens at the hooks), then searches flaggerd's debug
//! log, the events and the canaries for each value, as written and base64-encoded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use canary_api::Canary;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[path = "support/cluster.rs"]
mod support;
use support::{free_port, kube_sim, reaches};

const PLANTED: [&str; 10] = [
    "PLANTED-CONFIG-VALUE-7f3a",
    "PLANTED-BASIC-USER-19cd",
    "PLANTED-BASIC-PASS-b20e",
    "PLANTED-BEARER-TOKEN-55aa",
    "PLANTED-ALERT-HOOK-0c41",
    "PLANTED-ALERT-TOKEN-e9d2",
    "PLANTED-GLOBAL-HOOK-7711",
    "PLANTED-GLOBAL-TOKEN-3b8f",
    "PLANTED-EVENT-HOOK-a6c0",
    "PLANTED-PROXY-PASS-4e2d",
];

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A Prometheus that refuses every query, recording the Authorization headers it saw.
async fn refusing_prometheus(seen: Arc<Mutex<Vec<String>>>) -> String {
    let app = axum::Router::new().fallback(move |h: axum::http::HeaderMap| {
        let seen = seen.clone();
        async move {
            if let Some(a) = h.get("authorization").and_then(|v| v.to_str().ok()) {
                seen.lock().expect("lock").push(a.to_string());
            }
            (
                axum::http::StatusCode::UNAUTHORIZED,
                r#"{"status":"error","errorType":"unauthorized","error":"bad credentials"}"#,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn create<K>(client: &kube::Client, value: serde_json::Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let obj: K = serde_json::from_value(value).expect("object");
    Api::<K>::namespaced(client.clone(), "test")
        .create(&PostParams::default(), &obj)
        .await
        .expect("create");
}

fn canary(name: &str, alerts: bool) -> serde_json::Value {
    let mut analysis = json!({
        "interval": "1s", "threshold": 2, "iterations": 2,
        "metrics": [
            {"name": "basic", "templateRef": {"name": "basic"}, "thresholdRange": {"max": 1}, "interval": "1m"},
            {"name": "bearer", "templateRef": {"name": "bearer"}, "thresholdRange": {"max": 1}, "interval": "1m"},
        ],
    });
    if alerts {
        analysis["alerts"] =
            json!([{"name": "on-call", "severity": "info", "providerRef": {"name": "slack"}}]);
    }
    json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": name, "namespace": "test"},
        "spec": {
            "provider": "kubernetes",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": {"port": 9898},
            "analysis": analysis,
        }
    })
}

fn deployment(name: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:6.0.0",
                    "envFrom": [{"secretRef": {"name": "podinfo-secret"}}]}]}}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_value_reaches_logs_events_or_status() {
    let (sim, client) = kube_sim().await;
    let seen = Arc::default();
    let prometheus = refusing_prometheus(Arc::clone(&seen)).await;
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let p = PLANTED;
    for (name, data) in [
        ("podinfo-secret", json!({"API_KEY": b64(p[0])})),
        (
            "prom-basic",
            json!({"username": b64(p[1]), "password": b64(p[2])}),
        ),
        ("prom-token", json!({"token": b64(p[3])})),
        (
            "slack-hook",
            json!({"address": b64(&format!("{nobody}/services/{}", p[4])), "token": b64(p[5])}),
        ),
    ] {
        create::<Secret>(&client, json!({"metadata": {"name": name}, "data": data})).await;
    }
    for (name, secret) in [("basic", "prom-basic"), ("bearer", "prom-token")] {
        create::<canary_api::MetricTemplate>(&client, json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
            "metadata": {"name": name},
            "spec": {"provider": {"type": "prometheus", "address": prometheus, "secretRef": {"name": secret}},
                "query": "sum(rate(http_requests_total{namespace=\"{{ namespace }}\"}[1m]))"}
        }))
        .await;
    }
    create::<canary_api::AlertProvider>(
        &client,
        json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "AlertProvider",
            "metadata": {"name": "slack"},
            "spec": {"type": "slack", "channel": "ops", "secretRef": {"name": "slack-hook"}}
        }),
    )
    .await;
    for name in ["podinfo", "other"] {
        create::<Deployment>(&client, deployment(name)).await;
    }
    create::<Canary>(&client, canary("podinfo", true)).await;
    create::<Canary>(&client, canary("other", false)).await;

    let kubeconfig = sim.kubeconfig_path().display().to_string();
    let global = format!("{nobody}/{}", p[6]);
    let proxy = format!("http://user:{}@127.0.0.1:{}", p[9], free_port());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_flaggerd"))
        .args(["-kubeconfig", &kubeconfig, "-mesh-provider", "kubernetes"])
        .args(["-min-analysis-interval", "1s", "-log-level", "debug"])
        .args(["-metrics-server", &prometheus, "-slack-url", &global])
        .args(["-slack-token", p[7], "-slack-proxy-url", &proxy])
        .args(["-port", &free_port().to_string()])
        .env("EVENT_WEBHOOK_URL", format!("{nobody}/{}", p[8]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("flaggerd starts");
    let phase = canary_core::Phase::Initialized;
    for name in ["podinfo", "other"] {
        assert!(
            reaches(&client, name, phase, Duration::from_secs(30)).await,
            "{name} initialized"
        );
    }
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:6.0.1"}]}}}});
    for name in ["podinfo", "other"] {
        Api::<Deployment>::namespaced(client.clone(), "test")
            .patch(name, &PatchParams::default(), &Patch::Strategic(&image))
            .await
            .expect("set image");
    }
    for name in ["podinfo", "other"] {
        assert!(
            reaches(
                &client,
                name,
                canary_core::Phase::Failed,
                Duration::from_secs(60)
            )
            .await,
            "{name} rolled back on the refused checks"
        );
    }
    // The alerts of the rollback are posted in the background: give them their try.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = child.start_kill();
    let out = child.wait_with_output().await.expect("output");
    let logs = String::from_utf8_lossy(&out.stderr).into_owned();

    // Every secret was used: the credentials reached Prometheus, the hooks were tried.
    let auth = seen.lock().expect("lock").clone();
    assert!(auth.iter().any(|a| a.starts_with("Basic ")), "{auth:?}");
    assert!(
        auth.contains(&format!("Bearer {}", p[3])),
        "the bearer token was sent: {auth:?}"
    );
    for tried in [
        "alert on-call (slack.test)",
        "global slack notifier",
        "event webhook",
    ] {
        assert!(
            logs.contains(tried),
            "flaggerd's log does not show a failed {tried}:\n{logs}"
        );
    }

    let events = Api::<Event>::namespaced(client.clone(), "test")
        .list(&ListParams::default())
        .await
        .expect("events");
    let canaries = Api::<Canary>::namespaced(client.clone(), "test")
        .list(&ListParams::default())
        .await
        .expect("canaries");
    let places = [
        ("flaggerd's log", logs),
        (
            "the events",
            serde_json::to_string(&events.items).expect("json"),
        ),
        (
            "the canaries",
            serde_json::to_string(&canaries.items).expect("json"),
        ),
    ];
    for secret in PLANTED {
        for (place, text) in &places {
            for form in [secret.to_string(), b64(secret)] {
                assert!(!text.contains(&form), "{form} ({secret}) is in {place}");
            }
        }
    }
    let _ = Api::<Secret>::namespaced(client, "test")
        .get("podinfo-secret-primary")
        .await
        .expect("the tracked Secret was copied (and so read)");
}
