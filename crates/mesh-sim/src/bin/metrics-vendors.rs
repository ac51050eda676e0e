//! `metrics-vendors`: the metrics vendors' stand-ins ([`mesh_sim::vendors`]) as one process
//! for the end-to-end tests, each on its own paths of one port (Splunk's SignalFlow on a
//! second one), answering every query as
//! PromQL on the cluster's Prometheus.
//!
//! `metrics-vendors --prometheus http://127.0.0.1:9090 --port 9000 --splunk-port 9001 --credentials creds.json`
//! where `creds.json` holds the Secret keys of the MetricTemplates (`datadog_api_key`, ...).
//! With `--external-metric test/errors=<PromQL>` its external metrics adapter serves the
//! metric `errors` of `test` as that PromQL's value.
//! With `--kubeconfig PATH` it also plays Keptn's metrics operator ([`mesh_sim::keptn`]) on
//! that cluster: the KeptnMetrics' values, from their Prometheus providers.

use std::collections::BTreeMap;

use anyhow::Context;
use clap::Parser;
use mesh_sim::vendors::{
    self, cloudwatch, datadog, dynatrace, externalmetrics, graphite, influxdb, newrelic, splunk,
    stackdriver,
};

/// The metrics vendors' stand-ins, answering from Prometheus.
#[derive(Debug, Parser)]
#[command(name = "metrics-vendors")]
struct Flags {
    /// The Prometheus whose answers the vendors serve.
    #[arg(long)]
    prometheus: String,
    /// Loopback port (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Loopback port of Splunk's SignalFlow (a WebSocket server of its own).
    #[arg(long)]
    splunk_port: u16,
    /// JSON object of the credentials the vendors accept, by the Secret keys of Flagger's
    /// MetricTemplates.
    #[arg(long)]
    credentials: String,
    /// An external metric the adapter serves, `<namespace>/<metric>=<PromQL>` (repeatable):
    /// its value is the PromQL's on Prometheus, whatever label selector is asked.
    #[arg(long = "external-metric")]
    external_metrics: Vec<String>,
    /// Kubeconfig of a cluster whose KeptnMetrics to fetch as Keptn's metrics operator does.
    #[arg(long)]
    kubeconfig: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    mesh_sim::log_to_stderr();
    if let Some(path) = &flags.kubeconfig {
        let client = mesh_sim::client_from_kubeconfig(path).await?;
        tokio::spawn(async move {
            if let Err(e) = mesh_sim::keptn::run(client).await {
                tracing::error!("keptn: cannot build the HTTP client: {e}");
            }
            // The e2e relies on the operator: without it the process must not go on serving.
            std::process::exit(1);
        });
    }
    let text = std::fs::read_to_string(&flags.credentials)
        .with_context(|| format!("cannot read {}", flags.credentials))?;
    let creds: BTreeMap<String, String> = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a JSON object of strings", flags.credentials))?;
    let key = |k: &str| {
        creds
            .get(k)
            .cloned()
            .with_context(|| format!("{}: no {k}", flags.credentials))
    };
    let source = vendors::prometheus(&flags.prometheus)?;
    let app = axum::Router::new().merge(datadog::router(
        datadog::Keys {
            api: key("datadog_api_key")?,
            application: key("datadog_application_key")?,
        },
        source.clone(),
    ));
    let app = app
        .merge(newrelic::router(
            newrelic::Keys {
                account: key("newrelic_account_id")?,
                query_key: key("newrelic_query_key")?,
            },
            source.clone(),
        ))
        .merge(dynatrace::router(key("dynatrace_token")?, source.clone()))
        .merge(graphite::router(
            Some((key("username")?, key("password")?)),
            source.clone(),
        ))
        .merge(influxdb::router(
            influxdb::Auth {
                token: key("token")?,
                org: key("org")?,
            },
            source.clone(),
        ));
    let mut rules = BTreeMap::new();
    for rule in &flags.external_metrics {
        let (metric, promql) = rule.split_once('=').with_context(|| {
            format!("--external-metric {rule:?}: expected <ns>/<metric>=<PromQL>")
        })?;
        rules.insert(metric.to_string(), promql.to_string());
    }
    let app = app.merge(externalmetrics::router(
        key("token")?,
        externalmetrics::rules(rules, source.clone()),
    ));
    let aws = [(key("aws_access_key_id")?, key("aws_secret_access_key")?)];
    let aws: Vec<(&str, &str)> = aws.iter().map(|(i, s)| (i.as_str(), s.as_str())).collect();
    let google: serde_json::Value = serde_json::from_str(&key("serviceAccountKey")?)
        .context("serviceAccountKey: not a service-account key file")?;
    let field = |f: &str| {
        google[f]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("serviceAccountKey: no {f}"))
    };
    let public_key = stackdriver::public_key_of(&field("private_key")?)
        .context("serviceAccountKey: private_key is not a PKCS#8 RSA key")?;
    let app = app
        .merge(cloudwatch::router(cloudwatch::sigv4(&aws), source.clone()))
        .merge(stackdriver::router(
            &key("project")?,
            stackdriver::rs256(
                &field("client_email")?,
                &field("private_key_id")?,
                public_key,
            ),
            source.clone(),
        ));
    let signalflow = std::sync::Arc::new(splunk::SignalFlow::new(
        key("sf_token_key")?,
        splunk::from_source(source.clone()),
    ));
    let splunk_listener = tokio::net::TcpListener::bind(("127.0.0.1", flags.splunk_port)).await?;
    tokio::spawn(splunk::serve(splunk_listener, signalflow));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", flags.port)).await?;
    eprintln!(
        "metrics-vendors listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
