//! Dynatrace's metrics API v2: `GET /api/v2/metrics/query?metricSelector=&resolution=&from=
//! &to=` (milliseconds) and `GET /api/v2/metrics?pageSize=`, both requiring
//! `Authorization: Api-Token <token>` (401 `{"error": {"code": 401, "message": ...}}`
//! otherwise). The metric selector goes to the source; a value is one data series with one
//! timestamp (`to`) and one value, null for a NaN; no value is a result with no data.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};

use super::Source;

/// A Dynatrace error answer.
fn error(status: StatusCode, message: &str) -> (StatusCode, String) {
    let body = json!({"error": {"code": status.as_u16(), "message": message}});
    (status, body.to_string())
}

/// Whether `h` carries `Api-Token <token>`; the refusal otherwise.
fn authorize(h: &HeaderMap, token: &str) -> Result<(), (StatusCode, String)> {
    match h.get("Authorization").and_then(|v| v.to_str().ok()) {
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "Missing authorization parameter.",
        )),
        Some(v) if v.strip_prefix("Api-Token ") == Some(token) => Ok(()),
        Some(_) => Err(error(
            StatusCode::UNAUTHORIZED,
            "Token Authentication failed",
        )),
    }
}

/// Dynatrace's API accepting `token`, answering from `source`.
pub fn router(token: String, source: Source) -> axum::Router {
    let token = Arc::new(token);
    let t = token.clone();
    let query = move |q: Query<HashMap<String, String>>, h: HeaderMap| {
        let (token, source) = (t.clone(), source.clone());
        async move {
            if let Err(refused) = authorize(&h, &token) {
                return refused;
            }
            let Some(selector) = q.get("metricSelector").filter(|s| !s.is_empty()) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Constraints violated. metricSelector: must not be empty",
                );
            };
            let ms = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
            let (Some(from), Some(to)) = (ms("from"), ms("to")) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "The from and to parameters must be timestamps in milliseconds",
                );
            };
            if from >= to {
                return error(StatusCode::BAD_REQUEST, "from must be before to");
            }
            let resolution = q.get("resolution").cloned().unwrap_or_else(|| "1m".into());
            let data = match super::at(&source, selector.clone(), to as f64 / 1000.0).await {
                Some(v) => {
                    let v = if v.is_finite() { json!(v) } else { Value::Null };
                    json!([{"dimensions": [], "dimensionMap": {}, "timestamps": [to],
                        "values": [v]}])
                }
                None => json!([]),
            };
            let body = json!({"totalCount": 1, "nextPageKey": null, "resolution": resolution,
                "result": [{"metricId": selector, "dataPointCountRatio": 0.0001,
                    "dimensionCountRatio": 0.0001, "data": data}]});
            (StatusCode::OK, body.to_string())
        }
    };
    let metrics = move |h: HeaderMap| {
        let token = token.clone();
        async move {
            if let Err(refused) = authorize(&h, &token) {
                return refused;
            }
            let body = json!({"totalCount": 1, "nextPageKey": null, "metrics": [
                {"metricId": "builtin:service.response.time",
                 "displayName": "Response time", "description": "", "unit": "MicroSecond"}]});
            (StatusCode::OK, body.to_string())
        }
    };
    axum::Router::new()
        .route("/api/v2/metrics/query", get(query))
        .route("/api/v2/metrics", get(metrics))
}
