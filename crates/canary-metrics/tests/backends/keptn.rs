//! Keptn: kube-sim serving Keptn's KeptnMetric and Analysis CRDs, read through flaggerd's
//! cluster client; a task in the test plays Keptn, completing the Analyses the backend creates;
//! a proxy in front of kube-sim refuses Keptn's resources to show the API server's refusals.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Response, Uri};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};

use super::common::*;

/// Keptn's two CRDs, with the status subresource and no schema to speak of.
async fn install_keptn(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (kind, plural) in [("KeptnMetric", "keptnmetrics"), ("Analysis", "analyses")] {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.metrics.keptn.sh")},
            "spec": {
                "group": "metrics.keptn.sh", "scope": "Namespaced",
                "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(),
                          "listKind": format!("{kind}List")},
                "versions": [{"name": "v1beta1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "x-kubernetes-preserve-unknown-fields": true}}}]}});
        crds.create(
            &PostParams::default(),
            &serde_json::from_value(crd).expect("crd"),
        )
        .await
        .expect("create crd");
    }
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metrics.keptn.sh", "v1beta1", kind),
        plural,
    )
}

fn analyses(client: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), "test", &resource("Analysis", "analyses"))
}

/// The KeptnMetric `name` in `test`, with `status.value` when given.
async fn keptn_metric(client: &kube::Client, name: &str, value: Option<&str>) {
    let ar = resource("KeptnMetric", "keptnmetrics");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "test", &ar);
    let object = DynamicObject::new(name, &ar).within("test").data(json!({
        "spec": {"provider": {"name": "prometheus"}, "query": "sum(rate(errors[1m]))",
                 "fetchIntervalSeconds": 10}}));
    api.create(&PostParams::default(), &object)
        .await
        .expect("create KeptnMetric");
    if let Some(v) = value {
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"value": v, "rawValue": "MC41"}})),
        )
        .await
        .expect("status");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keptn_metrics_values_and_failures() {
    let world = World::new().await;
    let keptn = json!({"type": "keptn"});
    world
        .template("pass", keptn.clone(), "keptnmetric/test/pass")
        .await;
    // A keptn template names no Secret: no credential of its own that a message could leak.
    let checks = world.checks("keptn", &[]);

    // Before Keptn is installed: offline, and the query says what is missing.
    let missing = "the cluster does not serve metrics.keptn.sh/v1beta1 (is Keptn installed?)";
    checks.check_online("pass").await.offline(missing);
    let not_found = "cannot read KeptnMetric test/pass: not found: HTTP 404";
    checks.check("pass").await.error(not_found);

    install_keptn(&world.client).await;
    world.online("pass").await.expect("online");
    keptn_metric(&world.client, "pass", Some("0.5")).await;
    keptn_metric(&world.client, "fail", Some("42")).await;
    keptn_metric(&world.client, "pending", None).await;
    keptn_metric(&world.client, "garbage", Some("n/a")).await;
    for (name, query) in [
        // Flagger lower-cases and trims the query.
        ("pass", "KeptnMetric/{{ namespace }}/Pass\n"),
        ("fail", "keptnmetrics/test/fail"),
        ("pending", "keptnmetrics/test/pending"),
        ("garbage", "keptnmetrics/test/garbage"),
        ("missing", "keptnmetrics/test/missing"),
        ("short", "keptnmetric/test"),
        ("kind", "deployment/test/podinfo"),
    ] {
        world.template(name, keptn.clone(), query).await;
    }

    assert_eq!(value(world.check("pass").await), 0.5);
    assert_eq!(
        value(world.check("fail").await),
        42.0,
        "above the max of 1: a failing check"
    );
    let pending = "no values found: KeptnMetric test/pending has no status.value";
    checks.check("pending").await.no_data(pending);
    let garbage = "the status.value \"n/a\" of KeptnMetric test/garbage is not a number";
    checks.check("garbage").await.error(garbage);
    let missing = "cannot read KeptnMetric test/missing: not found: HTTP 404";
    checks.check("missing").await.error(missing);
    let short = "unexpected query format \"keptnmetric/test\": expected <keptnmetric|analysis>/<namespace>/<name>";
    checks.check("short").await.error(short);
    let kind = "unexpected kind \"deployment\" in the query";
    checks.check("kind").await.error(kind);
}

