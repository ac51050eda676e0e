//! `cargo xtask e2e [SCENARIO]...`: the seeds played for real on the local cluster
//! ([`crate::cluster`]): the `flaggerd` binary, the real `kubectl`, Debian's Prometheus
//! scraping mesh-sim, the loadtester running `hey` and `curl` through mesh-sim.
//!
//! Each scenario starts its own cluster, applies the seed's podinfo and Canary (with
//! `analysis.interval` shortened to [`INTERVAL`]; metric intervals, thresholds, steps,
//! webhooks and commands unchanged), plays the seed's commands, prints what a user sees
//! (events, `kubectl get canaries` rows, each metric check's query and value from flaggerd's
//! log) and checks that the events came in the seed's order. It prints PASS or FAIL with the
//! reason; on a failure, the event log and where the processes' logs are.

mod fidelity;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Seek};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cluster::{Binaries, Cluster, Flagger, Kind};

/// The analysis interval of every scenario (the seeds use 10 s to 1 m).
pub(crate) const INTERVAL: &str = "2s";
/// The longest a scenario waits for one phase.
const PHASE_TIMEOUT: Duration = Duration::from_secs(180);

const PODINFO: &str = include_str!("../e2e/podinfo.yaml");
const LOADTESTER: &str = include_str!("../e2e/loadtester.yaml");
const FIXTURES: &str = "crates/canary-core/tests/fixtures";

/// One scenario: its name, the seed it plays, flaggerd's namespace in that seed's install
/// guide, and its steps.
struct Scenario {
    name: &'static str,
    what: &'static str,
    flagger: &'static str,
    /// Needs Pods, image pulls and the kubelet API: only the `real` cluster has them.
    real_only: bool,
    run: fn(&mut Play<'_>) -> Result<()>,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "appmesh-000",
        flagger: "appmesh-system",
        real_only: false,
        what: "seed 000: App Mesh workshop, the mis-indented spec rejected, then a promotion and a failed release",
        run: appmesh_workshop,
    },
    Scenario {
        name: "appmesh-002",
        flagger: "appmesh-system",
        real_only: false,
        what: "seed 002: App Mesh v1beta2 automated promotion",
        run: appmesh_promotion,
    },
    Scenario {
        name: "appmesh-ab-header",
        flagger: "appmesh-system",
        real_only: false,
        what: "seed 002: App Mesh A/B testing, X-Canary header",
        run: |p| ab_testing(p, "002-appmesh-ab-header.yaml"),
    },
    Scenario {
        name: "appmesh-ab-cookie",
        flagger: "appmesh-system",
        real_only: false,
        what: "seed 002: App Mesh A/B testing, canary=insider cookie",
        run: |p| ab_testing(p, "002-appmesh-ab-cookie.yaml"),
    },
    Scenario {
        name: "linkerd-001",
        flagger: "linkerd",
        real_only: false,
        what: "seed 001: Linkerd (SMI TrafficSplit) promotion",
        run: linkerd,
    },
    Scenario {
        name: "istio-004",
        flagger: "istio-system",
        real_only: false,
        what: "seed 004: Istio promotion, then a rollback on HTTP 500s",
        run: istio_errors,
    },
    Scenario {
        name: "gatewayapi",
        flagger: "flagger-system",
        real_only: false,
        what: "seed 004's canary on Gateway API (an HTTPRoute attached to a Gateway) with the MetricTemplates of Flagger's guide on reporter=\"source\": promotion",
        run: fidelity::gateway_api,
    },
    Scenario {
        name: "services",
        flagger: "istio-system",
        real_only: false,
        what: "the user's apex Service adopted (selector, ports), Flux annotations, port discovery",
        run: fidelity::services,
    },
    Scenario {
        name: "istio-revert",
        flagger: "istio-system",
        real_only: false,
        what: "revertOnDeletion: the user's VirtualService taken over without ownership and restored intact",
        run: fidelity::revert,
    },
    Scenario {
        name: "daemonset-kubernetes",
        flagger: "flagger-system",
        real_only: false,
        what: "a DaemonSet canary on the kubernetes provider, its pre-rollout curl reaching the canary Service",
        run: fidelity::daemonset_kubernetes,
    },
    Scenario {
        name: "grpc",
        flagger: "istio-system",
        real_only: false,
        what: "gRPC webhooks: grpc_health_probe and ghz against podinfo's gRPC port through the mesh",
        run: fidelity::grpc,
    },
    Scenario {
        name: "loadtester-helm",
        flagger: "istio-system",
        real_only: false,
        what: "the loadtester's helm and helmv3 tasks as pre-rollout checks (helm built from xtask/tools)",
        run: fidelity::loadtester_helm,
    },
    Scenario {
        name: "helm-test",
        flagger: "istio-system",
        real_only: true,
        what: "Flagger's helm test pre-rollout check: the loadtester runs `helm test` on a release whose test Pod curls the canary",
        run: fidelity::helm_test,
    },
    Scenario {
        name: "istio-two-releases",
        flagger: "istio-system",
        real_only: false,
        what: "two releases in a row of one workload on Istio, both promoted",
        run: fidelity::two_releases,
    },
    Scenario {
        name: "istio-latency",
        flagger: "istio-system",
        real_only: false,
        what: "seeds 004 and 002: Istio rollback on latency (curl /delay/1)",
        run: istio_latency,
    },
    Scenario {
        name: "kubernetes-bluegreen",
        flagger: "flagger-system",
        real_only: false,
        what: "blue/green with the kubernetes provider (no mesh), iterations",
        run: blue_green,
    },
    Scenario {
        name: "configmap-trigger",
        flagger: "flagger-system",
        real_only: false,
        what: "a ConfigMap change triggers the analysis; the primary gets its own copy",
        run: configmap_trigger,
    },
    Scenario {
        name: "daemonset",
        flagger: "istio-system",
        real_only: true,
        what: "a DaemonSet target: its pods are the endpoints, the canary scaled down by a node selector",
        run: daemonset,
    },
    Scenario {
        name: "missing-image",
        flagger: "istio-system",
        real_only: true,
        what: "a release whose image does not exist: ImagePullBackOff, the progress deadline, a rollback",
        run: missing_image,
    },
    Scenario {
        name: "seed-commands",
        flagger: "istio-system",
        real_only: true,
        what: "the seeds' kubectl commands verbatim: get pods, logs deploy/flagger | jq, exec into the loadtester, port-forward to the gateway",
        run: seed_commands,
    },
];

