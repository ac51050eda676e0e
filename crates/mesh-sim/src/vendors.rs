//! Stand-ins for the metrics vendors a MetricTemplate can name: each speaks its vendor's
//! documented request and response format on an [`axum::Router`] and checks credentials as
//! the vendor does (a refused credential gets the vendor's 401/403 answer), and answers each
//! query from a [`Source`].
//!
//! [`externalmetrics`] stands in for an external metrics adapter of the Kubernetes API.
//!
//! The tests of canary-metrics give a [`fixed`] source; the end-to-end tests give
//! [`prometheus`], which reads the query (or, for CloudWatch, the `Expression`) as PromQL on
//! the cluster's Prometheus, so a vendor's value follows the traffic mesh-sim served.

pub mod cloudwatch;
pub mod datadog;
pub mod dynatrace;
pub mod externalmetrics;
pub mod graphite;
pub mod influxdb;
pub mod newrelic;
pub mod splunk;
pub mod stackdriver;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;

/// What a query is worth: `None` when there are no data; `Some(NaN)` is a NaN answer.
pub type Source = Arc<dyn Fn(String) -> BoxFuture<'static, Option<f64>> + Send + Sync>;

/// Answers from a table of `query -> value`; any other query has no data.
pub fn fixed(table: &[(&str, Option<f64>)]) -> Source {
    let table: BTreeMap<String, Option<f64>> =
        table.iter().map(|(q, v)| (q.to_string(), *v)).collect();
    let table = Arc::new(table);
    Arc::new(move |q: String| {
        let table = table.clone();
        Box::pin(async move { table.get(&q).copied().flatten() })
    })
}

/// Answers each query as a PromQL instant query on the Prometheus at `address`: the value of
/// its one series (or scalar); `None` when there is no series or more than one, or when
/// Prometheus fails or takes more than 5 s.
pub fn prometheus(address: &str) -> Result<Source, reqwest::Error> {
    let address = address.trim_end_matches('/').to_string();
    // Prometheus is a loopback address here: no proxy from the environment.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    Ok(Arc::new(move |q: String| {
        let (address, client) = (address.clone(), client.clone());
        Box::pin(async move {
            let resp = client
                .get(format!("{address}/api/v1/query"))
                .query(&[("query", q)])
                .send()
                .await
                .ok()?;
            let body: serde_json::Value = serde_json::from_str(&resp.text().await.ok()?).ok()?;
            let value = match body["data"]["resultType"].as_str()? {
                "scalar" => body["data"]["result"][1].clone(),
                _ => match body["data"]["result"].as_array()?.as_slice() {
                    [one] => one["value"][1].clone(),
                    _ => return None,
                },
            };
            value.as_str()?.parse().ok()
        })
    }))
}

/// The source's value for a window ending at `end` (seconds since the epoch): only a window
/// ending within five minutes of now holds it, as a vendor has no points elsewhere in time, so
/// a client that sends its window in the wrong unit or place finds no data.
pub async fn at(source: &Source, query: String, end: f64) -> Option<f64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    if (now - end).abs() > 300.0 {
        return None;
    }
    source(query).await
}

/// Serves `app` on a loopback port; answers `http://127.0.0.1:PORT`.
pub async fn serve(app: axum::Router) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}"))
}
