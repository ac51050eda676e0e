//! The MetricTemplate backends end to end: the metrics vendors' stand-ins
//! (`metrics-vendors`, from mesh-sim) answer each vendor's API from the cluster's Prometheus,
//! with the vendor's authentication; seed 004's canary is judged by one MetricTemplate per
//! vendor, each the canary's success rate written as PromQL in place of the vendor's own
//! query language. Keptn's template reads the KeptnMetric `podinfo-success-rate`, whose value
//! mesh-sim's Keptn metrics operator (in `metrics-vendors`) fetches from the cluster's
//! Prometheus; the `externalmetrics` template reads the external metric
//! `podinfo-success-rate` of an external metrics adapter (in `metrics-vendors`) that maps it
//! to the same PromQL, as prometheus-adapter's external rules do. A promotion every vendor's check passes, then a rollback on HTTP 500s every
//! vendor's check fails; no credential appears in flaggerd's log, the events or the status.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_yaml_ng::Value as Y;

use super::seeds::WATCH_500;
use super::{Play, fail, fixture, promote};

/// The Secret `vendor-credentials` of every template, and what the stand-ins accept.
const CREDENTIALS: &[(&str, &str)] = &[
    ("datadog_api_key", "e2e-dd-api-7c41b2"),
    ("datadog_application_key", "e2e-dd-app-93fa0e"),
    ("newrelic_account_id", "47110423"),
    ("newrelic_query_key", "e2e-nr-query-5d2e81"),
    ("dynatrace_token", "e2e-dt0c01.token-a8b3"),
    ("username", "e2e-graphite-user"),
    ("password", "e2e-graphite-pass-61c0"),
    ("token", "e2e-influx-token-0b9d"),
    ("org", "e2e-influx-org"),
    ("sf_token_key", "e2e-sf-token-2e77aa"),
    ("aws_access_key_id", "AKIAE2EVENDORS0000001"),
    ("aws_secret_access_key", "e2e/aws+secret0Key9c1d44f0a7b3e6"),
    ("project", "e2e-project"),
];

/// A test-only RSA key (canary-metrics' Stackdriver tests use it too), for the
/// service-account key file of the `stackdriver` template.
const GOOGLE_KEY: &str =
    include_str!("../../../crates/canary-metrics/tests/backends/fixtures/stackdriver-test-key.pem");

/// [`CREDENTIALS`] and the service-account key file `serviceAccountKey` (its tokens from the
/// stand-ins at `address`), as a JSON object.
fn credentials(address: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut map: serde_json::Map<String, serde_json::Value> = CREDENTIALS
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    let key_file = serde_json::json!({
        "type": "service_account", "project_id": "e2e-project",
        "private_key_id": "e2e-key-1", "private_key": GOOGLE_KEY,
        "client_email": "flaggerd@e2e-project.iam.gserviceaccount.com",
        "client_id": "100000000000000000042", "token_uri": format!("{address}/token"),
    });
    map.insert("serviceAccountKey".into(), key_file.to_string().into());
    map
}

/// Every credential's value as a log, event or status could show it: as it is, JSON-escaped,
/// percent-encoded, each line of one that spans lines (the private key), and Graphite's basic
/// authentication (base64 of `username:password`). Pieces shorter than 8 characters are left
/// out: they could match a timestamp by chance.
fn secret_values(address: &str) -> Vec<(String, String)> {
    use base64::Engine;
    let credentials = credentials(address);
    let text = |k: &str| credentials[k].as_str().unwrap_or_default().to_string();
    let mut values = Vec::new();
    for (k, v) in &credentials {
        let v = v.as_str().unwrap_or_default();
        let json = serde_json::to_string(v).unwrap_or_default();
        let mut forms = vec![
            v.to_string(),
            json.trim_matches('"').to_string(),
            percent_encoded(v),
        ];
        forms.extend(
            v.lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::to_string),
        );
        for form in forms.into_iter().filter(|f| f.len() >= 8) {
            values.push((k.clone(), form));
        }
    }
    let basic = format!("{}:{}", text("username"), text("password"));
    values.push((
        "username:password".into(),
        base64::engine::general_purpose::STANDARD.encode(basic),
    ));
    values
}

/// `text` as a URL's query or path would carry it: every byte but unreserved ones encoded.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Seed 004's success rate of the canary, in PromQL.
const SUCCESS_RATE: &str = r#"sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload=~"{{ target }}",response_code!~"5.*"}[{{ interval }}])) / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload=~"{{ target }}"}[{{ interval }}])) * 100"#;

