//! Flagger's flags (`cmd/flagger/main.go`), with their spelling, defaults and meaning, and
//! the environment variables that override them; docs/flags.md lists each with what
//! flaggerd does with it.
//! Go's forms are read through `canary_controller::cli`.

use std::time::Duration;

use canary_controller::Settings;
use canary_controller::cli::{go_bool, go_duration, go_style, log_level};
use clap::{ArgAction, Parser};

/// What `-version` prints.
pub fn version_line() -> String {
    format!(
        "flaggerd version {} revision {}",
        canary_controller::VERSION,
        option_env!("FLAGGERD_REVISION").unwrap_or("unknown")
    )
}

/// flaggerd's command line: Flagger's flags, then flaggerd's own.
#[derive(Debug, Parser)]
#[command(
    name = "flaggerd",
    about = "Progressive delivery for Kubernetes, reading Flagger's Canary API",
    disable_version_flag = true
)]
pub struct Flags {
    /// Path to a kubeconfig. Only required if out-of-cluster.
    #[arg(long, default_value = "")]
    kubeconfig: String,
    /// The address of the Kubernetes API server; overrides the kubeconfig's.
    #[arg(long, default_value = "")]
    master: String,
    /// Client-side requests per second to the API server.
    #[arg(long, default_value_t = 100)]
    kubeconfig_qps: u32,
    /// Client-side burst of requests to the API server.
    #[arg(long, default_value_t = 250)]
    kubeconfig_burst: u32,
    /// Kubeconfig of the cluster that holds the mesh's routing objects (no owner references).
    #[arg(long, default_value = "")]
    kubeconfig_service_mesh: String,
    /// Prometheus URL of the builtin metrics.
    #[arg(long, default_value = "http://prometheus:9090")]
    metrics_server: String,
    /// How often a canary at rest is looked at again when nothing changed.
    #[arg(long, default_value = "10s", value_parser = go_duration)]
    control_loop_interval: Duration,
    /// Log level: debug, info, warning (or warn), error.
    #[arg(long, default_value = "info", value_parser = log_level)]
    log_level: String,
    /// Log encoding: json or console.
    #[arg(long, default_value = "json", value_parser = ["json", "console"])]
    zap_encoding: String,
    /// Go's global logger level; flaggerd has one logger, so this changes nothing.
    #[arg(long, default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set)]
    zap_replace_globals: bool,
    /// Port of /healthz, /readyz and /metrics.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Slack hook URL of the global notifier ($SLACK_URL overrides it).
    #[arg(long, default_value = "")]
    slack_url: String,
    /// Slack bot token ($SLACK_TOKEN overrides it).
    #[arg(long, default_value = "")]
    slack_token: String,
    /// Proxy of the Slack posts ($SLACK_PROXY_URL overrides it).
    #[arg(long, default_value = "")]
    slack_proxy_url: String,
    /// Slack user name.
    #[arg(long, default_value = "flagger")]
    slack_user: String,
    /// Slack channel.
    #[arg(long, default_value = "")]
    slack_channel: String,
    /// MS Teams incoming webhook URL of the global notifier ($MSTEAMS_URL overrides it).
    #[arg(long, default_value = "")]
    msteams_url: String,
    /// Proxy of the MS Teams posts ($MSTEAMS_PROXY_URL overrides it).
    #[arg(long, default_value = "")]
    msteams_proxy_url: String,
    /// Webhook receiving every event ($EVENT_WEBHOOK_URL overrides it).
    #[arg(long, default_value = "")]
    event_webhook: String,
    /// Label prefixes copied to generated objects (comma list; * for all).
    #[arg(long, default_value = "")]
    include_label_prefix: String,
    /// Reconciles at once.
    #[arg(long, default_value_t = 2)]
    threadiness: u16,
    /// Watch this namespace only (all when empty).
    #[arg(long, default_value = "")]
    namespace: String,
    /// Default provider of canaries without spec.provider.
    #[arg(long, default_value = "istio", value_parser = provider)]
    mesh_provider: String,
    /// Pod labels that select a target's pods, in order.
    #[arg(long, default_value = "app,name,app.kubernetes.io/name")]
    selector_labels: String,
    /// Annotation prefix of NGINX canary ingresses.
    #[arg(long, default_value = "nginx.ingress.kubernetes.io")]
    ingress_annotations_prefix: String,
    /// Ingress class of Contour HTTPProxies.
    #[arg(long, default_value = "")]
    ingress_class: String,
    /// Reconcile only while holding the Lease flagger-leader-election.
    #[arg(long, default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set)]
    enable_leader_election: bool,
    /// Namespace of the leader Lease (kube-system, or -namespace when set).
    #[arg(long)]
    leader_election_namespace: Option<String>,
    /// Copy tracked ConfigMaps and Secrets to -primary and analyse their changes.
    #[arg(long, default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set)]
    enable_config_tracking: bool,
    /// Print the version and exit.
    #[arg(long, default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set)]
    version: bool,
    /// Cluster name shown in alerts.
    #[arg(long, default_value = "")]
    cluster_name: String,
    /// Refuse MetricTemplates, AlertProviders and Gloo upstreams of other namespaces.
    #[arg(long, default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set)]
    no_cross_namespace_refs: bool,
    /// flaggerd: the shortest analysis interval honoured (lower only on test clusters).
    #[arg(long, default_value = "10s", value_parser = go_duration)]
    min_analysis_interval: Duration,
    /// flaggerd: the leader Lease's duration (renewed every twelfth, lost after a quarter
    /// without renewal).
    #[arg(long, default_value = "60s", value_parser = go_duration)]
    lease_duration: Duration,
    /// flaggerd: this replica's name in events and the Lease ($POD_NAME by default).
    #[arg(long)]
    instance: Option<String>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run the controller.
    Run(Box<Startup>),
    /// Print the version.
    Version,
}

