//! CloudWatch: mesh-sim's stand-in of GetMetricData (AWS JSON 1.0), with each request's SigV4
//! signature checked as AWS checks it ([`cloudwatch::sigv4_with_tokens`]): re-signed with
//! aws-sigv4 from the secret key of the access key id it names, at its `X-Amz-Date`, and
//! compared.

use axum::routing::MethodFilter;
use mesh_sim::vendors::{self, cloudwatch};
use serde_json::{Value, json};

use super::common::*;

const REGION: &str = "eu-west-1";
const KEY_ID: &str = "AKIAFLAGGERDTEST0001";
const SECRET_KEY: &str = "cw-secret/0123456789abcdefghijKLMNOPQRSTU";
const TEMP_KEY_ID: &str = "ASIAFLAGGERDTEMP0002";
const TEMP_SECRET_KEY: &str = "cw-temp-secret/9876543210zyxwvutsrqpONML";
const SESSION_TOKEN: &str = "cw-session-token-FwoGZXIvYXdzEXAMPLE";
const SECRET: &[(&str, &str)] = &[
    ("aws_access_key_id", KEY_ID),
    ("aws_secret_access_key", SECRET_KEY),
];

fn provider(address: &str, secret: &str) -> Value {
    json!({"type": "cloudwatch", "address": address, "region": REGION,
           "secretRef": {"name": secret}})
}

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
    world.secret("cw", SECRET).await;
    let query = |name: &str| expression(&format!("{name}_{{{{ target }}}}"));
    world
        .templates(&TEMPLATES, provider(&address, "cw"), query)
        .await;
    // A query without an Expression: the stand-in keys it by its Id.
    let metric_stat = json!([{"Id": "cpu", "MetricStat": {"Metric": {"Namespace": "AWS/EC2",
        "MetricName": "CPUUtilization"}, "Period": 60, "Stat": "Average"}}]);
    world
        .template("cpu", provider(&address, "cw"), &metric_stat.to_string())
        .await;
    let secrets = [KEY_ID, SECRET_KEY, TEMP_SECRET_KEY, SESSION_TOKEN];
    let checks = world.checks("cloudwatch", &secrets);

    checks.values_and_no_data("no values found").await;
    assert_eq!(value(world.check("cpu").await), 0.75);
    world.online("errors").await.expect("online");

    // A query that is not a JSON array of MetricDataQuery.
    world
        .template("broken", provider(&address, "cw"), "SELECT AVG(x)")
        .await;
    let not_an_array = "the query is not a JSON array of MetricDataQuery";
    checks.check("broken").await.error(not_an_array);

    // Temporary credentials: the session token is sent and signed.
    let temporary = [
        ("aws_access_key_id", TEMP_KEY_ID),
        ("aws_secret_access_key", TEMP_SECRET_KEY),
        ("aws_session_token", SESSION_TOKEN),
    ];
    world.secret("cw-temp", &temporary).await;
    let errors = query("errors");
    world
        .template("temp", provider(&address, "cw-temp"), &errors)
        .await;
    assert_eq!(value(world.check("temp").await), 0.5);

    // An unknown access key id: CloudWatch's 403 UnrecognizedClientException, online or not.
    let unknown = [
        ("aws_access_key_id", "AKIAWRONGKEY00000000"),
        ("aws_secret_access_key", SECRET_KEY),
    ];
    world.secret("cw", &unknown).await;
    let unrecognized = "authentication failed: HTTP 403: UnrecognizedClientException";
    checks.check("errors").await.error(unrecognized);
    checks.check_online("errors").await.offline(unrecognized);

    // The right key id with a wrong secret key: the signature does not match.
    let wrong_secret = "wrong-secret-key-0000000000000000000000";
    let wrong = [
        ("aws_access_key_id", KEY_ID),
        ("aws_secret_access_key", wrong_secret),
    ];
    world.secret("cw", &wrong).await;
    let wrong = checks.hiding(&[KEY_ID, wrong_secret]);
    let invalid = "authentication failed: HTTP 403: InvalidSignatureException";
    wrong.check("errors").await.error(invalid);

    // A Secret without a key names the key.
    world.secret("cw", &[("aws_access_key_id", KEY_ID)]).await;
    let missing = "does not contain the key aws_secret_access_key";
    checks.check("errors").await.error(missing);

    // No region.
    world.secret("cw", SECRET).await;
    let no_region = json!({"type": "cloudwatch", "address": address, "secretRef": {"name": "cw"}});
    world.template("errors", no_region, &errors).await;
    let required = "spec.provider.region is required for cloudwatch";
    checks.check("errors").await.error(required);

    // Nothing listening.
    let down = unreachable().await;
    world
        .template("errors", provider(&down, "cw"), &errors)
        .await;
    let unreachable = format!("unreachable: {down}");
    checks.check("errors").await.error(&unreachable);
    checks.check_online("errors").await.offline(&unreachable);
}

/// The request: AWS JSON 1.0 GetMetricData with the template's queries, ten intervals back
/// from now in epoch seconds, at most 20 points, signed for `monitoring` in the region.
#[tokio::test]
async fn cloudwatch_reads_ten_intervals() {
    let (address, seen) = recording(MethodFilter::POST, &["/"], |_| {
        json!({"MetricDataResults": [{"Id": "e1", "Values": [1.0, 7.0]}]}).to_string()
    })
    .await;
    let world = World::new().await;
    world.secret("cw", SECRET).await;
    let errors = expression("errors_{{ target }}");
    world.template("w", provider(&address, "cw"), &errors).await;
    assert_eq!(value(world.check("w").await), 1.0, "the first value counts");
    let seen = seen.lock().expect("lock");
    let request = &seen[0];
    let header = |k| request.header(k).unwrap_or_default();
    assert_eq!(header("content-type"), "application/x-amz-json-1.0");
    assert_eq!(
        header("x-amz-target"),
        "GraniteServiceVersion20100801.GetMetricData"
    );
    let auth = header("authorization");
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={KEY_ID}/"))
            && auth.contains(&format!("/{REGION}/monitoring/aws4_request"))
            && auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-target,"),
        "{auth}"
    );
    let body = request.json();
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
