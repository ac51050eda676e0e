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
mod gloo;
mod loadtester;
mod play;
mod providers;
mod seeds;
mod steps;
mod targets;
mod vendors;

pub(crate) use play::Play;
pub(crate) use seeds::*;
pub(crate) use steps::*;

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

pub(crate) const PODINFO: &str = include_str!("../e2e/podinfo.yaml");
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
    /// flaggerd's flags besides the cluster's.
    args: &'static [&'static str],
    run: fn(&mut Play<'_>) -> Result<()>,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "appmesh-000",
        flagger: "appmesh-system",
        real_only: false,
        args: &[],
        what: "seed 000: App Mesh workshop, the mis-indented spec rejected, then a promotion and a failed release",
        run: appmesh_workshop,
    },
    Scenario {
        name: "appmesh-002",
        flagger: "appmesh-system",
        real_only: false,
        args: &[],
        what: "seed 002: App Mesh v1beta2 automated promotion",
        run: appmesh_promotion,
    },
    Scenario {
        name: "appmesh-ab-header",
        flagger: "appmesh-system",
        real_only: false,
        args: &[],
        what: "seed 002: App Mesh A/B testing, X-Canary header",
        run: |p| ab_testing(p, "002-appmesh-ab-header.yaml"),
    },
    Scenario {
        name: "appmesh-ab-cookie",
        flagger: "appmesh-system",
        real_only: false,
        args: &[],
        what: "seed 002: App Mesh A/B testing, canary=insider cookie",
        run: |p| ab_testing(p, "002-appmesh-ab-cookie.yaml"),
    },
    Scenario {
        name: "linkerd-001",
        flagger: "linkerd",
        real_only: false,
        args: &[],
        what: "seed 001: Linkerd (SMI TrafficSplit) promotion",
        run: linkerd,
    },
    Scenario {
        name: "istio-004",
        flagger: "istio-system",
        real_only: false,
        args: &[],
        what: "seed 004: Istio promotion, then a rollback on HTTP 500s",
        run: istio_errors,
    },
    Scenario {
        name: "gatewayapi",
        flagger: "flagger-system",
        real_only: false,
        args: &[],
        what: "seed 004's canary on Gateway API (an HTTPRoute attached to a Gateway) with the MetricTemplates of Flagger's guide on reporter=\"source\": promotion",
        run: fidelity::gateway_api,
    },
    Scenario {
        name: "nginx",
        flagger: "ingress-nginx",
        real_only: false,
        args: &[],
        what: "Flagger's NGINX test: seed 004's canary through ingress-nginx's canary Ingress, a promotion, a rollback on HTTP 500s, an A/B release by header",
        run: providers::nginx,
    },
    Scenario {
        name: "contour",
        flagger: "projectcontour",
        real_only: false,
        args: &["-ingress-class=contour"],
        what: "Flagger's Contour test: seed 004's canary as an HTTPProxy a root proxy includes, a promotion, a rollback on HTTP 500s, an A/B release by header",
        run: providers::contour,
    },
    Scenario {
        name: "gloo",
        flagger: "gloo-system",
        real_only: false,
        args: &[],
        what: "Flagger's Gloo test: seed 004's canary through the RouteTable a VirtualService delegates to, Upstreams with a config Upstream's settings, a promotion, a rollback on HTTP 500s, an A/B release by header",
        run: gloo::gloo,
    },
    Scenario {
        name: "knative",
        flagger: "flagger-system",
        real_only: false,
        args: &[],
        what: "Flagger's Knative test: a Knative Service's revisions split by spec.traffic (mesh-sim plays Knative's controller), a promotion that moves flagger.app/primary-revision, a rollback on HTTP 500s",
        run: targets::knative,
    },
    Scenario {
        name: "traefik",
        flagger: "traefik",
        real_only: false,
        args: &[],
        what: "Flagger's Traefik test: seed 004's canary as a weighted TraefikService an IngressRoute names, a promotion, a rollback on HTTP 500s",
        run: providers::traefik,
    },
    Scenario {
        name: "skipper",
        flagger: "flagger-system",
        real_only: false,
        args: &[],
        what: "Flagger's Skipper test: seed 004's canary through the weighted <ingress>-canary copy, a promotion, a rollback on HTTP 500s",
        run: providers::skipper,
    },
    Scenario {
        name: "keda",
        flagger: "flagger-system",
        real_only: false,
        args: &[],
        what: "Flagger's KEDA test: a ScaledObject as autoscalerRef, its -primary copy with the query rewritten, the target's paused while the canary rests",
        run: targets::keda,
    },
    Scenario {
        name: "service-target",
        flagger: "istio-system",
        real_only: false,
        args: &[],
        what: "a Service as targetRef on Istio: its -primary and -canary copies weighted by a VirtualService, a new selector analysed and promoted",
        run: targets::service_target,
    },
    Scenario {
        name: "apisix",
        flagger: "apisix",
        real_only: false,
        args: &[],
        what: "Flagger's APISIX test: seed 004's canary through the weighted copy of the ApisixRoute, a promotion, a rollback on HTTP 500s",
        run: providers::apisix,
    },
    Scenario {
        name: "kuma",
        flagger: "kuma-system",
        real_only: false,
        args: &[],
        what: "seed 001's canary on Kuma: the cluster-scoped TrafficRoute, Kuma's dataplane series, a promotion, a rollback on HTTP 500s",
        run: providers::kuma,
    },
    Scenario {
        name: "osm",
        flagger: "osm-system",
        real_only: false,
        args: &[],
        what: "seed 001's canary on Open Service Mesh: an SMI v1alpha2 TrafficSplit, OSM's builtin queries, a promotion, a rollback on HTTP 500s",
        run: providers::osm,
    },
    Scenario {
        name: "services",
        flagger: "istio-system",
        real_only: false,
        args: &[],
        what: "the user's apex Service adopted (selector, ports), Flux annotations, port discovery",
        run: fidelity::services,
    },
    Scenario {
        name: "istio-revert",
        flagger: "istio-system",
        real_only: false,
        args: &[],
        what: "revertOnDeletion: the user's VirtualService taken over without ownership and restored intact",
        run: fidelity::revert,
    },
    Scenario {
        name: "daemonset-kubernetes",
        flagger: "flagger-system",
        real_only: false,
        args: &[],
        what: "a DaemonSet canary on the kubernetes provider, its pre-rollout curl reaching the canary Service",
        run: fidelity::daemonset_kubernetes,
    },
    Scenario {
        name: "grpc",
        flagger: "istio-system",
        real_only: false,
        args: &[],
        what: "gRPC webhooks: grpc_health_probe and ghz against podinfo's gRPC port through the mesh",
        run: loadtester::grpc,
    },
    Scenario {
        name: "loadtester-helm",
        flagger: "istio-system",
        real_only: false,
        args: &[],
        what: "the loadtester's helm and helmv3 tasks as pre-rollout checks (helm built from xtask/tools)",
        run: loadtester::loadtester_helm,
    },
    Scenario {
        name: "helm-test",
        flagger: "istio-system",
        real_only: true,
        args: &[],
        what: "Flagger's helm test pre-rollout check: the loadtester runs `helm test` on a release whose test Pod curls the canary",
        run: loadtester::helm_test,
    },
    Scenario {
        name: "istio-two-releases",
        flagger: "istio-system",
        real_only: false,
        args: &[],
        what: "two releases in a row of one workload on Istio, both promoted",
        run: fidelity::two_releases,
    },
    Scenario {
        name: "istio-latency",
        flagger: "istio-system",
        real_only: false,
        args: &[],
        what: "seeds 004 and 002: Istio rollback on latency (curl /delay/1)",
        run: istio_latency,
    },
    Scenario {
        name: "kubernetes-bluegreen",
        flagger: "flagger-system",
        real_only: false,
        args: &[],
        what: "blue/green with the kubernetes provider (no mesh), iterations",
        run: blue_green,
    },
    Scenario {
        name: "configmap-trigger",
        flagger: "flagger-system",
        real_only: false,
        args: &[],
        what: "a ConfigMap change triggers the analysis; the primary gets its own copy",
        run: configmap_trigger,
    },
    Scenario {
        name: "daemonset",
        flagger: "istio-system",
        real_only: true,
        args: &[],
        what: "a DaemonSet target: its pods are the endpoints, the canary scaled down by a node selector",
        run: daemonset,
    },
    Scenario {
        name: "missing-image",
        flagger: "istio-system",
        real_only: true,
        args: &[],
        what: "a release whose image does not exist: ImagePullBackOff, the progress deadline, a rollback",
        run: missing_image,
    },
    Scenario {
        name: "metric-vendors",
        flagger: "istio-system",
        real_only: false,
        args: &[],
        what: "seed 004's canary judged by one MetricTemplate per metrics backend (stand-ins of the vendors' APIs, Keptn's operator and an external metrics adapter, answering from Prometheus): promotion, rollback on HTTP 500s, no credential leaked",
        run: vendors::metric_vendors,
    },
    Scenario {
        name: "seed-commands",
        flagger: "istio-system",
        real_only: true,
        args: &[],
        what: "the seeds' kubectl commands verbatim: get pods, logs deploy/flagger | jq, exec into the loadtester, port-forward to the gateway",
        run: seed_commands,
    },
];

