//! The controller's settings, read from Flagger's flags (`-mesh-provider istio`,
//! `--namespace=test`) and the environment variables Flagger reads.

use std::time::Duration;

/// Everything the controller is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Engine settings: default provider and interval floor.
    pub engine: canary_core::Settings,
    /// Path of a kubeconfig; in-cluster or `$KUBECONFIG` when empty.
    pub kubeconfig: Option<String>,
    /// Prometheus address for the builtin metrics.
    pub metrics_server: String,
    /// Watch one namespace only.
    pub namespace: Option<String>,
    /// Labels that may select a target's pods, in order.
    pub selector_labels: Vec<String>,
    /// Copy tracked ConfigMaps and Secrets to `-primary` and analyse their changes.
    pub config_tracking: bool,
    /// Label prefixes copied to generated objects (`*` for all).
    pub include_label_prefix: Vec<String>,
    /// Shown in alerts.
    pub cluster_name: String,
    /// Port of `/healthz`, `/readyz` and `/metrics`.
    pub port: u16,
    /// Log level: debug, info, warn or error.
    pub log_level: String,
    /// `json` (default) or `console` logs.
    pub log_encoding: String,
    /// Run only while holding the leader Lease.
    pub leader_election: bool,
    /// Namespace of the leader Lease.
    pub leader_election_namespace: String,
    /// Lease duration; renewal happens at a quarter of it.
    pub lease_duration: Duration,
    /// Reconciles run at once (Flagger's `-threadiness`).
    pub threadiness: u16,
    /// Client-side queries per second (accepted for compatibility).
    pub kubeconfig_qps: u32,
    /// Client-side burst (accepted for compatibility).
    pub kubeconfig_burst: u32,
    /// Name of this replica, in events and the Lease.
    pub instance: String,
    /// Global event webhook (`-event-webhook`, `EVENT_WEBHOOK_URL`).
    pub event_webhook: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            engine: canary_core::Settings::new("istio"),
            kubeconfig: None,
            metrics_server: "http://prometheus:9090".into(),
            namespace: None,
            selector_labels: vec!["app".into(), "name".into(), "app.kubernetes.io/name".into()],
            config_tracking: true,
            include_label_prefix: Vec::new(),
            cluster_name: String::new(),
            port: 8080,
            log_level: "info".into(),
            log_encoding: "json".into(),
            leader_election: false,
            leader_election_namespace: "kube-system".into(),
            lease_duration: Duration::from_secs(60),
            threadiness: 2,
            kubeconfig_qps: 100,
            kubeconfig_burst: 250,
            instance: "flaggerd".into(),
            event_webhook: None,
        }
    }
}

/// A flag that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FlagError(pub String);

