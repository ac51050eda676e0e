//! [`PrometheusProvider`]: the canary's metrics from Prometheus: Flagger's builtin checks per
//! provider, inline queries, and MetricTemplates of type `prometheus` (other types answer a
//! clear "not supported yet" error, which fails the check).

use std::collections::BTreeMap;

use async_trait::async_trait;
use canary_api::{Canary, MetricTemplate};
use canary_core::MetricOutcome;
use canary_core::spec::Metric;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::Error;
use crate::MetricsProvider;
use crate::prometheus::{Auth, Prometheus, QueryError};
use crate::query::{self, Model};

/// Metrics from Prometheus.
pub struct PrometheusProvider {
    default: Prometheus,
    address: String,
    settings: canary_core::Settings,
    client: Option<kube::Client>,
}

impl PrometheusProvider {
    /// Builtin and inline queries go to `address` (`-metrics-server`); MetricTemplates are
    /// read with `client`.
    pub fn new(
        address: &str,
        settings: canary_core::Settings,
        client: Option<kube::Client>,
    ) -> Result<Self, Error> {
        Ok(PrometheusProvider {
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

    async fn template(
        &self,
        canary: &Canary,
        metric: &Metric,
        model: &Model,
    ) -> Result<(Prometheus, String), Error> {
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
        if provider.r#type != "prometheus" {
            return Err(Error::UnsupportedProvider {
                name: r.name.clone(),
                namespace: ns.clone(),
                kind: provider.r#type.clone(),
            });
        }
        let address = provider
            .address
            .clone()
            .unwrap_or_else(|| self.address.clone());
        let mut auth = None;
        if let Some(s) = &provider.secret_ref {
            let secrets: Api<Secret> = Api::namespaced(client, &ns);
            let secret = secrets
                .get(&s.name)
                .await
                .map_err(|source| canary_api::SecretError {
                    kind: "metric template",
                    name: r.name.clone(),
                    namespace: ns.clone(),
                    secret: s.name.clone(),
                    source: Box::new(source),
                })?;
            let data: BTreeMap<String, String> = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            auth = match (
                data.get("token"),
                data.get("username"),
                data.get("password"),
            ) {
                (Some(t), _, _) => Some(Auth::Bearer(t.clone())),
                (None, Some(u), Some(p)) => Some(Auth::Basic(u.clone(), p.clone())),
                _ => None,
            };
        }
        let headers = provider
            .headers
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
            .collect();
        let server = Prometheus::new(&address, provider.insecure_skip_verify)?.with(auth, headers);
        let name = format!("{}.{ns}", r.name);
        let q =
            query::render(&name, &template.spec.query, model).map_err(|source| Error::Render {
                name: name.clone(),
                source,
            })?;
        Ok((server, q))
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

fn outcome(result: Result<f64, QueryError>) -> MetricOutcome {
    match result {
        Ok(v) => MetricOutcome::Value(v),
        Err(e @ (QueryError::NoValues | QueryError::NaN)) => MetricOutcome::NoData(e.to_string()),
        Err(e) => MetricOutcome::Error(canary_core::error_chain(&e)),
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
    let result = outcome(server.instant(q).await.map(|v| v * scale));
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
    result
}

#[async_trait]
impl MetricsProvider for PrometheusProvider {
    async fn query(&self, canary: &Canary, metric: &Metric) -> MetricOutcome {
        let model = model(canary, metric);
        if metric.template_ref.is_some() {
            return match self.template(canary, metric, &model).await {
                Ok((server, q)) => check(&server, canary, metric, &q, 1.0).await,
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
            let (server, _) = self.template(canary, m, &model(canary, m)).await?;
            server.is_online().await?;
        }
        Ok(())
    }
}
