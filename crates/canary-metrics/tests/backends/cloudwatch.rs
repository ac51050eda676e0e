//! CloudWatch: mesh-sim's stand-in of GetMetricData (AWS JSON 1.0), with each request's SigV4
//! signature checked as AWS checks it ([`cloudwatch::sigv4_with_tokens`]): re-signed with
//! aws-sigv4 from the secret key of the access key id it names, at its `X-Amz-Date`, and
//! compared.

use std::sync::{Arc, Mutex};

use mesh_sim::vendors::cloudwatch;
use mesh_sim::vendors::{self};
use serde_json::{Value, json};

use super::common::*;

const REGION: &str = "eu-west-1";
const KEY_ID: &str = "AKIAFLAGGERDTEST0001";
const SECRET_KEY: &str = "cw-secret/0123456789abcdefghijKLMNOPQRSTU";
const TEMP_KEY_ID: &str = "ASIAFLAGGERDTEMP0002";
const TEMP_SECRET_KEY: &str = "cw-temp-secret/9876543210zyxwvutsrqpONML";
const SESSION_TOKEN: &str = "cw-session-token-FwoGZXIvYXdzEXAMPLE";

/// A template query of one metric-math expression.
fn expression(e: &str) -> String {
    json!([{"Id": "e1", "Expression": e, "Label": "value", "ReturnData": true}]).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudwatch_values_windows_and_failures() {
    let source = vendors::fixed(&[
        ("errors_podinfo", Some(0.5)),
        ("latency_podinfo", Some(42.0)),
        ("nan_podinfo", Some(f64::NAN)),
        ("cpu", Some(0.75)),
    ]);
    let verify = cloudwatch::sigv4_with_tokens(&[
        (KEY_ID, SECRET_KEY, None),
        (TEMP_KEY_ID, TEMP_SECRET_KEY, Some(SESSION_TOKEN)),
    ]);
    let address = serve(cloudwatch::router(verify, source)).await;
    let world = World::new().await;
    let provider = |a: &str, secret: &str| json!({"type": "cloudwatch", "address": a, "region": REGION, "secretRef": {"name": secret}});
    let keys = [
        ("aws_access_key_id", KEY_ID),
        ("aws_secret_access_key", SECRET_KEY),
    ];
    world.secret("cw", &keys).await;
    for name in ["errors", "latency", "nothing", "nan"] {
        let query = expression(&format!("{name}_{{{{ target }}}}"));
        world.template(name, provider(&address, "cw"), &query).await;
    }
    // A query without an Expression: the stand-in keys it by its Id.
    let metric_stat = json!([{"Id": "cpu", "MetricStat": {"Metric": {"Namespace": "AWS/EC2",
        "MetricName": "CPUUtilization"}, "Period": 60, "Stat": "Average"}}]);
    world
        .template("cpu", provider(&address, "cw"), &metric_stat.to_string())
        .await;
    let secrets = [KEY_ID, SECRET_KEY, TEMP_SECRET_KEY, SESSION_TOKEN];

    assert_eq!(value(world.check("errors").await), 0.5);
    assert_eq!(value(world.check("cpu").await), 0.75);
    assert_eq!(
        value(world.check("latency").await),
        42.0,
        "above the max of 1: a failing check"
    );
    world.online("errors").await.expect("online");

    let m = no_data(world.check("nothing").await);
    names(&m, "cloudwatch", "nothing", "no values found", &secrets);
    let m = no_data(world.check("nan").await);
    names(&m, "cloudwatch", "nan", "no values found", &secrets);

    // A query that is not a JSON array of MetricDataQuery.
    world
        .template("broken", provider(&address, "cw"), "SELECT AVG(x)")
        .await;
    let m = error(world.check("broken").await);
    names(
        &m,
        "cloudwatch",
        "broken",
        "the query is not a JSON array of MetricDataQuery",
        &secrets,
    );

    // Temporary credentials: the session token is sent and signed.
    world
        .secret(
            "cw-temp",
            &[
                ("aws_access_key_id", TEMP_KEY_ID),
                ("aws_secret_access_key", TEMP_SECRET_KEY),
                ("aws_session_token", SESSION_TOKEN),
            ],
        )
        .await;
    world
        .template(
            "temp",
            provider(&address, "cw-temp"),
            &expression("errors_{{ target }}"),
        )
        .await;
    assert_eq!(value(world.check("temp").await), 0.5);

    // An unknown access key id: CloudWatch's 403 UnrecognizedClientException, online or not.
    world
        .secret(
            "cw",
            &[
                ("aws_access_key_id", "AKIAWRONGKEY00000000"),
                ("aws_secret_access_key", SECRET_KEY),
            ],
        )
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "cloudwatch",
        "errors",
        "authentication failed: HTTP 403: UnrecognizedClientException",
        &secrets,
    );
    let m = world.online("errors").await.expect_err("offline");
    names(
        &m,
        "cloudwatch",
        "errors",
        "authentication failed: HTTP 403: UnrecognizedClientException",
        &secrets,
    );

    // The right key id with a wrong secret key: the signature does not match.
    let wrong_secret = "wrong-secret-key-0000000000000000000000";
    world
        .secret(
            "cw",
            &[
                ("aws_access_key_id", KEY_ID),
                ("aws_secret_access_key", wrong_secret),
            ],
        )
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "cloudwatch",
        "errors",
        "authentication failed: HTTP 403: InvalidSignatureException",
        &[KEY_ID, wrong_secret],
    );

    // A Secret without a key names the key.
    world.secret("cw", &[("aws_access_key_id", KEY_ID)]).await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "cloudwatch",
        "errors",
        "does not contain the key aws_secret_access_key",
        &secrets,
    );

    // No region.
    world.secret("cw", &keys).await;
    world
        .template(
            "errors",
            json!({"type": "cloudwatch", "address": address, "secretRef": {"name": "cw"}}),
            &expression("errors_{{ target }}"),
        )
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "cloudwatch",
        "errors",
        "spec.provider.region is required for cloudwatch",
        &secrets,
    );

    // Nothing listening.
    let down = unreachable().await;
    world
        .template(
            "errors",
            provider(&down, "cw"),
            &expression("errors_{{ target }}"),
        )
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "cloudwatch",
        "errors",
        &format!("unreachable: {down}"),
        &secrets,
    );
    let m = world.online("errors").await.expect_err("offline");
    names(
        &m,
        "cloudwatch",
        "errors",
        &format!("unreachable: {down}"),
        &secrets,
    );
}

