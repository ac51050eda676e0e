//! InfluxDB 2: mesh-sim's stand-in of `/api/v2/query` (Flux, annotated CSV), token and org
//! checked as InfluxDB checks them.

use axum::routing::MethodFilter;
use mesh_sim::vendors::influxdb;
use serde_json::{Value, json};

use super::common::*;

const TOKEN: &str = "influx-token-0123456789";
const ORG: &str = "canary-org";
const SECRET: &[(&str, &str)] = &[("token", TOKEN), ("org", ORG)];

fn provider(address: &str) -> Value {
    json!({"type": "influxdb", "address": address, "secretRef": {"name": "influx"}})
}

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
    let source = answers(|name| rendered(&flux(name)));
    let address = serve(influxdb::router(auth, source)).await;
    let world = World::new().await;
    world.secret("influx", SECRET).await;
    world.templates(&TEMPLATES, provider(&address), flux).await;
    let checks = world.checks("influxdb", &[TOKEN]);

    // No records: no data (Flagger reads 0 here).
    checks.values_and_no_data("no values found").await;
    world.online("errors").await.expect("online");

    // A wrong token: InfluxDB's 401, online or not.
    let wrong = [("token", "wrong-token-1"), ("org", ORG)];
    world.secret("influx", &wrong).await;
    let wrong = checks.hiding(&["wrong-token-1"]);
    let unauthorized = "authentication failed: HTTP 401";
    let m = wrong.check("errors").await.error(unauthorized);
    assert!(m.contains("unauthorized access"), "{m}");
    wrong.check_online("errors").await.offline(unauthorized);

    // An unknown org: InfluxDB's 404.
    let other_org = [("token", TOKEN), ("org", "other-org")];
    world.secret("influx", &other_org).await;
    let refused = "query refused: HTTP 404";
    checks.check("errors").await.error(refused);

    // A Secret without a key names the key.
    world.secret("influx", &[("token", TOKEN)]).await;
    let missing = "does not contain the key org";
    checks.check("errors").await.error(missing);
    world.secret("influx", &[("org", ORG)]).await;
    let missing = "does not contain the key token";
    checks.check("errors").await.error(missing);

    // Nothing listening.
    world.secret("influx", SECRET).await;
    let down = unreachable().await;
    world
        .template("errors", provider(&down), &flux("errors"))
        .await;
    let unreachable = format!("unreachable: {down}");
    checks.check("errors").await.error(&unreachable);
    checks.check_online("errors").await.offline(&unreachable);

    // The address is required.
    let no_address = json!({"type": "influxdb", "secretRef": {"name": "influx"}});
    world.template("errors", no_address, &flux("errors")).await;
    let required = "spec.provider.address is required";
    checks.check("errors").await.error(required);
}

/// What a request carries: the org, the token, the Flux text and the annotated-CSV dialect;
/// without a secretRef, no token and an empty org. The online check's Flux is Flagger's.
#[tokio::test]
async fn influxdb_request_shape() {
    let (address, seen) = recording(MethodFilter::POST, &["/api/v2/query"], |_| {
        "#datatype,string,long,double\r\n#group,false,false,false\r\n#default,_result,,\r\n,result,table,_value\r\n,,0,0.75\r\n\r\n"
    })
    .await;
    let world = World::new().await;
    world.secret("influx", SECRET).await;
    world
        .template("w", provider(&address), "from(bucket: \"b\")")
        .await;
    assert_eq!(value(world.check("w").await), 0.75);
    world.online("w").await.expect("online");
    let anonymous = json!({"type": "influxdb", "address": address});
    world.template("w", anonymous, "from(bucket: \"b\")").await;
    assert_eq!(value(world.check("w").await), 0.75);

    let seen: Vec<(Option<String>, Option<String>, Value)> = seen
        .lock()
        .expect("lock")
        .iter()
        .map(|r| {
            let org = r.param("org").map(String::from);
            (org, r.header("authorization").map(String::from), r.json())
        })
        .collect();
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
