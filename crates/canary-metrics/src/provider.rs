//! [`Metrics`]: the canary's metrics: Flagger's builtin checks and inline queries from
//! Prometheus (`-metrics-server` or the canary's `metricsServer`), and each MetricTemplate from
//! the backend its `spec.provider.type` names (see [`crate::backends`]).

use std::collections::BTreeMap;

use async_trait::async_trait;
use canary_api::{Canary, MetricTemplate};
use canary_core::MetricOutcome;
use canary_core::spec::Metric;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::Error;
use crate::MetricsProvider;
use crate::backends::{self, Backend, Failure, Settings};
use crate::prometheus::Prometheus;
use crate::query::{self, Model};

/// The metrics flaggerd judges: Prometheus for builtin and inline queries, each
/// MetricTemplate's own backend.
pub struct Metrics {
    default: Prometheus,
    address: String,
    settings: canary_core::Settings,
    client: Option<kube::Client>,
}

impl Metrics {
    /// Builtin and inline queries go to `address` (`-metrics-server`); MetricTemplates are
    /// read with `client`.
    pub fn new(
        address: &str,
        settings: canary_core::Settings,
        client: Option<kube::Client>,
    ) -> Result<Self, Error> {
        Ok(Metrics {
            default: Prometheus::new(address, false)?,
            address: address.into(),
            settings,
            client,
        })
    }

    fn server(&self, canary: &Canary) -> Result<Prometheus, Error> {
        match canary.spec.metrics_server.as_deref() {
            Some(a) if !a.is_empty() && a != self.address => Prometheus::new(a, false),
            _ => Ok(self.default.clone()),
        }
    }

    /// The backend and rendered query of a metric's MetricTemplate, with what its messages
    /// must name and hide.
    async fn template(
        &self,
        canary: &Canary,
        metric: &Metric,
        model: &Model,
    ) -> Result<Template, Error> {
        let Some(r) = &metric.template_ref else {
            return Err(Error::NoTemplateRef {
                metric: metric.name.clone(),
            });
        };
        let client = self.client.clone().ok_or(Error::NoClient)?;
        let ns = r
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .or(canary.metadata.namespace.clone())
            .unwrap_or_default();
        let api: Api<MetricTemplate> = Api::namespaced(client.clone(), &ns);
        let template = api.get(&r.name).await.map_err(|source| Error::Template {
            name: r.name.clone(),
            namespace: ns.clone(),
            source: Box::new(source),
        })?;
        let provider = &template.spec.provider;
        let mut secret = None;
        if let Some(s) = &provider.secret_ref {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
            let data = secrets
                .get(&s.name)
                .await
                .map_err(|source| canary_api::SecretError {
                    kind: "metric template",
                    name: r.name.clone(),
                    namespace: ns.clone(),
                    secret: s.name.clone(),
                    source: Box::new(source),
                })?
                .data
                .unwrap_or_default();
            secret = Some(
                data.into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect::<BTreeMap<_, _>>(),
            );
        }
        let name = format!("{}.{ns}", r.name);
        let label = format!("{} metric template {name}", provider.r#type);
        let interval = canary_core::duration::parse(metric.interval_or_default()).map_err(|e| {
            Error::Backend {
                label: label.clone(),
                message: format!("metric {}: interval: {e}", metric.name),
            }
        })?;
        let settings = Settings {
            kind: provider.r#type.clone(),
            address: provider.address.clone().filter(|a| !a.is_empty()),
            headers: provider
                .headers
                .iter()
                .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
                .collect(),
            region: provider.region.clone().filter(|r| !r.is_empty()),
            insecure_skip_verify: provider.insecure_skip_verify,
            secret,
            interval,
            kube: Some(client),
            default_prometheus: self.address.clone(),
        };
        let secrets = settings.secret_values();
        let query =
            query::render(&name, &template.spec.query, model).map_err(|source| Error::Render {
                name: name.clone(),
                source,
            })?;
        let backend = backends::build(&settings).map_err(|failure| Error::Backend {
            label: label.clone(),
            message: backends::shown(failure.message(), &secrets),
        })?;
        Ok(Template {
            backend,
            query,
            label,
            secrets,
        })
    }
}

/// A MetricTemplate ready to run.
struct Template {
    backend: Box<dyn Backend>,
    query: String,
    /// `<type> metric template <name>.<namespace>`, the start of each of its messages.
    label: String,
    /// The Secret's values, which no message may hold.
    secrets: Vec<String>,
}

impl Template {
    /// The template's check: its value, or a failure naming the backend, the template and
    /// the cause (never a credential), logged with the query.
    async fn check(&self, canary: &Canary, metric: &Metric) -> MetricOutcome {
        let result = match self.backend.query(&self.query).await {
            Ok(v) if !v.is_finite() => Err(Failure::NoData(format!("no values found: {v}"))),
            other => other,
        };
        let result = outcome(result.map_err(|f| {
            f.map(|m| backends::shown(&format!("{}: {m}", self.label), &self.secrets))
        }));
        log(
            canary,
            metric,
            &backends::redact(&self.query, &self.secrets),
            &result,
        );
        result
    }

