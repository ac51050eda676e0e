//! Dynatrace: mesh-sim's stand-in of the metrics API v2, the API token checked as Dynatrace
//! checks it.

use mesh_sim::vendors::{self, dynatrace};
use serde_json::json;

use super::common::*;

const TOKEN: &str = "dt0c01.SAMPLE.0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynatrace_values_and_failures() {
    let q = |name: &str| format!("builtin:service.{name}:filter(eq(\"service\",\"podinfo\"))");
    let source = vendors::fixed(&[
        (&q("errors"), Some(0.5)),
        (&q("latency"), Some(42.0)),
        (&q("nan"), Some(f64::NAN)),
    ]);
    let address = serve(dynatrace::router(TOKEN.into(), source)).await;
    let world = World::new().await;
    let provider =
        |a: &str| json!({"type": "dynatrace", "address": a, "secretRef": {"name": "dt"}});
    world.secret("dt", &[("dynatrace_token", TOKEN)]).await;
    for name in ["errors", "latency", "nothing", "nan"] {
        let query = format!("builtin:service.{name}:filter(eq(\"service\",\"{{{{ target }}}}\"))");
        world.template(name, provider(&address), &query).await;
    }
    let secrets = [TOKEN];

    assert_eq!(value(world.check("errors").await), 0.5);
    assert_eq!(
        value(world.check("latency").await),
        42.0,
        "above the max of 1: a failing check"
    );
    world.online("errors").await.expect("online");

    // No data series, and a null value (Flagger would read the null as 0).
    let m = no_data(world.check("nothing").await);
    names(&m, "dynatrace", "nothing", "no values found", &secrets);
    let m = no_data(world.check("nan").await);
    names(
        &m,
        "dynatrace",
        "nan",
        "no values found: the value is null",
        &secrets,
    );

    // A wrong token: Dynatrace's 401, online or not.
    world
        .secret("dt", &[("dynatrace_token", "dt0c01.WRONG.token")])
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "dynatrace",
        "errors",
        "authentication failed: HTTP 401",
        &["dt0c01.WRONG.token"],
    );
    assert!(m.contains("Token Authentication failed"), "{m:?}");
    let m = world.online("errors").await.expect_err("offline");
    names(
        &m,
        "dynatrace",
        "errors",
        "authentication failed: HTTP 401",
        &["dt0c01.WRONG.token"],
    );

    // A Secret without the key names the key.
    world.secret("dt", &[("other", "value")]).await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "dynatrace",
        "errors",
        "does not contain the key dynatrace_token",
        &secrets,
    );

    // The address is required.
    world.secret("dt", &[("dynatrace_token", TOKEN)]).await;
    world
        .template(
            "errors",
            json!({"type": "dynatrace", "secretRef": {"name": "dt"}}),
            "builtin:service.errors",
        )
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "dynatrace",
        "errors",
        "spec.provider.address is required",
        &secrets,
    );

    // Nothing listening.
    let down = unreachable().await;
    world
        .template("errors", provider(&down), "builtin:service.errors")
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "dynatrace",
        "errors",
        &format!("unreachable: {down}"),
        &secrets,
    );
    let m = world.online("errors").await.expect_err("offline");
    names(
        &m,
        "dynatrace",
        "errors",
        &format!("unreachable: {down}"),
        &secrets,
    );
}

/// The request: `Api-Token` authorization, resolution `Inf`, and a window of ten intervals
/// in milliseconds ending on a whole second; online asks `/api/v2/metrics?pageSize=1`.
#[tokio::test]
async fn dynatrace_reads_ten_intervals() {
    type Params = axum::extract::Query<std::collections::HashMap<String, String>>;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (s, s2) = (seen.clone(), seen.clone());
    let auth = |h: &axum::http::HeaderMap| {
        h.get("Authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let app = axum::Router::new()
        .route(
            "/api/v2/metrics/query",
            axum::routing::get(move |q: Params, h: axum::http::HeaderMap| {
                let s = s.clone();
                async move {
                    let n = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
                    s.lock().expect("lock").push(format!(
                        "{} selector={} resolution={} span={} whole={}",
                        auth(&h),
                        q.get("metricSelector").cloned().unwrap_or_default(),
                        q.get("resolution").cloned().unwrap_or_default(),
                        n("to") - n("from"),
                        n("to") % 1000 == 0,
                    ));
                    json!({"result": [{"metricId": "m", "data": [
                        {"timestamps": [n("to")], "values": [1.0]}]}]})
                    .to_string()
                }
            }),
        )
        .route(
            "/api/v2/metrics",
            axum::routing::get(move |q: Params, h: axum::http::HeaderMap| {
                let s = s2.clone();
                async move {
                    s.lock().expect("lock").push(format!(
                        "{} pageSize={}",
                        auth(&h),
                        q.get("pageSize").cloned().unwrap_or_default()
                    ));
                    json!({"totalCount": 0, "nextPageKey": null, "metrics": []}).to_string()
                }
            }),
        );
    let address = serve(app).await;
    let world = World::new().await;
    world.secret("dt", &[("dynatrace_token", TOKEN)]).await;
    world
        .template(
            "w",
            json!({"type": "dynatrace", "address": address, "secretRef": {"name": "dt"}}),
            "builtin:service.errors",
        )
        .await;
    assert_eq!(value(world.check("w").await), 1.0);
    world.online("w").await.expect("online");
    assert_eq!(
        seen.lock().expect("lock").as_slice(),
        [
            format!(
                "Api-Token {TOKEN} selector=builtin:service.errors resolution=Inf span=600000 whole=true"
            ),
            format!("Api-Token {TOKEN} pageSize=1"),
        ]
    );
}
