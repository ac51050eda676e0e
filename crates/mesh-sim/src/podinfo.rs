//! A podinfo-like backend: the endpoints the seeds' webhooks and load tests call.
//!
//! `GET /` (version and hostname as JSON), `POST /token` (a JSON token), `/status/{code}`
//! (answers that code), `/delay/{seconds}` (answers after that long, at most 10 s),
//! `/healthz`, `/readyz`, `/version`, and on its gRPC port (9999) gRPC's health service
//! (`grpc.health.v1.Health/Check`, which `grpc_health_probe` and `ghz` call). The version
//! comes from the image tag, so a test sees which revision answered.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{any, get, post};
use http_body_util::StreamBody;
use hyper::body::Frame;
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
        .route("/grpc.health.v1.Health/Check", post(health_check))
}

/// gRPC status codes used here.
const GRPC_OK: u8 = 0;
const GRPC_NOT_FOUND: u8 = 5;
const GRPC_INTERNAL: u8 = 13;

/// `grpc.health.v1.Health/Check`, as podinfo's gRPC server answers it: the server as a whole
/// (service `""`) is SERVING; any other service name is unknown (NOT_FOUND).
async fn health_check(body: Bytes) -> Response {
    match health_request_service(&body) {
        // HealthCheckResponse { status: SERVING (1) }.
        Some(service) if service.is_empty() => grpc_reply(Some(&[0x08, 0x01]), GRPC_OK, ""),
        Some(_) => grpc_reply(None, GRPC_NOT_FOUND, "unknown service"),
        None => grpc_reply(None, GRPC_INTERNAL, "malformed HealthCheckRequest"),
    }
}

/// The `service` field of one length-prefixed `HealthCheckRequest` message, or `None` when
/// the body is no such message.
fn health_request_service(body: &[u8]) -> Option<String> {
    let (&compressed, rest) = body.split_first()?;
    let (len, message) = rest.split_at_checked(4)?;
    let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
    if compressed != 0 || message.len() != len {
        return None;
    }
    let mut service = String::new();
    let mut at = message;
    while let Some((&tag, rest)) = at.split_first() {
        // Only field 1 (`service`, length-delimited) is defined; its length fits one byte
        // for any name a test uses, and longer varints are refused.
        let (&n, rest) = rest.split_first()?;
        if tag != 0x0a || n & 0x80 != 0 {
            return None;
        }
        let (value, rest) = rest.split_at_checked(usize::from(n))?;
        service = String::from_utf8(value.to_vec()).ok()?;
        at = rest;
    }
    Some(service)
}

/// A gRPC response: HTTP 200, `application/grpc`, the message (if any) with its 5-byte
/// prefix, then the `grpc-status` and `grpc-message` trailers.
fn grpc_reply(message: Option<&[u8]>, status: u8, text: &str) -> Response {
    let mut frames = Vec::new();
    if let Some(m) = message {
        let mut data = vec![0u8];
        data.extend_from_slice(&(m.len() as u32).to_be_bytes());
        data.extend_from_slice(m);
        frames.push(Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(
            data,
        ))));
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(i32::from(status)));
    if let Ok(v) = HeaderValue::from_str(text)
        && !text.is_empty()
    {
        trailers.insert("grpc-message", v);
    }
    frames.push(Ok(Frame::trailers(trailers)));
    let mut response = Response::new(Body::new(StreamBody::new(futures::stream::iter(frames))));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
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

    #[test]
    fn health_requests_are_read_from_their_frame() {
        assert_eq!(
            health_request_service(&[0, 0, 0, 0, 0]).as_deref(),
            Some("")
        );
        let named = [
            0, 0, 0, 0, 9, 0x0a, 7, b'p', b'o', b'd', b'i', b'n', b'f', b'o',
        ];
        assert_eq!(health_request_service(&named).as_deref(), Some("podinfo"));
        // A wrong length, a compressed frame, an unknown field: not a request.
        assert_eq!(health_request_service(&[0, 0, 0, 0, 3, 0x0a, 1]), None);
        assert_eq!(health_request_service(&[1, 0, 0, 0, 0]), None);
        assert_eq!(health_request_service(&[0, 0, 0, 0, 2, 0x10, 1]), None);
    }
}
