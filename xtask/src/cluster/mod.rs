//! The local cluster of `cargo xtask e2e` and `cargo xtask demo`, of one of two kinds:
//!
//! - `sim`: kube-sim, our API emulator (fast, no Pods);
//! - `real`: etcd, kube-apiserver, kube-controller-manager and kube-scheduler built from
//!   their Go modules, with KWOK as the node's kubelet ([`real`]).
//!
//! Beside it run mesh-sim, Debian's Prometheus scraping mesh-sim, the loadtester and the
//! `flaggerd` binary, each a process on loopback, and the real `kubectl`. Everything lives in
//! one temporary directory (kubeconfigs, certificates, Prometheus config and data, each
//! process's log) and every process is killed when the [`Cluster`] is dropped.

mod kubectl;
mod pki;
mod process;
pub(crate) mod real;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The binaries the cluster runs, built by [`build`].
const BINARIES: [&str; 4] = ["kube-sim", "mesh-sim", "loadtester", "flaggerd"];

/// The processes that are a pod's container too: besides `<name>.log`, their output is kept
/// in the CRI log format in `<name>.cri.log`, which KWOK serves as the pod's `kubectl logs`.
const CONTAINER_LOGS: [&str; 2] = ["flaggerd", "loadtester"];

/// flaggerd's Deployment as Flagger's install has it (`flagger`, container `flagger`); the
/// process itself runs on this machine.
const FLAGGER_DEPLOYMENT: &str = include_str!("../../e2e/flagger.yaml");

/// The namespaces whose `flagger-loadtester.<ns>` host reaches the loadtester.
const LOADTESTER_NAMESPACES: [&str; 2] = ["test", "demo"];

/// The two kinds of local cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// kube-sim: our API emulator.
    Sim,
    /// Kubernetes' own control plane, with KWOK for the node.
    Real,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Sim => "sim",
            Kind::Real => "real",
        }
    }
}

/// The binaries a cluster runs: ours (debug), and the control plane's for `real`.
pub(crate) struct Binaries {
    rust: PathBuf,
    controlplane: Option<PathBuf>,
}

pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Builds the cluster's binaries: ours with cargo (debug) and, for `real`, the control plane
/// with Go (once; see [`real::build`]).
pub(crate) fn build(kind: Kind) -> Result<Binaries> {
    let mut args = vec!["build", "--quiet"];
    for b in BINARIES {
        args.extend(["-p", b]);
    }
    crate::cargo(&args)?;
    let controlplane = match kind {
        Kind::Sim => None,
        Kind::Real => Some(real::build()?),
    };
    Ok(Binaries {
        rust: target_dir().join("debug"),
        controlplane,
    })
}

/// The binaries [`build`] built before, without building them (for the scenarios
/// `cargo xtask e2e --jobs` plays in child processes).
pub(crate) fn built(kind: Kind) -> Binaries {
    Binaries {
        rust: target_dir().join("debug"),
        controlplane: (kind == Kind::Real).then(real::bin_dir),
    }
}

/// The system programs the cluster needs, with the Debian package of each.
/// On `real`, kubectl is built with the control plane.
pub(crate) fn missing_programs(kind: Kind) -> Vec<(&'static str, &'static str)> {
    [
        ("prometheus", "prometheus"),
        ("hey", "hey"),
        ("kubectl", "kubectl"),
        ("curl", "curl"),
        ("jq", "jq"),
    ]
    .into_iter()
    // On `real`, kubectl is the control plane's; jq is for the seeds' `logs | jq .msg`.
    .filter(|(program, _)| match kind {
        Kind::Sim => *program != "jq",
        Kind::Real => *program != "kubectl",
    })
    .filter(|(program, _)| {
        Command::new(program)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
    })
    .collect()
}

/// A running local cluster.
pub(crate) struct Cluster {
    /// Which kind it is.
    pub(crate) kind: Kind,
    /// The temporary directory of this cluster.
    pub(crate) dir: PathBuf,
    /// The administrator's kubeconfig, for `kubectl` and the user.
    pub(crate) kubeconfig: PathBuf,
    /// mesh-sim's proxy: `http_proxy` for clients of cluster names.
    pub(crate) proxy: String,
    /// Prometheus' address.
    pub(crate) prometheus: String,
    /// The kubectl to run: the one built with the control plane on `real` (its version
    /// matches the API server's), the one on PATH on `sim`.
    kubectl: PathBuf,
    processes: Vec<(&'static str, Child)>,
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Where flaggerd runs and how: its namespace (the Deployment `flagger` of Flagger's
/// install guides) and extra flags.
pub(crate) struct Flagger<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) args: &'a [&'a str],
}

