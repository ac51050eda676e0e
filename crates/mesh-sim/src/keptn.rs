//! Keptn's metrics operator, as much of it as a KeptnMetric of a Prometheus provider needs
//! (`metrics.keptn.sh/v1beta1`; real Keptn also runs Analyses and other providers):
//!
//! - a KeptnMetric is fetched when `status.lastUpdated` is older than
//!   `spec.fetchIntervalSeconds` and than Keptn's 10 s requeue period (Keptn looks at a
//!   metric every 10 s; it backs off after a failure, which this does not), from the KeptnMetricsProvider `spec.provider.name` of its
//!   namespace (type `prometheus`, `thanos` or `cortex`; Keptn's others are skipped);
//! - `spec.query` runs as a PromQL instant query on the provider's `targetServer`, as Keptn's
//!   Prometheus provider sends it (`POST <targetServer>/api/v1/query`, form `query` and
//!   `time`); `spec.range` is not read (Keptn runs a range query then) and the provider's
//!   `secretKeyRef` is not read (Keptn adds basic authentication from it);
//! - the status is Keptn's: one sample is `status.value` (the number as Go prints it),
//!   `status.rawValue` (base64 of the value's JSON, a quoted string, as Keptn stores it),
//!   `status.lastUpdated` (`errMsg` left as it was); a failed query sets `status.errMsg`,
//!   `lastUpdated` and an empty `value` and `rawValue`, as Keptn does.
//!
//! [`plan`], [`read`] and [`status`] are pure; [`run`] applies them to the cluster.

use std::time::Duration;

use base64::Engine;
use futures::future::join_all;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

/// The field manager of the status the simulated operator writes.
const MANAGER: &str = "keptn-metrics-operator";
/// How often the KeptnMetrics are looked at (each is fetched when its interval has passed).
const PERIOD: Duration = Duration::from_millis(500);
/// The bound of a request to the API server.
const KUBE_TIMEOUT: Duration = Duration::from_secs(10);
/// The bound of a query to the provider (Keptn allows 20 s).
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The provider types Keptn serves with its Prometheus provider.
const PROMETHEUS_TYPES: &[&str] = &["prometheus", "thanos", "cortex"];

/// A type of `metrics.keptn.sh/v1beta1`.
fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metrics.keptn.sh", "v1beta1", kind),
        plural,
    )
}

fn ns_of(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or("default")
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

/// A query to run for one KeptnMetric.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// The KeptnMetric's namespace.
    pub namespace: String,
    /// The KeptnMetric's name.
    pub name: String,
    /// The provider's `spec.targetServer`.
    pub server: String,
    /// The KeptnMetric's `spec.query` (PromQL).
    pub promql: String,
}

/// What Keptn's operator does for one KeptnMetric now.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Fetched less than `spec.fetchIntervalSeconds` ago.
    NotDue,
    /// Nothing is written: the provider is missing, or of a type not played here (Keptn then
    /// tries again later and leaves the status alone).
    Skip(String),
    /// Run the query and write its status.
    Fetch(Query),
}

/// Keptn's operator looks at a KeptnMetric again 10 s after fetching it.
const REQUEUE_SECONDS: i64 = 10;

/// True when `metric` was never fetched or both its `spec.fetchIntervalSeconds` and Keptn's
/// requeue period have passed since `status.lastUpdated`.
pub fn due(metric: &Value, now: Timestamp) -> bool {
    let Some(last) = metric["status"]["lastUpdated"]
        .as_str()
        .and_then(|t| t.parse::<Timestamp>().ok())
    else {
        return true;
    };
    let interval = metric["spec"]["fetchIntervalSeconds"]
        .as_i64()
        .unwrap_or(0)
        .max(REQUEUE_SECONDS);
    now.as_second() >= last.as_second().saturating_add(interval)
}

