//! xtask: the one task runner of the workspace (`cargo xtask <task>`).
//!
//! `test` runs every check CI runs; `crds` regenerates `deploy/crds/`; `bench` runs the
//! benchmarks; `e2e` plays the seeds on a local cluster; `demo` plays the seeds' podinfo
//! canary on one; `image` builds and checks the container images. It shells out to cargo and prints
//! what it runs, so a failing step can be rerun by hand.

#![expect(
    clippy::disallowed_methods,
    reason = "xtask is a synchronous driver of processes: it sleeps between polls of kubectl and ports"
)]

mod chart;
mod cluster;
mod demo;
mod e2e;
mod image;
mod isolation;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use cluster::Kind;

/// `cargo xtask <task>`.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    about = "The workspace's task runner: every check CI runs, benchmarks, the local cluster"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// fmt check, clippy -D warnings, all tests, CRD staleness, canary-core purity, kube-sim's
    /// conformance on a real API server, e2e on the real cluster.
    Test,
    /// Write (or check) deploy/crds/*.yaml from crates/canary-api.
    Crds {
        /// Fail when a file differs instead of writing it.
        #[arg(long)]
        check: bool,
    },
    /// Criterion benchmarks of canary-core and flaggerd's detection latency on kube-sim, or
    /// one of the named benchmarks.
    Bench {
        #[command(subcommand)]
        which: Option<Bench>,
    },
    /// The fuzz property test (stored canaries through decoding, validation, the engine and
    /// every builder) with many cases; cargo test runs 256.
    Fuzz {
        /// Cases to run.
        #[arg(default_value_t = 100_000)]
        cases: u64,
    },
    /// kube-sim's conformance tests against a real API server (etcd, kube-apiserver, the
    /// garbage collector), built from xtask/controlplane with Go.
    Conformance,
    /// Play the seeds' scenarios on a local cluster (mesh-sim, Prometheus, the loadtester,
    /// flaggerd on kube-sim or on a real control plane with KWOK), each printing PASS or FAIL.
    E2e {
        /// The cluster: kube-sim (sim) or Kubernetes' own control plane (real).
        #[arg(long, value_enum, default_value = "sim")]
        cluster: Kind,
        /// Scenarios to play (all when none is named).
        names: Vec<String>,
        /// How many scenarios to play at once, each on its own cluster.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
    },
    /// Check the Helm chart: helm lint and template, its RBAC against deploy/flaggerd, and
    /// the rendered chart and deploy/flaggerd applied with --dry-run=server to a real API
    /// server.
    Chart,
    /// Build the flaggerd and loadtester images with buildah (or podman) and check them: a
    /// non-root numeric user, the entrypoint, the size, static binaries, `flaggerd -version`
    /// from the binary taken out of the image.
    Image,
    /// Play seed 004's podinfo canary on a local cluster: a promotion, then a failed release.
    Demo {
        /// The cluster: kube-sim (sim) or Kubernetes' own control plane (real).
        #[arg(long, value_enum, default_value = demo::DEFAULT_CLUSTER.name())]
        cluster: Kind,
        /// Leave the cluster up for your own kubectl commands.
        #[arg(long)]
        keep: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Seed 004's release time alone and beside two canaries blocked on 45 s webhooks, on the
    /// local cluster (fails above +10 %).
    Isolation,
    /// flaggerd's API requests, step lag, starvation, memory and CPU with many canaries beside
    /// unrelated Deployments and ConfigMaps, on kube-sim.
    Scale {
        /// Canaries.
        #[arg(long, default_value_t = 100)]
        canaries: u32,
        /// Unrelated Deployments and ConfigMaps, each.
        #[arg(long, default_value_t = 1000)]
        others: u32,
        /// flaggerd's -threadiness.
        #[arg(long, default_value_t = 2)]
        threadiness: u16,
        /// flaggerd's -kubeconfig-qps (Flagger's default; raise it to measure flaggerd
        /// rather than the client-side throttle).
        #[arg(long, default_value_t = 100)]
        kubeconfig_qps: u32,
        /// flaggerd's -kubeconfig-burst.
        #[arg(long, default_value_t = 250)]
        kubeconfig_burst: u32,
    },
}