/// The flags, for `-h`.
pub const USAGE: &str = "usage: flaggerd [flags]   (Flagger's flags; -name value, -name=value or --name value)
  -kubeconfig PATH                 kubeconfig (in-cluster or $KUBECONFIG when empty)
  -metrics-server URL              Prometheus for the builtin metrics (http://prometheus:9090)
  -mesh-provider NAME              default provider (istio)
  -namespace NS                    watch one namespace only (all)
  -selector-labels LIST            labels selecting a target's pods (app,name,app.kubernetes.io/name)
  -enable-config-tracking BOOL     track ConfigMaps and Secrets (true)
  -include-label-prefix LIST       label prefixes copied to generated objects (none; * for all)
  -cluster-name NAME               shown in alerts
  -port N                          port of /healthz, /readyz, /metrics (8080)
  -log-level LEVEL                 debug, info, warn, error (info)
  -zap-encoding json|console       log format (json)
  -enable-leader-election BOOL     run only while holding the Lease flagger-leader-election (false)
  -leader-election-namespace NS    namespace of the Lease (kube-system, or -namespace)
  -threadiness N                   reconciles at once (2)
  -kubeconfig-qps N, -kubeconfig-burst N   accepted for compatibility
  -event-webhook URL               receives every event ($EVENT_WEBHOOK_URL)
  -min-analysis-interval DURATION  flaggerd: lowest analysis interval honoured (10s; lower only for test clusters)
  -instance NAME                   flaggerd: this replica's name ($POD_NAME or flaggerd)";

impl Settings {
    /// Reads flags (without the program name) over the environment's defaults.
    pub fn from_args<I: IntoIterator<Item = String>>(
        args: I,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, FlagError> {
        let mut s = Settings::default();
        if let Some(v) = env("EVENT_WEBHOOK_URL") {
            s.event_webhook = Some(v);
        }
        if let Some(v) = env("POD_NAME") {
            s.instance = v;
        }
        let mut args = args.into_iter().peekable();
        let mut election_ns: Option<String> = None;
        while let Some(arg) = args.next() {
            let flag = arg.trim_start_matches('-');
            if flag.len() == arg.len() {
                return Err(FlagError(format!(
                    "unexpected argument {arg:?}; flags start with -\n{USAGE}"
                )));
            }
            if flag == "h" || flag == "help" {
                return Err(FlagError(USAGE.into()));
            }
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (flag.to_string(), None),
            };
            let is_bool = matches!(
                name.as_str(),
                "enable-config-tracking" | "enable-leader-election" | "version"
            );
            let value = match inline {
                Some(v) => v,
                None if is_bool && args.peek().is_none_or(|n| n.starts_with('-')) => "true".into(),
                None => args
                    .next()
                    .ok_or_else(|| FlagError(format!("flag -{name} needs a value")))?,
            };
            let bad = |what: &str| FlagError(format!("flag -{name}: {value:?} is not {what}"));
            let boolean = |v: &str| match v {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(bad("a boolean (true or false)")),
            };
            let list = |v: &str| {
                v.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect::<Vec<_>>()
            };
            match name.as_str() {
                "kubeconfig" => s.kubeconfig = Some(value).filter(|v| !v.is_empty()),
                "metrics-server" => s.metrics_server = value,
                "mesh-provider" => {
                    if !canary_core::validate::is_known_provider(&value) {
                        return Err(bad(&format!(
                            "a provider; expected one of {}",
                            canary_core::spec::KNOWN_PROVIDERS.join(", ")
                        )));
                    }
                    s.engine.default_provider = value;
                }
                "namespace" => s.namespace = Some(value).filter(|v| !v.is_empty()),
                "selector-labels" => s.selector_labels = list(&value),
                "enable-config-tracking" => s.config_tracking = boolean(&value)?,
                "include-label-prefix" => s.include_label_prefix = list(&value),
                "cluster-name" => s.cluster_name = value,
                "port" => s.port = value.parse().map_err(|_| bad("a port number"))?,
                "log-level" => {
                    if !matches!(value.as_str(), "debug" | "info" | "warn" | "error") {
                        return Err(bad("a log level (debug, info, warn, error)"));
                    }
                    s.log_level = value;
                }
                "zap-encoding" => s.log_encoding = value,
                "enable-leader-election" => s.leader_election = boolean(&value)?,
                "leader-election-namespace" => election_ns = Some(value),
                "threadiness" => s.threadiness = value.parse().map_err(|_| bad("a number"))?,
                "kubeconfig-qps" => {
                    s.kubeconfig_qps = value.parse().map_err(|_| bad("a number"))?
                }
                "kubeconfig-burst" => {
                    s.kubeconfig_burst = value.parse().map_err(|_| bad("a number"))?
                }
                "event-webhook" => s.event_webhook = Some(value).filter(|v| !v.is_empty()),
                "min-analysis-interval" => {
                    s.engine.min_interval = canary_core::duration::parse(&value)
                        .map_err(|e| FlagError(format!("flag -{name}: {e}")))?
                }
                "instance" => s.instance = value,
                "control-loop-interval"
                | "zap-replace-globals"
                | "master"
                | "ingress-class"
                | "ingress-annotations-prefix" => {}
                other => return Err(FlagError(format!("unknown flag -{other}\n{USAGE}"))),
            }
        }
        s.leader_election_namespace = election_ns
            .or_else(|| s.namespace.clone())
            .unwrap_or_else(|| "kube-system".into());
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, FlagError> {
        Settings::from_args(args.iter().map(|s| s.to_string()), |_| None)
    }

    #[test]
    fn reads_flaggers_flag_forms() {
        let s = parse(&[
            "-mesh-provider=kubernetes",
            "--namespace",
            "test",
            "-metrics-server",
            "http://127.0.0.1:9090",
            "-enable-config-tracking=false",
            "-min-analysis-interval",
            "1s",
        ])
        .expect("flags");
        assert_eq!(s.engine.default_provider, "kubernetes");
        assert_eq!(s.namespace.as_deref(), Some("test"));
        assert_eq!(s.leader_election_namespace, "test");
        assert!(!s.config_tracking);
        assert_eq!(s.engine.min_interval, Duration::from_secs(1));
    }

    #[test]
    fn bad_flags_say_which_and_why() {
        let e = parse(&["-mesh-provider", "consul"]).expect_err("bad provider");
        assert!(
            e.0.starts_with("flag -mesh-provider: \"consul\" is not a provider"),
            "{}",
            e.0
        );
        assert!(
            parse(&["-bogus", "1"])
                .expect_err("unknown")
                .0
                .starts_with("unknown flag -bogus")
        );
        assert!(
            parse(&["-port", "x"])
                .expect_err("port")
                .0
                .contains("is not a port number")
        );
    }
}
