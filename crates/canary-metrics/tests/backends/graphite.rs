//! Graphite: mesh-sim's stand-in of graphite-web's render API behind a path prefix, basic
//! authentication checked as the web server in front of it checks it.

use mesh_sim::vendors::{self, graphite};
use serde_json::json;

use super::common::*;

const USERNAME: &str = "graphite-reader";
const PASSWORD: &str = "gr-pass-0123456789";

/// The targets the templates below render to (whitespace runs collapsed).
fn target(name: &str) -> String {
    format!("sumSeries( stats.podinfo.{name}.count )")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphite_values_and_failures() {
    let source = vendors::fixed(&[
        (&target("errors"), Some(0.5)),
        (&target("latency"), Some(42.0)),
        (&target("nan"), Some(f64::NAN)),
    ]);
    let credentials = Some((USERNAME.to_string(), PASSWORD.to_string()));
    let app = axum::Router::new().nest("/graphite", graphite::router(credentials, source));
    let address = format!("{}/graphite", serve(app).await);
    let world = World::new().await;
    let provider = |a: &str| json!({"type": "graphite", "address": a, "secretRef": {"name": "gr"}});
    let good = [("username", USERNAME), ("password", PASSWORD)];
    world.secret("gr", &good).await;
    for name in ["errors", "latency", "nothing", "nan"] {
        let query =
            format!("target=sumSeries(\n  stats.{{{{ target }}}}.{name}.count\n)\n&from=-1min");
        world.template(name, provider(&address), &query).await;
    }
    let secrets = [USERNAME, PASSWORD];

    // The stand-in's newest point is null: the last non-null one counts.
    assert_eq!(value(world.check("errors").await), 0.5);
    assert_eq!(
        value(world.check("latency").await),
        42.0,
        "above the max of 1: a failing check"
    );
    world
        .online("errors")
        .await
        .expect("online (target=test has no values)");

    // No series, and only null datapoints (graphite-web's NaN).
    let m = no_data(world.check("nothing").await);
    names(&m, "graphite", "nothing", "no values found", &secrets);
    let m = no_data(world.check("nan").await);
    names(&m, "graphite", "nan", "no values found", &secrets);

    // A wrong password: 401, online or not.
    world
        .secret(
            "gr",
            &[("username", USERNAME), ("password", "wrong-password")],
        )
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "graphite",
        "errors",
        "authentication failed: HTTP 401",
        &[USERNAME, "wrong-password"],
    );
    let m = world.online("errors").await.expect_err("offline");
    names(
        &m,
        "graphite",
        "errors",
        "authentication failed: HTTP 401",
        &[USERNAME, "wrong-password"],
    );

    // With a secretRef, both keys are required.
    world.secret("gr", &[("username", USERNAME)]).await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "graphite",
        "errors",
        "does not contain the key password",
        &secrets,
    );
    world.secret("gr", &[("password", PASSWORD)]).await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "graphite",
        "errors",
        "does not contain the key username",
        &secrets,
    );

    // Without a secretRef: no authentication, which this server refuses.
    world.secret("gr", &good).await;
    world
        .template(
            "errors",
            json!({"type": "graphite", "address": address}),
            "target=x",
        )
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "graphite",
        "errors",
        "authentication failed: HTTP 401",
        &secrets,
    );

    // The address is required.
    world
        .template(
            "errors",
            json!({"type": "graphite", "secretRef": {"name": "gr"}}),
            "target=x",
        )
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "graphite",
        "errors",
        "spec.provider.address is required",
        &secrets,
    );

    // Nothing listening.
    let down = unreachable().await;
    world.template("errors", provider(&down), "target=x").await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "graphite",
        "errors",
        &format!("unreachable: {down}"),
        &secrets,
    );
    let m = world.online("errors").await.expect_err("offline");
    names(
        &m,
        "graphite",
        "errors",
        &format!("unreachable: {down}"),
        &secrets,
    );
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
    type Params = axum::extract::Query<Vec<(String, String)>>;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/prefix/render",
        axum::routing::get(move |q: Params, h: axum::http::HeaderMap| {
            let s = s.clone();
            async move {
                let auth = h
                    .get("Authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let refuse = q.0.iter().any(|(_, v)| v == "refuse");
                s.lock().expect("lock").push((auth, q.0));
                if refuse {
                    return (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "boom".to_string(),
                    );
                }
                (
                    axum::http::StatusCode::OK,
                    json!([{"target": "t", "datapoints": [[1.0, 1], [null, 2]]}]).to_string(),
                )
            }
        }),
    );
    let address = format!("{}/prefix", serve(app).await);
    let world = World::new().await;
    world
        .secret("gr", &[("username", USERNAME), ("password", PASSWORD)])
        .await;
    let provider = json!({"type": "graphite", "address": address, "secretRef": {"name": "gr"}});
    world
        .template(
            "w",
            provider.clone(),
            "target=a.{{ target }}.b\n   &from=-{{ interval }}&format=png",
        )
        .await;
    assert_eq!(value(world.check("w").await), 1.0);
    world.online("w").await.expect("online");
    world.template("refused", provider, "target=refuse").await;
    let m = error(world.check("refused").await);
    names(
        &m,
        "graphite",
        "refused",
        "query refused: HTTP 500: boom",
        &[USERNAME, PASSWORD],
    );
    let auth = graphite::basic(USERNAME, PASSWORD);
    let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        seen.lock().expect("lock").as_slice(),
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
