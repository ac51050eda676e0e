//! xtask: the one task runner of the workspace (`cargo xtask <task>`).
//!
//! `test` runs every check CI runs; `crds` regenerates `deploy/crds/`; `bench` runs the
//! benchmarks; `e2e` plays the seeds on a local cluster; `demo` plays the seeds' podinfo
//! canary on one. It shells out to cargo and prints
//! what it runs, so a failing step can be rerun by hand.

#![expect(
    clippy::disallowed_methods,
    reason = "xtask is a synchronous driver of processes: it sleeps between polls of kubectl and ports"
)]

mod cluster;
mod demo;
mod e2e;
mod isolation;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  test          fmt check, clippy -D warnings, all tests, CRD staleness, canary-core purity,
                kube-sim's conformance on a real API server, e2e on the real cluster
  crds [--check] write (or check) deploy/crds/*.yaml from crates/canary-api
  bench         criterion benchmarks of canary-core, and flaggerd's detection latency on kube-sim
  bench isolation  seed 004's release time alone and beside two canaries blocked on 45 s
                webhooks, on the local cluster (fails above +10 %)
  bench scale [--canaries N] [--others M] [--threadiness T]
                flaggerd's API requests, step lag, starvation, memory and CPU with N canaries
                (100) beside M unrelated Deployments and ConfigMaps (1000), on kube-sim
  fuzz [CASES]  the fuzz property test (stored canaries through decoding, validation, the engine
                and every builder) with CASES cases (100000 by default; cargo test runs 256)
  conformance   kube-sim's conformance tests against a real API server (etcd, kube-apiserver,
                the garbage collector), built from xtask/controlplane with Go
  e2e [--cluster real|sim] [NAME]...
                play the seeds' scenarios on a local cluster (mesh-sim, Prometheus, the
                loadtester, flaggerd on kube-sim or on a real control plane with KWOK),
                each printing PASS or FAIL
  demo [--cluster sim|real] [--keep]
                play seed 004's podinfo canary on a local cluster (sim by default): a
                promotion, then a failed release; --keep leaves the cluster up for your own
                kubectl commands";

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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("crds") => crds(args.get(1).map(String::as_str) == Some("--check")),
        Some("bench") => match args.get(1).map(String::as_str) {
            None => bench(),
            Some("isolation") => isolation::run(),
            Some("scale") => bench_scale(&args[2..]),
            Some(other) => {
                bail!("unknown benchmark {other:?}; benchmarks: isolation, scale\n\n{USAGE}")
            }
        },
        Some("e2e") => e2e::run(&args[1..]),
        Some("conformance") => conformance(&cluster::real::build()?),
        Some("fuzz") => fuzz(args.get(1).map(String::as_str)),
        Some("demo") => demo::run(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task {other:?}\n\n{USAGE}"),
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
    timed(
        "kube-sim's conformance tests on the real API server",
        || conformance(&controlplane),
    )?;
    println!("\n$ cargo xtask e2e --cluster real");
    timed("e2e on the real cluster", || {
        e2e::run(&["--cluster".to_string(), "real".to_string()])
    })?;
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
fn fuzz(cases: Option<&str>) -> Result<()> {
    let cases = cases.unwrap_or("100000");
    cases
        .parse::<u64>()
        .with_context(|| format!("{cases:?} is not a number of cases"))?;
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
        .env("PROPTEST_CASES", cases)
        .env("CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS", "true")
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("the fuzz test failed ({status})");
    }
    Ok(())
}

fn crds(check: bool) -> Result<()> {
    let dir = Path::new("deploy/crds");
    std::fs::create_dir_all(dir)?;
    let mut stale = Vec::new();
    for (file, yaml) in canary_api::crds()? {
        let path = dir.join(file);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == yaml {
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
    println!("\nxtask crds: deploy/crds/ matches crates/canary-api");
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
fn bench_scale(args: &[String]) -> Result<()> {
    cargo(&["build", "--release", "-p", "flaggerd"])?;
    let flaggerd = cluster::target_dir().join("release").join("flaggerd");
    let flaggerd = flaggerd.display().to_string();
    let mut run = vec![
        "run",
        "--release",
        "-p",
        "canary-controller",
        "--example",
        "scale",
        "--",
        "--flaggerd",
        &flaggerd,
    ];
    run.extend(args.iter().map(String::as_str));
    cargo(&run)
}

fn bench() -> Result<()> {
    cargo(&["bench", "-p", "canary-core", "--bench", "advance"])?;
    println!("\nMedians are the middle figure of each `time:` line above (criterion's estimate).");
    cargo(&[
        "run",
        "--release",
        "-p",
        "canary-controller",
        "--example",
        "detection_latency",
    ])?;
    Ok(())
}
