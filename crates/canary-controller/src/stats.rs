//! The controller's Prometheus metrics, registered through the prometheus-client crate:
//! Flagger's series with Flagger's names and labels, and flaggerd's own work (reconciles,
//! the queue of reconciles waiting for a turn, the lag of analysis steps behind their
//! schedule, API requests by verb).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Buckets of `flagger_canary_duration_seconds` (Prometheus' defaults, as Flagger's).
const DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of `flaggerd_step_lag_seconds`: from a millisecond to a minute.
const LAG_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    version: String,
    mesh_provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CanaryLabels {
    name: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkloadLabels {
    workload: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricLabels {
    name: String,
    namespace: String,
    metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    name: String,
    namespace: String,
    deployment_strategy: String,
    analysis_status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerbLabels {
    verb: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The metrics registry.
pub struct Stats {
    registry: Registry,
    total: Family<NamespaceLabels, Gauge>,
    status: Family<CanaryLabels, Gauge>,
    weight: Family<WorkloadLabels, Gauge>,
    metric: Family<MetricLabels, Gauge<f64, AtomicU64>>,
    successes: Family<OutcomeLabels, Counter>,
    failures: Family<OutcomeLabels, Counter>,
    duration: Histograms<CanaryLabels>,
    reconciles: Family<ResultLabels, Counter>,
    queued: Gauge,
    step_lag: Histogram,
    requests: Family<VerbLabels, Counter>,
}

impl Stats {
    /// A registry reporting `version` and the default `provider` in `flagger_info`.
    pub fn new(version: &str, provider: &str) -> Self {
        let mut registry = Registry::default();
        let info = Family::<InfoLabels, Gauge>::default();
        info.get_or_create(&InfoLabels {
            version: version.into(),
            mesh_provider: provider.into(),
        })
        .set(1);
        registry.register(
            "flagger_info",
            "Flagger version and mesh provider information",
            info,
        );
        let stats = Stats {
            total: Family::default(),
            status: Family::default(),
            weight: Family::default(),
            metric: Family::default(),
            successes: Family::default(),
            failures: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS)),
            reconciles: Family::default(),
            queued: Gauge::default(),
            step_lag: Histogram::new(LAG_BUCKETS),
            requests: Family::default(),
            registry,
        };
        stats.register()
    }

    fn register(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "flagger_canary_total",
            "Total number of canary object",
            self.total.clone(),
        );
        r.register(
            "flagger_canary_status",
            "Last canary analysis result per canary",
            self.status.clone(),
        );
        r.register(
            "flagger_canary_weight",
            "The virtual service destination weight current value",
            self.weight.clone(),
        );
        r.register(
            "flagger_canary_metric_analysis",
            "Last canary analysis result per metric",
            self.metric.clone(),
        );
        r.register(
            "flagger_canary_successes",
            "Total number of canary successful promotions",
            self.successes.clone(),
        );
        r.register(
            "flagger_canary_failures",
            "Total number of canary failed promotions",
            self.failures.clone(),
        );
        r.register(
            "flagger_canary_duration_seconds",
            "Seconds spent performing canary analysis.",
            self.duration.clone(),
        );
        r.register(
            "flaggerd_reconciles",
            "Reconciles of canaries by result (ok, error, panic)",
            self.reconciles.clone(),
        );
        r.register(
            "flaggerd_reconciles_queued",
            "Reconciles due and waiting for a turn (-threadiness)",
            self.queued.clone(),
        );
        r.register(
            "flaggerd_step_lag_seconds",
            "How late an analysis step was decided after its scheduled time",
            self.step_lag.clone(),
        );
        r.register(
            "flaggerd_api_requests",
            "Requests flaggerd sent to the Kubernetes API server, by verb",
            self.requests.clone(),
        );
        self
    }

    /// `flagger_canary_total{namespace}` for every namespace (others are dropped).
    pub fn set_totals(&self, counts: &BTreeMap<String, usize>) {
        self.total.clear();
        for (ns, n) in counts {
            let labels = NamespaceLabels {
                namespace: ns.clone(),
            };
            self.total
                .get_or_create(&labels)
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// `flagger_canary_status{name, namespace}`: 0 progressing, 2 failed, 1 otherwise.
    pub fn set_status(&self, target: &str, namespace: &str, phase: canary_core::Phase) {
        self.status
            .get_or_create(&canary_labels(target, namespace))
            .set(phase.status_gauge());
    }

    /// `flagger_canary_weight{workload, namespace}` for the primary and the canary.
    pub fn set_weight(&self, target: &str, namespace: &str, primary: u32, canary: u32) {
        for (workload, weight) in [
            (format!("{target}-primary"), primary),
            (target.into(), canary),
        ] {
            let labels = WorkloadLabels {
                workload,
                namespace: namespace.into(),
            };
            self.weight.get_or_create(&labels).set(i64::from(weight));
        }
    }

    /// `flagger_canary_metric_analysis{name, namespace, metric}`.
    pub fn set_metric(&self, target: &str, namespace: &str, metric: &str, value: f64) {
        let labels = MetricLabels {
            name: target.into(),
            namespace: namespace.into(),
            metric: metric.into(),
        };
        self.metric.get_or_create(&labels).set(value);
    }

    /// `flagger_canary_successes_total` / `flagger_canary_failures_total`.
    pub fn count(
        &self,
        target: &str,
        namespace: &str,
        strategy: &str,
        outcome: canary_core::Outcome,
    ) {
        let (family, status) = match outcome {
            canary_core::Outcome::Completed => (&self.successes, "completed"),
            canary_core::Outcome::Skipped => (&self.successes, "skipped"),
            canary_core::Outcome::Failed => (&self.failures, "completed"),
        };
        let labels = OutcomeLabels {
            name: target.into(),
            namespace: namespace.into(),
            deployment_strategy: strategy.into(),
            analysis_status: status.into(),
        };
        family.get_or_create(&labels).inc();
    }

    /// `flagger_canary_duration_seconds{name, namespace}`: one analysis step.
    pub fn observe_duration(&self, target: &str, namespace: &str, seconds: f64) {
        self.duration
            .get_or_create(&canary_labels(target, namespace))
            .observe(seconds);
    }

    /// `flaggerd_reconciles_total{result}`.
    pub fn reconciled(&self, result: &str) {
        let labels = ResultLabels {
            result: result.into(),
        };
        self.reconciles.get_or_create(&labels).inc();
    }

    /// `flaggerd_reconciles_queued`: `change` reconciles more (or fewer) wait for a turn.
    pub fn queued(&self, change: i64) {
        self.queued.inc_by(change);
    }

    /// `flaggerd_step_lag_seconds`: a step decided `seconds` after it was due.
    pub fn step_lag(&self, seconds: f64) {
        self.step_lag.observe(seconds.max(0.0));
    }

    /// `flaggerd_api_requests_total{verb}`.
    pub fn api_request(&self, verb: &str) {
        let labels = VerbLabels { verb: verb.into() };
        self.requests.get_or_create(&labels).inc();
    }

    /// The exposition, in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!("cannot encode the metrics: {e}");
        }
        out
    }
}

fn canary_labels(target: &str, namespace: &str) -> CanaryLabels {
    CanaryLabels {
        name: target.into(),
        namespace: namespace.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flaggers_series_keep_their_names_and_labels() {
        let stats = Stats::new("1.0.0", "istio");
        stats.set_status("podinfo", "test", canary_core::Phase::Succeeded);
        stats.set_weight("podinfo", "test", 90, 10);
        stats.set_metric("podinfo", "test", "request-success-rate", 99.5);
        stats.count("podinfo", "test", "canary", canary_core::Outcome::Completed);
        stats.observe_duration("podinfo", "test", 0.02);
        stats.step_lag(0.003);
        stats.api_request("patch");
        let text = stats.render();
        for line in [
            r#"flagger_info{version="1.0.0",mesh_provider="istio"} 1"#,
            r#"flagger_canary_status{name="podinfo",namespace="test"} 1"#,
            r#"flagger_canary_weight{workload="podinfo-primary",namespace="test"} 90"#,
            r#"flagger_canary_weight{workload="podinfo",namespace="test"} 10"#,
            r#"flagger_canary_metric_analysis{name="podinfo",namespace="test",metric="request-success-rate"} 99.5"#,
            r#"flagger_canary_successes_total{name="podinfo",namespace="test",deployment_strategy="canary",analysis_status="completed"} 1"#,
            r#"flagger_canary_duration_seconds_bucket{le="0.025",name="podinfo",namespace="test"} 1"#,
            r#"flaggerd_step_lag_seconds_bucket{le="0.005"} 1"#,
            r#"flaggerd_api_requests_total{verb="patch"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
