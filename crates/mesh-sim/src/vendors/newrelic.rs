//! New Relic's Insights query API: `GET /v1/accounts/{account}/query?nrql=`, requiring the
//! account's query key in `X-Query-Key` (401 `{"error": "..."}` otherwise, as New Relic
//! answers). The NRQL's trailing `SINCE ...` clause is cut off and the rest goes to the
//! source; the answer is `{"results": [{"result": v}], "metadata": {...}}`, with a null
//! result when the source has no value (or a NaN, which JSON cannot hold).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::json;

use super::Source;

/// The account and key the stand-in accepts.
#[derive(Clone, Debug)]
pub struct Keys {
    /// The account id of the URL path.
    pub account: String,
    /// `X-Query-Key`.
    pub query_key: String,
}

/// The NRQL without its trailing `SINCE ...` clause (any case), trimmed.
pub fn without_since(nrql: &str) -> &str {
    let upper = nrql.to_ascii_uppercase();
    match upper.rfind(" SINCE ") {
        Some(i) => nrql[..i].trim(),
        None => nrql.trim(),
    }
}

/// New Relic's Insights API answering from `source`.
pub fn router(keys: Keys, source: Source) -> axum::Router {
    let keys = Arc::new(keys);
    let query =
        move |Path(account): Path<String>, q: Query<HashMap<String, String>>, h: HeaderMap| {
            let (keys, source) = (keys.clone(), source.clone());
            async move {
                let key_ok = h
                    .get("X-Query-Key")
                    .is_some_and(|v| v == keys.query_key.as_str());
                if !key_ok || account != keys.account {
                    let e = json!({"error": "Invalid query key"});
                    return (StatusCode::UNAUTHORIZED, e.to_string());
                }
                let Some(nrql) = q.get("nrql").filter(|n| !n.trim().is_empty()) else {
                    let e = json!({"error": "NRQL Syntax Error: the nrql parameter is required"});
                    return (StatusCode::BAD_REQUEST, e.to_string());
                };
                let value = source(without_since(nrql).to_string())
                    .await
                    .filter(|v| v.is_finite());
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis() as u64;
                let body = json!({
                    "results": [{"result": value}],
                    "performanceStats": {"inspectedCount": 1, "omittedCount": 0,
                        "matchCount": 1, "wallClockTime": 3},
                    "metadata": {"eventTypes": ["Metric"], "eventType": "Metric",
                        "openEnded": true, "beginTimeMillis": now.saturating_sub(60_000),
                        "endTimeMillis": now, "beginTime": "", "endTime": "",
                        "guid": "00000000-0000-0000-0000-000000000000",
                        "routerGuid": "00000000-0000-0000-0000-000000000000",
                        "messages": [], "rawSince": "", "rawUntil": "NOW",
                        "contents": [{"function": "alias", "alias": "result",
                            "contents": {"function": "expression"}}]},
                });
                (StatusCode::OK, body.to_string())
            }
        };
    axum::Router::new().route("/v1/accounts/{account}/query", get(query))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_since_clause_is_cut() {
        assert_eq!(
            without_since("SELECT count(*) FROM Transaction SINCE 60 seconds ago"),
            "SELECT count(*) FROM Transaction"
        );
        assert_eq!(without_since("SELECT 1 since 1 hour ago"), "SELECT 1");
        assert_eq!(without_since("rate(x[1m])"), "rate(x[1m])");
    }
}
