//! `mesh-sim`: the local cluster's data plane as a process.
//!
//! `mesh-sim --kubeconfig /tmp/kube-sim.yaml --port 8899 --upstream flagger-loadtester.test=127.0.0.1:8080`
//! then `http_proxy=http://127.0.0.1:8899 curl http://podinfo.test:9898/`.

use anyhow::{Context, bail};
use mesh_sim::{MeshSim, Options};

const USAGE: &str = "usage: mesh-sim --kubeconfig FILE [--port N] [--upstream HOST=IP:PORT]...";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "mesh_sim=info".into()),
        )
        .init();
    let mut options = Options::default();
    let mut kubeconfig = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            return Ok(());
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--kubeconfig" => kubeconfig = Some(value),
            "--port" => {
                options.port = value.parse().with_context(|| format!("--port {value:?}"))?
            }
            "--upstream" => {
                let (host, addr) = value
                    .split_once('=')
                    .with_context(|| format!("--upstream {value:?}: expected HOST=IP:PORT"))?;
                options.upstreams.insert(host.to_string(), addr.to_string());
            }
            other => bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    let path = kubeconfig.with_context(|| format!("--kubeconfig is required\n{USAGE}"))?;
    let config = kube::config::Kubeconfig::read_from(&path)
        .with_context(|| format!("cannot read kubeconfig {path}"))?;
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    let sim = MeshSim::start(client, options).await?;
    eprintln!("mesh-sim listening on http://{}", sim.addr());
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sim.wait() => {}
    }
    Ok(())
}
