//! canary-router: how traffic reaches the primary and the canary.
//!
//! The [`TrafficRouter`] trait is what the controller asks of a provider: create its routing
//! objects, set and read the weights, and revert on deletion. The `kubernetes` provider has
//! no routing object (blue/green through the ClusterIP services only); the mesh providers
//! (Istio, Linkerd, App Mesh, Gateway API) plug in here. This crate never decides when to
//! move traffic: canary-core does.

use async_trait::async_trait;
use canary_api::Canary;
use canary_core::Routes;

/// Errors of a router.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The provider is not one Flagger knows.
    #[error("unknown provider {0:?}; expected one of {list}", list = canary_core::spec::KNOWN_PROVIDERS.join(", "))]
    UnknownProvider(String),
    /// The provider is known but flaggerd does not route with it yet.
    #[error("provider {0:?} is not supported yet; supported: kubernetes")]
    Unsupported(String),
    /// The routing objects could not be read or written.
    #[error("{0}")]
    Io(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A provider's control of traffic between `<name>-primary` and `<name>-canary`.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait TrafficRouter: Send + Sync {
    /// Creates or updates the provider's objects for the canary, keeping current weights.
    async fn reconcile(&self, canary: &Canary) -> Result<()>;
    /// Sets the weights (and mirroring).
    async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<()>;
    /// Reads the weights back from the provider's objects.
    async fn get_routes(&self, canary: &Canary) -> Result<Routes>;
    /// Restores what `revertOnDeletion` promises.
    async fn finalize(&self, canary: &Canary) -> Result<()>;
}

/// The `kubernetes` provider: no routing object. The engine derives its routes from the
/// iterations, so setting routes is a no-op and reading them answers all-primary.
#[derive(Clone, Copy, Debug, Default)]
pub struct KubernetesRouter;

#[async_trait]
impl TrafficRouter for KubernetesRouter {
    async fn reconcile(&self, _: &Canary) -> Result<()> {
        Ok(())
    }
    async fn set_routes(&self, _: &Canary, _: Routes) -> Result<()> {
        Ok(())
    }
    async fn get_routes(&self, _: &Canary) -> Result<Routes> {
        Ok(Routes::default())
    }
    async fn finalize(&self, _: &Canary) -> Result<()> {
        Ok(())
    }
}

/// The router for a provider name.
pub fn for_provider(provider: &str) -> Result<Box<dyn TrafficRouter>> {
    if !canary_core::validate::is_known_provider(provider) {
        return Err(Error::UnknownProvider(provider.to_string()));
    }
    match provider {
        "kubernetes" => Ok(Box::new(KubernetesRouter)),
        other => Err(Error::Unsupported(other.to_string())),
    }
}
