//! The webhook client against an in-process HTTP server: Flagger's payload byte for byte,
//! success only up to 202 (the body is the error otherwise), timeouts, and retries on
//! connection errors, 429 and 5xx.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use canary_api::Canary;
use canary_core::Phase;
use canary_core::spec::Webhook;
use canary_webhooks::{HttpWebhooks, Payload, WebhookClient};

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, String)>>>);

/// A server whose answer per path is scripted: `/status/<code>`, `/slow`, `/flaky` (503 then 200).
async fn server(received: Received) -> String {
    let flaky = Arc::new(Mutex::new(0u32));
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: Bytes| {
            let received = received.clone();
            let flaky = flaky.clone();
            async move {
                let ct = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                received.0.lock().expect("lock").push((
                    uri.path().to_string(),
                    format!("{ct}\n{}", String::from_utf8_lossy(&body)),
                ));
                let path = uri.path();
                if let Some(code) = path.strip_prefix("/status/") {
                    let code: u16 = code.parse().unwrap_or(500);
                    return (
                        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                        format!("answer {code}"),
                    );
                }
                if path == "/slow" {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    return (StatusCode::OK, "late".into());
                }
                if path == "/flaky" {
                    let mut n = flaky.lock().expect("lock");
                    *n += 1;
                    if *n < 3 {
                        return (StatusCode::SERVICE_UNAVAILABLE, "not yet".into());
                    }
                }
                (StatusCode::OK, "ok".into())
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn canary() -> Canary {
    let mut c = Canary::from_yaml(include_str!(
        "../../canary-core/tests/fixtures/004-istio.yaml"
    ))
    .expect("seed");
    c.status = Some(canary_core::CanaryStatus {
        last_applied_spec: "rev-2".into(),
        ..Default::default()
    });
    c
}

fn hook(url: String, kind: &str) -> Webhook {
    let mut h = Webhook {
        name: "load-test".into(),
        url,
        r#type: Some(kind.into()),
        ..Default::default()
    };
    h.metadata = Some(
        [(
            "cmd".to_string(),
            "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/".to_string(),
        )]
        .into(),
    );
    h
}

#[tokio::test]
async fn the_payload_is_flaggers_byte_for_byte() {
    let received = Received::default();
    let base = server(received.clone()).await;
    let client = HttpWebhooks::new().expect("client");
    let c = canary();
    let h = hook(format!("{base}/status/200"), "rollout");
    let payload = Payload::new(&c, Phase::Progressing, &h);
    client.call(&h, &payload).await.expect("200 is success");
    let (_, got) = received.0.lock().expect("lock")[0].clone();
    let expected = include_str!("fixtures/payload.json")
        .trim()
        .replace("CHECKSUM", &payload.checksum);
    assert_eq!(got, format!("application/json\n{expected}"));
}

#[tokio::test]
async fn only_codes_up_to_202_succeed_and_the_body_is_the_error() {
    let base = server(Received::default()).await;
    let client = HttpWebhooks::new().expect("client");
    let c = canary();
    for kind in [
        "confirm-rollout",
        "pre-rollout",
        "rollout",
        "confirm-traffic-increase",
        "confirm-promotion",
        "post-rollout",
        "rollback",
        "event",
    ] {
        for (code, ok) in [
            (200, true),
            (201, true),
            (202, true),
            (204, false),
            (403, false),
            (500, false),
        ] {
            let h = hook(format!("{base}/status/{code}"), kind);
            let result = client
                .call(&h, &Payload::new(&c, Phase::Progressing, &h))
                .await;
            assert_eq!(result.is_ok(), ok, "{kind} answered {code}: {result:?}");
            if !ok && code != 204 {
                let err = result.expect_err("error");
                assert!(
                    matches!(&err, canary_webhooks::Error::Refused { status, .. } if *status == code),
                    "{err:?}"
                );
                assert_eq!(err.to_string(), format!("answer {code}"));
            }
        }
    }
}

#[tokio::test]
async fn a_hook_past_its_timeout_fails() {
    let base = server(Received::default()).await;
    let client = HttpWebhooks::new().expect("client");
    let mut h = hook(format!("{base}/slow"), "pre-rollout");
    h.timeout = Some("1s".into());
    let started = std::time::Instant::now();
    let err = client
        .call(&h, &Payload::new(&canary(), Phase::Progressing, &h))
        .await
        .expect_err("timeout")
        .to_string();
    assert!(err.starts_with("timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn retries_cover_5xx_but_not_4xx() {
    let received = Received::default();
    let base = server(received.clone()).await;
    let client = HttpWebhooks::new().expect("client");
    let mut h = hook(format!("{base}/flaky"), "rollout");
    h.retries = Some(2);
    client
        .call(&h, &Payload::new(&canary(), Phase::Progressing, &h))
        .await
        .expect("third attempt succeeds");
    assert_eq!(received.0.lock().expect("lock").len(), 3);
    let mut forbidden = hook(format!("{base}/status/403"), "confirm-promotion");
    forbidden.retries = Some(3);
    assert!(
        client
            .call(
                &forbidden,
                &Payload::new(&canary(), Phase::Progressing, &forbidden)
            )
            .await
            .is_err()
    );
    assert_eq!(
        received.0.lock().expect("lock").len(),
        4,
        "a 403 is not retried"
    );
    let nowhere = hook("http://127.0.0.1:9/".into(), "rollout");
    let err = client
        .call(
            &nowhere,
            &Payload::new(&canary(), Phase::Progressing, &nowhere),
        )
        .await
        .expect_err("refused");
    assert!(
        matches!(err, canary_webhooks::Error::Transport(_)),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("connection failed"), "{err}");
}
