//! Stackdriver: mesh-sim's stand-in of Cloud Monitoring's `timeSeries:query` and of Google's
//! OAuth2 token endpoint, whose JWT assertions are checked as Google checks them
//! ([`stackdriver::rs256`]): the RS256 signature with the service account's public key, the
//! key id, issuer, audience, scope and lifetime.

use std::sync::{Arc, Mutex};

use axum::routing::MethodFilter;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mesh_sim::vendors::stackdriver;
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

fn provider(address: &str) -> Value {
    json!({"type": "stackdriver", "address": address, "secretRef": {"name": "sd"}})
}

fn query(name: &str) -> String {
    format!("fetch k8s_container | metric '{name}' | filter container == '{{{{ target }}}}'")
}

/// The Secret's contents: the project to read and the service-account key file to read it
/// with.
fn secret<'a>(project: &'a str, key_file: &'a str) -> [(&'a str, &'a str); 2] {
    [("project", project), ("serviceAccountKey", key_file)]
}

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
    let seen = Arc::new(Mutex::new(Vec::new()));
    let accept = google(seen.clone());
    let source = answers(|name| rendered(&query(name)));
    let address = serve(stackdriver::router(PROJECT, accept, source)).await;
    let world = World::new().await;
    let sa = key_file(TEST_KEY, &format!("{address}/token"));
    world.secret("sd", &secret(PROJECT, &sa)).await;
    world.templates(&TEMPLATES, provider(&address), query).await;
    // A line of the private key stands for it: no message may hold any of it.
    let key_line = TEST_KEY.lines().nth(3).expect("a key line");
    let checks = world.checks("stackdriver", &[key_line]);

    checks.values_and_no_data("no values found").await;
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

    // The query endpoint itself takes no request without a token it issued.
    let resp = reqwest::Client::new()
        .post(format!("{address}/v3/projects/{PROJECT}/timeSeries:query"))
        .bearer_auth("ya29.forged")
        .body(json!({"query": rendered(&query("errors"))}).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    let body: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("json");
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");

    // Another key under the same account: the token endpoint refuses the JWT's signature.
    let other = key_file(OTHER_KEY, &format!("{address}/token"));
    let other_line = OTHER_KEY.lines().nth(3).expect("a key line");
    world.secret("sd", &secret(PROJECT, &other)).await;
    let wrong = checks.hiding(&[key_line, other_line]);
    let refused = "authentication failed: cannot get an access token";
    let m = wrong.check("errors").await.error(refused);
    assert!(m.contains("Invalid JWT Signature"), "{m}");
    wrong.check_online("errors").await.offline(refused);

    // A project the account cannot read: Google's 403.
    world.secret("sd", &secret("someone-else", &sa)).await;
    let denied = "authentication failed: HTTP 403: PERMISSION_DENIED";
    checks.check("errors").await.error(denied);
    checks.check_online("errors").await.offline(denied);

    // A Secret without its project names the key.
    world.secret("sd", &[("serviceAccountKey", &sa)]).await;
    let missing = "does not contain the key project";
    checks.check("errors").await.error(missing);

    // A serviceAccountKey that is no key.
    let no_key = "not json at all";
    world.secret("sd", &secret(PROJECT, no_key)).await;
    let unusable = "serviceAccountKey is not a usable service account key";
    let wrong = checks.hiding(&[no_key]);
    wrong.check("errors").await.error(unusable);

    // Cloud Monitoring unreachable (the token endpoint answers).
    world.secret("sd", &secret(PROJECT, &sa)).await;
    let down = unreachable().await;
    let errors = rendered(&query("errors"));
    world.template("errors", provider(&down), &errors).await;
    let unreachable = format!("unreachable: {down}");
    checks.check("errors").await.error(&unreachable);

    // The token endpoint unreachable.
    let sa_down = key_file(TEST_KEY, &format!("{down}/token"));
    world.secret("sd", &secret(PROJECT, &sa_down)).await;
    world.template("errors", provider(&address), &errors).await;
    let cause =
        format!("authentication failed: cannot get an access token: {down}: unreachable: {down}");
    checks.check("errors").await.error(&cause);
}

/// The request: the project's `timeSeries:query` with `{"query": <rendered MQL>}` and the
/// bearer token from the token endpoint.
#[tokio::test]
async fn stackdriver_sends_the_query_with_its_token() {
    let paths = ["/token", "/v3/projects/{project}/timeSeries:query"];
    let (address, seen) = recording(MethodFilter::POST, &paths, |r| {
        if r.path == "/token" {
            json!({"access_token": "ya29.shape", "expires_in": 3599, "token_type": "Bearer"})
        } else {
            json!({"timeSeriesData": [{"pointData": [
                {"values": [{"int64Value": "1"}]},
                {"values": [{"doubleValue": 9.0}]}]}]})
        }
        .to_string()
    })
    .await;
    let world = World::new().await;
    let sa = key_file(TEST_KEY, &format!("{address}/token"));
    world.secret("sd", &secret(PROJECT, &sa)).await;
    let mql = "fetch gce_instance | metric '{{ target }}'";
    world.template("w", provider(&address), mql).await;
    assert_eq!(
        value(world.check("w").await),
        1.0,
        "the first point counts, an int64Value as its number"
    );
    let seen = seen.lock().expect("lock");
    let query = seen.iter().find(|r| r.path != "/token").expect("a query");
    let path = format!("/v3/projects/{PROJECT}/timeSeries:query");
    assert_eq!(query.path, path);
    assert_eq!(query.header("authorization"), Some("Bearer ya29.shape"));
    let mql = json!({"query": "fetch gce_instance | metric 'podinfo'"});
    assert_eq!(query.json(), mql);
}