/// One vendor: its `provider.type`, and its query around the PromQL the stand-in reads.
struct Vendor {
    kind: &'static str,
    query: fn(&str) -> String,
    /// Served on the stand-ins' second port (Splunk's SignalFlow WebSocket).
    second_port: bool,
}

const VENDORS: &[Vendor] = &[
    Vendor {
        kind: "datadog",
        query: |promql| promql.to_string(),
        second_port: false,
    },
    Vendor {
        kind: "newrelic",
        query: |promql| promql.to_string(),
        second_port: false,
    },
    Vendor {
        kind: "dynatrace",
        query: |promql| promql.to_string(),
        second_port: false,
    },
    Vendor {
        // The render API's query string: the target form-encoded (PromQL's `+` would
        // otherwise read as a space).
        kind: "graphite",
        query: |promql| format!("target={}&from=-1min", promql.replace('+', "%2B")),
        second_port: false,
    },
    Vendor {
        kind: "influxdb",
        query: |promql| promql.to_string(),
        second_port: false,
    },
    Vendor {
        // GetMetricData's queries: a metric math expression (here PromQL).
        kind: "cloudwatch",
        query: |promql| {
            serde_json::json!([{"Id": "e2e", "Expression": promql, "ReturnData": true}]).to_string()
        },
        second_port: false,
    },
    Vendor {
        kind: "stackdriver",
        query: |promql| promql.to_string(),
        second_port: false,
    },
    Vendor {
        kind: "splunk",
        query: |promql| promql.to_string(),
        second_port: true,
    },
    Vendor {
        // The KeptnMetric of the canary, which Keptn's operator fetches with the PromQL.
        kind: "keptn",
        query: |_| "keptnmetric/{{ namespace }}/{{ target }}-success-rate".to_string(),
        second_port: false,
    },
    Vendor {
        // The external metric of the canary, which the adapter maps to the PromQL.
        kind: "externalmetrics",
        query: |_| {
            "{{ namespace }}/{{ target }}-success-rate?labelSelector=app%3D{{ target }}".to_string()
        },
        second_port: false,
    },
];

/// [`SUCCESS_RATE`] of podinfo in `test`, over a minute: what Keptn's KeptnMetric and the
/// external metrics adapter read.
fn podinfo_success_rate() -> String {
    SUCCESS_RATE
        .replace("{{ namespace }}", "test")
        .replace("{{ target }}", "podinfo")
        .replace("{{ interval }}", "1m")
}

/// The metric of `kind`'s template in the canary.
fn metric(kind: &str) -> String {
    format!("{kind}-success-rate")
}

pub(crate) fn metric_vendors(p: &mut Play<'_>) -> Result<()> {
    let (address, second) = start_vendors(p)?;
    p.podinfo("test")?;
    let secret = serde_yaml_ng::to_string(&serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "vendor-credentials", "namespace": "test"},
        "stringData": credentials(&address),
    }))?;
    p.apply_shown("vendor-credentials.yaml   # each vendor's keys", &secret)?;
    let mut templates = Vec::new();
    for v in VENDORS {
        let template = serde_json::json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
            "metadata": {"name": metric(v.kind), "namespace": "test"},
            "spec": {
                "provider": {"type": v.kind, "address": if v.second_port { &second } else { &address },
                             "region": "eu-west-1",
                             "secretRef": {"name": "vendor-credentials"}},
                "query": (v.query)(SUCCESS_RATE),
            }
        });
        templates.push(serde_yaml_ng::to_string(&template)?);
    }
    p.apply_shown(
        "metric-templates.yaml   # one MetricTemplate per vendor: the success rate",
        &templates.join("---\n"),
    )?;
    keptn_metric(p)?;
    let mut doc: Y = serde_yaml_ng::from_str(&fixture("004-istio.yaml")?)?;
    let metrics: Vec<Y> = VENDORS
        .iter()
        .map(|v| {
            serde_yaml_ng::from_str(&format!(
                "{{name: {m}, templateRef: {{name: {m}}}, thresholdRange: {{min: 99}}, interval: 1m}}",
                m = metric(v.kind)
            ))
        })
        .collect::<Result<_, _>>()?;
    doc["spec"]["analysis"]["metrics"] = Y::Sequence(metrics);
    p.canary(
        &serde_yaml_ng::to_string(&doc)?,
        "podinfo-canary.yaml   # seed 004's canary judged by the vendors' templates",
    )?;
    promote(p, "test", "6.0.1")?;
    for v in VENDORS {
        let passed = p
            .checks
            .iter()
            .filter(|(m, value)| *m == metric(v.kind) && value.is_some_and(|x| x >= 99.0))
            .count();
        ensure!(
            passed >= 3,
            "only {passed} {} checks passed the promotion",
            v.kind
        );
        println!("  {passed} {} checks passed", v.kind);
    }
    let mark = p.checks.len();
    fail(
        p,
        "test",
        "6.0.2",
        WATCH_500.0,
        WATCH_500.1,
        &metric(VENDORS[0].kind),
    )?;
    for v in VENDORS {
        let failed = p.checks[mark..]
            .iter()
            .filter(|(m, value)| *m == metric(v.kind) && value.is_some_and(|x| x < 99.0))
            .count();
        ensure!(
            failed >= 1,
            "no {} check failed during the rollback",
            v.kind
        );
        println!("  {failed} {} checks failed", v.kind);
    }
    no_secret_leaked(p, &address)
}

