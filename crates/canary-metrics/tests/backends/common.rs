//! What every backend test shares: a cluster (kube-sim) holding the MetricTemplate and its
//! Secret, the canary and metric that use it, a vendor stand-in on a loopback port (or one
//! that records the requests it gets), and the assertions on a failure's message (backend,
//! template, cause, no credential).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::Query;
use axum::http::{HeaderMap, Uri};
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, on};
use canary_api::Canary;
use canary_core::MetricOutcome;
use canary_core::spec::Metric;
use canary_metrics::{Metrics, MetricsProvider};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, PostParams};
use mesh_sim::vendors;
use serde_json::{Value, json};

/// Serves `app` on a loopback port; answers its base URL.
pub async fn serve(app: axum::Router) -> String {
    vendors::serve(app).await.expect("a loopback port")
}

/// A loopback address nothing listens on.
pub async fn unreachable() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// The provider reading MetricTemplates and Secrets through `client`. No test here asks
/// Prometheus, so its address need not resolve.
fn metrics(client: kube::Client) -> Metrics {
    Metrics::new(
        "http://prometheus.invalid:9090",
        canary_core::Settings::new("istio"),
        Some(client),
    )
    .expect("metrics")
}

/// A cluster with Flagger's CRDs and the namespace `test`, and the provider reading it.
pub struct World {
    /// Shared with the worlds [`World::through`] makes; dropping the last stops the cluster.
    pub sim: Arc<kube_sim::KubeSim>,
    pub client: kube::Client,
    pub metrics: Metrics,
}

impl World {
    pub async fn new() -> World {
        let sim = kube_sim::KubeSim::start().await.expect("kube-sim");
        let client = sim.client().await.expect("client");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in canary_api::crd_objects() {
            crds.create(&PostParams::default(), &crd)
                .await
                .expect("crd");
        }
        let ns: Api<Namespace> = Api::all(client.clone());
        ns.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "test"}})).expect("ns"),
        )
        .await
        .expect("namespace");
        World {
            sim: Arc::new(sim),
            metrics: metrics(client.clone()),
            client,
        }
    }

    /// This cluster reached through `client`, for a proxy in front of kube-sim.
    pub fn through(&self, client: kube::Client) -> World {
        World {
            sim: self.sim.clone(),
            metrics: metrics(client.clone()),
            client,
        }
    }

    /// (Re)creates the Secret `name` in `test` with `data`.
    pub async fn secret(&self, name: &str, data: &[(&str, &str)]) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), "test");
        let _ = api.delete(name, &DeleteParams::default()).await;
        let data: BTreeMap<&str, &str> = data.iter().copied().collect();
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                .expect("secret"),
        )
        .await
        .expect("create secret");
    }

    /// (Re)creates the MetricTemplate `name` in `test` with `provider` and `query`.
    pub async fn template(&self, name: &str, provider: Value, query: &str) {
        let api: Api<canary_api::MetricTemplate> = Api::namespaced(self.client.clone(), "test");
        let _ = api.delete(name, &DeleteParams::default()).await;
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
                "metadata": {"name": name},
                "spec": {"provider": provider, "query": query}}))
            .expect("template"),
        )
        .await
        .expect("create template");
    }

    /// (Re)creates a MetricTemplate for each of `names`, all with `provider`, each with the
    /// query `query(name)`.
    pub async fn templates(&self, names: &[&str], provider: Value, query: impl Fn(&str) -> String) {
        for name in names {
            self.template(name, provider.clone(), &query(name)).await;
        }
    }

    /// The check of a metric of canary `podinfo.test` using template `name`, interval `1m`.
    pub async fn check(&self, name: &str) -> MetricOutcome {
        let (canary, metric) = canary(name);
        self.metrics.query(&canary, &metric).await
    }

    /// The availability check of that canary's providers.
    pub async fn online(&self, name: &str) -> Result<(), String> {
        let (canary, _) = canary(name);
        self.metrics
            .check_online(&canary)
            .await
            .map_err(|e| canary_core::error_chain(&e))
    }

    /// The assertions on the failures of backend `kind`; see [`Checks`].
    pub fn checks<'a>(&'a self, kind: &'static str, secrets: &[&'a str]) -> Checks<'a> {
        Checks {
            world: self,
            kind,
            secrets: secrets.to_vec(),
        }
    }
}

