//! Graphite: mesh-sim's stand-in of graphite-web's render API behind a path prefix, basic
//! authentication checked as the web server in front of it checks it.

use axum::http::StatusCode;
use axum::routing::MethodFilter;
use mesh_sim::vendors::{self, graphite};
use serde_json::{Value, json};

use super::common::*;

const USERNAME: &str = "graphite-reader";
const PASSWORD: &str = "gr-pass-0123456789";
const SECRET: &[(&str, &str)] = &[("username", USERNAME), ("password", PASSWORD)];

fn provider(address: &str) -> Value {
    json!({"type": "graphite", "address": address, "secretRef": {"name": "gr"}})
}

/// The targets the templates below render to (whitespace runs collapsed).
fn target(name: &str) -> String {
    format!("sumSeries( stats.podinfo.{name}.count )")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphite_values_and_failures() {
    let credentials = Some((USERNAME.to_string(), PASSWORD.to_string()));
    let router = graphite::router(credentials, answers(target));
    let app = axum::Router::new().nest("/graphite", router);
    let address = format!("{}/graphite", serve(app).await);
    let world = World::new().await;
    world.secret("gr", SECRET).await;
    let query = |name: &str| {
        format!("target=sumSeries(\n  stats.{{{{ target }}}}.{name}.count\n)\n&from=-1min")
    };
    world.templates(&TEMPLATES, provider(&address), query).await;
    let checks = world.checks("graphite", &[USERNAME, PASSWORD]);

    // The stand-in's newest point is null: the last non-null one counts. No series, and only
    // null datapoints (graphite-web's NaN), are no data.
    checks.values_and_no_data("no values found").await;
    world
        .online("errors")
        .await
        .expect("online (target=test has no values)");

    // A wrong password: 401, online or not.
    let wrong = [("username", USERNAME), ("password", "wrong-password")];
    world.secret("gr", &wrong).await;
    let wrong = checks.hiding(&[USERNAME, "wrong-password"]);
    let unauthorized = "authentication failed: HTTP 401";
    wrong.check("errors").await.error(unauthorized);
    wrong.check_online("errors").await.offline(unauthorized);

    // With a secretRef, both keys are required.
    world.secret("gr", &[("username", USERNAME)]).await;
    let missing = "does not contain the key password";
    checks.check("errors").await.error(missing);
    world.secret("gr", &[("password", PASSWORD)]).await;
    let missing = "does not contain the key username";
    checks.check("errors").await.error(missing);

    // Without a secretRef: no authentication, which this server refuses.
    world.secret("gr", SECRET).await;
    let anonymous = json!({"type": "graphite", "address": address});
    world.template("errors", anonymous, "target=x").await;
    checks.check("errors").await.error(unauthorized);

    // The address is required.
    let no_address = json!({"type": "graphite", "secretRef": {"name": "gr"}});
    world.template("errors", no_address, "target=x").await;
    let required = "spec.provider.address is required";
    checks.check("errors").await.error(required);

    // Nothing listening.
    let down = unreachable().await;
    world.template("errors", provider(&down), "target=x").await;
    let unreachable = format!("unreachable: {down}");
    checks.check("errors").await.error(&unreachable);
    checks.check_online("errors").await.offline(&unreachable);
}

/// Without a secretRef, a server without authentication answers.
#[tokio::test]
async fn graphite_without_credentials() {
    let source = vendors::fixed(&[("stats.podinfo.errors", Some(0.25))]);
    let address = serve(graphite::router(None, source)).await;
    let world = World::new().await;
    world
        .template(
            "open",
            json!({"type": "graphite", "address": format!("{address}/")}),
            "target=stats.{{ target }}.errors&from=-1min",
        )
        .await;
    assert_eq!(value(world.check("open").await), 0.25);
    world.online("open").await.expect("online");
}

/// The request: the rendered query as the query string with `format=json` (replacing the
/// template's), the path prefix kept, basic authentication; online asks `target=test`; a
/// status from 400 on is an error.
#[tokio::test]
async fn graphite_request_shape() {
    let (address, seen) = recording(MethodFilter::GET, &["/prefix/render"], |r| {
        if r.query.iter().any(|(_, v)| v == "refuse") {
            return (StatusCode::INTERNAL_SERVER_ERROR, "boom".to_string());
        }
        let series = json!([{"target": "t", "datapoints": [[1.0, 1], [null, 2]]}]);
        (StatusCode::OK, series.to_string())
    })
    .await;
    let address = format!("{address}/prefix");
    let world = World::new().await;
    world.secret("gr", SECRET).await;
    let template = "target=a.{{ target }}.b\n   &from=-{{ interval }}&format=png";
    world.template("w", provider(&address), template).await;
    let checks = world.checks("graphite", &[USERNAME, PASSWORD]);
    assert_eq!(value(world.check("w").await), 1.0);
    world.online("w").await.expect("online");
    world
        .template("refused", provider(&address), "target=refuse")
        .await;
    let refused = "query refused: HTTP 500: boom";
    checks.check("refused").await.error(refused);
    let auth = graphite::basic(USERNAME, PASSWORD);
    let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let seen: Vec<(String, Vec<(String, String)>)> = seen
        .lock()
        .expect("lock")
        .iter()
        .map(|r| {
            let auth = r.header("Authorization").unwrap_or_default();
            (auth.to_string(), r.query.clone())
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                auth.clone(),
                pairs(&[
                    ("target", "a.podinfo.b "),
                    ("from", "-1m"),
                    ("format", "json")
                ])
            ),
            (
                auth.clone(),
                pairs(&[("target", "test"), ("format", "json")])
            ),
            (auth, pairs(&[("target", "refuse"), ("format", "json")])),
        ]
    );
}
