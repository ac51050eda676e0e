//! `kube-sim`: the Kubernetes API emulator as a process.
//!
//! `cargo run -p kube-sim -- --port 6443 --write-kubeconfig /tmp/kube-sim.yaml`

use std::time::Duration;

use anyhow::{Context, bail};
use kube_sim::{KubeSim, Options};

const USAGE: &str = "usage: kube-sim [--port N] [--write-kubeconfig FILE] [--token T]
                [--startup-ms MS] [--nodes N] [--history N]
                [--error-rate R] [--latency-ms MS] [--watch-drop-after-events N]
                [--watch-drop-after-secs S] [--seed N]";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut options = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            return Ok(());
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| anyhow::anyhow!("{flag} {value:?}: {e}");
        match flag.as_str() {
            "--port" => options.port = value.parse().map_err(|e| bad(&e))?,
            "--write-kubeconfig" => options.kubeconfig = Some(value.into()),
            "--token" => options.token = value,
            "--startup-ms" => {
                options.workloads.startup =
                    Duration::from_millis(value.parse().map_err(|e| bad(&e))?)
            }
            "--nodes" => options.workloads.nodes = value.parse().map_err(|e| bad(&e))?,
            "--history" => options.history = value.parse().map_err(|e| bad(&e))?,
            "--error-rate" => options.faults.error_rate = value.parse().map_err(|e| bad(&e))?,
            "--latency-ms" => options.faults.latency_ms = value.parse().map_err(|e| bad(&e))?,
            "--watch-drop-after-events" => {
                options.faults.watch_drop_after_events = Some(value.parse().map_err(|e| bad(&e))?)
            }
            "--watch-drop-after-secs" => {
                options.faults.watch_drop_after_secs = Some(value.parse().map_err(|e| bad(&e))?)
            }
            "--seed" => options.faults.seed = value.parse().map_err(|e| bad(&e))?,
            other => bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    let sim = KubeSim::start_with(options).await?;
    eprintln!(
        "kube-sim listening on {} (kubeconfig {})",
        sim.url(),
        sim.kubeconfig_path().display()
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sim.wait() => {}
    }
    Ok(())
}
