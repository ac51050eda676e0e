//! kube-sim: a Kubernetes API server emulator on loopback, for tests and demos.
//!
//! It serves what kube-rs and the real `kubectl` need (discovery, CRUD with
//! resourceVersion and 409 conflicts, generation, the status subresource, selectors,
//! watches with bookmarks and 410 Gone, merge/JSON/strategic patches, server-side apply,
//! finalizers, owner-reference garbage collection, CRDs with printer columns and `Table`
//! output), simulates workloads (Deployment, DaemonSet and HPA status) and injects faults.
//! It is test infrastructure: it must never be linked into flaggerd. docs/kube-sim.md says
//! what it emulates and what it does not.

pub mod api;
mod defaults;
mod events;
pub mod faults;
mod http;
mod openapi;
pub mod patch;
mod proto;
pub mod registry;
pub mod requests;
pub mod select;
pub mod ssa;
pub mod store;
pub mod table;
pub mod workloads;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use api::Cluster;
pub use faults::{FaultConfig, FaultCounters, Faults};
pub use workloads::{NEVER_READY, WorkloadConfig};

/// State shared by the server and the simulator.
pub struct Shared {
    /// Types and objects.
    pub cluster: Cluster,
    /// Fault knobs and counters.
    pub faults: Faults,
    /// The bearer token clients must send.
    pub token: String,
    /// Where the server listens.
    pub addr: SocketAddr,
    /// Workload simulator settings.
    pub workloads: WorkloadConfig,
    /// `apiserver_request_total`, served on `/metrics`.
    pub requests: requests::Requests,
}

/// How to start kube-sim.
#[derive(Clone, Debug)]
pub struct Options {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The bearer token clients must send.
    pub token: String,
    /// Changes kept for watches to resume from; older resourceVersions answer 410 Gone.
    pub history: usize,
    /// Faults from the start.
    pub faults: FaultConfig,
    /// Workload simulator settings.
    pub workloads: WorkloadConfig,
    /// Where to write the kubeconfig; a file in the temp directory when `None`.
    pub kubeconfig: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: 0,
            token: "kube-sim-token".into(),
            history: 10_000,
            faults: FaultConfig::default(),
            workloads: WorkloadConfig::default(),
            kubeconfig: None,
        }
    }
}

/// A running kube-sim; stops when dropped.
pub struct KubeSim {
    shared: Arc<Shared>,
    kubeconfig: PathBuf,
    owns_kubeconfig: bool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Why kube-sim could not start or give a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The loopback port could not be bound.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The kubeconfig could not be written.
    #[error("cannot write the kubeconfig {}", .path.display())]
    WriteKubeconfig {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig could not be read back into a client configuration.
    #[error("cannot read the kubeconfig {}", .path.display())]
    ReadKubeconfig {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The client could not be built.
    #[error("cannot build a client for kube-sim")]
    Client(#[source] kube::Error),
}

/// A loopback port that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on 127.0.0.1:{port}")]
pub struct ListenError {
    /// The port asked for (0: any).
    pub port: u16,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Binds `127.0.0.1:<port>` (0: a free port) and says which address it got; the servers of
/// the local cluster (kube-sim, mesh-sim) listen only on loopback.
pub async fn listen_loopback(
    port: u16,
) -> Result<(tokio::net::TcpListener, SocketAddr), ListenError> {
    let error = |source| ListenError { port, source };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(error)?;
    let addr = listener.local_addr().map_err(error)?;
    Ok((listener, addr))
}

impl KubeSim {
    /// Starts kube-sim on a free loopback port with default options.
    pub async fn start() -> Result<KubeSim, Error> {
        Self::start_with(Options::default()).await
    }

    /// Starts kube-sim with `options`.
    pub async fn start_with(options: Options) -> Result<KubeSim, Error> {
        let (listener, addr) = listen_loopback(options.port).await?;
        let shared = Arc::new(Shared {
            cluster: Cluster::new(options.history),
            faults: Faults::new(options.faults.clone()),
            token: options.token.clone(),
            addr,
            workloads: options.workloads.clone(),
            requests: requests::Requests::default(),
        });
        let app_state = shared.clone();
        let app = axum::Router::new().fallback(move |method, uri, headers, body| {
            http::handle(app_state.clone(), method, uri, headers, body)
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let sim = tokio::spawn(workloads::run(shared.clone()));
        let owns_kubeconfig = options.kubeconfig.is_none();
        let kubeconfig = options.kubeconfig.unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "kube-sim-{}-{}.yaml",
                std::process::id(),
                addr.port()
            ))
        });
        std::fs::write(&kubeconfig, kubeconfig_yaml(addr, &options.token)).map_err(|source| {
            Error::WriteKubeconfig {
                path: kubeconfig.clone(),
                source,
            }
        })?;
        Ok(KubeSim {
            shared,
            kubeconfig,
            owns_kubeconfig,
            tasks: vec![server, sim],
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The kubeconfig file that points kubectl and kube-rs at this server.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kube-rs client for this server.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        let read = |source| Error::ReadKubeconfig {
            path: self.kubeconfig.clone(),
            source,
        };
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).map_err(read)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(read)?;
        kube::Client::try_from(config).map_err(Error::Client)
    }

    /// The fault knobs and counters.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// `apiserver_request_total`: every request served so far, by series.
    pub fn requests(&self) -> std::collections::BTreeMap<requests::RequestKey, u64> {
        self.shared.requests.snapshot()
    }

    /// The cluster, for direct inspection in tests.
    pub fn cluster(&self) -> &Cluster {
        &self.shared.cluster
    }

    /// Waits until the server is stopped (for the binary).
    pub async fn wait(mut self) {
        if let Some(server) = self.tasks.first_mut() {
            let _ = server.await;
        }
    }
}

impl Drop for KubeSim {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if self.owns_kubeconfig {
            let _ = std::fs::remove_file(&self.kubeconfig);
        }
    }
}

/// A kubeconfig for a server at `addr` with a bearer token.
pub fn kubeconfig_yaml(addr: SocketAddr, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-sim\n  cluster:\n    server: http://{addr}\nusers:\n- name: kube-sim\n  user:\n    token: {token}\ncontexts:\n- name: kube-sim\n  context:\n    cluster: kube-sim\n    user: kube-sim\n    namespace: default\ncurrent-context: kube-sim\n"
    )
}