    /// The template's backend answers (Flagger's `IsOnline`).
    async fn online(&self) -> Result<(), Error> {
        self.backend.online().await.map_err(|f| Error::Backend {
            label: self.label.clone(),
            message: backends::shown(f.message(), &self.secrets),
        })
    }
}

/// The template model of a canary and metric.
pub fn model(canary: &Canary, metric: &Metric) -> Model {
    let spec: &canary_core::CanarySpec = &canary.spec;
    let target = spec.target_ref.name.clone();
    Model {
        name: canary.metadata.name.clone().unwrap_or_default(),
        namespace: canary.metadata.namespace.clone().unwrap_or_default(),
        service: spec.service_name().to_string(),
        ingress: spec
            .ingress_ref
            .as_ref()
            .map_or(target.clone(), |r| r.name.clone()),
        route: spec
            .route_ref
            .as_ref()
            .map_or(target.clone(), |r| r.name.clone()),
        target,
        interval: metric.interval_or_default().to_string(),
        variables: metric.template_variables.clone(),
    }
}

/// A backend's answer as the analysis judges it.
fn outcome(answer: backends::Answer) -> MetricOutcome {
    match answer {
        Ok(v) => MetricOutcome::Value(v),
        Err(Failure::NoData(m)) => MetricOutcome::NoData(m),
        Err(Failure::Error(m)) => MetricOutcome::Error(m),
    }
}

/// Runs one check's query (its value times `scale`) and logs the query with what it gave,
/// so an operator sees what each check measured.
async fn check(
    server: &Prometheus,
    canary: &Canary,
    metric: &Metric,
    q: &str,
    scale: f64,
) -> MetricOutcome {
    let result = outcome(server.query(q).await.map(|v| v * scale));
    log(canary, metric, q, &result);
    result
}

/// Logs one check's query with what it gave, so an operator sees what each check measured.
fn log(canary: &Canary, metric: &Metric, q: &str, result: &MetricOutcome) {
    let id = format!(
        "{}.{}",
        canary.metadata.name.as_deref().unwrap_or_default(),
        canary.metadata.namespace.as_deref().unwrap_or_default()
    );
    match &result {
        MetricOutcome::Value(v) => {
            tracing::info!(canary = %id, metric = %metric.name, query = %q, value = v, "metric check {}: {v}", metric.name)
        }
        MetricOutcome::NoData(e) | MetricOutcome::Error(e) => {
            tracing::info!(canary = %id, metric = %metric.name, query = %q, error = %e, "metric check {}: {e}", metric.name)
        }
    }
}

#[async_trait]
impl MetricsProvider for Metrics {
    async fn query(&self, canary: &Canary, metric: &Metric) -> MetricOutcome {
        let model = model(canary, metric);
        if metric.template_ref.is_some() {
            return match self.template(canary, metric, &model).await {
                Ok(template) => template.check(canary, metric).await,
                Err(e) => MetricOutcome::Error(canary_core::error_chain(&e)),
            };
        }
        let server = match self.server(canary) {
            Ok(s) => s,
            Err(e) => return MetricOutcome::Error(canary_core::error_chain(&e)),
        };
        if let Some(builtin) = metric.builtin() {
            let observer =
                query::observer(&canary_core::metrics_observer(&canary.spec, &self.settings));
            let q = match query::render_builtin(observer, builtin, &model) {
                Ok(q) => q,
                Err(e) => return MetricOutcome::Error(e.to_string()),
            };
            let scale = if builtin == canary_core::spec::Builtin::Duration
                && query::duration_in_seconds(observer)
            {
                1000.0
            } else {
                1.0
            };
            return check(&server, canary, metric, &q, scale).await;
        }
        match &metric.query {
            Some(q) => match query::render(&metric.name, q, &model) {
                Ok(q) => check(&server, canary, metric, &q, 1.0).await,
                Err(e) => MetricOutcome::Error(e.to_string()),
            },
            None => {
                MetricOutcome::Error("no usable metrics template and query were configured".into())
            }
        }
    }

    async fn check_online(&self, canary: &Canary) -> Result<(), Error> {
        let metrics = canary
            .spec
            .analysis()
            .map(|a| a.metrics.clone())
            .unwrap_or_default();
        if metrics.iter().any(|m| m.template_ref.is_none()) {
            self.server(canary)?.is_online().await?;
        }
        for m in metrics.iter().filter(|m| m.template_ref.is_some()) {
            self.template(canary, m, &model(canary, m))
                .await?
                .online()
                .await?;
        }
        Ok(())
    }
}
