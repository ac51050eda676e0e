//! `cargo xtask demo`: seed 004's podinfo canary, a successful release then a failed one,
//! printed as a user would follow it (`kubectl get canaries` rows and the events).
//!
//! Until the local cluster exists (kube-sim, mesh-sim, Prometheus, the loadtester), this
//! plays the real engine (canary-core's `advance`) against its offline simulator with
//! scripted metric values, and says so.

use anyhow::{Context, Result};
use canary_core::sim::{Script, Sim};
use canary_core::{HookType, Level, MetricOutcome, Phase, Settings};

const SPEC: &str = include_str!("../../crates/canary-core/tests/fixtures/004-istio.yaml");

/// Metric values of a release: healthy, or failing from step `bad_from` on.
struct Release {
    bad_from: Option<u32>,
}

impl Script for Release {
    fn webhook(&mut self, kind: HookType, _: &str, _: u32) -> Result<(), String> {
        match kind {
            HookType::Rollback => Err("rollback gate closed".into()),
            _ => Ok(()),
        }
    }

    fn metric(&mut self, name: &str, step: u32) -> MetricOutcome {
        const FAILING_RATES: [f64; 5] = [69.17, 61.39, 55.06, 47.00, 38.08];
        let failing = self.bad_from.and_then(|from| step.checked_sub(from));
        match (name, failing) {
            ("request-duration", _) => MetricOutcome::Value(180.0),
            (_, Some(i)) => MetricOutcome::Value(FAILING_RATES[(i as usize).min(4)]),
            (_, None) => MetricOutcome::Value(99.92),
        }
    }
}

pub(crate) fn run() -> Result<()> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(SPEC).context("seed 004 fixture")?;
    let spec = serde_yaml_ng::from_value(doc["spec"].clone()).context("seed 004 spec")?;
    let mut settings = Settings::new("istio");
    settings.min_interval = std::time::Duration::from_secs(10);
    let mut sim = Sim::new("podinfo", "test", spec, settings);
    sim.replicas = 2;

    println!(
        "flaggerd demo: seed 004's podinfo canary (Istio, steps of 5% up to 50%, 10s interval)"
    );
    println!("This build plays the real analysis engine (canary-core) against a simulated cluster");
    println!("with scripted Prometheus values; the demo on a local cluster (kube-sim, mesh-sim,");
    println!(
        "Prometheus, the loadtester and the flaggerd binary) replaces it in a later release.\n"
    );

    println!("$ kubectl apply -f podinfo-canary.yaml");
    header();
    play(
        &mut sim,
        &mut Release { bad_from: None },
        &[Phase::Initialized],
    )?;

    println!(
        "\n$ kubectl -n test set image deployment/podinfo podinfod=ghcr.io/stefanprodan/podinfo:6.0.1"
    );
    sim.set_revision("podinfo:6.0.1");
    let start = sim.now;
    header();
    let promoted = play(
        &mut sim,
        &mut Release { bad_from: None },
        &[Phase::Succeeded, Phase::Failed],
    )?;
    let promotion_time = sim.now - start;

    println!(
        "\n$ kubectl -n test set image deployment/podinfo podinfod=ghcr.io/stefanprodan/podinfo:6.0.2"
    );
    println!("  (this release answers HTTP 500 to a third of the requests after a few steps)");
    sim.set_revision("podinfo:6.0.2");
    let bad_from = sim.steps + 8;
    let start = sim.now;
    header();
    let failed = play(
        &mut sim,
        &mut Release {
            bad_from: Some(bad_from),
        },
        &[Phase::Succeeded, Phase::Failed],
    )?;
    let rollback_time = sim.now - start;

    if let Some(report) = &sim.status.analysis {
        println!("\nWhy (status.analysis of the last step):");
        for c in &report.checks {
            let value = c.value.map_or("-".to_string(), |v| format!("{v:.2}"));
            let threshold = c.threshold.as_deref().unwrap_or("");
            println!(
                "  {:<22} {:<10} value {value:<8} threshold {threshold}",
                c.name,
                format!("{:?}", c.result)
            );
        }
    }
    println!(
        "\nSummary: 6.0.1 {} after {}s of simulated time; 6.0.2 {} after {}s with {} failed checks; final phase {}.",
        if promoted == Phase::Succeeded {
            "was promoted"
        } else {
            "FAILED"
        },
        promotion_time.num_seconds(),
        if failed == Phase::Failed {
            "was rolled back"
        } else {
            "was NOT rolled back"
        },
        rollback_time.num_seconds(),
        sim.status.failed_checks,
        sim.status.phase.map_or("none", |p| p.as_str()),
    );
    if promoted != Phase::Succeeded || failed != Phase::Failed {
        anyhow::bail!("the demo did not end as the seed does");
    }
    Ok(())
}

fn header() {
    println!(
        "  {:<8} {:<18} {:<7} {:<7} EVENTS",
        "TIME", "STATUS", "WEIGHT", "FAILED"
    );
}

fn play(sim: &mut Sim, script: &mut Release, until: &[Phase]) -> Result<Phase> {
    let origin = chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    for _ in 0..80 {
        let mark = sim.events.len();
        let at = sim.now - origin;
        sim.step(script);
        let phase = sim.status.phase.map_or("", |p| p.as_str());
        let events = &sim.events[mark..];
        let time = format!("{:02}:{:02}", at.num_minutes(), at.num_seconds() % 60);
        let mut first = true;
        for e in events {
            let kind = if e.level == Level::Info {
                "Normal "
            } else {
                "Warning"
            };
            if first {
                println!(
                    "  {time:<8} {phase:<18} {:<7} {:<7} {kind} {}",
                    sim.status.canary_weight, sim.status.failed_checks, e.message
                );
                first = false;
            } else {
                println!(
                    "  {:<8} {:<18} {:<7} {:<7} {kind} {}",
                    "", "", "", "", e.message
                );
            }
        }
        if let Some(p) = sim.status.phase
            && until.contains(&p)
        {
            return Ok(p);
        }
    }
    anyhow::bail!("the canary did not reach {until:?} within 80 steps")
}
