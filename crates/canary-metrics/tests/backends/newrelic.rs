//! New Relic: mesh-sim's stand-in of the Insights query API, the account and query key checked
//! as New Relic checks them.

use mesh_sim::vendors::{self, newrelic};
use serde_json::json;

use super::common::*;

const ACCOUNT: &str = "3141592";
const QUERY_KEY: &str = "NRIQ-0123456789abcdef";

fn keys() -> newrelic::Keys {
    newrelic::Keys {
        account: ACCOUNT.into(),
        query_key: QUERY_KEY.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newrelic_values_and_failures() {
    let q = |name: &str| format!("SELECT average({name}) FROM Metric WHERE app = 'podinfo'");
    let source = vendors::fixed(&[
        (&q("errors"), Some(0.5)),
        (&q("latency"), Some(42.0)),
        (&q("nan"), Some(f64::NAN)),
    ]);
    let address = serve(newrelic::router(keys(), source)).await;
    let world = World::new().await;
    let provider = |a: &str| json!({"type": "newrelic", "address": a, "secretRef": {"name": "nr"}});
    let good = [
        ("newrelic_account_id", ACCOUNT),
        ("newrelic_query_key", QUERY_KEY),
    ];
    world.secret("nr", &good).await;
    for name in ["errors", "latency", "nothing", "nan"] {
        let query = format!("SELECT average({name}) FROM Metric WHERE app = '{{{{ target }}}}'");
        world.template(name, provider(&address), &query).await;
    }
    let secrets = [ACCOUNT, QUERY_KEY];

    assert_eq!(value(world.check("errors").await), 0.5);
    assert_eq!(
        value(world.check("latency").await),
        42.0,
        "above the max of 1: a failing check"
    );
    world.online("errors").await.expect("online");

    // A null result (no data; New Relic also answers null where a NaN would be).
    let m = no_data(world.check("nothing").await);
    names(&m, "newrelic", "nothing", "no values found", &secrets);
    let m = no_data(world.check("nan").await);
    names(&m, "newrelic", "nan", "no values found", &secrets);

    // A wrong query key, or a key of another account: New Relic's 401.
    for (account, key) in [(ACCOUNT, "wrong-query-key"), ("2718281", QUERY_KEY)] {
        world
            .secret(
                "nr",
                &[
                    ("newrelic_account_id", account),
                    ("newrelic_query_key", key),
                ],
            )
            .await;
        let m = error(world.check("errors").await);
        names(
            &m,
            "newrelic",
            "errors",
            "authentication failed: HTTP 401",
            &[account, key],
        );
        assert!(!m.contains("/v1/accounts"), "{m:?} shows the URL path");
        let m = world.online("errors").await.expect_err("offline");
        names(
            &m,
            "newrelic",
            "errors",
            "authentication failed: HTTP 401",
            &[account, key],
        );
    }

    // A Secret without a key names the key.
    world
        .secret("nr", &[("newrelic_query_key", QUERY_KEY)])
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "newrelic",
        "errors",
        "does not contain the key newrelic_account_id",
        &secrets,
    );
    world
        .secret("nr", &[("newrelic_account_id", ACCOUNT)])
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "newrelic",
        "errors",
        "does not contain the key newrelic_query_key",
        &secrets,
    );

    // Nothing listening: the origin only, never the path holding the account id.
    world.secret("nr", &good).await;
    let down = unreachable().await;
    world
        .template(
            "errors",
            provider(&down),
            "SELECT average(errors) FROM Metric",
        )
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "newrelic",
        "errors",
        &format!("unreachable: {down}"),
        &secrets,
    );
    assert!(!m.contains("/v1/accounts"), "{m:?} shows the URL path");
    let m = world.online("errors").await.expect_err("offline");
    names(
        &m,
        "newrelic",
        "errors",
        &format!("unreachable: {down}"),
        &secrets,
    );
}

/// The request: the account in the path, the key in `X-Query-Key`, the NRQL over one
/// interval (`SINCE 60 seconds ago` for `1m`); online asks `SELECT * FROM Metric`.
#[tokio::test]
async fn newrelic_reads_one_interval() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/v1/accounts/{account}/query",
        axum::routing::get(
            move |axum::extract::Path(account): axum::extract::Path<String>,
                  q: axum::extract::Query<std::collections::HashMap<String, String>>,
                  h: axum::http::HeaderMap| {
                let s = s.clone();
                async move {
                    let key = h
                        .get("X-Query-Key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let nrql = q.get("nrql").cloned().unwrap_or_default();
                    s.lock().expect("lock").push((account, key, nrql));
                    json!({"results": [{"result": 1.0}]}).to_string()
                }
            },
        ),
    );
    let address = serve(app).await;
    let world = World::new().await;
    world
        .secret(
            "nr",
            &[
                ("newrelic_account_id", ACCOUNT),
                ("newrelic_query_key", QUERY_KEY),
            ],
        )
        .await;
    world
        .template(
            "w",
            json!({"type": "newrelic", "address": format!("{address}/"),
                   "secretRef": {"name": "nr"}}),
            "SELECT count(*) FROM Transaction",
        )
        .await;
    assert_eq!(value(world.check("w").await), 1.0);
    world.online("w").await.expect("online");
    let seen = seen.lock().expect("lock");
    let expected = |nrql: &str| (ACCOUNT.to_string(), QUERY_KEY.to_string(), nrql.to_string());
    assert_eq!(
        seen.as_slice(),
        [
            expected("SELECT count(*) FROM Transaction SINCE 60 seconds ago"),
            expected("SELECT * FROM Metric SINCE 60 seconds ago"),
        ]
    );
}
