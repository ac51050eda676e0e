//! Dynatrace: mesh-sim's stand-in of the metrics API v2, the API token checked as Dynatrace
//! checks it.

use axum::routing::MethodFilter;
use mesh_sim::vendors::dynatrace;
use serde_json::{Value, json};

use super::common::*;

const TOKEN: &str = "dt0c01.SAMPLE.0123456789abcdef";
const SECRET: &[(&str, &str)] = &[("dynatrace_token", TOKEN)];

fn provider(address: &str) -> Value {
    json!({"type": "dynatrace", "address": address, "secretRef": {"name": "dt"}})
}

fn query(name: &str) -> String {
    format!("builtin:service.{name}:filter(eq(\"service\",\"{{{{ target }}}}\"))")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynatrace_values_and_failures() {
    let source = answers(|name| rendered(&query(name)));
    let address = serve(dynatrace::router(TOKEN.into(), source)).await;
    let world = World::new().await;
    world.secret("dt", SECRET).await;
    world.templates(&TEMPLATES, provider(&address), query).await;
    let checks = world.checks("dynatrace", &[TOKEN]);

    // No data series, and a null value (Flagger would read the null as 0).
    checks
        .values_and_no_data("no values found: the value is null")
        .await;
    world.online("errors").await.expect("online");

    // A wrong token: Dynatrace's 401, online or not.
    world
        .secret("dt", &[("dynatrace_token", "dt0c01.WRONG.token")])
        .await;
    let wrong = checks.hiding(&["dt0c01.WRONG.token"]);
    let unauthorized = "authentication failed: HTTP 401";
    let m = wrong.check("errors").await.error(unauthorized);
    assert!(m.contains("Token Authentication failed"), "{m:?}");
    wrong.check_online("errors").await.offline(unauthorized);

    // A Secret without the key names the key.
    world.secret("dt", &[("other", "value")]).await;
    let missing = "does not contain the key dynatrace_token";
    checks.check("errors").await.error(missing);

    // The address is required.
    world.secret("dt", SECRET).await;
    let no_address = json!({"type": "dynatrace", "secretRef": {"name": "dt"}});
    world
        .template("errors", no_address, "builtin:service.errors")
        .await;
    let required = "spec.provider.address is required";
    checks.check("errors").await.error(required);

    // Nothing listening.
    let down = unreachable().await;
    world
        .template("errors", provider(&down), "builtin:service.errors")
        .await;
    let unreachable = format!("unreachable: {down}");
    checks.check("errors").await.error(&unreachable);
    checks.check_online("errors").await.offline(&unreachable);
}

/// The request: `Api-Token` authorization, resolution `Inf`, and a window of ten intervals
/// in milliseconds ending on a whole second; online asks `/api/v2/metrics?pageSize=1`.
#[tokio::test]
async fn dynatrace_reads_ten_intervals() {
    let paths = ["/api/v2/metrics/query", "/api/v2/metrics"];
    let (address, seen) = recording(MethodFilter::GET, &paths, move |r| {
        if r.path == paths[0] {
            json!({"result": [{"metricId": "m", "data": [
                {"timestamps": [r.number("to")], "values": [1.0]}]}]})
        } else {
            json!({"totalCount": 0, "nextPageKey": null, "metrics": []})
        }
        .to_string()
    })
    .await;
    let world = World::new().await;
    world.secret("dt", SECRET).await;
    world
        .template("w", provider(&address), "builtin:service.errors")
        .await;
    assert_eq!(value(world.check("w").await), 1.0);
    world.online("w").await.expect("online");
    let seen: Vec<String> = seen
        .lock()
        .expect("lock")
        .iter()
        .map(|r| {
            let auth = r.header("Authorization").unwrap_or_default();
            let param = |k| r.param(k).unwrap_or_default();
            if r.path == paths[0] {
                format!(
                    "{auth} selector={} resolution={} span={} whole={}",
                    param("metricSelector"),
                    param("resolution"),
                    r.number("to") - r.number("from"),
                    r.number("to") % 1000 == 0,
                )
            } else {
                format!("{auth} pageSize={}", param("pageSize"))
            }
        })
        .collect();
    assert_eq!(
        seen,
        [
            format!(
                "Api-Token {TOKEN} selector=builtin:service.errors resolution=Inf span=600000 whole=true"
            ),
            format!("Api-Token {TOKEN} pageSize=1"),
        ]
    );
}