impl Cluster {
    /// Starts every process. Ports are picked free and then bound by the process; when
    /// another program takes one in between, the whole cluster is started again on new ports.
    pub(crate) fn start(
        kind: Kind,
        bin: &Binaries,
        name: &str,
        flagger: &Flagger<'_>,
    ) -> Result<Cluster> {
        let mut attempt = 1;
        loop {
            match Cluster::start_once(kind, bin, name, flagger) {
                Err(e) if attempt < 3 && format!("{e:#}").contains("Address already in use") => {
                    println!(
                        "  a port was taken while the cluster started; starting it again: {e:#}"
                    );
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// A bare real control plane (etcd, the API server, the garbage collector) in a fresh
    /// directory, for kube-sim's conformance tests to run against.
    pub(crate) fn start_bare(controlplane: &Path, name: &str) -> Result<Cluster> {
        let dir = std::env::temp_dir().join(format!("flaggerd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let dir = std::path::absolute(&dir)?;
        let controlplane = std::path::absolute(controlplane)?;
        let mut cluster = Cluster {
            kind: Kind::Real,
            kubeconfig: dir.join("kubeconfig"),
            proxy: String::new(),
            prometheus: String::new(),
            kubectl: controlplane.join("kubectl"),
            dir,
            processes: Vec::new(),
        };
        real::start(&mut cluster, &controlplane, real::Parts::Bare)?;
        Ok(cluster)
    }

    fn start_once(
        kind: Kind,
        bins: &Binaries,
        name: &str,
        flagger: &Flagger<'_>,
    ) -> Result<Cluster> {
        let bin = bins.rust.as_path();
        let dir = std::env::temp_dir().join(format!("flaggerd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let dir = std::path::absolute(&dir)?;
        let kubeconfig = dir.join("kubeconfig");
        let controlplane = match (kind, &bins.controlplane) {
            (Kind::Real, Some(cp)) => Some(std::path::absolute(cp)?),
            (Kind::Real, None) => bail!("the real cluster's binaries were not built"),
            (Kind::Sim, _) => None,
        };
        let mut cluster = Cluster {
            kind,
            kubeconfig: kubeconfig.clone(),
            proxy: String::new(),
            prometheus: String::new(),
            kubectl: controlplane
                .as_ref()
                .map_or_else(|| PathBuf::from("kubectl"), |cp| cp.join("kubectl")),
            dir: dir.clone(),
            processes: Vec::new(),
        };

        cluster.capture_hey()?;
        let pki = match &controlplane {
            Some(cp) => Some(real::start(&mut cluster, cp, real::Parts::Full)?),
            None => {
                let kube_port = free_port()?;
                cluster.spawn(
                    "kube-sim",
                    kube_port,
                    Command::new(bin.join("kube-sim")).args([
                        "--port",
                        &kube_port.to_string(),
                        "--write-kubeconfig",
                        &kubeconfig.display().to_string(),
                    ]),
                )?;
                None
            }
        };
        cluster.kubectl(&["apply", "-k", "deploy/crds"])?;
        // Server-side: Gloo's CRDs are larger than client-side apply's annotation allows.
        cluster.kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "crates/mesh-sim/crds/",
        ])?;
        if kind == Kind::Real {
            cluster.kubectl(&[
                "wait",
                "--for=condition=Established",
                "crd",
                "--all",
                "--timeout=60s",
            ])?;
        }

        let (mesh_port, loadtester_port) = (free_port()?, free_port()?);
        let mut mesh = Command::new(bin.join("mesh-sim"));
        mesh.args([
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "--port",
            &mesh_port.to_string(),
        ]);
        for ns in LOADTESTER_NAMESPACES {
            mesh.args([
                "--upstream",
                &format!("flagger-loadtester.{ns}=127.0.0.1:{loadtester_port}"),
            ]);
        }
        cluster.spawn("mesh-sim", mesh_port, &mut mesh)?;
        cluster.proxy = format!("http://127.0.0.1:{mesh_port}");
        if let (Some(cp), Some(pki)) = (&controlplane, &pki) {
            real::start_kwok(&mut cluster, cp, pki, mesh_port)?;
        }

        let mut loadtester = Command::new(bin.join("loadtester"));
        loadtester
            .args([
                "-port",
                &loadtester_port.to_string(),
                "-listen-address",
                "127.0.0.1",
            ])
            .args(["-timeout", "5m"])
            // Only the scenarios' namespaces, with a group as users write it.
            .args([
                "-namespace-regexp",
                &format!("^({})$", LOADTESTER_NAMESPACES.join("|")),
            ]);
        cluster.proxied(&mut loadtester);
        // Its kubectl and helm tasks reach the cluster, as its ServiceAccount would.
        loadtester.env("KUBECONFIG", &cluster.kubeconfig);
        cluster.spawn("loadtester", loadtester_port, &mut loadtester)?;

        let prom_port = free_port()?;
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n- job_name: mesh-sim\n  static_configs:\n  - targets: ['127.0.0.1:{mesh_port}']\n"
            ),
        )?;
        cluster.spawn(
            "prometheus",
            prom_port,
            Command::new("prometheus").args([
                format!("--config.file={}", config.display()),
                format!(
                    "--storage.tsdb.path={}",
                    dir.join("prometheus-data").display()
                ),
                format!("--web.listen-address=127.0.0.1:{prom_port}"),
            ]),
        )?;
        cluster.prometheus = format!("http://127.0.0.1:{prom_port}");

        let flaggerd_kubeconfig = cluster.install_flagger(flagger.namespace)?;
        let flaggerd_port = free_port()?;
        let mut flaggerd = Command::new(bin.join("flaggerd"));
        flaggerd
            .arg(format!("-kubeconfig={}", flaggerd_kubeconfig.display()))
            .arg(format!("-metrics-server={}", cluster.prometheus))
            .arg(format!("-port={flaggerd_port}"))
            .arg("-min-analysis-interval=1s")
            .args(flagger.args);
        cluster.proxied(&mut flaggerd);
        cluster.spawn("flaggerd", flaggerd_port, &mut flaggerd)?;
        // A port answering may be another program's that took it first: a process that
        // lost its port exits at once, with the reason in its log.
        std::thread::sleep(Duration::from_millis(300));
        cluster.check_started()?;
        Ok(cluster)
    }

    /// Installs flaggerd as Flagger's guides do: its namespace, the ServiceAccount and RBAC
    /// of `deploy/flaggerd/rbac.yaml`, and a Deployment `flagger` (on `real` its pod runs on
    /// KWOK's node, and `kubectl logs` of it shows the flaggerd process's log). Returns the
    /// kubeconfig flaggerd uses: on `real` its ServiceAccount's token, so the real authorizer
    /// checks the shipped RBAC; on `sim` the administrator's.
    fn install_flagger(&self, namespace: &str) -> Result<PathBuf> {
        self.kubectl(&["create", "namespace", namespace])?;
        let rbac = std::fs::read_to_string("deploy/flaggerd/rbac.yaml")
            .context("deploy/flaggerd/rbac.yaml")?
            .replace(
                "namespace: flagger-system",
                &format!("namespace: {namespace}"),
            );
        self.apply_in(namespace, &rbac)?;
        self.apply_in(
            namespace,
            &FLAGGER_DEPLOYMENT.replace("@NAMESPACE@", namespace),
        )?;
        match self.kind {
            Kind::Real => real::service_account_kubeconfig(self, namespace, "flaggerd"),
            Kind::Sim => Ok(self.kubeconfig.clone()),
        }
    }

    /// In a mesh, a sidecar captures a pod's outgoing connections whatever the program. Here
    /// programs reach mesh-sim through `http_proxy`, which curl and reqwest honour but `hey`
    /// ignores (it takes a proxy only as `-x`). A `hey` first on the PATH of the cluster's
    /// processes adds `-x $http_proxy`, and the seeds' commands run unchanged.
    fn capture_hey(&self) -> Result<()> {
        let real = std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("hey"))
                    .find(|h| h.is_file())
            })
            .unwrap_or_default()
            .context("hey is not on PATH")?;
        let bin = self.dir.join("bin");
        std::fs::create_dir_all(&bin)?;
        let wrapper = bin.join("hey");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\n# mesh-sim's traffic capture for hey (see xtask/src/cluster.rs)\nexec {} -x \"$http_proxy\" \"$@\"\n",
                real.display()
            ),
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
        Ok(())
    }

    /// Sends a program's requests for cluster names through mesh-sim (loopback goes direct).
    pub(crate) fn proxied<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let kubectl_dir = self.kubectl.parent().map(Path::to_path_buf);
        let dirs = std::iter::once(self.dir.join("bin"))
            .chain(kubectl_dir.filter(|d| !d.as_os_str().is_empty()))
            .chain(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(dirs) {
            cmd.env("PATH", joined);
        }
        // gRPC clients (grpc_health_probe, ghz) take the proxy from HTTPS_PROXY and tunnel
        // through it with CONNECT.
        cmd.env("http_proxy", &self.proxy)
            .env("HTTP_PROXY", &self.proxy)
            .env("https_proxy", &self.proxy)
            .env("HTTPS_PROXY", &self.proxy)
            .env("no_proxy", "127.0.0.1,localhost")
            .env("NO_PROXY", "127.0.0.1,localhost")
    }
}
