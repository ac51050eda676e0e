//! The cluster's processes: started with their logs (and a CRI copy KWOK serves as pod
//! logs), watched while they run, stopped with SIGTERM then SIGKILL.

use super::*;

impl Cluster {
    /// Fails, with the process's log, when one of them has exited.
    pub(super) fn check_started(&mut self) -> Result<()> {
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

    pub(crate) fn spawn(&mut self, name: &'static str, port: u16, cmd: &mut Command) -> Result<()> {
        let log = self.log(name);
        let file = std::fs::File::create(&log)?;
        cmd.stdin(Stdio::null());
        let mut child = if CONTAINER_LOGS.contains(&name) {
            let cri = std::fs::File::create(self.dir.join(format!("{name}.cri.log")))?;
            let mut child = cmd
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("cannot start {name}"))?;
            let sinks = std::sync::Arc::new(std::sync::Mutex::new((file, cri)));
            if let Some(out) = child.stdout.take() {
                container_log(out, "stdout", sinks.clone());
            }
            if let Some(err) = child.stderr.take() {
                container_log(err, "stderr", sinks);
            }
            child
        } else {
            cmd.stdout(file.try_clone()?)
                .stderr(file)
                .spawn()
                .with_context(|| format!("cannot start {name}"))?
        };
        let ready = wait_for_port(name, port, &mut child, &log);
        self.processes.push((name, child));
        ready
    }

    /// The log file of one process.
    pub(crate) fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
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

    /// Stops every process, the last started first: SIGTERM, then SIGKILL after 10 s. With
    /// `keep_files` the directory (logs, kubeconfig) stays.
    pub(crate) fn stop(&mut self, keep_files: bool) {
        for (_, child) in self.processes.iter_mut().rev() {
            let terminated = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            let deadline = Instant::now() + Duration::from_secs(10);
            while terminated && Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.processes.clear();
        if !keep_files {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub(super) fn wait_for_port(name: &str, port: u16, child: &mut Child, log: &Path) -> Result<()> {
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

/// Copies a process's output, line by line, to its log and, in the CRI format
/// (`<RFC 3339 time> <stream> F <line>`), to its container log.
pub(super) fn container_log(
    from: impl std::io::Read + Send + 'static,
    stream: &'static str,
    sinks: std::sync::Arc<std::sync::Mutex<(std::fs::File, std::fs::File)>>,
) {
    use std::io::{BufRead, Write};
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(from);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            let text = line.trim_end_matches('\n');
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            if let Ok(mut files) = sinks.lock() {
                let (plain, cri) = &mut *files;
                let _ = writeln!(plain, "{text}");
                let _ = writeln!(cri, "{now} {stream} F {text}");
            }
            line.clear();
        }
    });
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Files stay on a failure path (the caller prints where); processes never do.
        self.stop(true);
    }
}
