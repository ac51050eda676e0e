//! Datadog: mesh-sim's stand-in of `/api/v1/query` and `/api/v1/validate`, keys checked as
//! Datadog checks them.

use axum::routing::MethodFilter;
use mesh_sim::vendors::datadog;
use serde_json::{Value, json};

use super::common::*;

const API_KEY: &str = "dd-api-0123456789";
const APP_KEY: &str = "dd-app-9876543210";
const SECRET: &[(&str, &str)] = &[
    ("datadog_api_key", API_KEY),
    ("datadog_application_key", APP_KEY),
];

fn provider(address: &str) -> Value {
    json!({"type": "datadog", "address": address, "secretRef": {"name": "dd"}})
}

fn query(name: &str) -> String {
    format!("avg:{name}{{app:{{{{ target }}}}}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datadog_values_windows_and_failures() {
    let keys = datadog::Keys {
        api: API_KEY.into(),
        application: APP_KEY.into(),
    };
    let source = answers(|name| rendered(&query(name)));
    let address = serve(datadog::router(keys, source)).await;
    let world = World::new().await;
    world.secret("dd", SECRET).await;
    world.templates(&TEMPLATES, provider(&address), query).await;
    let checks = world.checks("datadog", &[API_KEY, APP_KEY]);

    // The first point counts (the stand-in's last one is null).
    checks.values_and_no_data("no values found").await;
    world.online("errors").await.expect("online");

    // Wrong keys: Datadog's 403, as an authentication failure, online or not.
    let wrong = [
        ("datadog_api_key", "wrong-key-1"),
        ("datadog_application_key", "wrong-key-2"),
    ];
    world.secret("dd", &wrong).await;
    let forbidden = "authentication failed: HTTP 403";
    let wrong = checks.hiding(&["wrong-key-1", "wrong-key-2"]);
    wrong.check("errors").await.error(forbidden);
    wrong.check_online("errors").await.offline(forbidden);

    // A Secret without a key names the key.
    world.secret("dd", &[("datadog_api_key", API_KEY)]).await;
    let missing = "does not contain the key datadog_application_key";
    checks.check("errors").await.error(missing);

    // Nothing listening.
    world.secret("dd", SECRET).await;
    let down = unreachable().await;
    world
        .template("errors", provider(&down), &query("errors"))
        .await;
    let unreachable = format!("unreachable: {down}");
    checks.check("errors").await.error(&unreachable);
}

/// The query window: ten intervals back from now, in seconds.
#[tokio::test]
async fn datadog_reads_ten_intervals() {
    let (address, seen) = recording(MethodFilter::GET, &["/api/v1/query"], |_| {
        json!({"series": [{"pointlist": [[0, 1.0]]}]}).to_string()
    })
    .await;
    let world = World::new().await;
    world.secret("dd", SECRET).await;
    world.template("w", provider(&address), "q").await;
    assert_eq!(value(world.check("w").await), 1.0);
    let spans: Vec<i64> = seen
        .lock()
        .expect("lock")
        .iter()
        .map(|r| r.number("to") - r.number("from"))
        .collect();
    assert_eq!(spans, [600]);
}
