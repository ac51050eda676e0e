//! Stackdriver: mesh-sim's stand-in of Cloud Monitoring's `timeSeries:query` and of Google's
//! OAuth2 token endpoint, whose JWT assertions are checked as Google checks them
//! ([`stackdriver::rs256`]): the RS256 signature with the service account's public key, the
//! key id, issuer, audience, scope and lifetime.

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mesh_sim::vendors::{self, stackdriver};
use serde_json::{Value, json};

use super::common::*;

/// Test-only RSA keys (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`),
/// generated for these tests and used nowhere else: the service account's, and another one.
const TEST_KEY: &str = include_str!("fixtures/stackdriver-test-key.pem");
const OTHER_KEY: &str = include_str!("fixtures/stackdriver-other-key.pem");

const PROJECT: &str = "flaggerd-test";
const EMAIL: &str = "flaggerd@flaggerd-test.iam.gserviceaccount.com";
const KEY_ID: &str = "0123456789abcdef0123456789abcdef01234567";
const SCOPE: &str = stackdriver::SCOPE;

/// A service-account key file for `pem`, its tokens from `token_uri`.
fn key_file(pem: &str, token_uri: &str) -> String {
    json!({"type": "service_account", "project_id": PROJECT, "private_key_id": KEY_ID,
        "private_key": pem, "client_email": EMAIL, "client_id": "100000000000000000001",
        "token_uri": token_uri})
    .to_string()
}

/// Google's check of a JWT-bearer assertion ([`stackdriver::rs256`] with the test key);
/// each accepted header and claims set is kept.
fn google(seen: Arc<Mutex<Vec<(Value, Value)>>>) -> stackdriver::Accept {
    let public = stackdriver::public_key_of(TEST_KEY).expect("a PKCS#8 RSA key");
    let strict = stackdriver::rs256(EMAIL, KEY_ID, public);
    Arc::new(move |jwt: &str, audience: &str| {
        strict(jwt, audience)?;
        let part = |p: &str| -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("base64url")).expect("json")
        };
        let parts: Vec<&str> = jwt.split('.').collect();
        seen.lock()
            .expect("lock")
            .push((part(parts[0]), part(parts[1])));
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stackdriver_values_tokens_and_failures() {
    let query = |name: &str| {
        format!("fetch k8s_container | metric '{name}' | filter container == 'podinfo'")
    };
    let source = vendors::fixed(&[
        (&query("errors"), Some(0.5)),
        (&query("latency"), Some(42.0)),
        (&query("nan"), Some(f64::NAN)),
    ]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let accept = google(seen.clone());
    let address = serve(stackdriver::router(PROJECT, accept, source)).await;
    let world = World::new().await;
    let provider =
        |a: &str| json!({"type": "stackdriver", "address": a, "secretRef": {"name": "sd"}});
    let sa = key_file(TEST_KEY, &format!("{address}/token"));
    world
        .secret("sd", &[("project", PROJECT), ("serviceAccountKey", &sa)])
        .await;
    for name in ["errors", "latency", "nothing", "nan"] {
        let q = format!(
            "fetch k8s_container | metric '{name}' | filter container == '{{{{ target }}}}'"
        );
        world.template(name, provider(&address), &q).await;
    }
    // A line of the private key stands for it: no message may hold any of it.
    let key_line = TEST_KEY.lines().nth(3).expect("a key line");
    let secrets = [key_line];

    assert_eq!(value(world.check("errors").await), 0.5);
    assert_eq!(
        value(world.check("latency").await),
        42.0,
        "above the max of 1: a failing check"
    );
    world.online("errors").await.expect("online");

    // The assertions: RS256 with the key's id, for the monitoring.read scope, one hour.
    {
        let seen = seen.lock().expect("lock");
        assert!(!seen.is_empty());
        let (h, c) = &seen[0];
        assert_eq!(h["typ"], "JWT");
        assert_eq!(c["aud"], format!("{address}/token"));
        assert_eq!(c["scope"], SCOPE);
        assert_eq!(c["iss"], EMAIL);
        assert_eq!(
            c["exp"].as_i64().expect("exp") - c["iat"].as_i64().expect("iat"),
            3600
        );
    }

    let m = no_data(world.check("nothing").await);
    names(&m, "stackdriver", "nothing", "no values found", &secrets);
    let m = no_data(world.check("nan").await);
    names(&m, "stackdriver", "nan", "no values found", &secrets);

    // The query endpoint itself takes no request without a token it issued.
    let resp = reqwest::Client::new()
        .post(format!("{address}/v3/projects/{PROJECT}/timeSeries:query"))
        .bearer_auth("ya29.forged")
        .body(json!({"query": query("errors")}).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    let body: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("json");
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");

    // Another key under the same account: the token endpoint refuses the JWT's signature.
    let other = key_file(OTHER_KEY, &format!("{address}/token"));
    let other_line = OTHER_KEY.lines().nth(3).expect("a key line");
    world
        .secret("sd", &[("project", PROJECT), ("serviceAccountKey", &other)])
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "stackdriver",
        "errors",
        "authentication failed: cannot get an access token",
        &[key_line, other_line],
    );
    assert!(m.contains("Invalid JWT Signature"), "{m}");
    let m = world.online("errors").await.expect_err("offline");
    names(
        &m,
        "stackdriver",
        "errors",
        "authentication failed: cannot get an access token",
        &[key_line, other_line],
    );

    // A project the account cannot read: Google's 403.
    world
        .secret(
            "sd",
            &[("project", "someone-else"), ("serviceAccountKey", &sa)],
        )
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "stackdriver",
        "errors",
        "authentication failed: HTTP 403: PERMISSION_DENIED",
        &secrets,
    );
    let m = world.online("errors").await.expect_err("offline");
    names(
        &m,
        "stackdriver",
        "errors",
        "authentication failed: HTTP 403: PERMISSION_DENIED",
        &secrets,
    );

    // A Secret without its project names the key.
    world.secret("sd", &[("serviceAccountKey", &sa)]).await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "stackdriver",
        "errors",
        "does not contain the key project",
        &secrets,
    );

    // A serviceAccountKey that is no key.
    world
        .secret(
            "sd",
            &[
                ("project", PROJECT),
                ("serviceAccountKey", "not json at all"),
            ],
        )
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "stackdriver",
        "errors",
        "serviceAccountKey is not a usable service account key",
        &["not json at all"],
    );

    // Cloud Monitoring unreachable (the token endpoint answers).
    world
        .secret("sd", &[("project", PROJECT), ("serviceAccountKey", &sa)])
        .await;
    let down = unreachable().await;
    world
        .template("errors", provider(&down), &query("errors"))
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "stackdriver",
        "errors",
        &format!("unreachable: {down}"),
        &secrets,
    );

    // The token endpoint unreachable.
    let sa_down = key_file(TEST_KEY, &format!("{down}/token"));
    world
        .secret(
            "sd",
            &[("project", PROJECT), ("serviceAccountKey", &sa_down)],
        )
        .await;
    world
        .template("errors", provider(&address), &query("errors"))
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "stackdriver",
        "errors",
        &format!("authentication failed: cannot get an access token: {down}: unreachable: {down}"),
        &secrets,
    );
}

