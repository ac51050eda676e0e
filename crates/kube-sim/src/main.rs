//! `kube-sim`: the Kubernetes API emulator as a process.
//!
//! `cargo run -p kube-sim -- --port 6443 --write-kubeconfig /tmp/kube-sim.yaml`

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use kube_sim::{KubeSim, Options};

/// kube-sim's flags; faults apply from the start.
#[derive(Debug, Parser)]
#[command(
    name = "kube-sim",
    about = "A Kubernetes API server on loopback for tests"
)]
struct Flags {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write the kubeconfig (a file in the temp directory by default).
    #[arg(long)]
    write_kubeconfig: Option<PathBuf>,
    /// The bearer token clients must send.
    #[arg(long, default_value = "kube-sim-token")]
    token: String,
    /// Milliseconds from a new revision (or scale-up) to all replicas available.
    #[arg(long, default_value_t = 500)]
    startup_ms: u64,
    /// Nodes a DaemonSet schedules on.
    #[arg(long, default_value_t = 2)]
    nodes: i64,
    /// Changes kept for watches to resume from.
    #[arg(long, default_value_t = 10_000)]
    history: usize,
    /// Share (0 to 1) of API requests answered with an error (409, 429, 500, 503).
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Delay added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Watches end after this many events.
    #[arg(long)]
    watch_drop_after_events: Option<u64>,
    /// Watches end after this many seconds.
    #[arg(long)]
    watch_drop_after_secs: Option<f64>,
    /// Seed of the fault dice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let mut options = Options {
        port: flags.port,
        token: flags.token,
        history: flags.history,
        kubeconfig: flags.write_kubeconfig,
        ..Options::default()
    };
    options.workloads.startup = Duration::from_millis(flags.startup_ms);
    options.workloads.nodes = flags.nodes;
    options.faults.error_rate = flags.error_rate;
    options.faults.latency_ms = flags.latency_ms;
    options.faults.watch_drop_after_events = flags.watch_drop_after_events;
    options.faults.watch_drop_after_secs = flags.watch_drop_after_secs;
    options.faults.seed = flags.seed;
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
