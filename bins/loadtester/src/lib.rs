//! The loadtester: a webhook receiver compatible with flagger-loadtester.
//!
//! `POST /` takes Flagger's webhook payload and runs the task its metadata names: `cmd` (the
//! default: `sh -c`, in the background, one copy per canary and command at a time), `bash`
//! (blocking: 200 on exit 0, else 500 with the output) or `kubectl`. `/gate/*` and
//! `/rollback/*` are the manual gates. Beyond Flagger's: a bound on background commands,
//! output truncated in logs, a switch refusing commands for gate-only clusters, gates kept
//! in a state file across restarts, and tasks run once per `Idempotency-Key`: flaggerd
//! repeats a call with the same key when it restarted before recording the first, and the
//! repeat gets the first call's answer instead of a second run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::{Mutex, Semaphore};

/// How the loadtester runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Port to listen on (127.0.0.1 in tests, all interfaces in a cluster).
    pub address: String,
    /// Longest a command may run.
    pub timeout: Duration,
    /// Only canaries whose namespace matches are served (403 otherwise).
    pub namespace_pattern: Option<String>,
    /// Background commands running at once; more wait.
    pub max_background: usize,
    /// Refuse `cmd`, `bash`, `kubectl`, `helm` and `helmv3` tasks (gates only).
    pub commands_disabled: bool,
    /// Where gates are kept across restarts.
    pub gate_state: Option<PathBuf>,
    /// Output kept in logs, in bytes.
    pub log_output_limit: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            address: "0.0.0.0:9090".into(),
            timeout: Duration::from_secs(3600),
            namespace_pattern: None,
            max_background: 16,
            commands_disabled: false,
            gate_state: None,
            log_output_limit: 2048,
        }
    }
}

#[derive(Deserialize, Default)]
struct Payload {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// How long an answer is kept for a repeat of its call.
const ANSWER_TTL: Duration = Duration::from_secs(3600);
/// Answers kept at most; the oldest go first.
const MAX_ANSWERS: usize = 10_000;

/// The answer of a task, once it is known.
type Answer = tokio::sync::watch::Receiver<Option<(StatusCode, String)>>;

struct App {
    config: Config,
    /// `-namespace-regexp`, compiled.
    namespaces: Option<regex::Regex>,
    /// Answers by `Idempotency-Key`, with the time they were asked.
    answers: Mutex<HashMap<String, (tokio::time::Instant, Answer)>>,
    deduplicated: AtomicU64,
    running: Mutex<BTreeSet<String>>,
    slots: Arc<Semaphore>,
    gates: Mutex<BTreeSet<String>>,
    started: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
}

/// Serves until the listener fails.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.address).await?;
    tracing::info!(address = %config.address, "Starting load tester");
    serve(listener, config).await
}

