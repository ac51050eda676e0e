//! The loadtester binary on loopback, receiving the seeds' webhook payloads.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

struct Tester {
    base: String,
    _child: tokio::process::Child,
}

/// A free port never handed out before in this test binary: tests run in parallel, and
/// two of them given the same port would talk to one another's loadtester.
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

async fn start(extra: &[&str]) -> Tester {
    // Another program may take the port before the loadtester binds it; it then exits, and
    // is started again on another port.
    for _ in 0..5 {
        if let Some(t) = start_on(free_port(), extra).await {
            return t;
        }
    }
    panic!("the loadtester could not bind a port in 5 attempts");
}

async fn start_on(port: u16, extra: &[&str]) -> Option<Tester> {
    let mut args = vec!["-listen-address", "127.0.0.1", "-log-level", "info"];
    let port_s = port.to_string();
    args.extend(["-port", &port_s]);
    args.extend(extra);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadtester"))
        .args(&args)
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("loadtester starts");
    let base = format!("http://127.0.0.1:{port}");
    // A debug binary may take seconds to start on a loaded machine.
    for _ in 0..500 {
        if child.try_wait().ok().flatten().is_some() {
            return None;
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            // The one listening must be ours: one that lost the port exits at once.
            tokio::time::sleep(Duration::from_millis(100)).await;
            if child.try_wait().ok().flatten().is_some() {
                return None;
            }
            return Some(Tester {
                base,
                _child: child,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the loadtester did not listen on {port} within 10 s");
}

/// mesh-sim's podinfo-like backend (`POST /token` answers a JSON token).
async fn podinfo() -> String {
    let addr = mesh_sim::podinfo::spawn(
        "podinfo-7d9f8b6c5-x2k4m",
        "ghcr.io/stefanprodan/podinfo:6.0.0",
    )
    .await
    .expect("podinfo");
    format!("http://{addr}")
}

async fn post(base: &str, path: &str, payload: Value) -> (u16, String) {
    send(base, path, None, payload).await
}

async fn send(base: &str, path: &str, key: Option<&str>, payload: Value) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .body(payload.to_string());
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let resp = request.send().await.expect("post");
    let code = resp.status().as_u16();
    (code, resp.text().await.unwrap_or_default())
}

fn payload(ns: &str, metadata: Value) -> Value {
    json!({"name": "podinfo", "namespace": ns, "phase": "Progressing", "checksum": "abc", "metadata": metadata})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_acceptance_test_passes_and_fails_as_bash_says() {
    let app = podinfo().await;
    let t = start(&[]).await;
    let ok = payload(
        "test",
        json!({"type": "bash", "cmd": format!("curl -sd 'test' {app}/token | grep token")}),
    );
    assert_eq!(post(&t.base, "/", ok).await, (200, "OK".to_string()));
    let fail = payload(
        "test",
        json!({"type": "bash", "cmd": format!("curl -sd 'test' {app}/token | grep nothing-like-this")}),
    );
    let (code, body) = post(&t.base, "/", fail).await;
    assert_eq!(code, 500);
    assert!(body.starts_with("command curl -sd 'test'"), "{body}");
    let out = payload(
        "test",
        json!({"type": "bash", "cmd": format!("curl -sd 'test' {app}/token"), "returnCmdOutput": "true"}),
    );
    let (code, body) = post(&t.base, "/", out).await;
    assert_eq!(code, 200);
    assert!(body.contains("eyJhbGciOi"), "{body}");
    assert_eq!(
        post(&t.base, "/", payload("test", json!({}))).await,
        (400, "metadata not found in payload".to_string())
    );
    let (code, body) = post(
        &t.base,
        "/",
        payload("test", json!({"type": "ngrinder-x", "cmd": "x"})),
    )
    .await;
    assert_eq!((code, body.as_str()), (400, "unknown task type ngrinder-x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_test_posted_twice_runs_once() {
    assert!(
        std::process::Command::new("hey").arg("-h").output().is_ok(),
        "hey is not installed: sudo apt-get install -y hey (.ci/run does it)"
    );
    let app = podinfo().await;
    let t = start(&[]).await;
    let load = payload(
        "test",
        json!({"cmd": format!("hey -z 2s -q 10 -c 2 {app}/")}),
    );
    assert_eq!(post(&t.base, "/", load.clone()).await.0, 202);
    assert_eq!(post(&t.base, "/", load.clone()).await.0, 202);
    let metrics = reqwest::get(format!("{}/metrics", t.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("loadtester_tasks_started_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("loadtester_tasks_skipped_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("loadtester_tasks_running 1\n"),
        "{metrics}"
    );
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let metrics = reqwest::get(format!("{}/metrics", t.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("loadtester_tasks_running 0\n"),
        "hey ended by itself: {metrics}"
    );
    assert_eq!(post(&t.base, "/", load).await.0, 202, "and can run again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_open_close_halt_and_check_as_flaggers() {
    let state = std::env::temp_dir().join(format!("loadtester-gates-{}", std::process::id()));
    let _ = std::fs::remove_file(&state);
    let state_s = state.display().to_string();
    let t = start(&["-gate-state", &state_s]).await;
    let p = payload("test", json!({}));
    assert_eq!(
        post(&t.base, "/gate/check", p.clone()).await,
        (403, "Forbidden".to_string()),
        "closed by default"
    );
    assert_eq!(
        post(&t.base, "/gate/open", p.clone()).await,
        (202, "Gate opened".to_string())
    );
    assert_eq!(
        post(&t.base, "/gate/check", p.clone()).await,
        (200, "Approved".to_string())
    );
    assert_eq!(post(&t.base, "/gate/approve", p.clone()).await.0, 200);
    assert_eq!(post(&t.base, "/gate/halt", p.clone()).await.0, 403);
    assert_eq!(post(&t.base, "/rollback/check", p.clone()).await.0, 403);
    assert_eq!(post(&t.base, "/rollback/open", p.clone()).await.0, 202);
    assert_eq!(post(&t.base, "/rollback/check", p.clone()).await.0, 200);
    // Gates survive a restart with a state file.
    drop(t);
    let t = start(&["-gate-state", &state_s]).await;
    assert_eq!(post(&t.base, "/gate/check", p.clone()).await.0, 200);
    assert_eq!(
        post(&t.base, "/gate/close", p.clone()).await,
        (202, "Gate closed".to_string())
    );
    assert_eq!(post(&t.base, "/gate/check", p).await.0, 403);
    let _ = std::fs::remove_file(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_past_the_timeout_is_killed_and_reported() {
    let t = start(&["-timeout", "1s"]).await;
    let started = std::time::Instant::now();
    let (code, body) = post(
        &t.base,
        "/",
        payload("test", json!({"type": "bash", "cmd": "sleep 5"})),
    )
    .await;
    assert_eq!(code, 500);
    assert!(body.contains("timed out after 1s and was killed"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_outside_the_regexp_are_refused_and_commands_can_be_disabled() {
    let t = start(&["-namespace-regexp", "^test$"]).await;
    let (code, body) = post(
        &t.base,
        "/",
        payload("prod", json!({"type": "bash", "cmd": "true"})),
    )
    .await;
    assert_eq!(
        (code, body.as_str()),
        (403, "namespace prod is not allowed")
    );
    assert_eq!(
        post(
            &t.base,
            "/",
            payload("test", json!({"type": "bash", "cmd": "true"}))
        )
        .await
        .0,
        200
    );
    let gated = start(&["-disable-commands"]).await;
    let (code, body) = post(
        &gated.base,
        "/",
        payload("test", json!({"type": "bash", "cmd": "true"})),
    )
    .await;
    assert_eq!(
        (code, body.as_str()),
        (403, "bash tasks are disabled on this loadtester")
    );
    assert_eq!(
        post(&gated.base, "/gate/approve", payload("test", json!({})))
            .await
            .0,
        200
    );
}

/// flaggerd repeats a call with the same key when it restarted before recording it: the
/// command runs once, and the repeat gets the first answer, even while it still runs or
/// after the first caller went away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_idempotency_key_runs_the_task_once() {
    let t = start(&[]).await;
    let dir = std::env::temp_dir().join(format!("loadtester-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let log = dir.join("runs");
    let cmd = format!("echo run >> {} && sleep 1 && echo done", log.display());
    let body = payload(
        "test",
        json!({"type": "bash", "cmd": cmd, "returnCmdOutput": "true"}),
    );
    // The first caller gives up after 200 ms, as a flaggerd killed mid-call would.
    let first = reqwest::Client::new()
        .post(format!("{}/", t.base))
        .header(
            "Idempotency-Key",
            "uid:2026-12-02T17:00:00.000000Z:pre-rollout:0",
        )
        .timeout(Duration::from_millis(200))
        .body(body.to_string())
        .send()
        .await;
    assert!(first.is_err(), "the first call is cut off");
    let (code, text) = send(
        &t.base,
        "/",
        Some("uid:2026-12-02T17:00:00.000000Z:pre-rollout:0"),
        body.clone(),
    )
    .await;
    assert_eq!((code, text.trim()), (200, "done"));
    let again = send(
        &t.base,
        "/",
        Some("uid:2026-12-02T17:00:00.000000Z:pre-rollout:0"),
        body.clone(),
    )
    .await;
    assert_eq!(again.0, 200);
    let runs = std::fs::read_to_string(&log).expect("log");
    assert_eq!(runs.lines().count(), 1, "the command ran once");
    // Another key is another call.
    let (code, _) = send(
        &t.base,
        "/",
        Some("uid:2026-12-02T17:00:05.000000Z:pre-rollout:0"),
        body,
    )
    .await;
    assert_eq!(code, 200);
    let runs = std::fs::read_to_string(&log).expect("log");
    assert_eq!(runs.lines().count(), 2);
    let metrics = reqwest::get(format!("{}/metrics", t.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("loadtester_tasks_deduplicated_total 2"),
        "{metrics}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
