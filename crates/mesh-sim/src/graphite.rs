//! Debian's Graphite as child processes of a test: `carbon-cache` (graphite-carbon) storing
//! every series at a 1 s resolution for an hour in a temporary directory, and graphite-web's
//! render API served by Django's development server (`graphite-manage runserver`), reading
//! the same whisper files and carbon's cache. Free loopback ports; killed when dropped.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long [`Graphite::start`] waits for both programs to answer.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// The Python module (in the temporary directory) graphite-web reads as its local settings.
const SETTINGS_MODULE: &str = "flaggerd_graphite_settings";

/// A running Graphite: carbon-cache and graphite-web.
pub struct Graphite {
    /// graphite-web: `http://127.0.0.1:PORT` (its render API is `<address>/render`).
    pub address: String,
    /// carbon-cache's plaintext line receiver: `127.0.0.1:PORT`.
    pub carbon: SocketAddr,
    dir: PathBuf,
    cache: tokio::process::Child,
    web: tokio::process::Child,
}

impl Graphite {
    /// Starts carbon-cache and graphite-web and waits (at most a minute) until carbon accepts
    /// connections and graphite-web answers a render. Fails, saying how to install them, when
    /// the programs are missing: a test that needs the real Graphite never passes without it
    /// (CI installs it: `.ci/run`).
    pub async fn start() -> Result<Graphite, String> {
        if !installed("carbon-cache") || !installed("graphite-manage") {
            return Err("Debian's graphite-web and graphite-carbon are not installed: sudo apt-get install -y graphite-web graphite-carbon (.ci/run does it)".into());
        }
        // Four distinct free ports: held together, then released for the programs.
        let [line, pickle, query, web] = free_ports()?;
        let dir =
            std::env::temp_dir().join(format!("flaggerd-graphite-{}-{web}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["whisper", "log", "webapp"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        // Until `Graphite` owns the directory (and removes it when dropped), a failure
        // removes it here.
        let removing = |e: String| {
            let _ = std::fs::remove_dir_all(&dir);
            e
        };
        write_config(&dir, line, pickle, query).map_err(removing)?;

        let cache = spawn(
            tokio::process::Command::new("carbon-cache")
                .arg(format!("--config={}", dir.join("carbon.conf").display()))
                .arg(format!("--pidfile={}", dir.join("carbon.pid").display()))
                .arg(format!("--logdir={}", dir.join("log").display()))
                .args(["--nodaemon", "start"]),
            &dir,
            "carbon-cache",
        )
        .map_err(removing)?;
        let web_child = spawn(
            tokio::process::Command::new("graphite-manage")
                .args(["runserver", &format!("127.0.0.1:{web}"), "--noreload"])
                .env("PYTHONPATH", &dir)
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .env("GRAPHITE_SETTINGS_MODULE", SETTINGS_MODULE)
                .env("DJANGO_SETTINGS_MODULE", "graphite.settings"),
            &dir,
            "graphite-web",
        )
        .map_err(removing)?;
        let mut graphite = Graphite {
            address: format!("http://127.0.0.1:{web}"),
            carbon: SocketAddr::from(([127, 0, 0, 1], line)),
            web: web_child,
            cache,
            dir,
        };
        graphite.ready().await?;
        Ok(graphite)
    }

    /// Sends one point over carbon's plaintext protocol: `<path> <value> <timestamp>`, the
    /// timestamp in Unix seconds (within the last hour: the retention).
    pub fn send(&self, path: &str, value: f64, timestamp: u64) -> Result<(), String> {
        self.send_points(&[(path, value, timestamp)])
    }

    /// Sends points (`(path, value, timestamp)`) over one connection to carbon.
    pub fn send_points(&self, points: &[(&str, f64, u64)]) -> Result<(), String> {
        let lines: String = points
            .iter()
            .map(|(path, value, timestamp)| format!("{path} {value} {timestamp}\n"))
            .collect();
        let mut stream = TcpStream::connect_timeout(&self.carbon, Duration::from_secs(5))
            .map_err(|e| format!("cannot connect to carbon at {}: {e}", self.carbon))?;
        stream
            .write_all(lines.as_bytes())
            .and_then(|()| stream.flush())
            .map_err(|e| format!("cannot send to carbon at {}: {e}", self.carbon))
    }

    /// Stops both programs now (to test an unreachable Graphite).
    pub async fn stop(&mut self) {
        let _ = self.web.kill().await;
        let _ = self.cache.kill().await;
    }

    /// Waits until carbon takes connections and graphite-web answers `target=test`, or a
    /// program exits, or [`READY_WITHIN`] passes.
    async fn ready(&mut self) -> Result<(), String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        let render = format!("{}/render?target=test&format=json", self.address);
        let started = Instant::now();
        loop {
            let exited = [
                ("carbon-cache", self.cache.try_wait()),
                ("graphite-web", self.web.try_wait()),
            ];
            if let Some((name, Ok(Some(status)))) =
                exited.iter().find(|(_, s)| matches!(s, Ok(Some(_))))
            {
                return Err(format!(
                    "{name} exited ({status}) while starting:\n{}",
                    self.logs()
                ));
            }
            let carbon = TcpStream::connect_timeout(&self.carbon, Duration::from_secs(1)).is_ok();
            let web = match client.get(&render).send().await {
                Ok(resp) => resp.status().is_success(),
                Err(_) => false,
            };
            if carbon && web {
                return Ok(());
            }
            if started.elapsed() > READY_WITHIN {
                return Err(format!(
                    "Graphite did not answer within {}s (carbon: {carbon}, graphite-web: {web}):\n{}",
                    READY_WITHIN.as_secs(),
                    self.logs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The end of both programs' output, to explain a failed start.
    fn logs(&self) -> String {
        ["carbon-cache", "graphite-web"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.join(format!("{name}.out")))
                    .unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {name}:\n{}", tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Graphite {
    fn drop(&mut self) {
        let _ = self.web.start_kill();
        let _ = self.cache.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `program` is on the `PATH`.
fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Four distinct free loopback ports.
fn free_ports() -> Result<[u16; 4], String> {
    let bind = || {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| Ok((l.local_addr()?.port(), l)))
            .map_err(|e| format!("no free port for graphite: {e}"))
    };
    let held = [bind()?, bind()?, bind()?, bind()?];
    Ok(held.map(|(port, _)| port))
}

/// carbon's `carbon.conf` and `storage-schemas.conf` (everything in `dir`, 1 s points kept
/// an hour, written as fast as they come), and graphite-web's settings module.
fn write_config(dir: &Path, line: u16, pickle: u16, query: u16) -> Result<(), String> {
    let d = dir.display();
    let settings = format!("{SETTINGS_MODULE}.py");
    let files = [
        (
            "carbon.conf",
            format!(
                "[cache]\n\
                 STORAGE_DIR = {d}/\n\
                 LOCAL_DATA_DIR = {d}/whisper/\n\
                 CONF_DIR = {d}/\n\
                 LOG_DIR = {d}/log/\n\
                 PID_DIR = {d}/\n\
                 USER =\n\
                 DATABASE = whisper\n\
                 MAX_CACHE_SIZE = inf\n\
                 MAX_UPDATES_PER_SECOND = inf\n\
                 MAX_CREATES_PER_MINUTE = inf\n\
                 LINE_RECEIVER_INTERFACE = 127.0.0.1\n\
                 LINE_RECEIVER_PORT = {line}\n\
                 ENABLE_UDP_LISTENER = False\n\
                 PICKLE_RECEIVER_INTERFACE = 127.0.0.1\n\
                 PICKLE_RECEIVER_PORT = {pickle}\n\
                 CACHE_QUERY_INTERFACE = 127.0.0.1\n\
                 CACHE_QUERY_PORT = {query}\n\
                 LOG_LISTENER_CONNECTIONS = False\n\
                 LOG_CACHE_QUEUE_SORTS = False\n"
            ),
        ),
        (
            "storage-schemas.conf",
            "[everything]\npattern = .*\nretentions = 1s:1h\n".to_string(),
        ),
        (
            "storage-aggregation.conf",
            "[everything]\npattern = .*\nxFilesFactor = 0\naggregationMethod = average\n"
                .to_string(),
        ),
        (
            settings.as_str(),
            format!(
                "SECRET_KEY = 'flaggerd-test'\n\
                 CONF_DIR = {conf:?}\n\
                 STORAGE_DIR = {conf:?}\n\
                 WHISPER_DIR = {whisper:?}\n\
                 CERES_DIR = {ceres:?}\n\
                 LOG_DIR = {log:?}\n\
                 INDEX_FILE = {index:?}\n\
                 CARBONLINK_HOSTS = ['127.0.0.1:{query}']\n\
                 DATABASES = {{'default': {{'NAME': {db:?}, 'ENGINE': 'django.db.backends.sqlite3'}}}}\n",
                conf = d.to_string(),
                whisper = format!("{d}/whisper/"),
                ceres = format!("{d}/ceres/"),
                log = format!("{d}/webapp"),
                index = format!("{d}/index"),
                db = format!("{d}/graphite.db"),
            ),
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text)
            .map_err(|e| format!("cannot write the graphite file {name}: {e}"))?;
    }
    Ok(())
}

/// Spawns `command` in `dir`, its output in `dir/<name>.out`, killed on drop.
fn spawn(
    command: &mut tokio::process::Command,
    dir: &Path,
    name: &str,
) -> Result<tokio::process::Child, String> {
    let out = std::fs::File::create(dir.join(format!("{name}.out")))
        .map_err(|e| format!("cannot create the log of {name}: {e}"))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot create the log of {name}: {e}"))?;
    command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))
}
