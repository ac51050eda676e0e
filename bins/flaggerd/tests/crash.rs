//! Crash test: the flaggerd process is killed (SIGKILL) right after each side effect of a
//! whole release and started again, for a promotion and for a rollback with confirm-rollout,
//! pre-rollout, rollout, confirm-promotion, post-rollout and rollback webhooks, an
//! `-event-webhook` and a Slack AlertProvider. The webhook receivers, the event list and the
//! alert receiver must see each step's effect exactly once and in order, and the end state
//! must equal a run without kills.
//!
//! flaggerd stops itself at its crash points (`FLAGGERD_TEST_STOP_FILE`, see
//! canary-controller's crashpoints.rs) and the test kills it there: `durable` points follow
//! each recorded step and effect, `window` points fall between an outside call and its
//! record, where a kill repeats the call with the same `Idempotency-Key`.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use canary_api::Canary;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

#[path = "support/cluster.rs"]
mod support;
use support::{deployment, kube_sim, set_image};

/// One request a receiver got.
#[derive(Clone, Debug, PartialEq)]
struct Call {
    path: String,
    key: String,
    body: Value,
}

#[derive(Default)]
struct Received {
    calls: Mutex<Vec<Call>>,
    answers: Mutex<BTreeMap<String, StatusCode>>,
    /// Answer the rollback hook with 200 once this many rollout calls (distinct keys) came.
    rollback_after: Option<usize>,
}

impl Received {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

async fn receive(
    State(r): State<Arc<Received>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut calls = r.calls.lock().expect("calls");
    calls.push(Call {
        path: path.clone(),
        key: key.clone(),
        body,
    });
    // A receiver that keys on Idempotency-Key answers a repeat as it answered the first.
    let mut answers = r.answers.lock().expect("answers");
    if let Some(answer) = answers.get(&key) {
        return *answer;
    }
    let rollouts = distinct(&calls, "rollout").len();
    let answer = match (path.as_str(), r.rollback_after) {
        ("rollback", Some(n)) if rollouts >= n => StatusCode::OK,
        ("rollback", _) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    if !key.is_empty() {
        answers.insert(key, answer);
    }
    answer
}

/// The calls to `path`, first of each key only.
fn distinct(calls: &[Call], path: &str) -> Vec<Call> {
    let mut seen = std::collections::BTreeSet::new();
    calls
        .iter()
        .filter(|c| c.path == path)
        .filter(|c| c.key.is_empty() || seen.insert(c.key.clone()))
        .cloned()
        .collect()
}

async fn receiver(rollback_after: Option<usize>) -> (String, Arc<Received>) {
    let state = Arc::new(Received {
        rollback_after,
        ..Default::default()
    });
    let app = Router::new()
        .route("/{path}", post(receive))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), state)
}

fn canary(base: &str) -> Value {
    let hook = |name: &str, kind: &str| json!({"name": name, "type": kind, "url": format!("{base}/{kind}"), "timeout": "5s"});
    json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "provider": "kubernetes",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {
                "interval": "1s", "threshold": 2, "iterations": 3,
                "webhooks": [
                    hook("approve-rollout", "confirm-rollout"),
                    hook("acceptance", "pre-rollout"),
                    hook("load", "rollout"),
                    hook("approve-promotion", "confirm-promotion"),
                    hook("notify", "post-rollout"),
                    hook("abort", "rollback"),
                ],
                "alerts": [{"name": "on-call", "severity": "info", "providerRef": {"name": "slack"}}],
            },
        },
    })
}

/// A kube-sim cluster with the CRDs, podinfo, the canary and the Slack AlertProvider.
async fn cluster(base: &str) -> (kube_sim::KubeSim, kube::Client) {
    let (sim, client) = kube_sim().await;
    deployment(&client, "podinfo", 1).await;
    let provider: canary_api::AlertProvider = serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "AlertProvider",
        "metadata": {"name": "slack", "namespace": "test"},
        "spec": {"type": "slack", "channel": "general", "address": format!("{base}/slack")},
    }))
    .expect("provider");
    Api::<canary_api::AlertProvider>::namespaced(client.clone(), "test")
        .create(&PostParams::default(), &provider)
        .await
        .expect("provider");
    let c: Canary = serde_json::from_value(canary(base)).expect("canary");
    Api::<Canary>::namespaced(client.clone(), "test")
        .create(&PostParams::default(), &c)
        .await
        .expect("canary");
    (sim, client)
}