/// The controller's settings and what only the binary uses.
#[derive(Debug)]
pub struct Startup {
    /// The controller's settings.
    pub settings: Settings,
    /// `-master`: the API server address over the kubeconfig's.
    pub master: Option<String>,
    /// `-kubeconfig-service-mesh`: the cluster of the routing objects.
    pub kubeconfig_service_mesh: Option<String>,
}

/// Reads the command line (program name first) over the environment.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, clap::Error> {
    let flags = Flags::try_parse_from(go_style(args))?;
    if flags.version {
        return Ok(Command::Version);
    }
    Ok(Command::Run(Box::new(flags.startup(env))))
}

/// A flag's value, or the environment variable that overrides it when that is set and not
/// empty (Flagger's `fromEnv`).
fn from_env(env: &impl Fn(&str) -> Option<String>, var: &str, flag: &str) -> Option<String> {
    env(var)
        .filter(|v| !v.is_empty())
        .or_else(|| Some(flag.to_string()))
        .filter(|v| !v.is_empty())
}

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

impl Flags {
    fn startup(self, env: impl Fn(&str) -> Option<String>) -> Startup {
        let mut engine = canary_core::Settings::new(self.mesh_provider);
        engine.min_interval = self.min_analysis_interval;
        engine.no_cross_namespace_refs = self.no_cross_namespace_refs;
        let namespace = Some(self.namespace).filter(|n| !n.is_empty());
        let global_notifier = global_notifier(
            &self.slack_url,
            &self.slack_token,
            &self.slack_proxy_url,
            &self.msteams_url,
            &self.msteams_proxy_url,
            &env,
        )
        .map(|mut g| {
            g.username = self.slack_user.clone();
            g.channel = self.slack_channel.clone();
            g
        });
        let settings = Settings {
            engine,
            kubeconfig: Some(self.kubeconfig).filter(|k| !k.is_empty()),
            metrics_server: self.metrics_server,
            leader_election_namespace: self
                .leader_election_namespace
                .or_else(|| namespace.clone())
                .unwrap_or_else(|| "kube-system".into()),
            namespace,
            selector_labels: list(&self.selector_labels),
            config_tracking: self.enable_config_tracking,
            include_label_prefix: list(&self.include_label_prefix),
            cluster_name: self.cluster_name,
            port: self.port,
            log_level: self.log_level,
            log_encoding: self.zap_encoding,
            leader_election: self.enable_leader_election,
            lease_duration: self.lease_duration,
            threadiness: self.threadiness,
            kubeconfig_qps: self.kubeconfig_qps,
            kubeconfig_burst: self.kubeconfig_burst,
            control_loop_interval: self.control_loop_interval,
            global_notifier,
            ingress_annotations_prefix: self.ingress_annotations_prefix,
            ingress_class: self.ingress_class,
            instance: self
                .instance
                .or_else(|| env("POD_NAME"))
                .unwrap_or_else(|| "flaggerd".into()),
            event_webhook: from_env(&env, "EVENT_WEBHOOK_URL", &self.event_webhook),
        };
        Startup {
            settings,
            master: Some(self.master).filter(|m| !m.is_empty()),
            kubeconfig_service_mesh: Some(self.kubeconfig_service_mesh).filter(|k| !k.is_empty()),
        }
    }
}

