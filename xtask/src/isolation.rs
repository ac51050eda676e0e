//! `cargo xtask bench isolation`: how long seed 004's release takes alone, and (for an
//! identical canary in another namespace) beside two canaries whose rollout webhook blocks
//! for 45 s at every step (a `bash` task of the real loadtester). flaggerd runs with
//! Flagger's two reconcile workers; the slow webhooks must not hold them, so the release
//! stays within 10 % of its time alone.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cluster::Cluster;

/// The longest one release may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(240);
/// The slowdown allowed beside the slow canaries.
const TOLERANCE: f64 = 0.10;

/// A canary whose every analysis step waits 45 s on a blocking webhook.
const SLOW: &str = r#"apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: NS
spec:
  provider: kubernetes
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  progressDeadlineSeconds: 600
  service:
    port: 9898
  analysis:
    interval: 2s
    threshold: 5
    iterations: 10
    webhooks:
    - name: integration-test
      type: rollout
      url: http://flagger-loadtester.test/
      timeout: 60s
      metadata:
        type: bash
        cmd: "sleep 45"
"#;

const SLOW_NAMESPACES: [&str; 2] = ["slow-a", "slow-b"];

pub(crate) fn run() -> Result<()> {
    let kind = crate::cluster::Kind::Sim;
    crate::e2e::require_programs(kind)?;
    let bin = crate::cluster::build(kind)?;
    let flagger = crate::cluster::Flagger {
        namespace: "istio-system",
        args: &[],
    };
    let mut cluster = Cluster::start(kind, &bin, "bench-isolation", &flagger)?;
    let result = measure(&mut cluster);
    let dir = cluster.dir.clone();
    cluster.stop(result.is_err());
    if result.is_err() {
        println!("  logs: {}", dir.display());
    }
    result
}

/// The two copies of seed 004's canary: the first released alone, the second beside the
/// slow canaries. Each release is its workload's first, so both start the same way (with no
/// traffic in Prometheus yet for the new revision).
const MEASURED: [&str; 2] = ["test", "demo"];

fn measure(cluster: &mut Cluster) -> Result<()> {
    let podinfo = include_str!("../e2e/podinfo.yaml");
    let all = [
        MEASURED[0],
        MEASURED[1],
        SLOW_NAMESPACES[0],
        SLOW_NAMESPACES[1],
    ];
    for ns in all {
        cluster.kubectl(&["create", "namespace", ns])?;
        cluster.apply(&podinfo.replace("namespace: test", &format!("namespace: {ns}")))?;
    }
    let seed = std::fs::read_to_string("crates/canary-core/tests/fixtures/004-istio.yaml")
        .context("seed 004's canary")?;
    let seed = seed.replace(
        "interval: 10s",
        &format!("interval: {}", crate::e2e::INTERVAL),
    );
    for ns in MEASURED {
        cluster.apply(
            &seed
                .replace(".test", &format!(".{ns}"))
                .replace("namespace: test", &format!("namespace: {ns}")),
        )?;
    }
    for ns in SLOW_NAMESPACES {
        cluster.apply(&SLOW.replace("namespace: NS", &format!("namespace: {ns}")))?;
    }
    for ns in all {
        wait_for(cluster, ns, &["Initialized"], RELEASE_TIMEOUT)?;
    }
    println!(
        "four canaries initialized: test/podinfo and demo/podinfo (seed 004, Istio), slow-a/podinfo and slow-b/podinfo (a 45 s webhook at each step)"
    );

    let alone = release(cluster, MEASURED[0])?;
    println!(
        "test/podinfo alone: promoted in {:.1}s",
        alone.as_secs_f64()
    );
    for ns in SLOW_NAMESPACES {
        set_image(cluster, ns, "6.0.1")?;
    }
    for ns in SLOW_NAMESPACES {
        wait_for(cluster, ns, &["Progressing"], RELEASE_TIMEOUT)?;
    }
    // Let both slow canaries reach their first webhook call.
    std::thread::sleep(Duration::from_secs(5));
    let beside = release(cluster, MEASURED[1])?;
    println!(
        "demo/podinfo beside two canaries blocked on 45 s webhooks: promoted in {:.1}s",
        beside.as_secs_f64()
    );
    for ns in SLOW_NAMESPACES {
        let phase = phase(cluster, ns)?;
        if phase != "Progressing" {
            bail!("{ns}/podinfo is {phase}: it did not block during the measurement");
        }
    }
    let ratio = beside.as_secs_f64() / alone.as_secs_f64();
    println!(
        "\nisolation: alone {:.1}s, beside {:.1}s, ratio {ratio:.3} (limit {:.2}); the slow canaries were still Progressing",
        alone.as_secs_f64(),
        beside.as_secs_f64(),
        1.0 + TOLERANCE
    );
    if ratio > 1.0 + TOLERANCE {
        bail!("the release took {ratio:.2} times as long beside the slow canaries");
    }
    Ok(())
}

/// Releases podinfo 6.0.1 in `ns` and returns the time until it is promoted.
fn release(cluster: &mut Cluster, ns: &str) -> Result<Duration> {
    let started = Instant::now();
    set_image(cluster, ns, "6.0.1")?;
    let phase = wait_for(cluster, ns, &["Succeeded", "Failed"], RELEASE_TIMEOUT)?;
    if phase != "Succeeded" {
        bail!("the release in {ns} ended {phase}");
    }
    Ok(started.elapsed())
}

fn set_image(cluster: &Cluster, ns: &str, tag: &str) -> Result<()> {
    let image = format!("podinfod=ghcr.io/stefanprodan/podinfo:{tag}");
    cluster.kubectl(&["-n", ns, "set", "image", "deployment/podinfo", &image])?;
    Ok(())
}

fn phase(cluster: &Cluster, ns: &str) -> Result<String> {
    let out = cluster.kubectl(&["-n", ns, "get", "canary", "podinfo", "-o", "json"])?;
    let v: Value = serde_json::from_str(&out).context("canary JSON")?;
    Ok(v["status"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

fn wait_for(cluster: &mut Cluster, ns: &str, phases: &[&str], limit: Duration) -> Result<String> {
    let deadline = Instant::now() + limit;
    loop {
        cluster.check_alive()?;
        let now = phase(cluster, ns)?;
        if phases.contains(&now.as_str()) {
            return Ok(now);
        }
        if Instant::now() > deadline {
            bail!(
                "{ns}/podinfo stayed {now} for {}s; expected {}",
                limit.as_secs(),
                phases.join(" or ")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