/// How the runs kill flaggerd.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kills {
    Never,
    Durable,
    Window,
}

/// flaggerd as a process, restarted whenever it stops at a crash point.
struct Flaggerd {
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<tokio::process::Child>,
    stopped: tokio::sync::mpsc::UnboundedReceiver<()>,
    stop_tx: tokio::sync::mpsc::UnboundedSender<()>,
    restarts: usize,
}

impl Flaggerd {
    fn new(kubeconfig: &str, base: &str, kills: Kills, dir: &std::path::Path) -> Self {
        let args = [
            "-kubeconfig",
            kubeconfig,
            "-mesh-provider",
            "kubernetes",
            "-min-analysis-interval",
            "1s",
            "-port",
            "0",
            "-log-level",
            "info",
            "-event-webhook",
            &format!("{base}/event"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut env = Vec::new();
        if kills != Kills::Never {
            env.push((
                "FLAGGERD_TEST_STOP_FILE".to_string(),
                dir.join("points").display().to_string(),
            ));
            let at = if kills == Kills::Window {
                "window"
            } else {
                "durable"
            };
            env.push(("FLAGGERD_TEST_STOP_AT".to_string(), at.to_string()));
        }
        let (stop_tx, stopped) = tokio::sync::mpsc::unbounded_channel();
        Flaggerd {
            args,
            env,
            child: None,
            stopped,
            stop_tx,
            restarts: 0,
        }
    }

    fn start(&mut self) {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_flaggerd"))
            .args(&self.args)
            .envs(self.env.iter().cloned())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("flaggerd starts");
        let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
        let tx = self.stop_tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("\"msg\":\"test stop point reached\"") {
                    let _ = tx.send(());
                }
                if line.contains("panicked") || line.contains("flaggerd bug") {
                    eprintln!("flaggerd: {line}");
                }
            }
        });
        self.child = Some(child);
    }

    /// SIGKILL, then a new process.
    async fn kill_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        self.restarts += 1;
        self.start();
    }

    /// Runs until `done` holds and no stop point came for `quiet`, restarting at each stop.
    async fn run_until(&mut self, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        let quiet = Duration::from_secs(3);
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the release did not end in {limit:?} ({} restarts)",
                self.restarts
            );
            match tokio::time::timeout(quiet, self.stopped.recv()).await {
                Ok(Some(())) => self.kill_and_restart().await,
                _ if done().await => return,
                _ => {}
            }
        }
    }

    async fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// What a release left behind, to compare runs.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// Webhook calls in order (first of each key), by type.
    hooks: Vec<String>,
    /// Event messages with their counts, without the waits whose number depends on timing.
    events: BTreeMap<String, i32>,
    /// Alert texts in order.
    alerts: Vec<String>,
    /// Phase, failed checks, primary image, target replicas.
    state: (String, i64, String, i64),
}