/// Flagger's global notifier: MS Teams when its URL is set, else Slack when its URL is set.
fn global_notifier(
    slack_url: &str,
    slack_token: &str,
    slack_proxy: &str,
    msteams_url: &str,
    msteams_proxy: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Option<canary_notifier::Global> {
    let token = from_env(env, "SLACK_TOKEN", slack_token);
    let (kind, url, proxy) = match from_env(env, "MSTEAMS_URL", msteams_url) {
        Some(url) => (
            "msteams",
            url,
            from_env(env, "MSTEAMS_PROXY_URL", msteams_proxy),
        ),
        None => (
            "slack",
            from_env(env, "SLACK_URL", slack_url)?,
            from_env(env, "SLACK_PROXY_URL", slack_proxy),
        ),
    };
    Some(canary_notifier::Global {
        kind: kind.into(),
        url,
        token,
        proxy,
        username: "flagger".into(),
        channel: String::new(),
    })
}

/// A provider name Flagger accepts.
fn provider(text: &str) -> Result<String, String> {
    if canary_core::validate::is_known_provider(text) {
        Ok(text.into())
    } else {
        Err(format!(
            "{text:?} is not a provider; expected one of {}",
            canary_core::spec::KNOWN_PROVIDERS.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Startup, String> {
        let all = std::iter::once("flaggerd").chain(args.iter().copied());
        match parse(all.map(String::from), |_| None).map_err(|e| e.to_string())? {
            Command::Run(s) => Ok(*s),
            Command::Version => Err("version".into()),
        }
    }

    #[test]
    fn reads_gos_flag_forms() {
        let s = run(&[
            "-mesh-provider=kubernetes",
            "--namespace",
            "test",
            "-metrics-server",
            "http://127.0.0.1:9090",
            "-enable-config-tracking=false",
            "-enable-leader-election",
            "-min-analysis-interval",
            "1s",
            "-log-level=warning",
        ])
        .expect("flags");
        let s = s.settings;
        assert_eq!(s.engine.default_provider, "kubernetes");
        assert_eq!(s.namespace.as_deref(), Some("test"));
        assert_eq!(s.leader_election_namespace, "test");
        assert!(!s.config_tracking);
        assert!(s.leader_election);
        assert_eq!(s.log_level, "warn");
        assert_eq!(s.engine.min_interval, Duration::from_secs(1));
    }

    #[test]
    fn bad_flags_say_which_and_why() {
        let e = run(&["-mesh-provider", "consul"]).expect_err("bad provider");
        assert!(e.contains("\"consul\" is not a provider"), "{e}");
        assert!(e.contains("--mesh-provider"), "{e}");
        let e = run(&["-bogus", "1"]).expect_err("unknown");
        assert!(e.contains("unexpected argument '--bogus'"), "{e}");
        let e = run(&["-port", "x"]).expect_err("port");
        assert!(e.contains("invalid value 'x'"), "{e}");
        let e = run(&["-control-loop-interval", "soon"]).expect_err("duration");
        assert!(e.contains("--control-loop-interval"), "{e}");
    }

    #[test]
    fn version_is_a_command() {
        let all = ["flaggerd", "-version"].map(String::from);
        assert!(matches!(parse(all, |_| None), Ok(Command::Version)));
        assert!(version_line().starts_with("flaggerd version "));
    }

    #[test]
    fn the_global_notifier_is_msteams_over_slack_and_the_environment_over_flags() {
        let s = run(&[
            "-slack-url",
            "https://hooks.example/a",
            "-slack-channel",
            "ops",
        ])
        .expect("flags");
        let g = s.settings.global_notifier.expect("slack");
        assert_eq!(
            (g.kind.as_str(), g.url.as_str()),
            ("slack", "https://hooks.example/a")
        );
        assert_eq!(
            (g.username.as_str(), g.channel.as_str()),
            ("flagger", "ops")
        );
        let env = |k: &str| (k == "MSTEAMS_URL").then(|| "https://teams.example/x".to_string());
        let args = ["flaggerd", "-slack-url", "https://hooks.example/a"].map(String::from);
        let Ok(Command::Run(s)) = parse(args, env) else {
            panic!("flags")
        };
        let g = s.settings.global_notifier.expect("msteams");
        assert_eq!(
            (g.kind.as_str(), g.url.as_str()),
            ("msteams", "https://teams.example/x")
        );
        assert!(run(&[]).expect("flags").settings.global_notifier.is_none());
    }
}