/// The request: the project's `timeSeries:query` with `{"query": <rendered MQL>}` and the
/// bearer token from the token endpoint.
#[tokio::test]
async fn stackdriver_sends_the_query_with_its_token() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let app = axum::Router::new()
        .route(
            "/token",
            axum::routing::post(|| async {
                json!({"access_token": "ya29.shape", "expires_in": 3599, "token_type": "Bearer"})
                    .to_string()
            }),
        )
        .route(
            "/v3/projects/{project}/timeSeries:query",
            axum::routing::post(
                move |axum::extract::Path(project): axum::extract::Path<String>,
                      h: axum::http::HeaderMap,
                      body: String| {
                    let s = s.clone();
                    async move {
                        let auth = h
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        let body: Value = serde_json::from_str(&body).expect("json body");
                        s.lock().expect("lock").push((project, auth, body));
                        json!({"timeSeriesData": [{"pointData": [
                            {"values": [{"int64Value": "1"}]},
                            {"values": [{"doubleValue": 9.0}]}]}]})
                        .to_string()
                    }
                },
            ),
        );
    let address = serve(app).await;
    let world = World::new().await;
    let sa = key_file(TEST_KEY, &format!("{address}/token"));
    world
        .secret("sd", &[("project", PROJECT), ("serviceAccountKey", &sa)])
        .await;
    world
        .template(
            "w",
            json!({"type": "stackdriver", "address": address, "secretRef": {"name": "sd"}}),
            "fetch gce_instance | metric '{{ target }}'",
        )
        .await;
    assert_eq!(
        value(world.check("w").await),
        1.0,
        "the first point counts, an int64Value as its number"
    );
    let seen = seen.lock().expect("lock");
    assert_eq!(
        seen[0],
        (
            PROJECT.to_string(),
            "Bearer ya29.shape".to_string(),
            json!({"query": "fetch gce_instance | metric 'podinfo'"})
        )
    );
}