/// Runs the named scenarios (all when none is named) on the cluster kind of `--cluster`
/// (`sim` by default).
pub(crate) fn run(kind: Kind, names: &[String]) -> Result<()> {
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| !SCENARIOS.iter().any(|s| s.name == n.as_str()))
        .collect();
    if !unknown.is_empty() {
        let all: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        bail!(
            "unknown scenario {unknown:?}; scenarios: {}",
            all.join(", ")
        );
    }
    require_programs(kind)?;
    let bin = crate::cluster::build(kind)?;
    let started = Instant::now();
    let mut results = Vec::new();
    for s in SCENARIOS
        .iter()
        .filter(|s| names.is_empty() || names.iter().any(|n| n == s.name))
    {
        println!("\n=== {} ({} cluster): {}", s.name, kind.name(), s.what);
        if s.real_only && kind != Kind::Real {
            println!("SKIP {}: it needs real Pods (--cluster real)", s.name);
            continue;
        }
        let t = Instant::now();
        let outcome = play(kind, &bin, s);
        let secs = t.elapsed().as_secs_f64();
        match &outcome {
            Ok(()) => println!("PASS {} ({secs:.1}s)", s.name),
            Err(e) => println!("FAIL {} ({secs:.1}s): {e:#}", s.name),
        }
        results.push((s.name, outcome.is_ok(), secs));
    }
    println!(
        "\ne2e summary, {} cluster ({:.0}s):",
        kind.name(),
        started.elapsed().as_secs_f64()
    );
    for (name, ok, secs) in &results {
        println!(
            "  {} {name} ({secs:.1}s)",
            if *ok { "PASS" } else { "FAIL" }
        );
    }
    let failed: Vec<&str> = results.iter().filter(|r| !r.1).map(|r| r.0).collect();
    if !failed.is_empty() {
        bail!("e2e scenarios failed: {}", failed.join(", "));
    }
    Ok(())
}

/// Fails, naming the Debian packages to install, when a program the cluster runs is missing.
pub(crate) fn require_programs(kind: Kind) -> Result<()> {
    let missing = crate::cluster::missing_programs(kind);
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
    bail!(
        "the local cluster needs {}; install with: sudo apt-get install -y {}",
        missing
            .iter()
            .map(|(p, _)| *p)
            .collect::<Vec<_>>()
            .join(", "),
        packages.join(" ")
    )
}

fn play(kind: Kind, bin: &Binaries, s: &Scenario) -> Result<()> {
    let flagger = Flagger {
        namespace: s.flagger,
        args: &[],
    };
    let mut cluster = Cluster::start(kind, bin, s.name, &flagger)?;
    let result = {
        let mut p = Play::new(&mut cluster);
        let result = (s.run)(&mut p);
        if result.is_err() {
            p.dump();
        }
        result
    };
    let dir = cluster.dir.clone();
    cluster.stop(result.is_err());
    if result.is_err() {
        println!("  logs: {}", dir.display());
    }
    result
}

/// A scenario in progress on one cluster: what has been printed, and the commands run in
/// the background (killed when the play ends).
pub(crate) struct Play<'c> {
    pub(crate) cluster: &'c mut Cluster,
    started: Instant,
    seen: BTreeMap<String, i64>,
    /// Event messages in the order they appeared.
    pub(crate) events: Vec<String>,
    /// Metric checks flaggerd logged: the metric and its value (None: no data or an error).
    pub(crate) checks: Vec<(String, Option<f64>)>,
    log_offset: u64,
    queries_shown: BTreeSet<String>,
    background: Vec<Child>,
    last_row: String,
    /// Print each metric check (the demo prints a summary instead).
    pub(crate) show_checks: bool,
    /// Print `kubectl get canaries` itself when the canary changes (the demo), rather than
    /// a compact row.
    pub(crate) real_rows: bool,
    header_shown: bool,
}

impl Drop for Play<'_> {
    fn drop(&mut self) {
        self.stop_background();
    }
}

/// What `kubectl get canary` shows of one canary.
#[derive(Clone, Debug, Default)]
pub(crate) struct Row {
    pub(crate) phase: String,
    pub(crate) weight: i64,
    pub(crate) failed: i64,
    pub(crate) iterations: i64,
}

