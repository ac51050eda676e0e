//! An external metrics adapter (KEDA's metrics server, prometheus-adapter's external rules):
//! the Kubernetes API `GET /apis/external.metrics.k8s.io/v1beta1/namespaces/<ns>/<metric>
//! ?labelSelector=`, answering an `ExternalMetricValueList` whose one item holds the source's
//! value as a Kubernetes quantity (milli-units when it is not a whole number, as adapters
//! write them). The source is asked `<ns>/<metric>`, with `?labelSelector=<selector>` when
//! one was given; no data is an empty list. A request without `Authorization: Bearer
//! <token>` is refused with the API server's 401 `Status`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};

use super::Source;

/// The API's group and version.
const API: &str = "/apis/external.metrics.k8s.io/v1beta1";

/// The adapter accepting the bearer `token`, answering from `source`.
pub fn router(token: String, source: Source) -> axum::Router {
    let token = Arc::new(token);
    let list = move |Path((ns, metric)): Path<(String, String)>,
                     Query(q): Query<HashMap<String, String>>,
                     headers: HeaderMap| {
        let (token, source) = (token.clone(), source.clone());
        async move {
            let bearer = headers
                .get("Authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if bearer != Some(token.as_str()) {
                return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
            }
            let query = match q.get("labelSelector").filter(|s| !s.is_empty()) {
                Some(selector) => format!("{ns}/{metric}?labelSelector={selector}"),
                None => format!("{ns}/{metric}"),
            };
            let items: Vec<Value> = source(query)
                .await
                .map(|v| {
                    json!({"metricName": metric, "metricLabels": {},
                           "timestamp": now(), "value": quantity(v)})
                })
                .into_iter()
                .collect();
            let list = json!({"kind": "ExternalMetricValueList",
                              "apiVersion": "external.metrics.k8s.io/v1beta1",
                              "metadata": {}, "items": items});
            (StatusCode::OK, list.to_string())
        }
    };
    axum::Router::new().route(&format!("{API}/namespaces/{{ns}}/{{metric}}"), get(list))
}

/// A source answering the metrics named in `rules` (`<ns>/<metric>` -> the query `source`
/// reads), whatever label selector is asked, as prometheus-adapter's external rules map a
/// metric to PromQL; any other metric has no data.
pub fn rules(rules: BTreeMap<String, String>, source: Source) -> Source {
    let rules = Arc::new(rules);
    Arc::new(move |query: String| {
        let metric = query.split('?').next().unwrap_or_default();
        match rules.get(metric) {
            Some(inner) => source(inner.clone()),
            None => Box::pin(async { None }),
        }
    })
}

/// An API server's `Status` answer.
fn status(code: StatusCode, reason: &str, message: &str) -> (StatusCode, String) {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                      "status": "Failure", "reason": reason, "message": message,
                      "code": code.as_u16()});
    (code, body.to_string())
}

/// `v` as a Kubernetes quantity: `42`, `99500m`; a NaN (which no quantity can hold) as `0`.
pub fn quantity(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{:.0}m", v * 1000.0)
    }
}

/// Now, as an RFC 3339 timestamp in UTC (seconds).
fn now() -> String {
    chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity(42.0), "42");
        assert_eq!(quantity(99.5), "99500m");
        assert_eq!(quantity(0.25), "250m");
        assert_eq!(quantity(f64::NAN), "0");
    }
}
