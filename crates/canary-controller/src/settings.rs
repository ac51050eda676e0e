//! The controller's settings. flaggerd reads them from Flagger's flags and environment
//! variables (`bins/flaggerd/src/flags.rs`); an embedding controller fills them itself.

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
    /// Client-side requests per second to the API server (`-kubeconfig-qps`).
    pub kubeconfig_qps: u32,
    /// Client-side burst of requests (`-kubeconfig-burst`).
    pub kubeconfig_burst: u32,
    /// A canary at rest is looked at again after this long even when nothing changed
    /// (Flagger's `-control-loop-interval`).
    pub control_loop_interval: Duration,
    /// The notifier of canaries without `analysis.alerts` (`-slack-*`, `-msteams-*`).
    pub global_notifier: Option<canary_notifier::Global>,
    /// Annotation prefix of NGINX canary ingresses (`-ingress-annotations-prefix`).
    pub ingress_annotations_prefix: String,
    /// Ingress class of Contour HTTPProxies (`-ingress-class`).
    pub ingress_class: String,
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
            control_loop_interval: Duration::from_secs(10),
            global_notifier: None,
            ingress_annotations_prefix: "nginx.ingress.kubernetes.io".into(),
            ingress_class: String::new(),
            instance: "flaggerd".into(),
            event_webhook: None,
        }
    }
}

impl Settings {
    /// What the routers read from these settings.
    pub fn router_options(&self) -> canary_router::Options {
        canary_router::Options {
            ingress_annotations_prefix: self.ingress_annotations_prefix.clone(),
            ingress_class: self.ingress_class.clone(),
        }
    }
}
