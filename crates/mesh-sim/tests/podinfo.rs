//! The podinfo-like backend answers what the seeds call.

use std::time::{Duration, Instant};

#[tokio::test]
async fn the_seeds_endpoints_answer_like_podinfo() {
    let addr = mesh_sim::podinfo::spawn(
        "podinfo-primary-7d9f8",
        "ghcr.io/stefanprodan/podinfo:6.0.1",
    )
    .await
    .expect("serve");
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let root: String = http
        .get(format!("{base}/"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert!(
        root.contains("\"version\":\"6.0.1\"") && root.contains("podinfo-primary-7d9f8"),
        "{root}"
    );
    let token = http
        .post(format!("{base}/token"))
        .body("test")
        .send()
        .await
        .expect("post")
        .text()
        .await
        .expect("text");
    assert!(
        token.contains("token"),
        "the seeds' acceptance test greps for it: {token}"
    );
    assert_eq!(
        http.get(format!("{base}/status/500"))
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        500
    );
    assert_eq!(
        http.get(format!("{base}/status/200"))
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        200
    );
    let started = Instant::now();
    assert_eq!(
        http.get(format!("{base}/delay/1"))
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        200
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    for path in ["/healthz", "/readyz", "/version"] {
        assert_eq!(
            http.get(format!("{base}{path}"))
                .send()
                .await
                .expect("get")
                .status()
                .as_u16(),
            200,
            "{path}"
        );
    }
}
