//! The `real` local cluster's control plane: etcd, kube-apiserver, kube-controller-manager
//! and kube-scheduler built from their Go modules (pinned in `xtask/controlplane/go.mod`),
//! and KWOK playing the kubelet of one node. Every component listens on loopback; the API
//! server serves TLS with client-certificate and ServiceAccount-token authentication and the
//! Node and RBAC authorizers, as a kubeadm cluster does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::pki::{self, Pki, User};
use super::{Cluster, free_port};

/// The Go module that pins the components, and where they are built.
const MODULE: &str = "xtask/controlplane";
/// The commands `go build` makes into [`bin_dir`], as (binary, Go package).
const COMMANDS: [(&str, &str); 6] = [
    ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
    (
        "kube-controller-manager",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
    ),
    ("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler"),
    ("kubectl", "k8s.io/kubernetes/cmd/kubectl"),
    ("kwok", "sigs.k8s.io/kwok/cmd/kwok"),
    ("etcd", "./cmd/etcd"),
];

/// The images this cluster's node can pull: the podinfo tags, the loadtester and flaggerd
/// images the seeds and tests use, and the ingress gateway's. Any other image fails to pull.
pub(crate) const KNOWN_IMAGES: &[&str] = &[
    "ghcr.io/stefanprodan/podinfo:3.0.0",
    "ghcr.io/stefanprodan/podinfo:3.0.1",
    "ghcr.io/stefanprodan/podinfo:3.1.0",
    "ghcr.io/stefanprodan/podinfo:3.1.1",
    "ghcr.io/stefanprodan/podinfo:3.1.2",
    "ghcr.io/stefanprodan/podinfo:6.0.0",
    "ghcr.io/stefanprodan/podinfo:6.0.1",
    "ghcr.io/stefanprodan/podinfo:6.0.2",
    "ghcr.io/stefanprodan/podinfo:6.0.3",
    "stefanprodan/podinfo:3.0.0",
    "stefanprodan/podinfo:3.0.1",
    "stefanprodan/podinfo:3.1.0",
    "stefanprodan/podinfo:3.1.1",
    "stefanprodan/podinfo:3.1.2",
    "ghcr.io/fluxcd/flagger-loadtester:0.18.0",
    "ghcr.io/flaggerd/flaggerd:0.1.0",
    "docker.io/istio/proxyv2:1.22.0",
];

/// Where the components are built: `<target>/controlplane/bin`.
pub(crate) fn bin_dir() -> PathBuf {
    super::target_dir().join("controlplane").join("bin")
}

/// Builds the components once (`go build` of the pinned module) and reuses them while
/// `go.mod` and `go.sum` are unchanged.
pub(crate) fn build() -> Result<PathBuf> {
    let bin = bin_dir();
    let stamp = bin.join(".built-from");
    let module = Path::new(MODULE);
    let go_mod =
        std::fs::read_to_string(module.join("go.mod")).context("xtask/controlplane/go.mod")?;
    let go_sum =
        std::fs::read_to_string(module.join("go.sum")).context("xtask/controlplane/go.sum")?;
    // What the binaries are built from: the linker flags (first line), go.mod and go.sum.
    let pins = format!("{}\n{go_mod}\n{go_sum}", version_flags(&go_mod)?);
    let all_built = COMMANDS.iter().all(|(b, _)| bin.join(b).is_file());
    if all_built && std::fs::read_to_string(&stamp).ok().as_deref() == Some(pins.as_str()) {
        return Ok(bin);
    }
    if Command::new("go").arg("version").output().is_err() {
        bail!(
            "the real cluster is built with Go (1.26 or newer), which is not on PATH: install it from https://go.dev/dl/ or `apt-get install golang-go` (a Debian with Go >= 1.26)"
        );
    }
    std::fs::create_dir_all(&bin)?;
    let packages: Vec<&str> = COMMANDS.iter().map(|(_, p)| *p).collect();
    let out = std::path::absolute(&bin)?;
    let ldflags = pins.lines().next().unwrap_or_default().to_string();
    println!(
        "\n$ (cd {MODULE} && go build -trimpath -ldflags='{ldflags}' -o {}/ {})",
        out.display(),
        packages.join(" ")
    );
    let started = Instant::now();
    let status = Command::new("go")
        .current_dir(module)
        .args(["build", "-trimpath", &format!("-ldflags={ldflags}"), "-o"])
        .arg(format!("{}/", out.display()))
        .args(&packages)
        .status()
        .context("cannot run go")?;
    if !status.success() {
        bail!("building the control plane failed ({status}); the command is printed above");
    }
    std::fs::write(&stamp, pins)?;
    println!(
        "built the control plane in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(bin)
}

/// The version of `module` that `dir`'s go.mod requires.
pub(crate) fn required_version(go_mod: &str, dir: &str, module: &str) -> Result<String> {
    go_mod
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(module)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next())
        .map(String::from)
        .with_context(|| format!("{dir}/go.mod does not require {module}"))
}

