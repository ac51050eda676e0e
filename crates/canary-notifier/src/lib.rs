//! canary-notifier: alerts to chat (Slack, Teams, Discord, Rocket, Google Chat).
//!
//! [`Notifier`] receives the engine's alerts; providers plug in here. A failed alert is
//! logged by the caller and never blocks or changes the analysis.

use async_trait::async_trait;
use canary_api::Canary;
use canary_core::Alert;

/// Sends alerts.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends `alert` about `canary` to the providers that take its severity.
    async fn send(&self, canary: &Canary, alert: &Alert) -> Result<(), String>;
}

/// No alerting configured: alerts are dropped.
#[derive(Clone, Copy, Debug, Default)]
pub struct NopNotifier;

#[async_trait]
impl Notifier for NopNotifier {
    async fn send(&self, _: &Canary, _: &Alert) -> Result<(), String> {
        Ok(())
    }
}
