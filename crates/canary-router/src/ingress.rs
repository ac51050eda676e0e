//! What the providers that clone the Ingress `spec.ingressRef` names into `<ingress>-canary`
//! share: NGINX (`nginx.rs`, canary annotations) and Skipper (`skipper.rs`, weighted
//! backends); [`crate::cloned::CloneRouter`] reads the original and applies the clone.

use canary_api::Canary;
use kube::core::{ApiResource, GroupVersionKind};

use crate::{Error, Result};

/// `networking.k8s.io/v1` Ingress.
pub fn resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("networking.k8s.io", "v1", "Ingress");
    ApiResource::from_gvk_with_plural(&gvk, "ingresses")
}

/// The name of the Ingress the canary clones (`spec.ingressRef.name`).
pub fn ingress_name(canary: &Canary) -> Result<&str> {
    canary
        .spec
        .ingress_ref
        .as_ref()
        .map(|r| r.name.as_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "spec.ingressRef: the {} provider needs the Ingress to clone (ingressRef.name)",
                canary.spec.provider.as_deref().unwrap_or_default()
            ))
        })
}

/// `<ingress>-canary`.
pub fn canary_ingress_name(canary: &Canary) -> Result<String> {
    Ok(format!("{}-canary", ingress_name(canary)?))
}
