//! mesh-sim: the data plane of flaggerd's local test cluster. It is test infrastructure and
//! is never linked into flaggerd.
//!
//! - [`podinfo`]: a podinfo-like backend per ready revision, serving what the seeds call.
//! - [`cluster`]: the Services, Deployments and mesh routing objects read from the API server.
//! - [`routing`]: where a request goes, as Istio, Linkerd (SMI), App Mesh, Gateway API or plain
//!   Services would send it (weights, header and cookie matches, mirroring, cookies).
//! - [`metrics`]: each mesh's Prometheus series from the requests carried.
//! - [`knative`]: Knative Serving's controller (Revisions, their Deployments, the Service's
//!   status and traffic).
//! - [`keptn`]: Keptn's metrics operator (KeptnMetrics filled from Prometheus), for the e2e.
//! - [`vendors`]: stand-ins of the metrics vendors' APIs (the `metrics-vendors` binary).
//! - the proxy ([`MeshSim`]): clients reach cluster names through it with `http_proxy`.
//! - [`prometheus`] and [`graphite`]: Debian's Prometheus and Graphite started by a test.

pub mod cluster;
pub mod graphite;
pub mod keptn;
pub mod knative;
pub mod metrics;
pub mod podinfo;
pub mod prometheus;
mod proxy;
pub mod routing;
pub mod vendors;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use cluster::Snapshot;

/// The log of mesh-sim's binaries: to stderr, `mesh_sim=info` unless `RUST_LOG` says
/// otherwise.
pub fn log_to_stderr() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "mesh_sim=info".into()),
        )
        .init();
}

/// A client of the cluster the kubeconfig at `path` names.
pub async fn client_from_kubeconfig(path: &str) -> anyhow::Result<kube::Client> {
    use anyhow::Context;
    let config = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("cannot read kubeconfig {path}"))?;
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// How mesh-sim runs.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The loopback port of the proxy (0 picks a free one).
    pub port: u16,
    /// Hosts served by processes outside the cluster's workloads, as `host -> ip:port`
    /// (`flagger-loadtester.test -> 127.0.0.1:8080`).
    pub upstreams: BTreeMap<String, String>,
}

/// A running mesh-sim: the proxy, and the task that keeps its view of the cluster fresh.
pub struct MeshSim {
    addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Why mesh-sim could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The loopback port could not be bound.
    #[error(transparent)]
    Listen(#[from] kube_sim::ListenError),
    /// The proxy's HTTP client for upstream processes could not be built.
    #[error("cannot build the upstream client")]
    Client(#[source] reqwest::Error),
    /// The cluster's Services and routing objects could not be read.
    #[error("cannot read the cluster's Services and routing objects")]
    Load(#[source] kube::Error),
}

impl MeshSim {
    /// Reads the cluster once (so the first request is routed), then serves while watching
    /// it.
    pub async fn start(client: kube::Client, options: Options) -> Result<MeshSim, Error> {
        let (listener, addr) = kube_sim::listen_loopback(options.port).await?;
        let state = Arc::new(proxy::Proxy::new(options.upstreams).map_err(Error::Client)?);
        *state.snapshot.write().unwrap_or_else(|e| e.into_inner()) =
            Snapshot::load(&client).await.map_err(Error::Load)?;
        let mut tasks = cluster::watch_all(client.clone(), state.snapshot.clone());
        tasks.push(tokio::spawn(knative::run(client, state.snapshot.clone())));
        tasks.push(tokio::spawn(proxy::serve(listener, state)));
        Ok(MeshSim { addr, tasks })
    }

    /// The proxy's address: `http_proxy=http://<addr>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs until the proxy stops.
    pub async fn wait(mut self) {
        if let Some(server) = self.tasks.pop() {
            let _ = server.await;
        }
    }
}

impl Drop for MeshSim {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
