//! Datadog: mesh-sim's stand-in of `/api/v1/query` and `/api/v1/validate`, keys checked as
//! Datadog checks them.

use mesh_sim::vendors::{self, datadog};
use serde_json::json;

use super::common::*;

const API_KEY: &str = "dd-api-0123456789";
const APP_KEY: &str = "dd-app-9876543210";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datadog_values_windows_and_failures() {
    let keys = datadog::Keys {
        api: API_KEY.into(),
        application: APP_KEY.into(),
    };
    let source = vendors::fixed(&[
        ("avg:errors{app:podinfo}", Some(0.5)),
        ("avg:latency{app:podinfo}", Some(42.0)),
        ("avg:nan{app:podinfo}", Some(f64::NAN)),
    ]);
    let address = serve(datadog::router(keys, source)).await;
    let world = World::new().await;
    let provider = |a: &str| json!({"type": "datadog", "address": a, "secretRef": {"name": "dd"}});
    world
        .secret(
            "dd",
            &[
                ("datadog_api_key", API_KEY),
                ("datadog_application_key", APP_KEY),
            ],
        )
        .await;
    for name in ["errors", "latency", "nothing", "nan"] {
        let query = format!("avg:{name}{{app:{{{{ target }}}}}}");
        world.template(name, provider(&address), &query).await;
    }
    let secrets = [API_KEY, APP_KEY];

    // The first point counts (the stand-in's last one is null).
    assert_eq!(value(world.check("errors").await), 0.5);
    assert_eq!(
        value(world.check("latency").await),
        42.0,
        "above the max of 1: a failing check"
    );
    world.online("errors").await.expect("online");

    let m = no_data(world.check("nothing").await);
    names(&m, "datadog", "nothing", "no values found", &secrets);
    let m = no_data(world.check("nan").await);
    names(&m, "datadog", "nan", "no values found", &secrets);

    // Wrong keys: Datadog's 403, as an authentication failure, online or not.
    world
        .secret(
            "dd",
            &[
                ("datadog_api_key", "wrong-key-1"),
                ("datadog_application_key", "wrong-key-2"),
            ],
        )
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "datadog",
        "errors",
        "authentication failed: HTTP 403",
        &["wrong-key-1", "wrong-key-2"],
    );
    let m = world.online("errors").await.expect_err("offline");
    names(
        &m,
        "datadog",
        "errors",
        "authentication failed: HTTP 403",
        &["wrong-key-1"],
    );

    // A Secret without a key names the key.
    world.secret("dd", &[("datadog_api_key", API_KEY)]).await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "datadog",
        "errors",
        "does not contain the key datadog_application_key",
        &secrets,
    );

    // Nothing listening.
    world
        .secret(
            "dd",
            &[
                ("datadog_api_key", API_KEY),
                ("datadog_application_key", APP_KEY),
            ],
        )
        .await;
    let down = unreachable().await;
    world
        .template("errors", provider(&down), "avg:errors{app:{{ target }}}")
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "datadog",
        "errors",
        &format!("unreachable: {down}"),
        &secrets,
    );
}

/// The query window: ten intervals back from now, in seconds.
#[tokio::test]
async fn datadog_reads_ten_intervals() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/api/v1/query",
        axum::routing::get(
            move |q: axum::extract::Query<std::collections::HashMap<String, String>>| {
                let s = s.clone();
                async move {
                    let n = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
                    s.lock().expect("lock").push(n("to") - n("from"));
                    json!({"series": [{"pointlist": [[0, 1.0]]}]}).to_string()
                }
            },
        ),
    );
    let address = serve(app).await;
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
            "w",
            json!({"type": "datadog", "address": address, "secretRef": {"name": "dd"}}),
            "q",
        )
        .await;
    assert_eq!(value(world.check("w").await), 1.0);
    assert_eq!(seen.lock().expect("lock").as_slice(), [600]);
}
