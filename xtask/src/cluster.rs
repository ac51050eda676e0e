//! The local cluster of `cargo xtask e2e` and `cargo xtask demo`: kube-sim, mesh-sim, Debian's
//! Prometheus scraping mesh-sim, the loadtester and the `flaggerd` binary, each a process on
//! loopback, and the real `kubectl` pointed at kube-sim. Everything lives in one temporary
//! directory (kubeconfig, Prometheus config and data, each process's log) and every process
//! is killed when the [`Cluster`] is dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The binaries the cluster runs, built by [`build`].
const BINARIES: [&str; 4] = ["kube-sim", "mesh-sim", "loadtester", "flaggerd"];

/// The namespaces whose `flagger-loadtester.<ns>` host reaches the loadtester.
const LOADTESTER_NAMESPACES: [&str; 2] = ["test", "demo"];

/// Builds the cluster's binaries (debug) and returns the directory they are in.
pub(crate) fn build() -> Result<PathBuf> {
    let mut args = vec!["build", "--quiet"];
    for b in BINARIES {
        args.extend(["-p", b]);
    }
    crate::cargo(&args)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    Ok(target.join("debug"))
}

/// The system programs the cluster needs, with the Debian package of each.
pub(crate) fn missing_programs() -> Vec<(&'static str, &'static str)> {
    [
        ("prometheus", "prometheus"),
        ("hey", "hey"),
        ("kubectl", "kubectl"),
        ("curl", "curl"),
    ]
    .into_iter()
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
    /// The temporary directory of this cluster.
    pub(crate) dir: PathBuf,
    /// kube-sim's kubeconfig, for `kubectl` and the user.
    pub(crate) kubeconfig: PathBuf,
    /// mesh-sim's proxy: `http_proxy` for clients of cluster names.
    pub(crate) proxy: String,
    /// Prometheus' address.
    pub(crate) prometheus: String,
    processes: Vec<(&'static str, Child)>,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_for_port(name: &str, port: u16, child: &mut Child, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            bail!("{name} exited ({status}) before listening; its log:\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "{name} did not listen on 127.0.0.1:{port} within 30 s (log {})",
        log.display()
    )
}

impl Cluster {
    /// Starts every process. `flaggerd_args` are added to flaggerd's flags (the mesh
    /// provider, say). Ports are picked free and then bound by the process; when another
    /// program takes one in between, the whole cluster is started again on new ports.
    pub(crate) fn start(bin: &Path, name: &str, flaggerd_args: &[&str]) -> Result<Cluster> {
        let mut attempt = 1;
        loop {
            match Cluster::start_once(bin, name, flaggerd_args) {
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

    fn start_once(bin: &Path, name: &str, flaggerd_args: &[&str]) -> Result<Cluster> {
        let dir = std::env::temp_dir().join(format!("flaggerd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let kubeconfig = dir.join("kubeconfig");
        let mut cluster = Cluster {
            kubeconfig: kubeconfig.clone(),
            proxy: String::new(),
            prometheus: String::new(),
            dir: dir.clone(),
            processes: Vec::new(),
        };

        cluster.capture_hey()?;
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
        cluster.kubectl(&["apply", "-k", "deploy/crds"])?;
        cluster.kubectl(&["apply", "-f", "crates/mesh-sim/crds/meshes.yaml"])?;

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

        let mut loadtester = Command::new(bin.join("loadtester"));
        loadtester
            .args([
                "-port",
                &loadtester_port.to_string(),
                "-listen-address",
                "127.0.0.1",
            ])
            .args(["-timeout", "5m"]);
        cluster.proxied(&mut loadtester);
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

        let flaggerd_port = free_port()?;
        let mut flaggerd = Command::new(bin.join("flaggerd"));
        flaggerd
            .arg(format!("-kubeconfig={}", kubeconfig.display()))
            .arg(format!("-metrics-server={}", cluster.prometheus))
            .arg(format!("-port={flaggerd_port}"))
            .arg("-min-analysis-interval=1s")
            .args(flaggerd_args);
        cluster.proxied(&mut flaggerd);
        cluster.spawn("flaggerd", flaggerd_port, &mut flaggerd)?;
        // A port answering may be another program's that took it first: a process that
        // lost its port exits at once, with the reason in its log.
        std::thread::sleep(Duration::from_millis(300));
        cluster.check_started()?;
        Ok(cluster)
    }

    /// Fails, with the process's log, when one of them has exited.
    fn check_started(&mut self) -> Result<()> {
        for (name, child) in &mut self.processes {
            if let Some(status) = child.try_wait()? {
                let log = self.dir.join(format!("{name}.log"));
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: String = tail.lines().take(5).collect::<Vec<_>>().join("\n");
                bail!("{name} exited ({status}) while the cluster started: {tail}");
            }
        }
        Ok(())
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
        let dirs = std::iter::once(self.dir.join("bin")).chain(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(dirs) {
            cmd.env("PATH", joined);
        }
        cmd.env("http_proxy", &self.proxy)
            .env("HTTP_PROXY", &self.proxy)
            .env("no_proxy", "127.0.0.1,localhost")
            .env("NO_PROXY", "127.0.0.1,localhost")
    }

    fn spawn(&mut self, name: &'static str, port: u16, cmd: &mut Command) -> Result<()> {
        let log = self.log(name);
        let file = std::fs::File::create(&log)?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let ready = wait_for_port(name, port, &mut child, &log);
        self.processes.push((name, child));
        ready
    }

    /// The log file of one process.
    pub(crate) fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// Runs the real kubectl against kube-sim; fails with its stderr.
    pub(crate) fn kubectl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .context("cannot run kubectl")?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl apply -f -` of a manifest.
    pub(crate) fn apply(&self, manifest: &str) -> Result<String> {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .args(["apply", "-f", "-"])
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run kubectl")?;
        child
            .stdin
            .take()
            .context("kubectl stdin")?
            .write_all(manifest.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "kubectl apply failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether every process is still running; names the first that is not.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        for (name, child) in &mut self.processes {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{name} exited ({status}); its log: {}",
                    self.dir.join(format!("{name}.log")).display()
                );
            }
        }
        Ok(())
    }

    /// Stops every process; with `keep_files` the directory (logs, kubeconfig) stays.
    pub(crate) fn stop(&mut self, keep_files: bool) {
        for (_, child) in self.processes.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.processes.clear();
        if !keep_files {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Files stay on a failure path (the caller prints where); processes never do.
        self.stop(true);
    }
}
