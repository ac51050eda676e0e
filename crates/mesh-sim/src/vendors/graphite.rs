//! graphite-web's render API: `GET /render?target=...&from=...&format=json`, answered as
//! graphite-web's JSON, one entry per `target` with values:
//! `[{"target": t, "tags": {"name": t}, "datapoints": [[v, ts], [null, ts]]}]` (the newest
//! point is null, as a not yet filled bucket is, so a client must skip nulls). Each `target`
//! goes to the source, trimmed; no value is no entry, a NaN is a null datapoint (graphite-web
//! writes NaN as null). With credentials, basic authentication is required (401 otherwise, as
//! the web server in front of graphite-web answers); other formats than JSON are refused.

use std::sync::Arc;

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use super::Source;

/// The `Authorization` value of basic authentication with `username` and `password`.
pub fn basic(username: &str, password: &str) -> String {
    use base64::Engine;
    let pair = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// graphite-web's render API answering from `source`; `credentials` (username, password)
/// make basic authentication required.
pub fn router(credentials: Option<(String, String)>, source: Source) -> axum::Router {
    let expected = Arc::new(credentials.map(|(u, p)| basic(&u, &p)));
    let render = move |Query(params): Query<Vec<(String, String)>>, h: HeaderMap| {
        let (expected, source) = (expected.clone(), source.clone());
        async move {
            if let Some(expected) = expected.as_deref() {
                let given = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                if given != Some(expected) {
                    return (
                        StatusCode::UNAUTHORIZED,
                        [(header::WWW_AUTHENTICATE, "Basic realm=\"Graphite\"")],
                        "401 Unauthorized",
                    )
                        .into_response();
                }
            }
            let format = params
                .iter()
                .rev()
                .find(|(k, _)| k == "format")
                .map(|(_, v)| v.as_str());
            if format != Some("json") {
                return (
                    StatusCode::BAD_REQUEST,
                    "this stand-in renders format=json only",
                )
                    .into_response();
            }
            for (_, v) in params.iter().filter(|(k, _)| k == "from" || k == "until") {
                if let Err(unit) = offset_unit(v) {
                    let message = format!("Invalid parameters (Invalid offset unit '{unit}')");
                    return (StatusCode::BAD_REQUEST, message).into_response();
                }
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let (older, newer) = (now / 60 * 60 - 60, now / 60 * 60);
            let mut series = Vec::new();
            for (_, target) in params.iter().filter(|(k, _)| k == "target") {
                // graphite-web's parser ignores whitespace around a target.
                let target = target.trim();
                let Some(v) = source(target.to_string()).await else {
                    continue;
                };
                let v = if v.is_finite() { json!(v) } else { Value::Null };
                series.push(json!({"target": target, "tags": {"name": target},
                    "datapoints": [[v, older], [null, newer]]}));
            }
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Value::Array(series).to_string(),
            )
                .into_response()
        }
    };
    axum::Router::new().route("/render", get(render))
}

/// A relative time (`-10min`, `-1h`) must use one of graphite-web's units, which it reads by
/// prefix (`s`, `min`, `h`, `d`, `w`, `mon`, `y`): `-1m` is refused, as graphite-web refuses
/// it. Absolute times and other forms pass.
fn offset_unit(time: &str) -> Result<(), String> {
    let t = time.trim().trim_start_matches(['-', '+']);
    let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let unit = &t[digits..];
    if digits == 0 || unit.is_empty() || !unit.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Ok(());
    }
    let known = ["s", "min", "h", "d", "w", "mon", "y"];
    if known.iter().any(|k| unit.starts_with(k)) {
        Ok(())
    } else {
        Err(unit.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_use_graphites_units() {
        for ok in [
            "-1min", "-10s", "-2hours", "-1d", "-3mon", "now", "20250101", "-1y",
        ] {
            assert_eq!(offset_unit(ok), Ok(()), "{ok}");
        }
        assert_eq!(offset_unit("-1m"), Err("m".into()));
        assert_eq!(offset_unit("-5x"), Err("x".into()));
    }

    #[test]
    fn basic_authentication_is_base64() {
        assert_eq!(
            basic("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic("a", "b"), "Basic YTpi");
        assert_eq!(basic("ab", "c"), "Basic YWI6Yw==");
    }
}
