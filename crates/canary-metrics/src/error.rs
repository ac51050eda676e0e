//! Why a metrics provider could not be used. Each names the MetricTemplate or server it is
//! about and keeps its cause as the source; addresses never carry credentials.

use crate::prometheus::QueryError;
use crate::query::RenderError;

/// Why a metrics provider could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No `-metrics-server` was given.
    #[error("no metrics provider is configured (-metrics-server)")]
    Unconfigured,
    /// The HTTP client could not be built (TLS options).
    #[error("cannot build the Prometheus client")]
    Client(#[source] reqwest::Error),
    /// A metric names a MetricTemplate but flaggerd was given no Kubernetes client.
    #[error("MetricTemplates need a Kubernetes client")]
    NoClient,
    /// The metric has no `templateRef`.
    #[error("metric {metric}: no templateRef")]
    NoTemplateRef {
        /// The metric's name.
        metric: String,
    },
    /// The MetricTemplate could not be read.
    #[error("metric template {name}.{namespace} error")]
    Template {
        /// Its name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The Secret of the template's provider could not be read.
    #[error(transparent)]
    TemplateSecret(#[from] canary_api::SecretError),
    /// A MetricTemplate's backend cannot be used or did not answer its availability check.
    #[error("{label}: {message}")]
    Backend {
        /// `<type> metric template <name>.<namespace>`.
        label: String,
        /// Why, without any credential.
        message: String,
    },
    /// `spec.query` does not render.
    #[error("metric template {name} query render error")]
    Render {
        /// `<name>.<namespace>` of the MetricTemplate.
        name: String,
        /// Where and why.
        #[source]
        source: RenderError,
    },
    /// Prometheus did not answer the availability check.
    #[error("prometheus at {address} is not available")]
    Offline {
        /// The server, without credentials.
        address: String,
        /// Why.
        #[source]
        source: QueryError,
    },
    /// Prometheus answered the availability check with something else than 1.
    #[error("prometheus at {address} answered vector(1) with {value}")]
    NotOne {
        /// The server, without credentials.
        address: String,
        /// What it answered.
        value: f64,
    },
}
