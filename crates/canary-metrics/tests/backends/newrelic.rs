//! New Relic: mesh-sim's stand-in of the Insights query API, the account and query key checked
//! as New Relic checks them.

use axum::routing::MethodFilter;
use mesh_sim::vendors::newrelic;
use serde_json::{Value, json};

use super::common::*;

const ACCOUNT: &str = "3141592";
const QUERY_KEY: &str = "NRIQ-0123456789abcdef";
const SECRET: &[(&str, &str)] = &[
    ("newrelic_account_id", ACCOUNT),
    ("newrelic_query_key", QUERY_KEY),
];

fn provider(address: &str) -> Value {
    json!({"type": "newrelic", "address": address, "secretRef": {"name": "nr"}})
}

fn query(name: &str) -> String {
    format!("SELECT average({name}) FROM Metric WHERE app = '{{{{ target }}}}'")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newrelic_values_and_failures() {
    let keys = newrelic::Keys {
        account: ACCOUNT.into(),
        query_key: QUERY_KEY.into(),
    };
    let source = answers(|name| rendered(&query(name)));
    let address = serve(newrelic::router(keys, source)).await;
    let world = World::new().await;
    world.secret("nr", SECRET).await;
    world.templates(&TEMPLATES, provider(&address), query).await;
    let checks = world.checks("newrelic", &[ACCOUNT, QUERY_KEY]);

    // A null result (no data; New Relic also answers null where a NaN would be).
    checks.values_and_no_data("no values found").await;
    world.online("errors").await.expect("online");

    // A wrong query key, or a key of another account: New Relic's 401.
    let unauthorized = "authentication failed: HTTP 401";
    for (account, key) in [(ACCOUNT, "wrong-query-key"), ("2718281", QUERY_KEY)] {
        let wrong = [
            ("newrelic_account_id", account),
            ("newrelic_query_key", key),
        ];
        world.secret("nr", &wrong).await;
        let wrong = checks.hiding(&[account, key]);
        let m = wrong.check("errors").await.error(unauthorized);
        assert!(!m.contains("/v1/accounts"), "{m:?} shows the URL path");
        wrong.check_online("errors").await.offline(unauthorized);
    }

    // A Secret without a key names the key.
    world
        .secret("nr", &[("newrelic_query_key", QUERY_KEY)])
        .await;
    let missing = "does not contain the key newrelic_account_id";
    checks.check("errors").await.error(missing);
    world
        .secret("nr", &[("newrelic_account_id", ACCOUNT)])
        .await;
    let missing = "does not contain the key newrelic_query_key";
    checks.check("errors").await.error(missing);

    // Nothing listening: the origin only, never the path holding the account id.
    world.secret("nr", SECRET).await;
    let down = unreachable().await;
    let nrql = "SELECT average(errors) FROM Metric";
    world.template("errors", provider(&down), nrql).await;
    let unreachable = format!("unreachable: {down}");
    let m = checks.check("errors").await.error(&unreachable);
    assert!(!m.contains("/v1/accounts"), "{m:?} shows the URL path");
    checks.check_online("errors").await.offline(&unreachable);
}

/// The request: the account in the path, the key in `X-Query-Key`, the NRQL over one
/// interval (`SINCE 60 seconds ago` for `1m`); online asks `SELECT * FROM Metric`.
#[tokio::test]
async fn newrelic_reads_one_interval() {
    let (address, seen) = recording(MethodFilter::GET, &["/v1/accounts/{account}/query"], |_| {
        json!({"results": [{"result": 1.0}]}).to_string()
    })
    .await;
    let world = World::new().await;
    world.secret("nr", SECRET).await;
    world
        .template(
            "w",
            provider(&format!("{address}/")),
            "SELECT count(*) FROM Transaction",
        )
        .await;
    assert_eq!(value(world.check("w").await), 1.0);
    world.online("w").await.expect("online");
    let seen = seen.lock().expect("lock");
    let seen: Vec<(&str, &str, &str)> = seen
        .iter()
        .map(|r| {
            let key = r.header("X-Query-Key").unwrap_or_default();
            (r.path.as_str(), key, r.param("nrql").unwrap_or_default())
        })
        .collect();
    let path = format!("/v1/accounts/{ACCOUNT}/query");
    let expected = |nrql| (path.as_str(), QUERY_KEY, nrql);
    assert_eq!(
        seen,
        [
            expected("SELECT count(*) FROM Transaction SINCE 60 seconds ago"),
            expected("SELECT * FROM Metric SINCE 60 seconds ago"),
        ]
    );
}
