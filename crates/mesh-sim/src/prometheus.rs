//! Debian's `prometheus` as a child process of a test: a temporary config scraping loopback
//! targets every second, a temporary data directory, a free port. Killed when dropped.

use std::path::PathBuf;
use std::process::Stdio;

/// A running Prometheus.
pub struct Prometheus {
    /// Its HTTP API: `http://127.0.0.1:PORT`.
    pub address: String,
    dir: PathBuf,
    child: tokio::process::Child,
}

impl Prometheus {
    /// Starts `prometheus` scraping `targets` (`127.0.0.1:PORT`, path `/metrics`) every second.
    /// Fails, saying how to install it, when the program is missing: a test that needs the
    /// real Prometheus never passes without it (CI installs it: `.ci/run`).
    pub async fn start(targets: &[String]) -> Result<Prometheus, String> {
        if std::process::Command::new("prometheus")
            .arg("--version")
            .output()
            .is_err()
        {
            return Err("Debian's prometheus is not installed: sudo apt-get install -y prometheus (.ci/run does it)".into());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free port for prometheus: {e}"))?;
        let dir = std::env::temp_dir().join(format!("flaggerd-prom-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let config = dir.join("prometheus.yml");
        let list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            &config,
            format!("global:\n  scrape_interval: 1s\nscrape_configs:\n- job_name: test\n  static_configs:\n  - targets: [{list}]\n"),
        )
        .map_err(|e| format!("cannot write the prometheus config: {e}"))?;
        let child = tokio::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start prometheus: {e}"))?;
        Ok(Prometheus {
            address: format!("http://127.0.0.1:{port}"),
            dir,
            child,
        })
    }

    /// Stops it now (to test an unreachable Prometheus).
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
