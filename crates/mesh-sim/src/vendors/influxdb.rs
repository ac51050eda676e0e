//! InfluxDB 2's Flux query API: `POST /api/v2/query?org=<org>` with `Authorization: Token
//! <token>` (401 `{"code":"unauthorized","message":"unauthorized access"}` otherwise; an
//! unknown org is a 404) and a JSON body `{"query", "type": "flux", "dialect"}`. The answer is
//! annotated CSV: one table with the source's value as a `double` `_value`, or an empty body
//! when there are no data. `GET /health` answers as InfluxDB does. The source key is the whole
//! Flux text.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::Source;

/// The credentials the stand-in accepts.
#[derive(Clone, Debug)]
pub struct Auth {
    /// The API token (`Authorization: Token <token>`).
    pub token: String,
    /// The organisation name (`?org=`).
    pub org: String,
}

/// An InfluxDB error answer.
fn failure(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        json!({"code": code, "message": message}).to_string(),
    )
        .into_response()
}

/// One annotated-CSV table holding `value` at `_value`.
fn table(value: f64) -> String {
    let now = "2026-01-01T00:00:00Z";
    let value = if value.is_nan() {
        "NaN".to_string()
    } else {
        value.to_string()
    };
    format!(
        "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string\r\n\
         #group,false,false,true,true,false,false,true,true\r\n\
         #default,_result,,,,,,,\r\n\
         ,result,table,_start,_stop,_time,_value,_field,_measurement\r\n\
         ,,0,{now},{now},{now},{value},value,canary\r\n\r\n"
    )
}

/// InfluxDB 2's API answering from `source`.
pub fn router(auth: Auth, source: Source) -> axum::Router {
    let auth = Arc::new(auth);
    let query = move |q: Query<HashMap<String, String>>, h: HeaderMap, body: String| {
        let (auth, source) = (auth.clone(), source.clone());
        async move {
            let expected = format!("Token {}", auth.token);
            if h.get(header::AUTHORIZATION)
                .is_none_or(|v| v != expected.as_str())
            {
                return failure(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "unauthorized access",
                );
            }
            match q.get("org").map(String::as_str) {
                None | Some("") => {
                    return failure(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        "Please provide either orgID or org",
                    );
                }
                Some(org) if org != auth.org => {
                    let m = format!("organization name \"{org}\" not found");
                    return failure(StatusCode::NOT_FOUND, "not found", &m);
                }
                Some(_) => {}
            }
            let request: Value = match serde_json::from_str(&body) {
                Ok(v) => v,
                Err(e) => return failure(StatusCode::BAD_REQUEST, "invalid", &e.to_string()),
            };
            let Some(flux) = request["query"].as_str() else {
                return failure(StatusCode::BAD_REQUEST, "invalid", "query is required");
            };
            if request["type"].as_str().is_some_and(|t| t != "flux") {
                return failure(StatusCode::BAD_REQUEST, "invalid", "unsupported query type");
            }
            let csv = match source(flux.to_string()).await {
                Some(v) => table(v),
                None => "\r\n".to_string(),
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
                csv,
            )
                .into_response()
        }
    };
    let health = || async {
        let body = json!({"name": "influxdb", "message": "ready for queries and writes",
            "status": "pass", "checks": [], "version": "v2.7.0"});
        (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body.to_string(),
        )
    };
    axum::Router::new()
        .route("/api/v2/query", post(query))
        .route("/health", get(health))
}