/// The request: AWS JSON 1.0 GetMetricData with the template's queries, ten intervals back
/// from now in epoch seconds, at most 20 points, signed for `monitoring` in the region.
#[tokio::test]
async fn cloudwatch_reads_ten_intervals() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |h: axum::http::HeaderMap, body: String| {
            let s = s.clone();
            async move {
                let header = |k: &str| {
                    h.get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let body: Value = serde_json::from_str(&body).expect("json body");
                s.lock().expect("lock").push((
                    header("content-type"),
                    header("x-amz-target"),
                    header("authorization"),
                    body,
                ));
                json!({"MetricDataResults": [{"Id": "e1", "Values": [1.0, 7.0]}]}).to_string()
            }
        }),
    );
    let address = serve(app).await;
    let world = World::new().await;
    world
        .secret(
            "cw",
            &[
                ("aws_access_key_id", KEY_ID),
                ("aws_secret_access_key", SECRET_KEY),
            ],
        )
        .await;
    let query = expression("errors_{{ target }}");
    world
        .template(
            "w",
            json!({"type": "cloudwatch", "address": address, "region": REGION,
                   "secretRef": {"name": "cw"}}),
            &query,
        )
        .await;
    assert_eq!(value(world.check("w").await), 1.0, "the first value counts");
    let seen = seen.lock().expect("lock");
    let (content_type, target, auth, body) = &seen[0];
    assert_eq!(content_type, "application/x-amz-json-1.0");
    assert_eq!(target, "GraniteServiceVersion20100801.GetMetricData");
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={KEY_ID}/"))
            && auth.contains(&format!("/{REGION}/monitoring/aws4_request"))
            && auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-target,"),
        "{auth}"
    );
    assert_eq!(
        body["MetricDataQueries"],
        json!([{"Id": "e1",
        "Expression": "errors_podinfo", "Label": "value", "ReturnData": true}])
    );
    assert_eq!(body["MaxDatapoints"], 20);
    let span =
        body["EndTime"].as_i64().expect("EndTime") - body["StartTime"].as_i64().expect("StartTime");
    assert_eq!(span, 600);
}
