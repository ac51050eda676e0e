//! canary-metrics: the values the analysis judges.
//!
//! [`MetricsProvider`] answers one metric of a canary with a value, "no data" or an error;
//! canary-core compares it with the threshold. Backends (Prometheus with Flagger's builtin
//! queries, MetricTemplates) plug in here. A provider must never turn a failure into a value:
//! an unreachable backend is an error, which fails the check.

pub mod backends;
mod error;
pub mod gotemplate;
pub mod prometheus;
mod provider;
pub mod query;

pub use error::Error;
pub use provider::{Metrics, model};

use async_trait::async_trait;
use canary_api::Canary;
use canary_core::MetricOutcome;
use canary_core::spec::Metric;

/// The source of metric values.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait MetricsProvider: Send + Sync {
    /// The value of `metric` for `canary` now.
    async fn query(&self, canary: &Canary, metric: &Metric) -> MetricOutcome;
    /// Whether the providers the canary's metrics use answer.
    async fn check_online(&self, canary: &Canary) -> Result<(), Error>;
}

/// The provider used when none is configured: every query is an error, so a canary with
/// metrics fails its checks instead of passing them.
#[derive(Clone, Debug, Default)]
pub struct Unconfigured;

#[async_trait]
impl MetricsProvider for Unconfigured {
    async fn query(&self, _: &Canary, metric: &Metric) -> MetricOutcome {
        MetricOutcome::Error(format!(
            "no metrics provider is configured for metric {}",
            metric.name
        ))
    }
    async fn check_online(&self, _: &Canary) -> Result<(), Error> {
        Err(Error::Unconfigured)
    }
}
