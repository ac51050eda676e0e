//! `mesh-sim`: the local cluster's data plane as a process.
//!
//! `mesh-sim --kubeconfig /tmp/kube-sim.yaml --port 8899 --upstream flagger-loadtester.test=127.0.0.1:8080`
//! then `http_proxy=http://127.0.0.1:8899 curl http://podinfo.test:9898/`.

use clap::Parser;
use mesh_sim::{MeshSim, Options};

/// The local cluster's data plane: routes by the mesh objects flaggerd writes.
#[derive(Debug, Parser)]
#[command(name = "mesh-sim")]
struct Flags {
    /// Kubeconfig of the cluster whose Services and routing objects are followed.
    #[arg(long)]
    kubeconfig: String,
    /// Loopback port of the proxy (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// A host served by a process outside the cluster, as HOST=IP:PORT (repeatable).
    #[arg(long, value_parser = upstream)]
    upstream: Vec<(String, String)>,
}

fn upstream(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(h, a)| (h.to_string(), a.to_string()))
        .ok_or_else(|| format!("{text:?}: expected HOST=IP:PORT"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    mesh_sim::log_to_stderr();
    let options = Options {
        port: flags.port,
        upstreams: flags.upstream.into_iter().collect(),
    };
    let client = mesh_sim::client_from_kubeconfig(&flags.kubeconfig).await?;
    let sim = MeshSim::start(client, options).await?;
    eprintln!("mesh-sim listening on http://{}", sim.addr());
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sim.wait() => {}
    }
    Ok(())
}