/// The templates each vendor test creates on its stand-in, whose table [`answers`] makes:
/// `errors` passes at 0.5, `latency` fails at 42 (above the metric's max of 1), and `nothing`
/// (no series) and `nan` (a NaN) have no data.
pub const TEMPLATES: [&str; 4] = ["errors", "latency", "nothing", "nan"];

/// A vendor stand-in's table for [`TEMPLATES`], keyed by `rendered(name)`: the query the
/// vendor gets for the template `name`.
pub fn answers(rendered: impl Fn(&str) -> String) -> vendors::Source {
    let rows = [
        ("errors", Some(0.5)),
        ("latency", Some(42.0)),
        ("nan", Some(f64::NAN)),
    ]
    .map(|(name, value)| (rendered(name), value));
    let rows: Vec<(&str, Option<f64>)> = rows.iter().map(|(q, v)| (q.as_str(), *v)).collect();
    vendors::fixed(&rows)
}

/// `query` as flaggerd renders it for the canary [`canary`] makes, whose target is `podinfo`.
pub fn rendered(query: &str) -> String {
    query.replace("{{ target }}", "podinfo")
}

/// Canary `podinfo.test` with one metric `m` on template `name`.
pub fn canary(name: &str) -> (Canary, Metric) {
    let canary: Canary = serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "threshold": 5, "metrics": [
                {"name": "m", "templateRef": {"name": name}, "interval": "1m",
                 "thresholdRange": {"max": 1}}]}}}))
    .expect("canary");
    let metric = canary.spec.analysis().expect("analysis").metrics[0].clone();
    (canary, metric)
}

/// The value of a passing check, or a panic naming what came instead.
#[track_caller]
pub fn value(outcome: MetricOutcome) -> f64 {
    match outcome {
        MetricOutcome::Value(v) => v,
        other => panic!("expected a value, got {other:?}"),
    }
}

/// The message of a "no data" outcome.
#[track_caller]
pub fn no_data(outcome: MetricOutcome) -> String {
    match outcome {
        MetricOutcome::NoData(m) => m,
        other => panic!("expected no data, got {other:?}"),
    }
}