/// The linker flags that stamp each binary with the release it is built from, as
/// Kubernetes' release builds do (else they report v0.0.0-master). KWOK's is in its source.
fn version_flags(go_mod: &str) -> Result<String> {
    let kubernetes = required_version(go_mod, MODULE, "k8s.io/kubernetes")?;
    let mut parts = kubernetes.trim_start_matches('v').split('.');
    let (major, minor) = (parts.next().unwrap_or("1"), parts.next().unwrap_or("0"));
    let mut flags = vec!["-s".to_string(), "-w".to_string()];
    for package in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        flags.push(format!("-X {package}.gitVersion={kubernetes}"));
        flags.push(format!("-X {package}.gitMajor={major}"));
        flags.push(format!("-X {package}.gitMinor={minor}"));
        flags.push(format!("-X {package}.gitTreeState=clean"));
    }
    Ok(flags.join(" "))
}

/// Which parts of the control plane run beside etcd and the API server.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parts {
    /// Every controller and the scheduler: a cluster whose workloads run (with KWOK).
    Full,
    /// Only the garbage collector: nothing writes a Deployment's status behind a test's back.
    Bare,
}

/// Starts etcd, the API server and the controller manager (and, for [`Parts::Full`], the
/// scheduler), and writes the administrator's kubeconfig to `cluster.kubeconfig`.
pub(crate) fn start(cluster: &mut Cluster, bin: &Path, parts: Parts) -> Result<Pki> {
    let dir = cluster.dir.clone();
    let pki = Pki::create(&dir.join("pki"))?;
    let (etcd_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);

    cluster.spawn(
        "etcd",
        etcd_port,
        Command::new(bin.join("etcd")).args([
            "--name=local".to_string(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
            format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-cluster=local=http://127.0.0.1:{peer_port}"),
            "--unsafe-no-fsync=true".to_string(),
            "--log-level=warn".to_string(),
        ]),
    )?;

    let file = |p: &Path| p.display().to_string();
    let sa_key = file(&pki.service_account_key);
    cluster.spawn(
        "kube-apiserver",
        api_port,
        Command::new(bin.join("kube-apiserver")).args([
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            "--bind-address=127.0.0.1".to_string(),
            "--advertise-address=127.0.0.1".to_string(),
            format!("--secure-port={api_port}"),
            format!("--tls-cert-file={}", file(&pki.apiserver.cert)),
            format!("--tls-private-key-file={}", file(&pki.apiserver.key)),
            format!("--client-ca-file={}", file(&pki.ca.cert)),
            format!(
                "--kubelet-client-certificate={}",
                file(&pki.kubelet_client.cert)
            ),
            format!("--kubelet-client-key={}", file(&pki.kubelet_client.key)),
            format!("--kubelet-certificate-authority={}", file(&pki.ca.cert)),
            "--kubelet-preferred-address-types=InternalIP".to_string(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_string(),
            format!(
                "--service-account-key-file={}",
                file(&pki.service_account_pub)
            ),
            format!("--service-account-signing-key-file={sa_key}"),
            "--service-cluster-ip-range=10.96.0.0/16".to_string(),
            "--authorization-mode=Node,RBAC".to_string(),
            // As OpenShift does: an owner reference with blockOwnerDeletion needs the right
            // to update the owner's finalizers (canaries/finalizers for flaggerd).
            "--enable-admission-plugins=OwnerReferencesPermissionEnforcement".to_string(),
            "--allow-privileged=true".to_string(),
            "--profiling=false".to_string(),
        ]),
    )?;
    let server = format!("https://127.0.0.1:{api_port}");
    let write_kubeconfig = |name: &str, user: User<'_>| -> Result<PathBuf> {
        let path = dir.join(format!("{name}.kubeconfig"));
        std::fs::write(&path, pki::kubeconfig(&server, &pki.ca.cert, &user))?;
        Ok(path)
    };
    let admin = write_kubeconfig("admin", User::Certificate(&pki.admin))?;
    std::fs::copy(&admin, &cluster.kubeconfig)?;
    wait_ready(cluster, "the API server", &["get", "--raw", "/readyz"])?;

    let kcm = write_kubeconfig(
        "controller-manager",
        User::Certificate(&pki.controller_manager),
    )?;
    let kcm_port = free_port()?;
    cluster.spawn(
        "kube-controller-manager",
        kcm_port,
        Command::new(bin.join("kube-controller-manager")).args([
            format!("--kubeconfig={}", file(&kcm)),
            format!("--authentication-kubeconfig={}", file(&kcm)),
            format!("--authorization-kubeconfig={}", file(&kcm)),
            "--bind-address=127.0.0.1".to_string(),
            format!("--secure-port={kcm_port}"),
            "--leader-elect=false".to_string(),
            "--use-service-account-credentials=true".to_string(),
            format!("--service-account-private-key-file={sa_key}"),
            format!("--root-ca-file={}", file(&pki.ca.cert)),
            format!("--cluster-signing-cert-file={}", file(&pki.ca.cert)),
            format!("--cluster-signing-key-file={}", file(&pki.ca.key)),
            match parts {
                Parts::Full => "--controllers=*".to_string(),
                Parts::Bare => "--controllers=garbagecollector".to_string(),
            },
            "--profiling=false".to_string(),
        ]),
    )?;
    if parts == Parts::Bare {
        return Ok(pki);
    }

    let scheduler = write_kubeconfig("scheduler", User::Certificate(&pki.scheduler))?;
    let scheduler_port = free_port()?;
    cluster.spawn(
        "kube-scheduler",
        scheduler_port,
        Command::new(bin.join("kube-scheduler")).args([
            format!("--kubeconfig={}", file(&scheduler)),
            format!("--authentication-kubeconfig={}", file(&scheduler)),
            format!("--authorization-kubeconfig={}", file(&scheduler)),
            "--bind-address=127.0.0.1".to_string(),
            format!("--secure-port={scheduler_port}"),
            "--leader-elect=false".to_string(),
            "--profiling=false".to_string(),
        ]),
    )?;
    Ok(pki)
}

/// Starts KWOK, which plays the kubelet of the node `local-node`, with the stages and
/// mappings of `xtask/controlplane/kwok.yaml`; `mesh_port` is mesh-sim's (port-forwards to
/// the ingress gateway land there).
pub(crate) fn start_kwok(
    cluster: &mut Cluster,
    bin: &Path,
    pki: &Pki,
    mesh_port: u16,
) -> Result<()> {
    let dir = cluster.dir.clone();
    let kwok_port = free_port()?;
    let quoted: Vec<String> = KNOWN_IMAGES.iter().map(|i| format!("\"{i}\"")).collect();
    let path = std::env::join_paths(std::iter::once(dir.join("bin")).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))?;
    let config = std::fs::read_to_string(Path::new(MODULE).join("kwok.yaml"))?
        .replace("@KNOWN_JQ@", &format!("[{}]", quoted.join(",")))
        .replace("@KNOWN_LIST@", &format!("list {}", quoted.join(" ")))
        .replace("@DIR@", &dir.display().to_string())
        .replace("@PATH@", &path.to_string_lossy())
        .replace("@PROXY@", &cluster.proxy)
        .replace("@MESH_PORT@", &mesh_port.to_string());
    let config_file = dir.join("kwok.yaml");
    std::fs::write(&config_file, config)?;
    cluster.spawn(
        "kwok",
        kwok_port,
        Command::new(bin.join("kwok")).args([
            format!("--kubeconfig={}", cluster.kubeconfig.display()),
            format!("--config={}", config_file.display()),
            "--manage-all-nodes=true".to_string(),
            "--node-ip=127.0.0.1".to_string(),
            format!("--node-port={kwok_port}"),
            format!("--server-address=127.0.0.1:{kwok_port}"),
            format!("--tls-cert-file={}", pki.kwok_serving.cert.display()),
            format!("--tls-private-key-file={}", pki.kwok_serving.key.display()),
            "--node-lease-duration-seconds=40".to_string(),
        ]),
    )?;
    cluster.apply(
        "apiVersion: v1
kind: Node
metadata:
  name: local-node
  labels:
    kubernetes.io/hostname: local-node
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: \"0\"
",
    )?;
    wait_ready(
        cluster,
        "the node",
        &[
            "wait",
            "--for=condition=Ready",
            "node/local-node",
            "--timeout=30s",
        ],
    )?;
    // Pods need their namespace's ServiceAccount, which the controller manager creates.
    wait_ready(
        cluster,
        "the default ServiceAccount",
        &["get", "serviceaccount", "default", "-n", "default"],
    )?;
    Ok(())
}

/// Runs `kubectl args` until it succeeds, for at most 60 s.
fn wait_ready(cluster: &mut Cluster, what: &str, args: &[&str]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        cluster.check_alive()?;
        match cluster.kubectl(args) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                bail!("{what} was not ready within 60 s: {e:#}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// A kubeconfig for a ServiceAccount, with a token from the TokenRequest API.
pub(crate) fn service_account_kubeconfig(
    cluster: &Cluster,
    namespace: &str,
    account: &str,
) -> Result<PathBuf> {
    let token = cluster.kubectl(&[
        "-n",
        namespace,
        "create",
        "token",
        account,
        "--duration=24h",
    ])?;
    let admin = std::fs::read_to_string(&cluster.kubeconfig)?;
    let server = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .context("the admin kubeconfig has no server")?;
    let path = cluster.dir.join(format!("{account}.kubeconfig"));
    std::fs::write(
        &path,
        pki::kubeconfig(
            server,
            &cluster.dir.join("pki").join(pki::CA_CERT),
            &User::Token(token.trim()),
        ),
    )?;
    Ok(path)
}