async fn outcome(client: &kube::Client, received: &Received) -> Outcome {
    let calls = received.calls();
    let mut seen = std::collections::BTreeSet::new();
    let hooks = calls
        .iter()
        .filter(|c| !matches!(c.path.as_str(), "slack" | "event"))
        .filter(|c| seen.insert(c.key.clone()))
        .map(|c| c.path.clone())
        .collect();
    let alerts = calls
        .iter()
        .filter(|c| c.path == "slack")
        .map(|c| {
            c.body["attachments"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let events: Api<Event> = Api::namespaced(client.clone(), "test");
    let events = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.kind.as_deref() == Some("Canary"))
        .filter_map(|e| Some((e.message?, e.count.unwrap_or(1))))
        .filter(|(m, _)| !m.starts_with("Waiting for"))
        .collect();
    let canary = Api::<Canary>::namespaced(client.clone(), "test")
        .get("podinfo")
        .await
        .expect("canary");
    let status = canary.status.unwrap_or_default();
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let image = |d: &Deployment| {
        d.spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.containers[0].image.clone())
            .unwrap_or_default()
    };
    let primary = deploys.get("podinfo-primary").await.expect("primary");
    let target = deploys.get("podinfo").await.expect("target");
    Outcome {
        hooks,
        events,
        alerts,
        state: (
            status.phase.map(|p| p.to_string()).unwrap_or_default(),
            status.failed_checks as i64,
            image(&primary),
            target.spec.replicas.unwrap_or(-1) as i64,
        ),
    }
}

/// One release of the canary (a new image), with flaggerd killed as `kills` says.
async fn release(rollback_after: Option<usize>, kills: Kills) -> (Outcome, Vec<Call>, usize) {
    let (base, received) = receiver(rollback_after).await;
    let (sim, client) = cluster(&base).await;
    let dir = std::env::temp_dir().join(format!(
        "flaggerd-crash-{}-{:?}-{:?}",
        std::process::id(),
        kills,
        rollback_after
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let kubeconfig = sim.kubeconfig_path().display().to_string();
    let mut flaggerd = Flaggerd::new(&kubeconfig, &base, kills, &dir);
    flaggerd.start();
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    let phase = |want: &'static str| {
        let canaries = canaries.clone();
        async move || {
            canaries
                .get("podinfo")
                .await
                .ok()
                .and_then(|c| c.status?.phase)
                .is_some_and(|p| p.as_str() == want)
        }
    };
    flaggerd
        .run_until(Duration::from_secs(120), phase("Initialized"))
        .await;
    set_image(&client, "podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1").await;
    let end = if rollback_after.is_some() {
        "Failed"
    } else {
        "Succeeded"
    };
    flaggerd
        .run_until(Duration::from_secs(300), phase(end))
        .await;
    let restarts = flaggerd.restarts;
    flaggerd.stop().await;
    let out = outcome(&client, &received).await;
    let _ = std::fs::remove_dir_all(&dir);
    (out, received.calls(), restarts)
}

/// Every repeated call repeats an earlier one exactly: same key, same body.
fn repeats_are_exact(calls: &[Call]) -> usize {
    let mut first: BTreeMap<String, Value> = BTreeMap::new();
    let mut repeats = 0;
    for c in calls.iter().filter(|c| c.path != "slack") {
        assert!(
            !c.key.is_empty(),
            "{} call without an idempotency key",
            c.path
        );
        match first.get(&c.key) {
            Some(body) => {
                repeats += 1;
                assert_eq!(body, &c.body, "a repeat of {} changed its body", c.key);
            }
            None => {
                first.insert(c.key.clone(), c.body.clone());
            }
        }
    }
    repeats
}

fn no_repeats(calls: &[Call]) {
    let mut keys = std::collections::BTreeSet::new();
    for c in calls.iter().filter(|c| c.path != "slack") {
        assert!(
            keys.insert(c.key.clone()),
            "{} was called twice: {}",
            c.path,
            c.key
        );
    }
}

async fn sweep(rollback_after: Option<usize>) {
    let (reference, calls, _) = release(rollback_after, Kills::Never).await;
    no_repeats(&calls);
    assert!(
        reference.hooks.contains(&"post-rollout".to_string()),
        "{reference:#?}"
    );
    assert!(!reference.alerts.is_empty(), "{reference:#?}");

    let (killed, calls, restarts) = release(rollback_after, Kills::Durable).await;
    eprintln!("durable sweep: {restarts} kills");
    assert!(restarts >= 20, "only {restarts} kills");
    no_repeats(&calls);
    assert_eq!(killed, reference, "killed after each effect vs not killed");

    let (windowed, calls, restarts) = release(rollback_after, Kills::Window).await;
    eprintln!("window sweep: {restarts} kills");
    assert!(restarts >= 5, "only {restarts} kills");
    let repeats = repeats_are_exact(&calls);
    assert!(repeats >= 5, "only {repeats} repeated calls");
    // Alerts cannot carry a key: a kill in their window may send one twice, identically.
    let mut distinct_alerts = windowed.alerts.clone();
    distinct_alerts.dedup();
    assert_eq!(distinct_alerts, reference.alerts);
    assert_eq!(
        (&windowed.hooks, &windowed.events, &windowed.state),
        (&reference.hooks, &reference.events, &reference.state),
        "killed between each call and its record vs not killed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_flaggerd_after_any_effect_of_a_promotion_repeats_and_loses_nothing() {
    sweep(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_flaggerd_after_any_effect_of_a_rollback_repeats_and_loses_nothing() {
    sweep(Some(2)).await;
}