/// The KeptnMetricsProvider `prometheus` (the cluster's Prometheus) and the KeptnMetric
/// `podinfo-success-rate` of `test` the `keptn` template reads: [`SUCCESS_RATE`] of podinfo,
/// fetched each second.
fn keptn_metric(p: &mut Play<'_>) -> Result<()> {
    let promql = podinfo_success_rate();
    let provider = serde_json::json!({
        "apiVersion": "metrics.keptn.sh/v1beta1", "kind": "KeptnMetricsProvider",
        "metadata": {"name": "prometheus", "namespace": "test"},
        "spec": {"type": "prometheus", "targetServer": p.cluster.prometheus},
    });
    let metric = serde_json::json!({
        "apiVersion": "metrics.keptn.sh/v1beta1", "kind": "KeptnMetric",
        "metadata": {"name": "podinfo-success-rate", "namespace": "test"},
        "spec": {"provider": {"name": "prometheus"}, "query": promql, "fetchIntervalSeconds": 1},
    });
    p.apply_shown(
        "keptn-metric.yaml   # Keptn's provider and the KeptnMetric of the canary's success rate",
        &format!(
            "{}---\n{}",
            serde_yaml_ng::to_string(&provider)?,
            serde_yaml_ng::to_string(&metric)?
        ),
    )
}

/// Starts `metrics-vendors` answering from the cluster's Prometheus, serving the external
/// metric `podinfo-success-rate` of `test` and playing Keptn's metrics operator on the
/// cluster; returns its two addresses.
fn start_vendors(p: &mut Play<'_>) -> Result<(String, String)> {
    let port = crate::cluster::free_port()?;
    // Two binds in a row may be handed the same port: ask again (a few times at most).
    let mut second = crate::cluster::free_port()?;
    for _ in 0..5 {
        if second != port {
            break;
        }
        second = crate::cluster::free_port()?;
    }
    ensure!(second != port, "no second free port");
    let creds = p.cluster.dir.join("vendor-credentials.json");
    let address = format!("http://127.0.0.1:{port}");
    std::fs::write(&creds, serde_json::to_string(&credentials(&address))?)?;
    let bin = crate::cluster::target_dir().join("debug/metrics-vendors");
    let prometheus = p.cluster.prometheus.clone();
    let kubeconfig = p.cluster.kubeconfig.display().to_string();
    let external = format!("test/podinfo-success-rate={}", podinfo_success_rate());
    p.cluster
        .spawn(
            "metrics-vendors",
            port,
            Command::new(bin).args([
                "--prometheus",
                &prometheus,
                "--port",
                &port.to_string(),
                "--splunk-port",
                &second.to_string(),
                "--credentials",
                &creds.display().to_string(),
                "--external-metric",
                &external,
                "--kubeconfig",
                &kubeconfig,
            ]),
        )
        .context("metrics-vendors")?;
    Ok((address, format!("http://127.0.0.1:{second}")))
}

/// No credential (nor a line of the private key) in flaggerd's log, the cluster's events or
/// the canaries.
fn no_secret_leaked(p: &mut Play<'_>, address: &str) -> Result<()> {
    let log = std::fs::read_to_string(p.cluster.log("flaggerd"))?;
    let events = p.cluster.kubectl(&["get", "events", "-A", "-o", "yaml"])?;
    let status = p
        .cluster
        .kubectl(&["get", "canaries", "-A", "-o", "yaml"])?;
    let values = secret_values(address);
    for (key, value) in &values {
        for (what, text) in [
            ("flaggerd's log", &log),
            ("the events", &events),
            ("the canaries", &status),
        ] {
            ensure!(
                !text.contains(value.as_str()),
                "{key}'s value appears in {what}"
            );
        }
    }
    println!(
        "  none of the {} credentials (nor a line of the private key) appears in flaggerd's log, the events or the canaries",
        credentials(address).len()
    );
    Ok(())
}