/// Serves on an existing listener.
pub async fn serve(listener: tokio::net::TcpListener, config: Config) -> anyhow::Result<()> {
    let gates = match &config.gate_state {
        Some(path) => std::fs::read_to_string(path)
            .map(|t| t.lines().map(String::from).collect())
            .unwrap_or_default(),
        None => BTreeSet::new(),
    };
    let namespaces = config
        .namespace_pattern
        .as_deref()
        .map(namespace_regex)
        .transpose()?;
    let app = Arc::new(App {
        namespaces,
        slots: Arc::new(Semaphore::new(config.max_background.max(1))),
        config,
        answers: Mutex::new(HashMap::new()),
        deduplicated: AtomicU64::new(0),
        running: Mutex::new(BTreeSet::new()),
        gates: Mutex::new(gates),
        started: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let router = Router::new()
        .route("/", post(task))
        .route("/healthz", get(|| async { "OK" }))
        .route("/metrics", get(metrics))
        .route(
            "/gate/approve",
            post(|| async { (StatusCode::OK, "Approved") })
                .get(|| async { (StatusCode::OK, "Approved") }),
        )
        .route(
            "/gate/halt",
            post(|| async { (StatusCode::FORBIDDEN, "Forbidden") })
                .get(|| async { (StatusCode::FORBIDDEN, "Forbidden") }),
        )
        .route("/gate/check", post(|s, b| gate(s, b, "gate", Op::Check)))
        .route("/gate/open", post(|s, b| gate(s, b, "gate", Op::Open)))
        .route("/gate/close", post(|s, b| gate(s, b, "gate", Op::Close)))
        .route(
            "/rollback/check",
            post(|s, b| gate(s, b, "rollback", Op::Check)),
        )
        .route(
            "/rollback/open",
            post(|s, b| gate(s, b, "rollback", Op::Open)),
        )
        .route(
            "/rollback/close",
            post(|s, b| gate(s, b, "rollback", Op::Close)),
        )
        .with_state(app);
    axum::serve(listener, router).await?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Op {
    Check,
    Open,
    Close,
}

fn parse(body: &Bytes) -> Result<Payload, (StatusCode, String)> {
    serde_json::from_slice(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("reading the request body failed: {e}"),
        )
    })
}

fn allowed(app: &App, ns: &str) -> bool {
    app.namespaces.as_ref().is_none_or(|r| r.is_match(ns))
}

/// `-namespace-regexp` as Go's regexp reads it (RE2 syntax, unanchored unless `^`/`$`).
pub fn namespace_regex(pattern: &str) -> anyhow::Result<regex::Regex> {
    regex::Regex::new(pattern).map_err(|e| {
        anyhow::anyhow!("-namespace-regexp {pattern:?} is not a regular expression: {e}")
    })
}

async fn gate(
    State(app): State<Arc<App>>,
    body: Bytes,
    prefix: &str,
    op: Op,
) -> (StatusCode, String) {
    let p = match parse(&body) {
        Ok(p) => p,
        Err(e) => return e,
    };
    if !allowed(&app, &p.namespace) {
        return (
            StatusCode::FORBIDDEN,
            format!("namespace {} is not allowed", p.namespace),
        );
    }
    let key = format!("{prefix}.{}.{}", p.name, p.namespace);
    let mut gates = app.gates.lock().await;
    let answer = match op {
        Op::Check if gates.contains(&key) => (StatusCode::OK, "Approved".to_string()),
        Op::Check => (StatusCode::FORBIDDEN, "Forbidden".to_string()),
        Op::Open => {
            gates.insert(key.clone());
            tracing::info!("{key} gate opened");
            (StatusCode::ACCEPTED, "Gate opened".to_string())
        }
        Op::Close => {
            gates.remove(&key);
            tracing::info!("{key} gate closed");
            (StatusCode::ACCEPTED, "Gate closed".to_string())
        }
    };
    if !matches!(op, Op::Check)
        && let Some(path) = &app.config.gate_state
    {
        let text: String = gates.iter().map(|g| format!("{g}\n")).collect();
        if let Err(e) = std::fs::write(path, text) {
            tracing::error!("cannot save gates to {}: {e}", path.display());
        }
    }
    answer
}

/// `POST /`: runs the task once per `Idempotency-Key`; a repeat waits for and returns the
/// first call's answer.
async fn task(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(key) = key else {
        return run_task(&app, &body).await;
    };
    let (sender, mut answer) = {
        let mut answers = app.answers.lock().await;
        if let Some((_, answer)) = answers.get(&key) {
            (None, answer.clone())
        } else {
            let now = tokio::time::Instant::now();
            answers.retain(|_, (at, _)| now.duration_since(*at) < ANSWER_TTL);
            if answers.len() >= MAX_ANSWERS
                && let Some(oldest) = answers
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
            {
                answers.remove(&oldest);
            }
            let (tx, rx) = tokio::sync::watch::channel(None);
            answers.insert(key.clone(), (now, rx.clone()));
            (Some(tx), rx)
        }
    };
    match sender {
        // The task runs apart from the request: if the caller goes away (flaggerd stopped),
        // the task still finishes and its repeat gets the answer.
        Some(sender) => {
            let app = app.clone();
            tokio::spawn(async move {
                let result = run_task(&app, &body).await;
                let _ = sender.send(Some(result));
            });
        }
        None => {
            app.deduplicated.fetch_add(1, Ordering::Relaxed);
            tracing::info!(key = %key, "repeated call: answering with the first call's result");
        }
    }
    match answer.wait_for(Option::is_some).await {
        Ok(a) => a
            .clone()
            .unwrap_or((StatusCode::INTERNAL_SERVER_ERROR, String::new())),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the task ended without an answer".into(),
        ),
    }
}