/// The message of an error outcome.
#[track_caller]
pub fn error(outcome: MetricOutcome) -> String {
    match outcome {
        MetricOutcome::Error(m) => m,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// `message` names the backend and template (`<kind> metric template <name>.test: `), holds
/// `cause`, and holds none of `secrets`.
#[track_caller]
pub fn names(message: &str, kind: &str, template: &str, cause: &str, secrets: &[&str]) {
    let start = format!("{kind} metric template {template}.test: ");
    assert!(
        message.starts_with(&start),
        "{message:?} should start with {start:?}"
    );
    assert!(message.contains(cause), "{message:?} should hold {cause:?}");
    for s in secrets {
        assert!(!message.contains(s), "{message:?} leaks {s:?}");
    }
}

/// The checks of one backend's templates whose failures a test asserts on: each answer's
/// message must pass [`names`] with the backend's kind and secrets.
///
/// A check is awaited first and asserted on after, by the plain methods of [`Answer`]:
/// `#[track_caller]` does not reach through an async fn, and a failing assertion should name
/// the test's line.
pub struct Checks<'a> {
    world: &'a World,
    kind: &'static str,
    secrets: Vec<&'a str>,
}

impl<'a> Checks<'a> {
    /// These checks with messages held to `secrets` instead: once a test has put wrong
    /// credentials in the Secret, those are what a message could leak.
    pub fn hiding(&self, secrets: &[&'a str]) -> Checks<'a> {
        self.world.checks(self.kind, secrets)
    }

    /// [`TEMPLATES`] as every vendor stand-in answers them (see [`answers`]): `errors` a
    /// passing 0.5, `latency` a failing 42, `nothing` and `nan` no data, `nan` for `nan_cause`
    /// (some backends word a NaN apart).
    ///
    /// These assertions run in an async fn, out of `#[track_caller]`'s reach: a failure points
    /// at the line here, which names its template, under the name of the failing test.
    pub async fn values_and_no_data(&self, nan_cause: &str) {
        assert_eq!(value(self.world.check("errors").await), 0.5, "errors");
        let latency = value(self.world.check("latency").await);
        assert_eq!(
            latency, 42.0,
            "latency, above the max of 1: a failing check"
        );
        self.check("nothing").await.no_data("no values found");
        self.check("nan").await.no_data(nan_cause);
    }

    /// The check of the metric using `template`.
    pub async fn check<'c>(&'c self, template: &'c str) -> Answer<'c, MetricOutcome> {
        let answer = self.world.check(template).await;
        Answer {
            checks: self,
            template,
            answer,
        }
    }

    /// The availability check of the providers of the canary using `template`.
    pub async fn check_online<'c>(&'c self, template: &'c str) -> Answer<'c, Result<(), String>> {
        let answer = self.world.online(template).await;
        Answer {
            checks: self,
            template,
            answer,
        }
    }

    #[track_caller]
    fn names(&self, message: &str, template: &str, cause: &str) {
        names(message, self.kind, template, cause, &self.secrets);
    }
}

/// A backend's answer to a check of `template`, to assert on.
pub struct Answer<'c, T> {
    checks: &'c Checks<'c>,
    template: &'c str,
    answer: T,
}

impl Answer<'_, MetricOutcome> {
    /// No data, for `cause`; answers the message.
    #[track_caller]
    pub fn no_data(self, cause: &str) -> String {
        let message = no_data(self.answer);
        self.checks.names(&message, self.template, cause);
        message
    }

    /// An error, for `cause`; answers the message.
    #[track_caller]
    pub fn error(self, cause: &str) -> String {
        let message = error(self.answer);
        self.checks.names(&message, self.template, cause);
        message
    }
}

impl Answer<'_, Result<(), String>> {
    /// Offline, for `cause`; answers the message.
    #[track_caller]
    pub fn offline(self, cause: &str) -> String {
        let message = self.answer.expect_err("offline");
        self.checks.names(&message, self.template, cause);
        message
    }
}

/// One request a [`recording`] stand-in received.
#[derive(Debug)]
pub struct Request {
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query parameter `name` as a number, 0 when it is none: a bound of a window, which
    /// the tests subtract.
    pub fn number(&self, name: &str) -> i64 {
        self.param(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// The body as JSON; null when it is not JSON, which no expected body is.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// What a [`recording`] stand-in received, oldest first.
pub type Requests = Arc<Mutex<Vec<Request>>>;

/// A stand-in on a loopback port serving `method` at each of `paths` (axum's route syntax),
/// recording every request and answering it with `answer`; answers its base URL and the
/// record. For the tests of a request's shape: a vendor stand-in answers only a request
/// it accepts, and says little about one it refuses.
pub async fn recording<R: IntoResponse + Send + 'static>(
    method: MethodFilter,
    paths: &[&str],
    answer: impl Fn(&Request) -> R + Clone + Send + Sync + 'static,
) -> (String, Requests) {
    let requests: Requests = Arc::default();
    let record = requests.clone();
    let handler = move |uri: Uri,
                        Query(query): Query<Vec<(String, String)>>,
                        headers: HeaderMap,
                        body: String| {
        let (record, answer) = (record.clone(), answer.clone());
        async move {
            let request = Request {
                path: uri.path().to_string(),
                query,
                headers,
                body,
            };
            let response = answer(&request);
            record.lock().expect("lock").push(request);
            response
        }
    };
    let app = paths.iter().fold(axum::Router::new(), |app, path| {
        app.route(path, on(method, handler.clone()))
    });
    (serve(app).await, requests)
}
