//! The Prometheus client against a stand-in server: NaN is "no values", a matrix answers a
//! range query, basic auth and custom headers are sent, and an error status is a query error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use canary_metrics::prometheus::{Auth, Prometheus, QueryError};
use serde_json::json;

type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

async fn server(seen: Seen) -> String {
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, h: axum::http::HeaderMap| {
        let seen = seen.clone();
        async move {
            let header = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            seen.lock().expect("lock").push((uri.to_string(), header("authorization"), header("x-scope-orgid")));
            let q = uri.query().unwrap_or_default();
            let body = if uri.path() == "/api/v1/query_range" {
                json!({"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[10, "1.5"], [20, "2.5"]]}]}})
            } else if q.contains("nan") {
                json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "NaN"]}]}})
            } else if q.contains("empty") {
                json!({"status": "success", "data": {"resultType": "vector", "result": []}})
            } else if q.contains("bad") {
                json!({"status": "error", "errorType": "bad_data", "error": "parse error at char 5"})
            } else {
                json!({"status": "success", "data": {"resultType": "scalar", "result": [1, "42"]}})
            };
            body.to_string()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_client_tells_its_outcomes_apart() {
    let seen: Seen = Arc::default();
    let base = server(seen.clone()).await;
    let headers = vec![("X-Scope-OrgID".to_string(), "tenant-1".to_string())];
    let prom = Prometheus::new(&base, false)
        .expect("client")
        .with(Some(Auth::Basic("user".into(), "pass".into())), headers);
    assert_eq!(prom.instant("scalar").await.expect("a value"), 42.0);
    assert!(matches!(prom.instant("nan").await, Err(QueryError::NaN)));
    assert!(matches!(
        prom.instant("empty").await,
        Err(QueryError::NoValues)
    ));
    let bad = prom.instant("bad").await.expect_err("error status");
    assert_eq!(
        bad.to_string(),
        "query error from Prometheus: parse error at char 5 (bad_data)"
    );
    let range = prom
        .range("up", 0.0, 30.0, Duration::from_secs(10))
        .await
        .expect("range");
    assert_eq!(range, vec![(10.0, 1.5), (20.0, 2.5)]);
    let (uri, auth, tenant) = seen.lock().expect("lock")[0].clone();
    assert!(uri.starts_with("/api/v1/query?query=scalar"), "{uri}");
    assert_eq!(auth, "Basic dXNlcjpwYXNz");
    assert_eq!(tenant, "tenant-1");
}