/// Crates that must never appear in canary-core's normal dependency tree.
const FORBIDDEN_IN_CORE: &[&str] = &[
    "kube",
    "kube-client",
    "kube-core",
    "tokio",
    "hyper",
    "reqwest",
];

fn main() -> Result<()> {
    let cli = Cli::parse();
    std::env::set_current_dir(workspace_root())?;
    match cli.task {
        Task::Test => test(),
        Task::Crds { check } => crds(check),
        Task::Bench { which: None } => bench(),
        Task::Bench {
            which: Some(Bench::Isolation),
        } => isolation::run(),
        Task::Bench {
            which:
                Some(Bench::Scale {
                    canaries,
                    others,
                    threadiness,
                    kubeconfig_qps,
                    kubeconfig_burst,
                }),
        } => bench_scale(
            canaries,
            others,
            threadiness,
            (kubeconfig_qps, kubeconfig_burst),
        ),
        Task::E2e {
            cluster,
            names,
            jobs,
        } => e2e::run(cluster, &names, jobs),
        Task::Conformance => conformance(&cluster::real::build()?),
        Task::Fuzz { cases } => fuzz(cases),
        Task::Demo { cluster, keep } => demo::run(cluster, keep),
        Task::Image => image::run(),
        Task::Chart => chart::run(&cluster::real::build()?),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub(crate) fn cargo(args: &[&str]) -> Result<()> {
    cargo_with(args, &[])
}

/// Runs cargo with `args` and the environment variables `env` set.
fn cargo_with(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Result<()> {
    println!("\n$ cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO"))
        .args(args)
        .envs(env.iter().copied())
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Runs `f`, then prints how long it took (CI's log shows each part's time).
fn timed(what: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    let started = std::time::Instant::now();
    let result = f();
    println!(
        "xtask test: {what} took {:.0}s",
        started.elapsed().as_secs_f64()
    );
    result
}

/// canary-core as an embedder meets it: its docs build without a warning, and the example
/// controller (`examples/embed.rs`) runs a release to its promotion.
fn core_docs() -> Result<()> {
    cargo_with(
        &["doc", "-p", "canary-core", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings".as_ref())],
    )?;
    cargo(&["run", "-q", "-p", "canary-core", "--example", "embed"])
}

fn test() -> Result<()> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    timed("cargo clippy", || {
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    // The real cluster's control plane (built once from xtask/controlplane), whose kubectl
    // comes first on PATH for the tests that run kubectl: one pinned version everywhere.
    let mut controlplane = PathBuf::new();
    timed("the control plane's Go build", || {
        controlplane = cluster::real::build()?;
        Ok(())
    })?;
    let path = std::env::join_paths(std::iter::once(std::path::absolute(&controlplane)?).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))?;
    timed("cargo test --workspace", || {
        cargo_with(&["test", "--workspace"], &[("PATH", path.as_os_str())])
    })?;
    crds(true)?;
    core_is_pure()?;
    timed("canary-core's docs and embedding example", core_docs)?;
    timed("the container images", image::run)?;
    timed("the Helm chart", || chart::run(&controlplane))?;
    timed(
        "kube-sim's conformance tests on the real API server",
        || conformance(&controlplane),
    )?;
    println!("\n$ cargo xtask e2e --cluster real --jobs 2");
    timed("e2e on the real cluster", || e2e::run(Kind::Real, &[], 2))?;
    println!("\nxtask test: all checks passed");
    Ok(())
}

/// Runs kube-sim's conformance tests against a real API server (etcd, kube-apiserver and
/// the garbage collector built from xtask/controlplane): the tests kube-sim passes must
/// pass there too. Tests named `sim_only_*` exercise kube-sim's own controls (compaction,
/// fault injection, its workload simulator) and are skipped.
fn conformance(controlplane: &Path) -> Result<()> {
    println!("\n$ cargo xtask conformance   # kube-sim's conformance tests, on a real API server");
    let cluster = cluster::Cluster::start_bare(controlplane, "conformance")?;
    let result = cargo_with(
        &[
            "test",
            "-p",
            "kube-sim",
            "--test",
            "conformance",
            "--",
            "--skip",
            "sim_only_",
        ],
        &[("CONFORMANCE_KUBECONFIG", cluster.kubeconfig.as_os_str())],
    );
    if result.is_err() {
        println!("  the API server's logs: {}", cluster.dir.display());
    }
    drop(cluster);
    result
}

/// Runs the fuzz property test with many cases, in release mode with overflow checks on.
fn fuzz(cases: u64) -> Result<()> {
    println!("\n$ PROPTEST_CASES={cases} cargo test --release -p canary-controller --test fuzz");
    let status = Command::new(env!("CARGO"))
        .args([
            "test",
            "--release",
            "-p",
            "canary-controller",
            "--test",
            "fuzz",
            "--",
            "--nocapture",
        ])
        .env("PROPTEST_CASES", cases.to_string())
        .env("CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS", "true")
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("the fuzz test failed ({status})");
    }
    Ok(())
}

/// Where the generated CRDs go: the kustomization of `kubectl apply -k deploy/crds`, and
/// the chart's files (`crd.create=true`).
const CRD_DIRS: [&str; 2] = ["deploy/crds", "charts/flaggerd/files/crds"];

fn crds(check: bool) -> Result<()> {
    let mut stale = Vec::new();
    let generated = canary_api::crds()?;
    for (dir, (file, yaml)) in CRD_DIRS
        .iter()
        .flat_map(|d| generated.iter().map(move |g| (Path::new(d), g)))
    {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(file);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == *yaml {
            continue;
        }
        if check {
            stale.push(path.display().to_string());
        } else {
            std::fs::write(&path, yaml)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        bail!("stale CRDs: {}; run `cargo xtask crds`", stale.join(", "));
    }
    println!("\nxtask crds: deploy/crds/ and the chart's CRDs match crates/canary-api");
    Ok(())
}

/// `cargo tree -p canary-core -e normal` must show none of the I/O crates.
fn core_is_pure() -> Result<()> {
    println!("\n$ cargo tree -p canary-core -e normal --prefix none");
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "canary-core",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .output()
        .context("cannot run cargo tree")?;
    if !out.status.success() {
        bail!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    let found: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| FORBIDDEN_IN_CORE.contains(name))
        .collect();
    if !found.is_empty() {
        bail!(
            "canary-core must stay pure but depends on {}",
            found.join(", ")
        );
    }
    println!(
        "canary-core depends on none of {}",
        FORBIDDEN_IN_CORE.join(", ")
    );
    Ok(())
}

/// `bench scale`: the release flaggerd against kube-sim, driven by the `scale` example of
/// canary-controller (which starts kube-sim in its own process and flaggerd as a child).
fn bench_scale(canaries: u32, others: u32, threadiness: u16, throttle: (u32, u32)) -> Result<()> {
    cargo(&["build", "--release", "-p", "flaggerd"])?;
    let flaggerd = cluster::target_dir().join("release").join("flaggerd");
    let flaggerd = flaggerd.display().to_string();
    let (canaries, others, threadiness) = (
        canaries.to_string(),
        others.to_string(),
        threadiness.to_string(),
    );
    let (qps, burst) = (throttle.0.to_string(), throttle.1.to_string());
    controller_example(
        "scale",
        &[
            "--flaggerd",
            &flaggerd,
            "--canaries",
            &canaries,
            "--others",
            &others,
            "--threadiness",
            &threadiness,
            "--kubeconfig-qps",
            &qps,
            "--kubeconfig-burst",
            &burst,
        ],
    )
}

/// `cargo run --release -p canary-controller --example <name> -- <args>`.
fn controller_example(name: &str, args: &[&str]) -> Result<()> {
    let mut all = vec![
        "run",
        "--release",
        "-p",
        "canary-controller",
        "--example",
        name,
        "--",
    ];
    all.extend_from_slice(args);
    cargo(&all)
}

fn bench() -> Result<()> {
    cargo(&["bench", "-p", "canary-core", "--bench", "advance"])?;
    println!("\nMedians are the middle figure of each `time:` line above (criterion's estimate).");
    controller_example("detection_latency", &[])?;
    Ok(())
}