/// Runs the named scenarios (all when none is named) on the cluster kind of `--cluster`
/// (`sim` by default), `jobs` at a time.
pub(crate) fn run(kind: Kind, names: &[String], jobs: usize) -> Result<()> {
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
    let bin = match std::env::var_os(CHILD) {
        Some(_) => crate::cluster::built(kind),
        None => crate::cluster::build(kind)?,
    };
    let started = Instant::now();
    let mut chosen = Vec::new();
    for s in SCENARIOS
        .iter()
        .filter(|s| names.is_empty() || names.iter().any(|n| n == s.name))
    {
        if s.real_only && kind != Kind::Real {
            println!("\n=== {} ({} cluster): {}", s.name, kind.name(), s.what);
            println!("SKIP {}: it needs real Pods (--cluster real)", s.name);
        } else {
            chosen.push(s);
        }
    }
    let results = if jobs > 1 && chosen.len() > 1 {
        in_parallel(kind, &chosen, jobs)?
    } else {
        chosen.iter().map(|s| one(kind, &bin, s)).collect()
    };
    if std::env::var_os(CHILD).is_some() {
        // The parent prints the summary.
        return match results.iter().all(|r| r.1) {
            true => Ok(()),
            false => bail!("the scenario failed"),
        };
    }
    println!(
        "\ne2e summary, {} cluster ({:.0}s, {} at a time):",
        kind.name(),
        started.elapsed().as_secs_f64(),
        jobs.max(1)
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

/// A scenario's name, whether it passed, and how long it took (seconds).
type Outcome = (&'static str, bool, f64);

/// Set in the environment of a scenario that [`in_parallel`] runs in a child process.
const CHILD: &str = "XTASK_E2E_CHILD";

/// Plays scenario `s` in this process, printing as it goes.
fn one(kind: Kind, bin: &Binaries, s: &Scenario) -> Outcome {
    println!("\n=== {} ({} cluster): {}", s.name, kind.name(), s.what);
    let t = Instant::now();
    let outcome = play(kind, bin, s);
    let secs = t.elapsed().as_secs_f64();
    match &outcome {
        Ok(()) => println!("PASS {} ({secs:.1}s)", s.name),
        Err(e) => println!("FAIL {} ({secs:.1}s): {e:#}", s.name),
    }
    (s.name, outcome.is_ok(), secs)
}

/// Plays `scenarios` `jobs` at a time, in their order, each in a child `xtask e2e` of its
/// own: every scenario starts its own cluster on free ports in its own directory, so they do
/// not meet. A child's output goes to `target/e2e-output/<scenario>.out` and is printed
/// whole when it ends, so scenarios' lines do not interleave.
fn in_parallel(kind: Kind, scenarios: &[&Scenario], jobs: usize) -> Result<Vec<Outcome>> {
    let exe = std::env::current_exe().context("cannot find xtask's own binary")?;
    let out = std::path::absolute(crate::cluster::target_dir().join("e2e-output"))?;
    std::fs::create_dir_all(&out)?;
    let queue = std::sync::Mutex::new(scenarios.iter());
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                while let Some(s) = queue.lock().map(|mut q| q.next()).ok().flatten() {
                    let file = out.join(format!("{}.out", s.name));
                    let t = Instant::now();
                    let status = child(&exe, kind, s.name, &file);
                    let secs = t.elapsed().as_secs_f64();
                    let text = std::fs::read_to_string(&file).unwrap_or_default();
                    let verdict = match &status {
                        Ok(()) => String::new(),
                        // A child that could not report (it did not start, or crashed).
                        Err(e) if !text.contains(&format!("FAIL {}", s.name)) => {
                            format!("FAIL {} ({secs:.1}s): {e:#}\n", s.name)
                        }
                        Err(_) => String::new(),
                    };
                    print!("{text}{verdict}");
                    if let Ok(mut r) = results.lock() {
                        r.push((s.name, status.is_ok(), secs));
                    }
                }
            });
        }
    });
    let mut results = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a scenario's thread panicked"))?;
    // The summary lists the scenarios in their order, whichever ended first.
    results.sort_by_key(|r| scenarios.iter().position(|s| s.name == r.0));
    Ok(results)
}

/// Runs `xtask e2e --cluster <kind> <name>` with its output in `file`.
fn child(exe: &Path, kind: Kind, name: &str, file: &Path) -> Result<()> {
    let stdout =
        std::fs::File::create(file).with_context(|| format!("cannot create {}", file.display()))?;
    let stderr = stdout.try_clone()?;
    let status = Command::new(exe)
        .args(["e2e", "--cluster", kind.name(), name])
        .env(CHILD, "1")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .status()
        .context("cannot start xtask")?;
    if !status.success() {
        bail!("xtask e2e {name} ended with {status}");
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
        args: s.args,
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