/// What to do for `metric`, given the cluster's KeptnMetricsProviders.
pub fn plan(metric: &Value, providers: &[Value], now: Timestamp) -> Plan {
    if !due(metric, now) {
        return Plan::NotDue;
    }
    let (ns, name) = (ns_of(metric), name_of(metric));
    let wanted = metric["spec"]["provider"]["name"]
        .as_str()
        .unwrap_or_default();
    let Some(provider) = providers
        .iter()
        .find(|p| ns_of(p) == ns && name_of(p) == wanted)
    else {
        return Plan::Skip(format!(
            "KeptnMetricsProvider {ns}/{wanted} of KeptnMetric {ns}/{name} not found"
        ));
    };
    let kind = provider["spec"]["type"].as_str().unwrap_or_default();
    if !PROMETHEUS_TYPES.contains(&kind) {
        return Plan::Skip(format!(
            "provider {kind} not supported (mesh-sim plays Keptn's Prometheus provider only)"
        ));
    }
    Plan::Fetch(Query {
        namespace: ns.into(),
        name: name.into(),
        server: provider["spec"]["targetServer"]
            .as_str()
            .unwrap_or_default()
            .into(),
        promql: metric["spec"]["query"].as_str().unwrap_or_default().into(),
    })
}

/// Reads Prometheus' answer (`code`, `body`) to an instant query as Keptn's Prometheus
/// provider does: one sample is the value; anything else is Keptn's error message.
pub fn read(code: u16, body: &str) -> Result<f64, String> {
    let api_error = code == 400 || code == 422;
    let generic = || match code / 100 {
        4 => format!("client_error: client error: {code}"),
        5 => format!("server_error: server error: {code}"),
        _ => format!("bad_response: bad response code {code}"),
    };
    if code / 100 != 2 && !api_error {
        return Err(generic());
    }
    let answer: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) if api_error => return Err(generic()),
        Err(e) => return Err(format!("bad_response: {e}")),
    };
    if answer["status"] == "error" || api_error {
        if answer["status"] == "success" {
            return Err("bad_response: inconsistent body for response code".into());
        }
        let kind = answer["errorType"].as_str().filter(|s| !s.is_empty());
        let message = answer["error"].as_str().filter(|s| !s.is_empty());
        return Err(format!(
            "{}: {}",
            kind.unwrap_or("client_error"),
            message.map_or_else(|| format!("client error: {code}"), str::to_string)
        ));
    }
    if answer["data"]["resultType"] != "vector" {
        return Err("could not cast result".into());
    }
    let samples = answer["data"]["result"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    match samples {
        [] => Err("no values in query result".into()),
        [one] => one["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| "bad_response: a sample's value is not a number".to_string()),
        _ => Err("too many values in query result".into()),
    }
}

/// A number as Prometheus' Go client prints a sample (`strconv.FormatFloat(v, 'f', -1, 64)`).
pub fn value_string(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust prints the shortest round-tripping digits without an exponent, as Go's 'f', -1.
        format!("{v}")
    }
}

/// The status Keptn writes (a JSON merge patch of it) after a query answered `answer` at
/// `now`.
pub fn status(answer: &Result<f64, String>, now: Timestamp) -> Value {
    // metav1.Time: RFC 3339 to the second.
    let last = Timestamp::from_second(now.as_second()).unwrap_or(now);
    match answer {
        Ok(v) => {
            let value = value_string(*v);
            // Keptn stores the sample's JSON (a quoted string) as bytes.
            let raw = serde_json::to_string(&value).unwrap_or_default();
            json!({
                "value": value,
                "rawValue": base64::engine::general_purpose::STANDARD.encode(raw),
                "lastUpdated": last.to_string(),
            })
        }
        Err(message) => json!({"errMsg": message, "value": "", "rawValue": "",
            "lastUpdated": last.to_string()}),
    }
}

/// Runs `query` on its provider as Keptn's Prometheus provider does; the value or Keptn's
/// error message.
pub async fn fetch(http: &reqwest::Client, query: &Query, now: Timestamp) -> Result<f64, String> {
    let url = format!("{}/api/v1/query", query.server.trim_end_matches('/'));
    let time = now.as_second().to_string();
    let sent = http
        .post(&url)
        .form(&[("query", query.promql.as_str()), ("time", time.as_str())])
        .timeout(QUERY_TIMEOUT)
        .send();
    let response = match sent.await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Err(format!("Post {url:?}: context deadline exceeded")),
        Err(e) => {
            return Err(format!(
                "Post {url:?}: {}",
                canary_core::error_chain(&e.without_url())
            ));
        }
    };
    let code = response.status().as_u16();
    let body = tokio::time::timeout(QUERY_TIMEOUT, response.text())
        .await
        .map_err(|_| format!("Post {url:?}: context deadline exceeded"))?
        .map_err(|e| {
            format!(
                "Post {url:?}: {}",
                canary_core::error_chain(&e.without_url())
            )
        })?;
    read(code, &body)
}