impl<'c> Play<'c> {
    pub(crate) fn new(cluster: &'c mut Cluster) -> Play<'c> {
        Play {
            cluster,
            started: Instant::now(),
            seen: BTreeMap::new(),
            events: Vec::new(),
            checks: Vec::new(),
            log_offset: 0,
            queries_shown: BTreeSet::new(),
            background: Vec::new(),
            last_row: String::new(),
            show_checks: true,
            real_rows: false,
            header_shown: false,
        }
    }

    fn stamp(&self) -> String {
        format!("[{:>5.1}s]", self.started.elapsed().as_secs_f64())
    }

    /// Prints and runs a kubectl command as the user would type it.
    pub(crate) fn kubectl(&mut self, args: &[&str]) -> Result<String> {
        println!("$ kubectl {}", args.join(" "));
        let out = self.cluster.kubectl(args)?;
        for line in out.lines() {
            println!("  {line}");
        }
        Ok(out)
    }

    /// Creates the namespace, installs the load tester in it and applies podinfo (Deployment
    /// and HPA) into it, as the seeds do.
    pub(crate) fn podinfo(&mut self, ns: &str) -> Result<()> {
        self.kubectl(&["create", "namespace", ns])?;
        self.loadtester(ns)?;
        println!(
            "$ kubectl apply -f podinfo.yaml   # Deployment and HPA, as Flagger's kustomize/podinfo"
        );
        self.cluster
            .apply(&PODINFO.replace("namespace: test", &format!("namespace: {ns}")))?;
        Ok(())
    }

    /// Installs Istio's ingress gateway (Deployment and Service in istio-system), which
    /// `kubectl port-forward` reaches on the real cluster.
    pub(crate) fn istio_gateway(&mut self) -> Result<()> {
        println!("$ kubectl apply -f istio-ingressgateway.yaml   # as Istio's install creates it");
        self.cluster
            .apply(include_str!("../e2e/istio-gateway.yaml"))?;
        Ok(())
    }

    /// Installs the load tester in `ns`, as `kubectl apply -k .../kustomize/tester` does.
    pub(crate) fn loadtester(&mut self, ns: &str) -> Result<()> {
        println!(
            "$ kubectl apply -k https://github.com/fluxcd/flagger//kustomize/tester?ref=main   # as xtask/e2e/loadtester.yaml"
        );
        self.cluster.apply_in(ns, LOADTESTER)?;
        Ok(())
    }

    /// Applies a Canary with its analysis interval shortened, then waits for Initialized.
    pub(crate) fn canary(&mut self, yaml: &str, file: &str) -> Result<()> {
        let yaml = shorten_interval(yaml)?;
        println!("$ kubectl apply -f {file}   # analysis.interval shortened to {INTERVAL}");
        let out = self.cluster.apply(&yaml)?;
        print!("  {out}");
        self.until(&["Initialized"])?;
        Ok(())
    }

    /// Starts a shell command in the background, through mesh-sim, for at most `limit`.
    pub(crate) fn background(&mut self, shown: &str, script: &str, limit: Duration) -> Result<()> {
        println!("$ {shown} &");
        let mut cmd = Command::new("timeout");
        cmd.arg(limit.as_secs().to_string())
            .args(["sh", "-c", script])
            // A group of its own, so stop_background ends the loop with its `timeout`.
            .process_group(0)
            .env("KUBECONFIG", &self.cluster.kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.cluster.proxied(&mut cmd);
        self.background
            .push(cmd.spawn().context("cannot start a background command")?);
        Ok(())
    }

    /// Prints `shown` and runs `script` with `sh -c` as the user's shell would (the
    /// administrator's kubeconfig, the cluster's kubectl first on PATH, through mesh-sim);
    /// fails with its output unless it exits 0 or is stopped by its own `timeout`.
    pub(crate) fn shell(&mut self, shown: &str, script: &str) -> Result<String> {
        println!("$ {shown}");
        let out = self
            .shell_command(script)
            .output()
            .context("cannot run sh")?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        for line in stdout.lines() {
            println!("  {line}");
        }
        // 124: `timeout` stopped a command that follows a log (-f), as a user's Ctrl-C.
        if !out.status.success() && out.status.code() != Some(124) {
            bail!(
                "`{shown}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(stdout)
    }

    /// Runs `script` without printing; its output if it succeeded.
    fn shell_quiet(&self, script: &str) -> Option<String> {
        let out = self.shell_command(script).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn shell_command(&self, script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script])
            .env("KUBECONFIG", &self.cluster.kubeconfig)
            .stdin(Stdio::null());
        self.cluster.proxied(&mut cmd);
        cmd
    }

    /// Polls `check` every 500 ms until it gives a value, for at most `limit`.
    pub(crate) fn wait_for<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&mut Self) -> Result<Option<T>>,
    ) -> Result<T> {
        let deadline = Instant::now() + limit;
        loop {
            self.cluster.check_alive()?;
            if let Some(v) = check(self)? {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("waited {}s for {what}", limit.as_secs());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub(crate) fn stop_background(&mut self) {
        for mut c in self.background.drain(..) {
            // The whole process group: `timeout` and the shell loop under it (killing
            // `timeout` alone leaves the loop running, sending its load into the cluster).
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .stderr(Stdio::null())
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The canary's status as `kubectl get canary -o json` shows it.
    pub(crate) fn row(&self, ns: &str) -> Result<Row> {
        let out = self
            .cluster
            .kubectl(&["-n", ns, "get", "canary", "podinfo", "-o", "json"])?;
        let v: Value = serde_json::from_str(&out).context("canary JSON")?;
        let s = &v["status"];
        Ok(Row {
            phase: s["phase"].as_str().unwrap_or_default().to_string(),
            weight: s["canaryWeight"].as_i64().unwrap_or(0),
            failed: s["failedChecks"].as_i64().unwrap_or(0),
            iterations: s["iterations"].as_i64().unwrap_or(0),
        })
    }

    /// Follows the canary in `test`-like namespace of the podinfo canary until its phase is
    /// one of `phases`; prints rows, events and checks as they come.
    pub(crate) fn until(&mut self, phases: &[&str]) -> Result<String> {
        let ns = self.namespace()?;
        let deadline = Instant::now() + PHASE_TIMEOUT;
        loop {
            self.cluster.check_alive()?;
            self.print_events(&ns)?;
            self.print_checks()?;
            let row = self.row(&ns)?;
            let line = format!(
                "{:<12} weight {:<3} failed checks {:<2} iterations {}",
                row.phase, row.weight, row.failed, row.iterations
            );
            if line != self.last_row {
                self.print_row(&ns, &line)?;
                self.last_row = line;
            }
            if phases.contains(&row.phase.as_str()) {
                self.print_events(&ns)?;
                return Ok(row.phase);
            }
            if Instant::now() > deadline {
                bail!(
                    "the canary stayed {} for {}s; expected {}",
                    row.phase,
                    PHASE_TIMEOUT.as_secs(),
                    phases.join(" or ")
                );
            }
            std::thread::sleep(Duration::from_millis(400));
        }
    }

    fn print_row(&mut self, ns: &str, line: &str) -> Result<()> {
        if !self.real_rows {
            println!("  {} kubectl get canary: {line}", self.stamp());
            return Ok(());
        }
        let out = self.cluster.kubectl(&["-n", ns, "get", "canaries"])?;
        let mut lines = out.lines();
        let header = lines.next().unwrap_or_default();
        if !self.header_shown {
            println!("  {:>8} $ kubectl -n {ns} get canaries", "");
            println!("  {:>8} {header}", "");
            self.header_shown = true;
        }
        for l in lines {
            println!("  {} {l}", self.stamp());
        }
        Ok(())
    }

    fn namespace(&self) -> Result<String> {
        let out = self
            .cluster
            .kubectl(&["get", "canaries", "-A", "-o", "json"])?;
        let v: Value = serde_json::from_str(&out)?;
        v["items"][0]["metadata"]["namespace"]
            .as_str()
            .map(str::to_string)
            .context("no canary in the cluster")
    }

    /// Prints events not yet printed (and repeats of one, with their count).
    fn print_events(&mut self, ns: &str) -> Result<()> {
        let out = self
            .cluster
            .kubectl(&["-n", ns, "get", "events", "-o", "json"])?;
        let v: Value = serde_json::from_str(&out)?;
        let mut items: Vec<&Value> = v["items"].as_array().into_iter().flatten().collect();
        items.retain(|e| e["involvedObject"]["kind"] == "Canary");
        let key = |e: &Value| {
            let rv: u64 = e["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            (
                e["lastTimestamp"].as_str().unwrap_or_default().to_string(),
                rv,
            )
        };
        items.sort_by_key(|e| key(e));
        for e in items {
            let uid = e["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let count = e["count"].as_i64().unwrap_or(1);
            if self.seen.get(&uid).is_some_and(|c| *c >= count) {
                continue;
            }
            self.seen.insert(uid, count);
            let message = e["message"].as_str().unwrap_or_default().to_string();
            let kind = e["type"].as_str().unwrap_or("Normal");
            let times = if count > 1 {
                format!(" (x{count})")
            } else {
                String::new()
            };
            println!("  {} {kind:<7} {message}{times}", self.stamp());
            self.events.push(message);
        }
        Ok(())
    }

    /// Prints the metric checks flaggerd logged since the last call: the query once per
    /// metric, then each value.
    fn print_checks(&mut self) -> Result<()> {
        let path = self.cluster.log("flaggerd");
        let mut file = std::fs::File::open(&path)?;
        file.seek(std::io::SeekFrom::Start(self.log_offset))?;
        let mut reader = std::io::BufReader::new(file);
        let mut line = String::new();
        while reader.read_line(&mut line)? > 0 {
            if !line.ends_with('\n') {
                break;
            }
            self.log_offset += line.len() as u64;
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && let Some(metric) = v["metric"].as_str()
            {
                let value = v["value"].as_str().and_then(|x| x.parse::<f64>().ok());
                self.checks.push((metric.to_string(), value));
                if !self.show_checks {
                    line.clear();
                    continue;
                }
                let query = v["query"].as_str().unwrap_or_default().to_string();
                let result = v["value"]
                    .as_str()
                    .map(|x| match x.parse::<f64>() {
                        Ok(n) => format!("= {n:.2}"),
                        Err(_) => format!("= {x}"),
                    })
                    .or_else(|| v["error"].as_str().map(|e| format!(": {e}")))
                    .map(|r| {
                        if r.starts_with('=') {
                            format!(" {r}")
                        } else {
                            r
                        }
                    })
                    .unwrap_or_default();
                println!("  {}   check {metric}{result}", self.stamp());
                if self.queries_shown.insert(query.clone()) {
                    println!("             query: {query}");
                }
            }
            line.clear();
        }
        Ok(())
    }

    /// Checks that `expected` appear in this order among the events, reading new events for
    /// up to 10 s: flaggerd records a step (its phase included) before it carries out the
    /// step's effects, so the last events may follow the phase by moments.
    pub(crate) fn expect_events(&mut self, expected: &[&str]) -> Result<()> {
        let ns = self.namespace()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match in_order(&self.events, expected) {
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(400));
                    self.print_events(&ns)?;
                }
                other => return other,
            }
        }
    }

    /// Prints the whole event log and the tail of flaggerd's log.
    fn dump(&self) {
        println!("  event log:");
        for m in &self.events {
            println!("    {m}");
        }
        let log = std::fs::read_to_string(self.cluster.log("flaggerd")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        println!("  flaggerd log (last 20 lines):");
        for l in &lines[lines.len().saturating_sub(20)..] {
            println!("    {l}");
        }
    }
}

/// Checks that `expected` appear in `events` in this order (each a prefix of a message;
/// other events may come between).
fn in_order(events: &[String], expected: &[&str]) -> Result<()> {
    let mut rest = events.iter();
    for want in expected {
        if !rest.any(|m| m.starts_with(want)) {
            bail!("expected the event {want:?} (in the seed's order) but it did not come");
        }
    }
    Ok(())
}

/// Sets `spec.analysis.interval` to [`INTERVAL`], keeping everything else.
fn shorten_interval(yaml: &str) -> Result<String> {
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).context("canary YAML")?;
    let analysis = doc
        .get_mut("spec")
        .and_then(|s| s.get_mut("analysis"))
        .context("the canary has no spec.analysis")?;
    analysis["interval"] = serde_yaml_ng::Value::String(INTERVAL.into());
    Ok(serde_yaml_ng::to_string(&doc)?)
}

fn fixture(name: &str) -> Result<String> {
    std::fs::read_to_string(Path::new(FIXTURES).join(name))
        .with_context(|| format!("fixture {name}"))
}

fn set_image(p: &mut Play<'_>, ns: &str, tag: &str) -> Result<()> {
    let image = format!("podinfod=ghcr.io/stefanprodan/podinfo:{tag}");
    p.kubectl(&["-n", ns, "set", "image", "deployment/podinfo", &image])?;
    Ok(())
}

/// The events of a promotion by weights up to 50 in steps of 5.
fn promotion_events(target: &str) -> Vec<String> {
    let mut e = vec![
        format!("New revision detected! Scaling up {target}"),
        format!("Starting canary analysis for {target}"),
        "Pre-rollout check acceptance-test passed".to_string(),
    ];
    e.extend((1..=10).map(|i| format!("Advance {target} canary weight {}", i * 5)));
    e.extend([
        format!("Copying {target} template spec to podinfo-primary."),
        "Routing all traffic to primary".to_string(),
        format!("Promotion completed! Scaling down {target}"),
    ]);
    e
}

fn expect(p: &mut Play<'_>, events: &[String]) -> Result<()> {
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    p.expect_events(&refs)
}

/// The image podinfo-primary runs.
fn primary_image(p: &Play<'_>, ns: &str) -> Result<String> {
    let path = "jsonpath={.spec.template.spec.containers[0].image}";
    p.cluster
        .kubectl(&["-n", ns, "get", "deployment", "podinfo-primary", "-o", path])
}

/// Follows a release to its end; fails unless it ends in `want`.
fn finish(p: &mut Play<'_>, what: &str, want: &str) -> Result<()> {
    let phase = p.until(&["Succeeded", "Failed"])?;
    if phase != want {
        bail!("{what} ended {phase}, expected {want}");
    }
    Ok(())
}

/// The events of a promotion after ten iterations (A/B testing, blue/green); `first` come
/// after the revision is detected, and `routing` says whether routes move back to the primary.
fn iteration_events(first: &[&str], routing: bool) -> Vec<String> {
    let mut events = vec!["New revision detected! Scaling up podinfo.test".to_string()];
    events.extend(first.iter().map(|e| e.to_string()));
    events.extend((1..=10).map(|i| format!("Advance podinfo.test canary iteration {i}/10")));
    events.push("Copying podinfo.test template spec to podinfo-primary.test".to_string());
    if routing {
        events.push("Routing all traffic to primary".to_string());
    }
    events.push("Promotion completed! Scaling down podinfo.test".to_string());
    events
}

pub(crate) fn promote(p: &mut Play<'_>, ns: &str, tag: &str) -> Result<()> {
    set_image(p, ns, tag)?;
    finish(p, &format!("the release of {tag}"), "Succeeded")?;
    expect(p, &promotion_events(&format!("podinfo.{ns}")))?;
    let primary = primary_image(p, ns)?;
    if !primary.ends_with(tag) {
        bail!("after the promotion podinfo-primary runs {primary}, expected {tag}");
    }
    println!("  podinfo-primary now runs {primary}");
    Ok(())
}

/// A failed release: `load` runs while the analysis halts, until the rollback.
pub(crate) fn fail(
    p: &mut Play<'_>,
    ns: &str,
    tag: &str,
    shown: &str,
    load: &str,
    halt: &str,
) -> Result<()> {
    let mark = p.events.len();
    set_image(p, ns, tag)?;
    p.background(shown, load, Duration::from_secs(150))?;
    let ended = finish(p, &format!("the release of {tag}"), "Failed");
    p.stop_background();
    ended?;
    let target = format!("podinfo.{ns}");
    in_order(
        &p.events[mark..],
        &[
            &format!("New revision detected! Scaling up {target}"),
            &format!("Advance {target} canary weight 5"),
            &format!("Halt {target} advancement {halt}"),
            &format!("Rolling back {target} failed checks threshold reached"),
            &format!("Canary failed! Scaling down {target}"),
        ],
    )?;
    let primary = primary_image(p, ns)?;
    if primary.ends_with(tag) {
        bail!("the failed release {tag} reached podinfo-primary");
    }
    println!("  podinfo-primary still runs {primary}");
    Ok(())
}

fn appmesh_workshop(p: &mut Play<'_>) -> Result<()> {
    let verbatim = fixture("000-appmesh-workshop.yaml")?;
    p.podinfo("demo")?;
    println!("$ kubectl apply -f canary.yaml   # the workshop's spec, verbatim");
    match p.cluster.apply(&verbatim) {
        Ok(out) => bail!("the mis-indented spec was accepted: {out}"),
        Err(e) => {
            let message = format!("{e:#}");
            println!("  {message}");
            if !message.contains("line 66") {
                bail!("the rejection does not name the line of the webhooks block: {message}");
            }
        }
    }
    let fixed = fix_workshop_indentation(&verbatim);
    p.canary(&fixed, "canary.yaml   # webhooks block re-indented")?;
    promote(p, "demo", "6.0.1")?;
    fail(
        p,
        "demo",
        "6.0.2",
        "hey -z 1m -c 5 -q 5 http://podinfo-canary.demo:9898/status/500",
        "hey -z 1m -c 5 -q 5 http://podinfo-canary.demo:9898/status/500",
        "success rate",
    )
}

/// The workshop's webhooks block with its list items indented as YAML needs.
fn fix_workshop_indentation(text: &str) -> String {
    let mut out = String::new();
    let mut in_hooks = false;
    for line in text.lines() {
        if line.trim_start().starts_with("webhooks:") {
            in_hooks = true;
            out.push_str(line);
            out.push('\n');
            continue;
        }
        if in_hooks && !line.trim().is_empty() {
            let body = line.trim_start();
            let indent = line.len() - body.len();
            let fixed = match indent {
                8 if body.starts_with("- ") => format!("      {body}"),
                8 => format!("        {body}"),
                12 => format!("          {body}"),
                _ => line.to_string(),
            };
            out.push_str(&fixed);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn appmesh_promotion(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    p.canary(&fixture("002-appmesh-v1beta2.yaml")?, "podinfo-canary.yaml")?;
    promote(p, "test", "6.0.1")
}

fn linkerd(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    p.canary(&fixture("001-linkerd.yaml")?, "podinfo-canary.yaml")?;
    promote(p, "test", "6.0.1")
}

/// Seed 002's A/B edit of its canary: "remove the max/step weight and add the match
/// conditions and iterations" (and the A/B load test); the metrics stay, so the checks only
/// pass if mesh-sim routes the matching requests to the canary.
fn ab_spec(base: &str, ab: &str) -> Result<String> {
    use serde_yaml_ng::Value as Y;
    let mut doc: Y = serde_yaml_ng::from_str(base)?;
    let edit: Y = serde_yaml_ng::from_str(ab)?;
    let analysis = doc["spec"]["analysis"]
        .as_mapping_mut()
        .context("seed 002's canary has no analysis")?;
    analysis.remove("maxWeight");
    analysis.remove("stepWeight");
    for key in ["interval", "threshold", "iterations", "match", "webhooks"] {
        analysis.insert(Y::from(key), edit["spec"]["analysis"][key].clone());
    }
    Ok(serde_yaml_ng::to_string(&doc)?)
}

fn ab_testing(p: &mut Play<'_>, file: &str) -> Result<()> {
    p.podinfo("test")?;
    let spec = ab_spec(&fixture("002-appmesh-v1beta2.yaml")?, &fixture(file)?)?;
    p.canary(
        &spec,
        "podinfo-abtest.yaml   # seed 002's canary with its A/B edit",
    )?;
    set_image(p, "test", "6.0.1")?;
    finish(p, "the A/B release", "Succeeded")?;
    expect(p, &iteration_events(&[], true))?;
    // The canary had traffic only if mesh-sim routed the matching requests to it.
    let measured = p
        .checks
        .iter()
        .filter(|(m, v)| m == "request-success-rate" && v.is_some_and(|v| v >= 99.0))
        .count();
    if measured < 5 {
        bail!("only {measured} success-rate checks measured the canary's A/B traffic");
    }
    println!("  {measured} success-rate checks measured the A/B traffic that reached the canary");
    Ok(())
}

/// Seed 004's failure: `watch curl .../status/500` as shown, and the bounded loop run for it.
pub(crate) const WATCH_500: (&str, &str) = (
    "watch curl http://podinfo-canary:9898/status/500",
    // `--max-time`: one request that never ends must not stop the load.
    "while true; do curl -s --max-time 5 http://podinfo-canary:9898/status/500 >/dev/null; sleep 1; done",
);

fn istio_errors(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    p.canary(&fixture("004-istio.yaml")?, "podinfo-canary.yaml")?;
    promote(p, "test", "6.0.1")?;
    fail(p, "test", "6.0.2", WATCH_500.0, WATCH_500.1, "success rate")
}

fn istio_latency(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    p.canary(&fixture("004-istio.yaml")?, "podinfo-canary.yaml")?;
    fail(
        p,
        "test",
        "6.0.1",
        "watch -n 1 curl http://podinfo-canary:9898/delay/1",
        "while true; do curl -s --max-time 5 http://podinfo-canary:9898/delay/1 >/dev/null; sleep 1; done",
        "request duration",
    )
}

fn blue_green(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    p.canary(
        include_str!("../e2e/bluegreen.yaml"),
        "podinfo-bluegreen.yaml",
    )?;
    set_image(p, "test", "6.0.1")?;
    finish(p, "the blue/green release", "Succeeded")?;
    // The kubernetes provider has no routes to move back: no "Routing all traffic" event.
    expect(
        p,
        &iteration_events(&["Pre-rollout check smoke-test passed"], false),
    )
}

fn daemonset(p: &mut Play<'_>) -> Result<()> {
    p.kubectl(&["create", "namespace", "test"])?;
    p.loadtester("test")?;
    println!("$ kubectl apply -f podinfo-daemonset.yaml   # a DaemonSet and its Canary");
    let (workload, canary) = include_str!("../e2e/daemonset.yaml")
        .split_once("\n---\n")
        .context("daemonset.yaml holds a DaemonSet, then a Canary")?;
    p.cluster.apply(workload)?;
    p.canary(canary, "podinfo-daemonset.yaml")?;
    p.kubectl(&[
        "-n",
        "test",
        "set",
        "image",
        "daemonset/podinfo",
        "podinfod=ghcr.io/stefanprodan/podinfo:6.0.1",
    ])?;
    p.wait_for("a podinfo pod of the new revision", PHASE_TIMEOUT, |p| {
        let pods = p.cluster.kubectl(&["get", "pods", "-n", "test"])?;
        let canary = pods.lines().any(|l| {
            l.starts_with("podinfo-") && !l.starts_with("podinfo-primary-") && l.contains("Running")
        });
        Ok(canary.then_some(()))
    })?;
    p.kubectl(&["get", "pods", "-n", "test"])?;
    finish(p, "the DaemonSet release", "Succeeded")?;
    let mut events = vec![
        "New revision detected! Scaling up podinfo.test".to_string(),
        "Pre-rollout check smoke-test passed".to_string(),
    ];
    events.extend((1..=5).map(|i| format!("Advance podinfo.test canary iteration {i}/5")));
    events.push("Copying podinfo.test template spec to podinfo-primary.test".to_string());
    events.push("Routing all traffic to primary".to_string());
    events.push("Promotion completed! Scaling down podinfo.test".to_string());
    expect(p, &events)?;
    let primary = p.cluster.kubectl(&[
        "-n",
        "test",
        "get",
        "daemonset",
        "podinfo-primary",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ])?;
    if !primary.ends_with(":6.0.1") {
        bail!("after the promotion the DaemonSet podinfo-primary runs {primary}, expected 6.0.1");
    }
    println!("  podinfo-primary now runs {primary}");
    // Scaled down as Flagger does it: a node selector no node carries, so no pod is left.
    p.wait_for("the canary DaemonSet without pods", PHASE_TIMEOUT, |p| {
        let pods = p
            .cluster
            .kubectl(&["get", "pods", "-n", "test", "-o", "name"])?;
        let canary = pods
            .lines()
            .any(|l| l.starts_with("pod/podinfo-") && !l.starts_with("pod/podinfo-primary-"));
        Ok((!canary).then_some(()))
    })?;
    p.kubectl(&["describe", "daemonset", "podinfo", "-n", "test"])?;
    Ok(())
}

fn configmap_trigger(p: &mut Play<'_>) -> Result<()> {
    p.kubectl(&["create", "namespace", "test"])?;
    p.loadtester("test")?;
    println!(
        "$ kubectl apply -f podinfo-configmap.yaml   # podinfo reading PODINFO_UI_MESSAGE from a ConfigMap"
    );
    p.cluster
        .apply(include_str!("../e2e/podinfo-configmap.yaml"))?;
    p.canary(
        include_str!("../e2e/bluegreen.yaml"),
        "podinfo-bluegreen.yaml",
    )?;
    p.kubectl(&[
        "-n",
        "test",
        "get",
        "configmap",
        "podinfo-config-primary",
        "-o",
        "jsonpath={.data}",
    ])?;
    p.kubectl(&[
        "-n",
        "test",
        "patch",
        "configmap",
        "podinfo-config",
        "--type=merge",
        "-p",
        r#"{"data":{"PODINFO_UI_MESSAGE":"hello from the new config"}}"#,
    ])?;
    finish(p, "the configuration release", "Succeeded")?;
    p.expect_events(&[
        "New revision detected! Scaling up podinfo.test",
        "Advance podinfo.test canary iteration 10/10",
        "Promotion completed! Scaling down podinfo.test",
    ])?;
    let copied = p.kubectl(&[
        "-n",
        "test",
        "get",
        "configmap",
        "podinfo-config-primary",
        "-o",
        "jsonpath={.data.PODINFO_UI_MESSAGE}",
    ])?;
    if copied != "hello from the new config" {
        bail!("podinfo-config-primary holds {copied:?} after the promotion");
    }
    Ok(())
}

/// A release whose image no node can pull: the canary's pods stay in ImagePullBackOff, the
/// Deployment passes its progress deadline (60 s in podinfo.yaml), and flaggerd rolls back
/// without ever routing traffic to it.
fn missing_image(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    p.canary(&fixture("004-istio.yaml")?, "podinfo-canary.yaml")?;
    let mark = p.events.len();
    set_image(p, "test", "6.0.99-does-not-exist")?;
    let pulled = p.wait_for(
        "a canary pod in ImagePullBackOff",
        Duration::from_secs(60),
        |p| {
            let pods = p.cluster.kubectl(&["-n", "test", "get", "pods"])?;
            Ok(pods.contains("ImagePullBackOff").then_some(pods))
        },
    )?;
    println!("$ kubectl -n test get pods");
    for line in pulled.lines() {
        println!("  {line}");
    }
    finish(p, "the release of a missing image", "Failed")?;
    // As Flagger: the readiness error is the event, then the rollback (no threshold event).
    let events = &p.events[mark..];
    let deadline = events
        .iter()
        .position(|m| m.starts_with("podinfo.test") && m.contains("progress deadline"))
        .context("no event said the canary passed its progress deadline")?;
    in_order(
        &events[deadline..],
        &["podinfo.test", "Canary failed! Scaling down podinfo.test"],
    )?;
    if p.events[mark..]
        .iter()
        .any(|m| m.starts_with("Advance podinfo.test canary weight"))
    {
        bail!("traffic was shifted to a canary whose image cannot be pulled");
    }
    let primary = primary_image(p, "test")?;
    if primary.contains("6.0.99") {
        bail!("the missing image reached podinfo-primary: {primary}");
    }
    println!("  podinfo-primary still runs {primary}");
    Ok(())
}

/// The seeds' commands, typed as they are: pods, flaggerd's log through jq, a command in the
/// load tester's pod, and a port-forward to the ingress gateway.
fn seed_commands(p: &mut Play<'_>) -> Result<()> {
    p.istio_gateway()?;
    p.podinfo("test")?;
    p.canary(&fixture("004-istio.yaml")?, "podinfo-canary.yaml")?;
    let pods = p.wait_for(
        "podinfo-primary and the load tester Running",
        Duration::from_secs(60),
        |p| {
            let pods = p.cluster.kubectl(&["get", "pods", "-n", "test"])?;
            let running = |prefix: &str| {
                pods.lines()
                    .any(|l| l.starts_with(prefix) && l.contains("Running"))
            };
            Ok((running("podinfo-primary-") && running("flagger-loadtester-")).then_some(pods))
        },
    )?;
    println!("$ kubectl get pods -n test");
    for line in pods.lines() {
        println!("  {line}");
    }
    // The seed injects failures while a release is in progress, when the canary has pods.
    set_image(p, "test", "6.0.1")?;
    p.wait_for("the canary at weight 5", PHASE_TIMEOUT, |p| {
        let row = p.row("test")?;
        Ok((row.phase == "Progressing" && row.weight >= 5).then_some(()))
    })?;
    p.kubectl(&["get", "pods", "-n", "test"])?;

    let messages = p.shell(
        "kubectl -n istio-system logs deploy/flagger -f | jq .msg",
        "timeout 5 kubectl -n istio-system logs deploy/flagger -f | jq .msg",
    )?;
    if !messages.contains("\"Initialization done! podinfo.test\"") {
        bail!("flaggerd's log through jq lacks \"Initialization done! podinfo.test\"");
    }

    let code = p.shell(
        "kubectl -n test exec -it deploy/flagger-loadtester -- sh -c 'curl http://podinfo-canary.test:9898/status/500'",
        "kubectl -n test exec deploy/flagger-loadtester -- sh -c 'curl -s -o /dev/null -w %{http_code} http://podinfo-canary.test:9898/status/500'",
    )?;
    if code.trim() != "500" {
        bail!("curl in the load tester's pod got {code:?}, expected 500 from podinfo");
    }
    let answer = p.shell(
        "kubectl -n test exec -it deploy/flagger-loadtester bash   # then: curl podinfo-canary.test:9898",
        // As the user types it, then `exit`; bounded, so a stream that never ends fails.
        "printf 'curl -s http://podinfo-canary.test:9898/\\nexit\\n' | timeout 30 kubectl -n test exec -i deploy/flagger-loadtester -- bash",
    )?;
    if !answer.contains("greetings from podinfo") {
        bail!("bash in the load tester's pod did not reach podinfo: {answer:?}");
    }

    // app.example.com: the host seed 004's VirtualService binds to the public gateway.
    curl_gateway(p, "istio-system", "istio-ingressgateway", "app.example.com")?;
    Ok(())
}

/// `curl -H 'Host: HOST'` to an ingress gateway's Service `ns/svc` until podinfo answers (at
/// most 20 s), as a user reaches it: on the real cluster through `kubectl port-forward`
/// (KWOK forwards it to mesh-sim), on kube-sim through mesh-sim's proxy. Returns the answer.
pub(crate) fn curl_gateway(p: &mut Play<'_>, ns: &str, svc: &str, host: &str) -> Result<String> {
    let (shown, script) = if p.cluster.kind == Kind::Real {
        let port = crate::cluster::free_port()?;
        let forward = format!("kubectl -n {ns} port-forward svc/{svc} {port}:80");
        p.background(&forward, &forward, Duration::from_secs(60))?;
        let url = format!("http://127.0.0.1:{port}/");
        (
            format!("curl -H 'Host: {host}' {url}"),
            format!("curl -s --noproxy '*' -H 'Host: {host}' {url}"),
        )
    } else {
        let url = format!("http://{svc}.{ns}/");
        (
            format!("curl -H 'Host: {host}' {url}"),
            format!("curl -s -H 'Host: {host}' {url}"),
        )
    };
    let answer = p.wait_for(
        &format!("podinfo through {ns}/{svc}"),
        Duration::from_secs(20),
        |p| {
            Ok(p.shell_quiet(&script)
                .filter(|o| o.contains("greetings from podinfo")))
        },
    );
    p.stop_background();
    let answer = answer?;
    println!("$ {shown}");
    println!("  {}", answer.trim());
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workshop_spec_becomes_valid_with_only_its_indentation_changed() {
        let verbatim = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(FIXTURES)
                .join("000-appmesh-workshop.yaml"),
        )
        .expect("fixture");
        assert!(serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&verbatim).is_err());
        let fixed = fix_workshop_indentation(&verbatim);
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&fixed).expect("valid YAML");
        let hooks = &doc["spec"]["analysis"]["webhooks"];
        assert_eq!(hooks[0]["name"].as_str(), Some("acceptance-test"));
        assert_eq!(hooks[0]["type"].as_str(), Some("pre-rollout"));
        assert_eq!(
            hooks[1]["metadata"]["cmd"].as_str(),
            Some("hey -z 1m -q 10 -c 2 http://podinfo-canary.demo:9898/")
        );
        let squash = |s: &str| s.split_whitespace().collect::<String>();
        assert_eq!(squash(&fixed), squash(&verbatim), "only whitespace changed");
        let short = shorten_interval(&fixed).expect("interval");
        let read = |f: &str| {
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join(FIXTURES)
                    .join(f),
            )
            .expect("fixture")
        };
        let ab = ab_spec(
            &read("002-appmesh-v1beta2.yaml"),
            &read("002-appmesh-ab-cookie.yaml"),
        )
        .expect("A/B");
        let ab: serde_yaml_ng::Value = serde_yaml_ng::from_str(&ab).expect("yaml");
        let analysis = &ab["spec"]["analysis"];
        assert!(analysis.get("stepWeight").is_none() && analysis.get("maxWeight").is_none());
        assert_eq!(analysis["iterations"].as_u64(), Some(10));
        assert_eq!(
            analysis["metrics"][0]["name"].as_str(),
            Some("request-success-rate")
        );
        assert!(analysis["match"][0]["headers"]["cookie"]["regex"].is_string());
        assert!(short.contains("interval: 2s"));
        assert!(short.contains("interval: 1m"), "metric intervals unchanged");
    }
}
