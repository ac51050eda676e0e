//! `Play`: follows a canary with kubectl (events, rows, metric checks from flaggerd's log)
//! and runs the seeds' shell commands, printing what a user would see.

use super::*;

/// A scenario in progress on one cluster: what has been printed, and the commands run in
/// the background (killed when the play ends).
pub(crate) struct Play<'c> {
    pub(crate) cluster: &'c mut Cluster,
    started: Instant,
    seen: BTreeMap<String, i64>,
    /// Event messages in the order they appeared.
    pub(crate) events: Vec<String>,
    /// Metric checks flaggerd logged: the metric and its value (None: no data or an error).
    pub(crate) checks: Vec<(String, Option<f64>)>,
    log_offset: u64,
    queries_shown: BTreeSet<String>,
    background: Vec<Child>,
    last_row: String,
    /// Print each metric check (the demo prints a summary instead).
    pub(crate) show_checks: bool,
    /// Print `kubectl get canaries` itself when the canary changes (the demo), rather than
    /// a compact row.
    pub(crate) real_rows: bool,
    header_shown: bool,
}

impl Drop for Play<'_> {
    fn drop(&mut self) {
        self.stop_background();
    }
}

/// What `kubectl get canary` shows of one canary.
#[derive(Clone, Debug, Default)]
pub(crate) struct Row {
    pub(crate) phase: String,
    pub(crate) weight: i64,
    pub(crate) failed: i64,
    pub(crate) iterations: i64,
}

