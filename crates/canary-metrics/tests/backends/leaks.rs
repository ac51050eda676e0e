//! Credentials a backend echoes never reach a message, even split by the cut of a long answer
//! or spread over runs of whitespace; a backend that accepts a connection and never answers
//! fails the check within its timeout.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::MethodFilter;
use serde_json::{Value, json};

use super::common::*;

const API_KEY: &str = "dd-api-echoed-0123456789abcdef";
const APP_KEY: &str = "dd-app-echoed-fedcba9876543210";
const SECRET: &[(&str, &str)] = &[
    ("datadog_api_key", API_KEY),
    ("datadog_application_key", APP_KEY),
];

fn provider(address: &str) -> Value {
    json!({"type": "datadog", "address": address, "secretRef": {"name": "dd"}})
}

/// Every 8-character piece of `secret`.
fn pieces(secret: &str) -> Vec<&str> {
    (0..=secret.len() - 8).map(|i| &secret[i..i + 8]).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_credentials_are_removed_wherever_the_cut_falls() {
    let world = World::new().await;
    world.secret("dd", SECRET).await;
    // No secrets given: the keys are looked for below piece by piece, which finds them whole
    // too.
    let checks = world.checks("datadog", &[]);
    // The key at every offset around the message limit, and once with its pieces spread over
    // whitespace (which a message collapses).
    for pad in (250..400).step_by(3) {
        let body = format!(
            "{}invalid key {API_KEY}   and\n\n{APP_KEY}",
            "x".repeat(pad)
        );
        let echo = move |_: &Request| (StatusCode::FORBIDDEN, body.clone());
        let (address, _) = recording(MethodFilter::GET, &["/api/v1/query"], echo).await;
        world.template("echo", provider(&address), "q").await;
        let forbidden = "authentication failed: HTTP 403";
        let m = checks.check("echo").await.error(forbidden);
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
    world.secret("dd", SECRET).await;
    world.template("silent", provider(&address), "q").await;
    let checks = world.checks("datadog", &[API_KEY, APP_KEY]);
    let started = Instant::now();
    let answer = checks.check("silent").await;
    let took = started.elapsed();
    let m = answer.error(&format!("unreachable: {address}"));
    assert!(m.contains("timed out") || m.contains("timeout"), "{m}");
    assert!(took < Duration::from_secs(8), "the check took {took:?}");
}
