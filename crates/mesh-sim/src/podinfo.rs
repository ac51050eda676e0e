//! A podinfo-like backend: the endpoints the seeds' webhooks and load tests call.
//!
//! `GET /` (version and hostname as JSON), `POST /token` (a JSON token), `/status/{code}`
//! (answers that code), `/delay/{seconds}` (answers after that long, at most 10 s),
//! `/healthz`, `/readyz`, `/version`. The version comes from the image tag, so a test sees
//! which revision answered.

use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{any, get, post};
use serde_json::json;

/// The longest `/delay` honoured, so test request loops stay bounded.
const MAX_DELAY: Duration = Duration::from_secs(10);

/// The version in an image reference: `ghcr.io/stefanprodan/podinfo:6.0.1` gives `6.0.1`.
pub fn version_of(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) => tag.split('@').next().unwrap_or(tag).to_string(),
        None => "latest".to_string(),
    }
}

/// The backend of one revision: `hostname` (e.g. `podinfo-primary-7d9f8`) and its image.
pub fn router(hostname: &str, image: &str) -> Router {
    let version = version_of(image);
    let (h1, v1) = (hostname.to_string(), version.clone());
    let v2 = version.clone();
    Router::new()
        .route("/", any(move || {
            let (h, v) = (h1.clone(), v1.clone());
            async move { json!({"hostname": h, "version": v, "message": format!("greetings from podinfo v{v}")}).to_string() }
        }))
        .route("/version", get(move || {
            let v = v2.clone();
            async move { json!({"version": v}).to_string() }
        }))
        .route("/token", post(|| async { json!({"token": "eyJhbGciOiJIUzI1NiJ9.podinfo", "expires_at": "2030-01-01T00:00:00Z"}).to_string() }))
        .route("/status/{code}", any(|Path(code): Path<u16>| async move {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
            (status, json!({"status": code}).to_string())
        }))
        .route("/delay/{seconds}", any(|Path(seconds): Path<f64>| async move {
            let wait = Duration::from_secs_f64(seconds.max(0.0)).min(MAX_DELAY);
            tokio::time::sleep(wait).await;
            json!({"delay": wait.as_secs_f64()}).to_string()
        }))
        .route("/healthz", get(|| async { json!({"status": "OK"}).to_string() }))
        .route("/readyz", get(|| async { json!({"status": "OK"}).to_string() }))
}

/// Serves a backend on a free loopback port; returns its address.
pub async fn spawn(hostname: &str, image: &str) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = router(hostname, image);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_image_tags() {
        assert_eq!(version_of("ghcr.io/stefanprodan/podinfo:6.0.1"), "6.0.1");
        assert_eq!(version_of("stefanprodan/podinfo:3.1.0@sha256:abc"), "3.1.0");
        assert_eq!(version_of("localhost:5000/podinfo"), "latest");
    }
}