impl<'c> Play<'c> {
    pub(crate) fn new(cluster: &'c mut Cluster) -> Play<'c> {
        Play {
            cluster,
            started: Instant::now(),
            seen: BTreeMap::new(),
            events: Vec::new(),
            checks: Vec::new(),
            log_offset: 0,
            queries_shown: BTreeSet::new(),
            background: Vec::new(),
            last_row: String::new(),
            show_checks: true,
            real_rows: false,
            header_shown: false,
        }
    }

    pub(crate) fn stamp(&self) -> String {
        format!("[{:>5.1}s]", self.started.elapsed().as_secs_f64())
    }

    /// Prints and runs a kubectl command as the user would type it.
    pub(crate) fn kubectl(&mut self, args: &[&str]) -> Result<String> {
        println!("$ kubectl {}", args.join(" "));
        let out = self.cluster.kubectl(args)?;
        for line in out.lines() {
            println!("  {line}");
        }
        Ok(out)
    }

    /// [`Self::kubectl`] with a command line whose words have no spaces
    /// (`-n test get configmap podinfo-config -o jsonpath={.data}`).
    pub(crate) fn kubectl_words(&mut self, line: &str) -> Result<String> {
        let args: Vec<&str> = line.split_whitespace().collect();
        self.kubectl(&args)
    }

    /// `kubectl apply -f <shown>` of `yaml`, printed as a user would type it (`shown` is the
    /// file name and a comment).
    pub(crate) fn apply_shown(&mut self, shown: &str, yaml: &str) -> Result<()> {
        println!("$ kubectl apply -f {shown}");
        self.cluster.apply(yaml).map(|_| ())
    }

    /// Creates the namespace, installs the load tester in it and applies podinfo (Deployment
    /// and HPA) into it, as the seeds do.
    pub(crate) fn podinfo(&mut self, ns: &str) -> Result<()> {
        self.kubectl(&["create", "namespace", ns])?;
        self.loadtester(ns)?;
        println!(
            "$ kubectl apply -f podinfo.yaml   # Deployment and HPA, as Flagger's kustomize/podinfo"
        );
        self.cluster
            .apply(&PODINFO.replace("namespace: test", &format!("namespace: {ns}")))?;
        Ok(())
    }

    /// Installs Istio's ingress gateway (Deployment and Service in istio-system), which
    /// `kubectl port-forward` reaches on the real cluster.
    pub(crate) fn istio_gateway(&mut self) -> Result<()> {
        println!("$ kubectl apply -f istio-ingressgateway.yaml   # as Istio's install creates it");
        self.cluster
            .apply(include_str!("../../e2e/istio-gateway.yaml"))?;
        Ok(())
    }

    /// Installs the load tester in `ns`, as `kubectl apply -k .../kustomize/tester` does.
    pub(crate) fn loadtester(&mut self, ns: &str) -> Result<()> {
        println!(
            "$ kubectl apply -k https://github.com/fluxcd/flagger//kustomize/tester?ref=main   # as xtask/e2e/loadtester.yaml"
        );
        self.cluster.apply_in(ns, LOADTESTER)?;
        Ok(())
    }

    /// Applies a Canary with its analysis interval shortened, then waits for Initialized.
    pub(crate) fn canary(&mut self, yaml: &str, file: &str) -> Result<()> {
        self.apply_canary(yaml, file)?;
        self.until(&["Initialized"])?;
        Ok(())
    }

    /// Applies a Canary (`analysis.interval` shortened) without waiting: a change to one
    /// that already ran takes effect with its next revision.
    pub(crate) fn apply_canary(&mut self, yaml: &str, file: &str) -> Result<()> {
        let yaml = shorten_interval(yaml)?;
        println!("$ kubectl apply -f {file}   # analysis.interval shortened to {INTERVAL}");
        let out = self.cluster.apply(&yaml)?;
        print!("  {out}");
        Ok(())
    }

    /// Starts a shell command in the background, through mesh-sim, for at most `limit`.
    pub(crate) fn background(&mut self, shown: &str, script: &str, limit: Duration) -> Result<()> {
        println!("$ {shown} &");
        let mut cmd = Command::new("timeout");
        cmd.arg(limit.as_secs().to_string())
            .args(["sh", "-c", script])
            // A group of its own, so stop_background ends the loop with its `timeout`.
            .process_group(0)
            .env("KUBECONFIG", &self.cluster.kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.cluster.proxied(&mut cmd);
        self.background
            .push(cmd.spawn().context("cannot start a background command")?);
        Ok(())
    }

    /// Prints `shown` and runs `script` with `sh -c` as the user's shell would (the
    /// administrator's kubeconfig, the cluster's kubectl first on PATH, through mesh-sim);
    /// fails with its output unless it exits 0 or is stopped by its own `timeout`.
    pub(crate) fn shell(&mut self, shown: &str, script: &str) -> Result<String> {
        println!("$ {shown}");
        let out = self
            .shell_command(script)
            .output()
            .context("cannot run sh")?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        for line in stdout.lines() {
            println!("  {line}");
        }
        // 124: `timeout` stopped a command that follows a log (-f), as a user's Ctrl-C.
        if !out.status.success() && out.status.code() != Some(124) {
            bail!(
                "`{shown}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(stdout)
    }

    /// Runs `script` without printing; its output if it succeeded.
    pub(crate) fn shell_quiet(&self, script: &str) -> Option<String> {
        let out = self.shell_command(script).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub(crate) fn shell_command(&self, script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script])
            .env("KUBECONFIG", &self.cluster.kubeconfig)
            .stdin(Stdio::null());
        self.cluster.proxied(&mut cmd);
        cmd
    }

    /// Polls `check` every 500 ms until it gives a value, for at most `limit`.
    pub(crate) fn wait_for<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&mut Self) -> Result<Option<T>>,
    ) -> Result<T> {
        let deadline = Instant::now() + limit;
        loop {
            self.cluster.check_alive()?;
            if let Some(v) = check(self)? {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("waited {}s for {what}", limit.as_secs());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub(crate) fn stop_background(&mut self) {
        for mut c in self.background.drain(..) {
            // The whole process group: `timeout` and the shell loop under it (killing
            // `timeout` alone leaves the loop running, sending its load into the cluster).
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .stderr(Stdio::null())
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The canary's status as `kubectl get canary -o json` shows it.
    pub(crate) fn row(&self, ns: &str) -> Result<Row> {
        let out = self
            .cluster
            .kubectl(&["-n", ns, "get", "canary", "podinfo", "-o", "json"])?;
        let v: Value = serde_json::from_str(&out).context("canary JSON")?;
        let s = &v["status"];
        Ok(Row {
            phase: s["phase"].as_str().unwrap_or_default().to_string(),
            weight: s["canaryWeight"].as_i64().unwrap_or(0),
            failed: s["failedChecks"].as_i64().unwrap_or(0),
            iterations: s["iterations"].as_i64().unwrap_or(0),
        })
    }

    /// Follows the canary in `test`-like namespace of the podinfo canary until its phase is
    /// one of `phases`; prints rows, events and checks as they come.
    pub(crate) fn until(&mut self, phases: &[&str]) -> Result<String> {
        let ns = self.namespace()?;
        let deadline = Instant::now() + PHASE_TIMEOUT;
        loop {
            self.cluster.check_alive()?;
            self.print_events(&ns)?;
            self.print_checks()?;
            let row = self.row(&ns)?;
            let line = format!(
                "{:<12} weight {:<3} failed checks {:<2} iterations {}",
                row.phase, row.weight, row.failed, row.iterations
            );
            if line != self.last_row {
                self.print_row(&ns, &line)?;
                self.last_row = line;
            }
            if phases.contains(&row.phase.as_str()) {
                self.print_events(&ns)?;
                return Ok(row.phase);
            }
            if Instant::now() > deadline {
                bail!(
                    "the canary stayed {} for {}s; expected {}",
                    row.phase,
                    PHASE_TIMEOUT.as_secs(),
                    phases.join(" or ")
                );
            }
            std::thread::sleep(Duration::from_millis(400));
        }
    }

    pub(crate) fn print_row(&mut self, ns: &str, line: &str) -> Result<()> {
        if !self.real_rows {
            println!("  {} kubectl get canary: {line}", self.stamp());
            return Ok(());
        }
        let out = self.cluster.kubectl(&["-n", ns, "get", "canaries"])?;
        let mut lines = out.lines();
        let header = lines.next().unwrap_or_default();
        if !self.header_shown {
            println!("  {:>8} $ kubectl -n {ns} get canaries", "");
            println!("  {:>8} {header}", "");
            self.header_shown = true;
        }
        for l in lines {
            println!("  {} {l}", self.stamp());
        }
        Ok(())
    }

    pub(crate) fn namespace(&self) -> Result<String> {
        let out = self
            .cluster
            .kubectl(&["get", "canaries", "-A", "-o", "json"])?;
        let v: Value = serde_json::from_str(&out)?;
        v["items"][0]["metadata"]["namespace"]
            .as_str()
            .map(str::to_string)
            .context("no canary in the cluster")
    }

    /// Prints events not yet printed (and repeats of one, with their count).
    pub(crate) fn print_events(&mut self, ns: &str) -> Result<()> {
        let out = self
            .cluster
            .kubectl(&["-n", ns, "get", "events", "-o", "json"])?;
        let v: Value = serde_json::from_str(&out)?;
        let mut items: Vec<&Value> = v["items"].as_array().into_iter().flatten().collect();
        items.retain(|e| e["involvedObject"]["kind"] == "Canary");
        let key = |e: &Value| {
            let rv: u64 = e["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            (
                e["lastTimestamp"].as_str().unwrap_or_default().to_string(),
                rv,
            )
        };
        items.sort_by_key(|e| key(e));
        for e in items {
            let uid = e["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let count = e["count"].as_i64().unwrap_or(1);
            if self.seen.get(&uid).is_some_and(|c| *c >= count) {
                continue;
            }
            self.seen.insert(uid, count);
            let message = e["message"].as_str().unwrap_or_default().to_string();
            let kind = e["type"].as_str().unwrap_or("Normal");
            let times = if count > 1 {
                format!(" (x{count})")
            } else {
                String::new()
            };
            println!("  {} {kind:<7} {message}{times}", self.stamp());
            self.events.push(message);
        }
        Ok(())
    }

    /// Prints the metric checks flaggerd logged since the last call: the query once per
    /// metric, then each value.
    pub(crate) fn print_checks(&mut self) -> Result<()> {
        let path = self.cluster.log("flaggerd");
        let mut file = std::fs::File::open(&path)?;
        file.seek(std::io::SeekFrom::Start(self.log_offset))?;
        let mut reader = std::io::BufReader::new(file);
        let mut line = String::new();
        while reader.read_line(&mut line)? > 0 {
            if !line.ends_with('\n') {
                break;
            }
            self.log_offset += line.len() as u64;
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && let Some(metric) = v["metric"].as_str()
            {
                let value = v["value"].as_str().and_then(|x| x.parse::<f64>().ok());
                self.checks.push((metric.to_string(), value));
                if !self.show_checks {
                    line.clear();
                    continue;
                }
                let query = v["query"].as_str().unwrap_or_default().to_string();
                let result = v["value"]
                    .as_str()
                    .map(|x| match x.parse::<f64>() {
                        Ok(n) => format!("= {n:.2}"),
                        Err(_) => format!("= {x}"),
                    })
                    .or_else(|| v["error"].as_str().map(|e| format!(": {e}")))
                    .map(|r| {
                        if r.starts_with('=') {
                            format!(" {r}")
                        } else {
                            r
                        }
                    })
                    .unwrap_or_default();
                println!("  {}   check {metric}{result}", self.stamp());
                if self.queries_shown.insert(query.clone()) {
                    println!("             query: {query}");
                }
            }
            line.clear();
        }
        Ok(())
    }

    /// Checks that `expected` appear in this order among the events, reading new events for
    /// up to 10 s: flaggerd records a step (its phase included) before it carries out the
    /// step's effects, so the last events may follow the phase by moments.
    pub(crate) fn expect_events(&mut self, expected: &[&str]) -> Result<()> {
        let ns = self.namespace()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match in_order(&self.events, expected) {
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(400));
                    self.print_events(&ns)?;
                }
                other => return other,
            }
        }
    }

    /// Prints the whole event log and the tail of flaggerd's log.
    pub(crate) fn dump(&self) {
        println!("  event log:");
        for m in &self.events {
            println!("    {m}");
        }
        let log = std::fs::read_to_string(self.cluster.log("flaggerd")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        println!("  flaggerd log (last 20 lines):");
        for l in &lines[lines.len().saturating_sub(20)..] {
            println!("    {l}");
        }
    }
}
