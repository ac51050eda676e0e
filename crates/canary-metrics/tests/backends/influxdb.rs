//! InfluxDB 2: mesh-sim's stand-in of `/api/v2/query` (Flux, annotated CSV), token and org
//! checked as InfluxDB checks them.

use std::sync::{Arc, Mutex};

use mesh_sim::vendors::{self, influxdb};
use serde_json::{Value, json};

use super::common::*;

const TOKEN: &str = "influx-token-0123456789";
const ORG: &str = "canary-org";

fn flux(name: &str) -> String {
    format!(
        "from(bucket: \"{name}\") |> range(start: -1m) |> filter(fn: (r) => r.app == \"{{{{ target }}}}\")"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influxdb_values_and_failures() {
    let auth = influxdb::Auth {
        token: TOKEN.into(),
        org: ORG.into(),
    };
    let rendered = |name: &str| flux(name).replace("{{ target }}", "podinfo");
    let (errors, latency, nan) = (rendered("errors"), rendered("latency"), rendered("nan"));
    let source = vendors::fixed(&[
        (errors.as_str(), Some(0.5)),
        (latency.as_str(), Some(42.0)),
        (nan.as_str(), Some(f64::NAN)),
    ]);
    let address = serve(influxdb::router(auth, source)).await;
    let world = World::new().await;
    let provider =
        |a: &str| json!({"type": "influxdb", "address": a, "secretRef": {"name": "influx"}});
    world
        .secret("influx", &[("token", TOKEN), ("org", ORG)])
        .await;
    for name in ["errors", "latency", "nothing", "nan"] {
        world.template(name, provider(&address), &flux(name)).await;
    }
    let secrets = [TOKEN];

    assert_eq!(value(world.check("errors").await), 0.5);
    assert_eq!(
        value(world.check("latency").await),
        42.0,
        "above the max of 1: a failing check"
    );
    world.online("errors").await.expect("online");

    // No records: no data (Flagger reads 0 here).
    let m = no_data(world.check("nothing").await);
    names(&m, "influxdb", "nothing", "no values found", &secrets);
    let m = no_data(world.check("nan").await);
    names(&m, "influxdb", "nan", "no values found", &secrets);

    // A wrong token: InfluxDB's 401, online or not.
    world
        .secret("influx", &[("token", "wrong-token-1"), ("org", ORG)])
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "influxdb",
        "errors",
        "authentication failed: HTTP 401",
        &["wrong-token-1"],
    );
    assert!(m.contains("unauthorized access"), "{m}");
    let m = world.online("errors").await.expect_err("offline");
    names(
        &m,
        "influxdb",
        "errors",
        "authentication failed: HTTP 401",
        &["wrong-token-1"],
    );

    // An unknown org: InfluxDB's 404.
    world
        .secret("influx", &[("token", TOKEN), ("org", "other-org")])
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "influxdb",
        "errors",
        "query refused: HTTP 404",
        &secrets,
    );

    // A Secret without a key names the key.
    world.secret("influx", &[("token", TOKEN)]).await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "influxdb",
        "errors",
        "does not contain the key org",
        &secrets,
    );
    world.secret("influx", &[("org", ORG)]).await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "influxdb",
        "errors",
        "does not contain the key token",
        &secrets,
    );

    // Nothing listening.
    world
        .secret("influx", &[("token", TOKEN), ("org", ORG)])
        .await;
    let down = unreachable().await;
    world
        .template("errors", provider(&down), &flux("errors"))
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "influxdb",
        "errors",
        &format!("unreachable: {down}"),
        &secrets,
    );
    let m = world.online("errors").await.expect_err("offline");
    names(
        &m,
        "influxdb",
        "errors",
        &format!("unreachable: {down}"),
        &secrets,
    );

    // The address is required.
    world
        .template(
            "errors",
            json!({"type": "influxdb", "secretRef": {"name": "influx"}}),
            &flux("errors"),
        )
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "influxdb",
        "errors",
        "spec.provider.address is required",
        &secrets,
    );
}

/// What a request carries: the org, the token, the Flux text and the annotated-CSV dialect;
/// without a secretRef, no token and an empty org. The online check's Flux is Flagger's.
#[tokio::test]
async fn influxdb_request_shape() {
    type Seen = Vec<(Option<String>, Option<String>, Value)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/api/v2/query",
        axum::routing::post(
            move |q: axum::extract::Query<std::collections::HashMap<String, String>>,
                  h: axum::http::HeaderMap,
                  body: String| {
                let s = s.clone();
                async move {
                    let auth = h
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(String::from);
                    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    s.lock()
                        .expect("lock")
                        .push((q.get("org").cloned(), auth, body));
                    "#datatype,string,long,double\r\n#group,false,false,false\r\n#default,_result,,\r\n,result,table,_value\r\n,,0,0.75\r\n\r\n"
                }
            },
        ),
    );
    let address = serve(app).await;
    let world = World::new().await;
    world
        .secret("influx", &[("token", TOKEN), ("org", ORG)])
        .await;
    world
        .template(
            "w",
            json!({"type": "influxdb", "address": address, "secretRef": {"name": "influx"}}),
            "from(bucket: \"b\")",
        )
        .await;
    assert_eq!(value(world.check("w").await), 0.75);
    world.online("w").await.expect("online");
    world
        .template(
            "w",
            json!({"type": "influxdb", "address": address}),
            "from(bucket: \"b\")",
        )
        .await;
    assert_eq!(value(world.check("w").await), 0.75);

    let seen = seen.lock().expect("lock");
    let dialect = json!({"header": true, "delimiter": ",",
        "annotations": ["datatype", "group", "default"], "commentPrefix": "#",
        "dateTimeFormat": "RFC3339"});
    let token = Some(format!("Token {TOKEN}"));
    assert_eq!(
        seen.as_slice(),
        [
            (
                Some(ORG.to_string()),
                token.clone(),
                json!({"query": "from(bucket: \"b\")", "type": "flux", "dialect": dialect})
            ),
            (
                Some(ORG.to_string()),
                token,
                json!({"query": "from(bucket: \"default\") |> range(start: -2h)",
                    "type": "flux", "dialect": dialect})
            ),
            (
                Some(String::new()),
                None,
                json!({"query": "from(bucket: \"b\")", "type": "flux", "dialect": dialect})
            ),
        ]
    );
}