/// What the Keptn stand-in saw: each Analysis's name and spec.
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// Plays Keptn: completes each new Analysis of `good` (pass) or `bad` (fail); one of any
/// other definition is only marked `Progressing`.
fn play_keptn(client: kube::Client, seen: Seen) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let api = analyses(&client);
        loop {
            if let Ok(list) = api.list(&ListParams::default()).await {
                for a in list.items {
                    if a.data.get("status").is_some_and(|s| !s.is_null()) {
                        continue;
                    }
                    let name = a.metadata.name.clone().unwrap_or_default();
                    seen.lock()
                        .expect("lock")
                        .push((name.clone(), a.data["spec"].clone()));
                    let status = match a.data["spec"]["analysisDefinition"]["name"].as_str() {
                        Some("good") => json!({"state": "Completed", "pass": true}),
                        Some("bad") => json!({"state": "Completed", "pass": false}),
                        _ => json!({"state": "Progressing"}),
                    };
                    let _ = api
                        .patch_status(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"status": status})),
                        )
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keptn_analyses_run_once_and_are_deleted() {
    let world = World::new().await;
    install_keptn(&world.client).await;
    let seen: Seen = Arc::default();
    let keptn = play_keptn(world.client.clone(), seen.clone());
    let provider = json!({"type": "keptn"});
    for (name, query) in [
        (
            "good",
            "analysis/{{ namespace }}/good/5m/service={{ target }};env=Prod",
        ),
        ("bad", "analyses/test/bad"),
        ("never", "analysis/test/never/2m"),
    ] {
        world.template(name, provider.clone(), query).await;
    }
    let remaining = || async {
        analyses(&world.client)
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len()
    };

    // A passed Analysis is 1 and a failed one 0 (templates of analyses use min 1).
    assert_eq!(value(world.check("good").await), 1.0);
    assert_eq!(remaining().await, 0, "the Analysis is deleted");
    assert_eq!(value(world.check("bad").await), 0.0);
    assert_eq!(remaining().await, 0, "the Analysis is deleted");
    {
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), 2, "{seen:?}");
        let (name, spec) = &seen[0];
        let suffix = name
            .strip_prefix("good-")
            .expect("named after the definition");
        assert!(
            suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_hexdigit()),
            "{name}"
        );
        assert_eq!(
            spec,
            &json!({"analysisDefinition": {"name": "good"}, "timeframe": {"recent": "5m"},
                    "args": {"service": "podinfo", "env": "prod"}})
        );
        assert_eq!(
            seen[1].1,
            json!({"analysisDefinition": {"name": "bad"}, "timeframe": {"recent": "1m"},
                   "args": {}})
        );
    }

    // Never completed: an error after Flagger's 10 s, and the Analysis deleted all the same.
    let checks = world.checks("keptn", &[]);
    let start = Instant::now();
    let answer = checks.check("never").await;
    let took = start.elapsed();
    let m = answer.error("timed out after 10s waiting for Keptn to complete Analysis test/never-");
    assert!(m.contains("(status.state: Progressing)"), "{m}");
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(13),
        "{took:?}"
    );
    assert_eq!(remaining().await, 0, "the Analysis is deleted");
    keptn.abort();
}

/// A proxy to kube-sim that sends flaggerd's requests on with kube-sim's token, except
/// Keptn's: KeptnMetrics with a wrong token (kube-sim's 401), Analyses refused by RBAC (403),
/// the group's discovery failing (500; kube's client retries a 503 until the backend's 10 s
/// are over).
async fn refusing_proxy(kube_sim: String) -> String {
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            proxy(http.clone(), kube_sim.clone(), method, uri, headers, body)
        },
    );
    serve(app).await
}

/// What [`refusing_proxy`] answers to one request.
async fn proxy(
    http: reqwest::Client,
    kube_sim: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let path = uri.path();
    if path.contains("/analyses") {
        return status(403, "Forbidden", FORBIDDEN);
    }
    if path == "/apis/metrics.keptn.sh/v1beta1" {
        return status(500, "InternalError", INTERNAL);
    }
    let token = if path.contains("/keptnmetrics") {
        "wrong-token-0123456789"
    } else {
        "kube-sim-token"
    };
    let mut req = http
        .request(method, format!("{kube_sim}{uri}"))
        .bearer_auth(token)
        .body(body);
    if let Some(t) = headers.get("content-type") {
        req = req.header("content-type", t);
    }
    let resp = req.send().await.expect("kube-sim");
    let code = resp.status().as_u16();
    let body = resp.bytes().await.expect("body");
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("response")
}

const FORBIDDEN: &str = "analyses.metrics.keptn.sh is forbidden: User \"system:serviceaccount:flagger:flagger\" cannot create resource \"analyses\"";
const INTERNAL: &str = "an error on the server has prevented the request from succeeding";

/// A Kubernetes `Status` answer.
fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "reason": reason, "message": message, "code": code})
            .to_string(),
        ))
        .expect("response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keptn_refusals_of_the_api_server() {
    let world = World::new().await;
    install_keptn(&world.client).await;
    keptn_metric(&world.client, "pass", Some("0.5")).await;
    let provider = json!({"type": "keptn"});
    world
        .template("pass", provider.clone(), "keptnmetric/test/pass")
        .await;
    world
        .template("run", provider.clone(), "analysis/test/good")
        .await;
    let proxy = refusing_proxy(world.sim.url()).await;
    let config = kube::Config::new(proxy.parse().expect("url"));
    let proxied = world.through(kube::Client::try_from(config).expect("client"));
    let checks = proxied.checks("keptn", &["wrong-token-0123456789", "kube-sim-token"]);

    let unauthorized = "cannot read KeptnMetric test/pass: authentication failed: HTTP 401";
    checks.check("pass").await.error(unauthorized);
    let refused = "cannot create Analysis test/good-";
    let m = checks.check("run").await.error(refused);
    assert!(
        m.contains("forbidden: HTTP 403: analyses.metrics.keptn.sh is forbidden"),
        "{m}"
    );
    let unavailable =
        "cannot read the API metrics.keptn.sh/v1beta1: HTTP 500: an error on the server";
    checks.check_online("pass").await.offline(unavailable);

    // Directly, the same KeptnMetric reads fine.
    assert_eq!(value(world.check("pass").await), 0.5);
}
