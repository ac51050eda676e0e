//! `cargo xtask demo [--keep]`: seed 004's podinfo canary on a local cluster, as a user
//! follows it: a release promoted step by step, then a release that answers HTTP 500s rolled
//! back. The cluster is the one `cargo xtask e2e` uses ([`crate::cluster`]): kube-sim,
//! mesh-sim as the Istio data plane, Debian's Prometheus, the loadtester and the `flaggerd`
//! binary. It installs `prometheus` and `hey` from Debian when run as root, else says how.
//! With `--keep` the cluster stays up until Enter is pressed, for the user's own kubectl.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cluster::{self, Cluster, Flagger, Kind};
use crate::e2e::{self, Play};

const CANARY: &str = "crates/canary-core/tests/fixtures/004-istio.yaml";

/// The demo's cluster when `--cluster` is not given (see the README for why).
pub(crate) const DEFAULT_CLUSTER: Kind = Kind::Sim;

pub(crate) fn run(kind: Kind, keep: bool) -> Result<()> {
    install_programs(kind)?;
    let bin = cluster::build(kind)?;
    println!("\nflaggerd demo: seed 004's podinfo canary on a local cluster");
    match kind {
        Kind::Sim => println!(
            "  starting kube-sim (the API server), mesh-sim (the Istio data plane), Prometheus,"
        ),
        Kind::Real => println!(
            "  starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK (the node),\n  mesh-sim (the Istio data plane), Prometheus,"
        ),
    }
    println!("  the loadtester and flaggerd, each a process on 127.0.0.1 ...");
    let flagger = Flagger {
        namespace: "istio-system",
        args: &[],
    };
    let mut c = Cluster::start(kind, &bin, "demo", &flagger)?;
    println!("  kubeconfig: {}", c.kubeconfig.display());
    println!(
        "  Prometheus: {}   mesh-sim proxy: {}",
        c.prometheus, c.proxy
    );
    let outcome = play(&mut c);
    if let Err(e) = &outcome {
        println!("\nThe demo did not end as the seed does: {e:#}");
        println!("Logs of every process: {}", c.dir.display());
        c.stop(true);
        return outcome;
    }
    if keep {
        keep_up(&c);
    }
    c.stop(false);
    println!("\nThe cluster is stopped; nothing is left running.");
    Ok(())
}

/// The release story, printed as it happens.
fn play(c: &mut Cluster) -> Result<()> {
    let mut p = Play::new(c);
    p.real_rows = true;
    println!(
        "\n1. Install podinfo and its canary: Istio, steps of 5% up to 50%, rollback after 10"
    );
    println!("   failed checks (success rate >= 99%, P99 latency <= 500ms, from Prometheus).");
    if p.cluster.kind == Kind::Real {
        p.istio_gateway()?;
    }
    p.podinfo("test")?;
    let spec = std::fs::read_to_string(CANARY).context("seed 004's canary")?;
    p.canary(&spec, "podinfo-canary.yaml")?;
    p.kubectl(&["-n", "test", "get", "deployments,services"])?;

    println!(
        "\n2. Release 6.0.1. The loadtester sends traffic to the canary; each step checks it."
    );
    let t = Instant::now();
    e2e::promote(&mut p, "test", "6.0.1")?;
    let promoted = t.elapsed();
    if p.events
        .iter()
        .any(|m| m.starts_with("Halt advancement no values found"))
    {
        println!(
            "  (The 'no values found' halt: the first check ran as the load test started, before"
        );
        println!(
            "  Prometheus had scraped any of its traffic. It counts as one failed check, as in Flagger.)"
        );
    }

    println!("\n3. Release 6.0.2, and make it fail as the seed does (HTTP 500s on the canary).");
    let t = Instant::now();
    e2e::fail(
        &mut p,
        "test",
        "6.0.2",
        e2e::WATCH_500.0,
        e2e::WATCH_500.1,
        "success rate",
    )?;
    let rolled_back = t.elapsed();

    println!();
    p.kubectl(&["get", "canaries", "--all-namespaces"])?;
    let last_halt = p
        .events
        .iter()
        .rev()
        .find(|m| m.starts_with("Halt podinfo.test advancement"))
        .cloned()
        .unwrap_or_default();
    let why = last_halt
        .strip_prefix("Halt podinfo.test advancement ")
        .unwrap_or(&last_halt);
    println!(
        "\nSummary: 6.0.1 was promoted in {}s (10 steps of 5%); 6.0.2 was rolled back after {}s \
         (last check: {why}); podinfo-primary still runs 6.0.1; final phase Failed.",
        secs(promoted),
        secs(rolled_back)
    );
    Ok(())
}

fn secs(d: Duration) -> u64 {
    d.as_secs_f64().round() as u64
}

/// Waits for Enter with the cluster up, saying what to type.
fn keep_up(c: &Cluster) {
    println!("\nThe cluster stays up (--keep). In another terminal:");
    println!("  export KUBECONFIG={}", c.kubeconfig.display());
    if let Some(dir) = c.kubectl_dir() {
        println!(
            "  export PATH={}:$PATH   # kubectl of the API server's version",
            dir.display()
        );
    }
    println!("  kubectl -n test get canaries");
    println!("  kubectl -n test describe canary/podinfo");
    // The checks read the last minute of traffic (the 500s injected into 6.0.2 included),
    // and the loadtester skips the seed's one-minute `hey` while the last one still runs.
    println!(
        "  # a minute after the rollback, once the last release's traffic is out of the checks' 1m window:"
    );
    println!(
        "  kubectl -n test set image deployment/podinfo podinfod=ghcr.io/stefanprodan/podinfo:6.0.3"
    );
    println!("  kubectl -n test wait canary/podinfo --for=condition=promoted --timeout=2m");
    println!("  http_proxy={} curl http://podinfo.test:9898/", c.proxy);
    if c.kind == Kind::Real {
        println!("  kubectl get pods -n test");
        println!("  kubectl -n istio-system logs deploy/flagger -f | jq .msg");
        println!(
            "  kubectl -n test exec -it deploy/flagger-loadtester -- sh -c 'curl http://podinfo-canary.test:9898/status/500'"
        );
        println!("  kubectl -n istio-system port-forward svc/istio-ingressgateway 8080:80 &");
        println!(
            "  curl -H 'Host: app.example.com' http://localhost:8080/   # seed 004's public host"
        );
    }
    println!("Press Enter here to stop it.");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// Installs Debian's prometheus and hey when root; otherwise names the command to run.
fn install_programs(kind: Kind) -> Result<()> {
    let missing = cluster::missing_programs(kind);
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        return e2e::require_programs(kind);
    }
    println!("installing {} from Debian", packages.join(" "));
    // Only the binaries are needed: keep Debian from starting the prometheus service.
    std::fs::write("/usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n")?;
    let _ = Command::new("chmod")
        .args(["+x", "/usr/sbin/policy-rc.d"])
        .status();
    let update = Command::new("apt-get").args(["update", "-qq"]).status();
    let install = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    let _ = std::fs::remove_file("/usr/sbin/policy-rc.d");
    if !update.is_ok_and(|s| s.success()) || !install.is_ok_and(|s| s.success()) {
        bail!("apt-get install -y {} failed", packages.join(" "));
    }
    e2e::require_programs(kind)
}
