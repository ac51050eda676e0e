//! External metrics: a stand-in of an external metrics adapter (`external.metrics.k8s.io`)
//! reached through `spec.provider.address` with the Secret's bearer token, checking the token
//! and the label selector as an adapter does; and kube-sim, which serves no such API, reached
//! through flaggerd's cluster client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::common::*;

const TOKEN: &str = "em-token-0123456789";
const SECRET: &[(&str, &str)] = &[("token", TOKEN)];

fn provider(address: &str) -> Value {
    json!({"type": "externalmetrics", "address": address, "secretRef": {"name": "em"}})
}

/// What the adapter was asked: namespace, metric, label selector.
type Seen = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

/// An external metrics adapter: `test/errors` (for `app=podinfo` only) is `500m`,
/// `test/latency` `42`, `default/plain` `2k`; `test/nothing` and `kube-system/dummy-metric`
/// have no items; any other metric is unknown (404). A wrong or missing token is refused (401).
fn adapter(seen: Seen) -> axum::Router {
    axum::Router::new().route(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}",
        axum::routing::get(
            move |Path((ns, metric)): Path<(String, String)>,
                  Query(q): Query<HashMap<String, String>>,
                  headers: HeaderMap| {
                let seen = seen.clone();
                async move {
                    let status = |code: StatusCode, reason: &str, message: &str| {
                        (
                            code,
                            json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                   "status": "Failure", "reason": reason, "message": message,
                                   "code": code.as_u16()})
                            .to_string(),
                        )
                    };
                    let auth = headers
                        .get("authorization")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or_default();
                    if auth != format!("Bearer {TOKEN}") {
                        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
                    }
                    let selector = q.get("labelSelector").cloned();
                    seen.lock()
                        .expect("lock")
                        .push((ns.clone(), metric.clone(), selector.clone()));
                    let value = match (ns.as_str(), metric.as_str(), selector.as_deref()) {
                        ("test", "errors", Some("app=podinfo")) => Some("500m"),
                        ("test", "errors", _) => None,
                        ("test", "latency", _) => Some("42"),
                        ("default", "plain", _) => Some("2k"),
                        ("test", "nothing", _) | ("kube-system", "dummy-metric", _) => None,
                        _ => {
                            return status(
                                StatusCode::NOT_FOUND,
                                "NotFound",
                                &format!("the server could not find the metric {metric}"),
                            );
                        }
                    };
                    let items: Vec<Value> = value
                        .map(|v| {
                            json!({"metricName": metric, "metricLabels": {"app": "podinfo"},
                                   "timestamp": "2026-01-01T00:00:00Z", "value": v})
                        })
                        .into_iter()
                        .collect();
                    (
                        StatusCode::OK,
                        json!({"kind": "ExternalMetricValueList",
                               "apiVersion": "external.metrics.k8s.io/v1beta1",
                               "metadata": {}, "items": items})
                        .to_string(),
                    )
                }
            },
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn externalmetrics_values_and_failures() {
    let seen: Seen = Arc::default();
    let address = serve(adapter(seen.clone())).await;
    let world = World::new().await;
    world.secret("em", SECRET).await;
    for (name, query) in [
        (
            "errors",
            "{{ namespace }}/errors?labelSelector=app%3D{{ target }}",
        ),
        ("latency", "test/latency"),
        ("plain", "plain"),
        ("nothing", "test/nothing"),
        ("unknown", "test/unknown"),
        ("slashes", "test/errors/extra"),
        ("empty", "test/"),
        ("selector", "test/errors?labelSelector=app%3D%3D%3D"),
    ] {
        world.template(name, provider(&address), query).await;
    }
    let checks = world.checks("externalmetrics", &[TOKEN]);

    assert_eq!(value(world.check("errors").await), 0.5, "500m");
    assert_eq!(
        value(world.check("latency").await),
        42.0,
        "above the max of 1: a failing check"
    );
    assert_eq!(value(world.check("plain").await), 2000.0, "2k in default");
    world.online("errors").await.expect("online");
    assert_eq!(
        seen.lock().expect("lock").as_slice(),
        [
            ("test".into(), "errors".into(), Some("app=podinfo".into())),
            ("test".into(), "latency".into(), None),
            ("default".into(), "plain".into(), None),
            ("kube-system".into(), "dummy-metric".into(), None),
        ]
    );

    let nothing = "no values found: no external metric nothing in test";
    checks.check("nothing").await.no_data(nothing);
    let refused = "query refused: HTTP 404";
    checks.check("unknown").await.error(refused);
    let slashes = "too many slashes: expected [<namespace>/]<metricName>";
    checks.check("slashes").await.error(slashes);
    let empty = "the metric name is empty";
    checks.check("empty").await.error(empty);
    let selector = "invalid label selector \"app===\"";
    checks.check("selector").await.error(selector);

    // A wrong token: the adapter's 401, online or not.
    world.secret("em", &[("token", "wrong-token-abcdef")]).await;
    let wrong = checks.hiding(&["wrong-token-abcdef", TOKEN]);
    let unauthorized = "authentication failed: HTTP 401";
    wrong.check("errors").await.error(unauthorized);
    let unavailable = format!("external metrics service unavailable: {unauthorized}");
    let wrong = checks.hiding(&["wrong-token-abcdef"]);
    wrong.check_online("errors").await.offline(&unavailable);

    // No `token` in the Secret: no bearer is sent (Flagger's token is optional), so refused.
    world.secret("em", &[("other", "value-0123456789")]).await;
    let anonymous = checks.hiding(&["value-0123456789"]);
    anonymous.check("errors").await.error(unauthorized);

    // Nothing listening.
    world.secret("em", SECRET).await;
    let down = unreachable().await;
    world
        .template("errors", provider(&down), "test/errors")
        .await;
    let unreachable = format!("unreachable: {down}");
    checks.check("errors").await.error(&unreachable);
}

/// Without an address the cluster's API server is asked; kube-sim serves no external metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn externalmetrics_through_the_cluster() {
    let world = World::new().await;
    world
        .template(
            "cluster",
            json!({"type": "externalmetrics"}),
            "test/errors?labelSelector=app%3Dpodinfo",
        )
        .await;
    let checks = world.checks("externalmetrics", &[]);
    let not_found = "the external metrics API: not found: HTTP 404";
    let m = checks.check("cluster").await.error(not_found);
    assert!(m.contains("is an external metrics adapter serving"), "{m}");
    let unavailable = format!("external metrics service unavailable: {not_found}");
    checks.check_online("cluster").await.offline(&unavailable);
}