async fn run_task(app: &Arc<App>, body: &Bytes) -> (StatusCode, String) {
    let p = match parse(body) {
        Ok(p) => p,
        Err(e) => return e,
    };
    if p.metadata.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "metadata not found in payload".into(),
        );
    }
    if !allowed(app, &p.namespace) {
        return (
            StatusCode::FORBIDDEN,
            format!("namespace {} is not allowed", p.namespace),
        );
    }
    let kind = p
        .metadata
        .get("type")
        .map_or("cmd", String::as_str)
        .to_string();
    let cmd = p.metadata.get("cmd").cloned().unwrap_or_default();
    let canary = format!("{}.{}", p.name, p.namespace);
    if !matches!(
        kind.as_str(),
        "cmd" | "bash" | "kubectl" | "helm" | "helmv3"
    ) {
        return (StatusCode::BAD_REQUEST, format!("unknown task type {kind}"));
    }
    if app.config.commands_disabled {
        return (
            StatusCode::FORBIDDEN,
            format!("{kind} tasks are disabled on this loadtester"),
        );
    }
    if cmd.trim().is_empty() {
        return (StatusCode::BAD_REQUEST, "cmd not found in metadata".into());
    }
    let log_output = p.metadata.get("logCmdOutput").is_some_and(|v| v == "true");
    let return_output = p
        .metadata
        .get("returnCmdOutput")
        .is_some_and(|v| v == "true");
    match kind.as_str() {
        "cmd" => {
            let key = format!("{canary} {cmd}");
            {
                let mut running = app.running.lock().await;
                if !running.insert(key.clone()) {
                    app.skipped.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(canary = %canary, "command skipped {cmd} is already running");
                    return (StatusCode::ACCEPTED, "command is already running".into());
                }
            }
            app.started.fetch_add(1, Ordering::Relaxed);
            let app2 = app.clone();
            tokio::spawn(async move {
                let _slot = app2.slots.clone().acquire_owned().await;
                tracing::info!(canary = %canary, "command starting {cmd}");
                let out = execute("sh", &["-c", &cmd], app2.config.timeout).await;
                report(&app2, &canary, &cmd, &out, log_output);
                app2.running.lock().await.remove(&key);
            });
            (StatusCode::ACCEPTED, "OK".into())
        }
        _ => {
            app.started.fetch_add(1, Ordering::Relaxed);
            // kubectl, helm and helmv3 (both run helm, as Flagger's loadtester does) take
            // the command's words as arguments, without a shell.
            let program = match kind.as_str() {
                "bash" => "bash",
                "kubectl" => "kubectl",
                _ => "helm",
            };
            let out = if kind == "bash" {
                execute("bash", &["-c", &cmd], app.config.timeout).await
            } else {
                let args: Vec<&str> = cmd.split_whitespace().collect();
                execute(program, &args, app.config.timeout).await
            };
            // Flagger logs the output of helm tasks always.
            report(app, &canary, &cmd, &out, log_output || program == "helm");
            match out {
                Outcome::Done { code: 0, output } => (
                    StatusCode::OK,
                    if return_output { output } else { "OK".into() },
                ),
                Outcome::Done { output, .. } => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("command {cmd} failed: {output}"),
                ),
                Outcome::TimedOut(output) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "command {cmd} timed out after {:?} and was killed: {output}",
                        app.config.timeout
                    ),
                ),
                Outcome::NotStarted(e) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("command {cmd} could not start: {e}"),
                ),
            }
        }
    }
}

enum Outcome {
    Done { code: i32, output: String },
    TimedOut(String),
    NotStarted(String),
}

async fn execute(program: &str, args: &[&str], timeout: Duration) -> Outcome {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => return Outcome::NotStarted(e.to_string()),
    };
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
            output.push_str(&String::from_utf8_lossy(&out.stderr));
            Outcome::Done {
                code: out.status.code().unwrap_or(-1),
                output,
            }
        }
        Ok(Err(e)) => Outcome::NotStarted(e.to_string()),
        // Dropping the future kills the child (kill_on_drop).
        Err(_) => Outcome::TimedOut(String::new()),
    }
}

fn report(app: &App, canary: &str, cmd: &str, out: &Outcome, log_output: bool) {
    let limit = app.config.log_output_limit;
    let cut = |s: &str| {
        if s.len() > limit {
            format!(
                "{}... ({} bytes cut)",
                &s[..floor(s, limit)],
                s.len() - floor(s, limit)
            )
        } else {
            s.to_string()
        }
    };
    match out {
        Outcome::Done { code: 0, output } if log_output => {
            tracing::info!(canary = %canary, "command finished {cmd}: {}", cut(output))
        }
        Outcome::Done { code: 0, .. } => tracing::info!(canary = %canary, "command finished {cmd}"),
        Outcome::Done { code, output } => {
            app.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(canary = %canary, "command failed {cmd}: exit {code}: {}", cut(output));
        }
        Outcome::TimedOut(_) => {
            app.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(canary = %canary, "command timed out and was killed {cmd}");
        }
        Outcome::NotStarted(e) => {
            app.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(canary = %canary, "command could not start {cmd}: {e}");
        }
    }
}

fn floor(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

async fn metrics(State(app): State<Arc<App>>) -> String {
    let running = app.running.lock().await.len();
    format!(
        "# TYPE loadtester_tasks_started_total counter\nloadtester_tasks_started_total {}\n# TYPE loadtester_tasks_skipped_total counter\nloadtester_tasks_skipped_total {}\n# TYPE loadtester_tasks_failed_total counter\nloadtester_tasks_failed_total {}\n# TYPE loadtester_tasks_running gauge\nloadtester_tasks_running {running}\n# TYPE loadtester_tasks_deduplicated_total counter\nloadtester_tasks_deduplicated_total {}\n",
        app.started.load(Ordering::Relaxed),
        app.skipped.load(Ordering::Relaxed),
        app.failed.load(Ordering::Relaxed),
        app.deduplicated.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_patterns_are_go_regular_expressions() {
        let matches = |p: &str, ns: &str| namespace_regex(p).expect("regex").is_match(ns);
        assert!(matches("^test$", "test"));
        assert!(!matches("^test$", "test2"));
        assert!(matches("^(team-a|team-b)$", "team-b"));
        assert!(!matches("^(team-a|team-b)$", "team-c"));
        assert!(matches("^team-[a-z]+$", "team-x"));
        assert!(!matches("^team-.+$", "team-"));
        assert!(matches("dev", "my-dev-ns"));
        let e = namespace_regex("^(test").expect_err("unclosed group");
        assert!(
            e.to_string().starts_with("-namespace-regexp \"^(test\""),
            "{e}"
        );
    }
}
