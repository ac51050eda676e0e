//! Credentials a backend echoes never reach a message, even split by the cut of a long answer
//! or spread over runs of whitespace; a backend that accepts a connection and never answers
//! fails the check within its timeout.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;

use super::common::*;

const API_KEY: &str = "dd-api-echoed-0123456789abcdef";
const APP_KEY: &str = "dd-app-echoed-fedcba9876543210";

/// Every 8-character piece of `secret`.
fn pieces(secret: &str) -> Vec<&str> {
    (0..=secret.len() - 8).map(|i| &secret[i..i + 8]).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_credentials_are_removed_wherever_the_cut_falls() {
    let world = World::new().await;
    world
        .secret(
            "dd",
            &[
                ("datadog_api_key", API_KEY),
                ("datadog_application_key", APP_KEY),
            ],
        )
        .await;
    // The key at every offset around the message limit, and once with its pieces spread over
    // whitespace (which a message collapses).
    for pad in (250..400).step_by(3) {
        let body = format!(
            "{}invalid key {API_KEY}   and\n\n{APP_KEY}",
            "x".repeat(pad)
        );
        let app = axum::Router::new().route(
            "/api/v1/query",
            get(move || {
                let body = body.clone();
                async move { (StatusCode::FORBIDDEN, body) }
            }),
        );
        let address = serve(app).await;
        world
            .template(
                "echo",
                json!({"type": "datadog", "address": address, "secretRef": {"name": "dd"}}),
                "q",
            )
            .await;
        let m = error(world.check("echo").await);
        names(
            &m,
            "datadog",
            "echo",
            "authentication failed: HTTP 403",
            &[],
        );
        for piece in pieces(API_KEY).into_iter().chain(pieces(APP_KEY)) {
            assert!(!m.contains(piece), "pad {pad}: {m:?} holds {piece:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_answers_fails_within_its_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("addr"));
    // Accepts and holds each connection without a byte of answer.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let world = World::new().await;
    world
        .secret(
            "dd",
            &[
                ("datadog_api_key", API_KEY),
                ("datadog_application_key", APP_KEY),
            ],
        )
        .await;
    world
        .template(
            "silent",
            json!({"type": "datadog", "address": address, "secretRef": {"name": "dd"}}),
            "q",
        )
        .await;
    let started = Instant::now();
    let m = error(world.check("silent").await);
    let took = started.elapsed();
    names(
        &m,
        "datadog",
        "silent",
        &format!("unreachable: {address}"),
        &[API_KEY, APP_KEY],
    );
    assert!(m.contains("timed out") || m.contains("timeout"), "{m}");
    assert!(took < Duration::from_secs(8), "the check took {took:?}");
}