/// Lists every object of `res` in the cluster, within [`KUBE_TIMEOUT`].
async fn list(client: &Client, res: &ApiResource) -> Result<Vec<Value>, String> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), res);
    let listed = tokio::time::timeout(KUBE_TIMEOUT, api.list(&Default::default()))
        .await
        .map_err(|_| format!("cannot list {}: no answer within 10s", res.plural))?
        .map_err(|e| {
            format!(
                "cannot list {}: {}",
                res.plural,
                canary_core::error_chain(&e)
            )
        })?;
    listed
        .items
        .into_iter()
        .map(|o| serde_json::to_value(o).map_err(|e| e.to_string()))
        .collect()
}

/// Fetches one KeptnMetric and writes its status.
async fn refresh(client: &Client, http: &reqwest::Client, query: Query) {
    let answer = fetch(http, &query, Timestamp::now()).await;
    if let Err(message) = &answer {
        tracing::debug!(metric = %format!("{}/{}", query.namespace, query.name), "keptn: {message}");
    }
    let patch = json!({"status": status(&answer, Timestamp::now())});
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &query.namespace,
        &resource("KeptnMetric", "keptnmetrics"),
    );
    let params = PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    match tokio::time::timeout(
        KUBE_TIMEOUT,
        api.patch_status(&query.name, &params, &Patch::Merge(&patch)),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(metric = %query.name, "keptn: cannot write the status: {}", canary_core::error_chain(&e))
        }
        Err(_) => {
            tracing::warn!(metric = %query.name, "keptn: cannot write the status: no answer within 10s")
        }
    }
}

/// One look at the cluster: every due KeptnMetric fetched and its status written.
async fn tick(client: &Client, http: &reqwest::Client) -> Result<(), String> {
    let metrics = list(client, &resource("KeptnMetric", "keptnmetrics")).await?;
    if metrics.is_empty() {
        return Ok(());
    }
    let providers = list(
        client,
        &resource("KeptnMetricsProvider", "keptnmetricsproviders"),
    )
    .await?;
    let now = Timestamp::now();
    let mut fetches = Vec::new();
    for m in &metrics {
        match plan(m, &providers, now) {
            Plan::NotDue => {}
            Plan::Skip(why) => tracing::debug!("keptn: {why}"),
            Plan::Fetch(q) => fetches.push(refresh(client, http, q)),
        }
    }
    join_all(fetches).await;
    Ok(())
}

