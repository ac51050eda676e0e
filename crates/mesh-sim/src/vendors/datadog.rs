//! Datadog's metrics API v1: `GET /api/v1/query?query=&from=&to=` (seconds) and
//! `GET /api/v1/validate`, both requiring the `DD-API-KEY` and `DD-APPLICATION-KEY` headers
//! (403 `{"errors": ["Forbidden"]}` otherwise). A query's series holds the source's value at
//! `from` and a null point at `to` (Datadog's empty rollup), so a client must read the first
//! point; no data is an empty `series`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::json;

use super::Source;

/// Datadog's keys the stand-in accepts.
#[derive(Clone, Debug)]
pub struct Keys {
    /// `DD-API-KEY`.
    pub api: String,
    /// `DD-APPLICATION-KEY`.
    pub application: String,
}

/// Datadog's API answering from `source`.
pub fn router(keys: Keys, source: Source) -> axum::Router {
    let keys = Arc::new(keys);
    let authorized = move |h: &HeaderMap, keys: &Keys| {
        h.get("DD-API-KEY").is_some_and(|v| v == keys.api.as_str())
            && h.get("DD-APPLICATION-KEY")
                .is_some_and(|v| v == keys.application.as_str())
    };
    let forbidden = || {
        (
            StatusCode::FORBIDDEN,
            json!({"errors": ["Forbidden"]}).to_string(),
        )
    };
    let k = keys.clone();
    let query = move |q: Query<HashMap<String, String>>, h: HeaderMap| {
        let (keys, source) = (k.clone(), source.clone());
        async move {
            if !authorized(&h, &keys) {
                return forbidden();
            }
            let n = |k: &str| q.get(k).and_then(|v| v.parse::<f64>().ok());
            let (Some(from), Some(to), Some(query)) = (n("from"), n("to"), q.get("query")) else {
                let e = json!({"errors": ["The from, to and query parameters are required"]});
                return (StatusCode::BAD_REQUEST, e.to_string());
            };
            let series = match super::at(&source, query.clone(), to).await {
                Some(v) => json!([{
                    "metric": query, "expression": query, "length": 2,
                    "pointlist": [[from * 1000.0, v], [to * 1000.0, null]],
                }]),
                None => json!([]),
            };
            let body = json!({"status": "ok", "res_type": "time_series", "query": query,
                "from_date": from * 1000.0, "to_date": to * 1000.0, "series": series});
            (StatusCode::OK, body.to_string())
        }
    };
    let validate = move |h: HeaderMap| {
        let keys = keys.clone();
        async move {
            if authorized(&h, &keys) {
                (StatusCode::OK, json!({"valid": true}).to_string())
            } else {
                forbidden()
            }
        }
    };
    axum::Router::new()
        .route("/api/v1/query", get(query))
        .route("/api/v1/validate", get(validate))
}
