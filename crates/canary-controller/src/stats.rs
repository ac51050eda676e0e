//! The controller's Prometheus metrics, Flagger's series with Flagger's names and labels,
//! registered in one place and rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Histogram buckets of `flagger_canary_duration_seconds` (Prometheus' defaults).
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Series {
    total: BTreeMap<String, f64>,
    status: BTreeMap<(String, String), f64>,
    weight: BTreeMap<(String, String), f64>,
    metric: BTreeMap<(String, String, String), f64>,
    successes: BTreeMap<(String, String, String, String), f64>,
    failures: BTreeMap<(String, String, String, String), f64>,
    duration: BTreeMap<(String, String), (Vec<u64>, f64, u64)>,
}

/// The metrics registry.
pub struct Stats {
    version: String,
    provider: String,
    series: Mutex<Series>,
}

impl Stats {
    /// A registry reporting `version` and the default `provider` in `flagger_info`.
    pub fn new(version: &str, provider: &str) -> Self {
        Stats {
            version: version.into(),
            provider: provider.into(),
            series: Mutex::new(Series::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `flagger_canary_total{namespace}` for every namespace (others are dropped).
    pub fn set_totals(&self, counts: &BTreeMap<String, usize>) {
        self.lock().total = counts
            .iter()
            .map(|(ns, n)| (ns.clone(), *n as f64))
            .collect();
    }

    /// `flagger_canary_status{name, namespace}`: 0 progressing, 2 failed, 1 otherwise.
    pub fn set_status(&self, target: &str, namespace: &str, phase: canary_core::Phase) {
        self.lock().status.insert(
            (target.into(), namespace.into()),
            phase.status_gauge() as f64,
        );
    }

    /// `flagger_canary_weight{workload, namespace}` for the primary and the canary.
    pub fn set_weight(&self, target: &str, namespace: &str, primary: u32, canary: u32) {
        let mut s = self.lock();
        s.weight.insert(
            (format!("{target}-primary"), namespace.into()),
            f64::from(primary),
        );
        s.weight
            .insert((target.into(), namespace.into()), f64::from(canary));
    }

    /// `flagger_canary_metric_analysis{name, namespace, metric}`.
    pub fn set_metric(&self, target: &str, namespace: &str, metric: &str, value: f64) {
        self.lock()
            .metric
            .insert((target.into(), namespace.into(), metric.into()), value);
    }

    /// `flagger_canary_successes_total` / `flagger_canary_failures_total`.
    pub fn count(
        &self,
        target: &str,
        namespace: &str,
        strategy: &str,
        outcome: canary_core::Outcome,
    ) {
        let (map_failed, status) = match outcome {
            canary_core::Outcome::Completed => (false, "completed"),
            canary_core::Outcome::Skipped => (false, "skipped"),
            canary_core::Outcome::Failed => (true, "completed"),
        };
        let key = (
            target.to_string(),
            namespace.to_string(),
            strategy.to_string(),
            status.to_string(),
        );
        let mut s = self.lock();
        let map = if map_failed {
            &mut s.failures
        } else {
            &mut s.successes
        };
        *map.entry(key).or_default() += 1.0;
    }

    /// `flagger_canary_duration_seconds{name, namespace}`: one analysis step.
    pub fn observe_duration(&self, target: &str, namespace: &str, seconds: f64) {
        let mut s = self.lock();
        let entry = s
            .duration
            .entry((target.into(), namespace.into()))
            .or_insert_with(|| (vec![0; BUCKETS.len()], 0.0, 0));
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                entry.0[i] += 1;
            }
        }
        entry.1 += seconds;
        entry.2 += 1;
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let s = self.lock();
        let mut out = String::new();
        let mut family = |name: &str, help: &str, kind: &str, rows: Vec<(Labels, f64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{} {v}", render_labels(&labels));
            }
        };
        family(
            "flagger_info",
            "Flagger version and mesh provider information",
            "gauge",
            vec![(
                vec![
                    ("version", self.version.clone()),
                    ("mesh_provider", self.provider.clone()),
                ],
                1.0,
            )],
        );
        family(
            "flagger_canary_total",
            "Total number of canary object",
            "gauge",
            s.total
                .iter()
                .map(|(ns, v)| (vec![("namespace", ns.clone())], *v))
                .collect(),
        );
        family(
            "flagger_canary_status",
            "Last canary analysis result per canary",
            "gauge",
            s.status
                .iter()
                .map(|((n, ns), v)| (vec![("name", n.clone()), ("namespace", ns.clone())], *v))
                .collect(),
        );
        family(
            "flagger_canary_weight",
            "The virtual service destination weight current value",
            "gauge",
            s.weight
                .iter()
                .map(|((w, ns), v)| (vec![("workload", w.clone()), ("namespace", ns.clone())], *v))
                .collect(),
        );
        family(
            "flagger_canary_metric_analysis",
            "Last canary analysis result per metric",
            "gauge",
            s.metric
                .iter()
                .map(|((n, ns, m), v)| {
                    (
                        vec![
                            ("name", n.clone()),
                            ("namespace", ns.clone()),
                            ("metric", m.clone()),
                        ],
                        *v,
                    )
                })
                .collect(),
        );
        let counter_rows = |m: &BTreeMap<(String, String, String, String), f64>| {
            m.iter()
                .map(|((n, ns, st, a), v)| {
                    (
                        vec![
                            ("name", n.clone()),
                            ("namespace", ns.clone()),
                            ("deployment_strategy", st.clone()),
                            ("analysis_status", a.clone()),
                        ],
                        *v,
                    )
                })
                .collect()
        };
        family(
            "flagger_canary_successes_total",
            "Total number of canary successful promotions",
            "counter",
            counter_rows(&s.successes),
        );
        family(
            "flagger_canary_failures_total",
            "Total number of canary failed promotions",
            "counter",
            counter_rows(&s.failures),
        );
        let _ = writeln!(
            out,
            "# HELP flagger_canary_duration_seconds Seconds spent performing canary analysis.\n# TYPE flagger_canary_duration_seconds histogram"
        );
        for ((n, ns), (buckets, sum, count)) in &s.duration {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "flagger_canary_duration_seconds_bucket{{name=\"{n}\",namespace=\"{ns}\",le=\"{b}\"}} {}",
                    buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "flagger_canary_duration_seconds_bucket{{name=\"{n}\",namespace=\"{ns}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "flagger_canary_duration_seconds_sum{{name=\"{n}\",namespace=\"{ns}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "flagger_canary_duration_seconds_count{{name=\"{n}\",namespace=\"{ns}\"}} {count}"
            );
        }
        out
    }
}

fn render_labels(labels: &Labels) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", parts.join(","))
}