/// Plays Keptn's metrics operator for every KeptnMetric of the cluster until aborted; returns
/// only when its HTTP client cannot be built.
pub async fn run(client: Client) -> Result<(), reqwest::Error> {
    // Providers are loopback addresses here: no proxy from the environment.
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(QUERY_TIMEOUT)
        .build()?;
    // A failed list (the CRDs missing, RBAC) is a warning once, until lists work again.
    let mut failing = false;
    loop {
        match tick(&client, &http).await {
            Err(e) if !failing => {
                tracing::warn!("keptn: cannot list KeptnMetrics or their providers: {e}");
                failing = true;
            }
            Err(e) => tracing::debug!("keptn: {e}"),
            Ok(()) => failing = false,
        }
        tokio::time::sleep(PERIOD).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    fn metric(status: Value) -> Value {
        json!({"apiVersion": "metrics.keptn.sh/v1beta1", "kind": "KeptnMetric",
            "metadata": {"name": "podinfo-success-rate", "namespace": "test"},
            "spec": {"provider": {"name": "prometheus"}, "query": "sum(up)",
                "fetchIntervalSeconds": 5},
            "status": status})
    }

    fn provider(ns: &str, kind: &str) -> Value {
        json!({"metadata": {"name": "prometheus", "namespace": ns},
            "spec": {"type": kind, "targetServer": "http://127.0.0.1:9090/"}})
    }

    #[test]
    fn a_metric_is_fetched_once_its_interval_and_keptns_requeue_have_passed() {
        let now = at("2025-01-01T00:00:20Z");
        assert!(due(&metric(json!({})), now), "never fetched");
        let fetched = |t: &str| metric(json!({"lastUpdated": t}));
        // fetchIntervalSeconds 5, but Keptn looks again only after 10 s.
        assert!(!due(&fetched("2025-01-01T00:00:14Z"), now));
        assert!(!due(&fetched("2025-01-01T00:00:11Z"), now));
        assert!(due(&fetched("2025-01-01T00:00:10Z"), now));
        assert!(due(&fetched("not a time"), now));
        let slow = json!({"apiVersion": "metrics.keptn.sh/v1beta1", "kind": "KeptnMetric",
            "spec": {"fetchIntervalSeconds": 30}, "status": {"lastUpdated": "2025-01-01T00:00:00Z"}});
        assert!(!due(&slow, now), "30 s have not passed");
    }

    #[test]
    fn the_query_goes_to_the_provider_of_the_metrics_namespace() {
        let now = at("2025-01-01T00:00:10Z");
        let providers = [
            provider("other", "prometheus"),
            provider("test", "prometheus"),
        ];
        assert_eq!(
            plan(&metric(json!({})), &providers, now),
            Plan::Fetch(Query {
                namespace: "test".into(),
                name: "podinfo-success-rate".into(),
                server: "http://127.0.0.1:9090/".into(),
                promql: "sum(up)".into(),
            })
        );
        let Plan::Skip(why) = plan(&metric(json!({})), &providers[..1], now) else {
            panic!("no provider in test");
        };
        assert!(why.contains("test/prometheus"), "{why}");
        let Plan::Skip(why) = plan(&metric(json!({})), &[provider("test", "datadog")], now) else {
            panic!("datadog is not played");
        };
        assert!(why.contains("datadog"), "{why}");
        let recent = metric(json!({"lastUpdated": "2025-01-01T00:00:09Z"}));
        assert_eq!(plan(&recent, &providers, now), Plan::NotDue);
    }

    #[test]
    fn answers_are_read_as_keptn_reads_them() {
        let vector = |samples: Value| {
            json!({"status": "success", "data": {"resultType": "vector", "result": samples}})
                .to_string()
        };
        let sample = |v: &str| json!({"metric": {}, "value": [1.7e9, v]});
        assert_eq!(read(200, &vector(json!([sample("99.5")]))), Ok(99.5));
        assert!(read(200, &vector(json!([sample("NaN")]))).is_ok_and(f64::is_nan));
        assert_eq!(
            read(200, &vector(json!([]))),
            Err("no values in query result".into())
        );
        assert_eq!(
            read(200, &vector(json!([sample("1"), sample("2")]))),
            Err("too many values in query result".into())
        );
        let scalar = json!({"status": "success", "data": {"resultType": "scalar",
            "result": [1.7e9, "1"]}});
        assert_eq!(
            read(200, &scalar.to_string()),
            Err("could not cast result".into())
        );
        let bad = json!({"status": "error", "errorType": "bad_data",
            "error": "invalid parameter \"query\": parse error"});
        assert_eq!(
            read(400, &bad.to_string()),
            Err("bad_data: invalid parameter \"query\": parse error".into())
        );
        assert_eq!(
            read(503, "unavailable"),
            Err("server_error: server error: 503".into())
        );
        assert!(read(200, "<html>").is_err_and(|e| e.starts_with("bad_response: ")));
    }

    #[test]
    fn the_status_is_keptns() {
        let now = at("2025-01-01T00:00:10.75Z");
        assert_eq!(
            status(&Ok(99.5), now),
            json!({"value": "99.5", "rawValue": "Ijk5LjUi", "lastUpdated": "2025-01-01T00:00:10Z"})
        );
        assert_eq!(status(&Ok(100.0), now)["value"], "100");
        assert_eq!(
            status(&Err("no values in query result".into()), now),
            json!({"errMsg": "no values in query result", "value": "", "rawValue": "",
                "lastUpdated": "2025-01-01T00:00:10Z"})
        );
        assert_eq!(value_string(f64::NAN), "NaN");
        assert_eq!(value_string(f64::INFINITY), "+Inf");
        assert_eq!(value_string(1e21), "1000000000000000000000");
        assert_eq!(value_string(98.33333333333333), "98.33333333333333");
    }
}
