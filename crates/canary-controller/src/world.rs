//! [`World`]: the reads and writes of the objects around one canary, through the watch
//! caches, and [`retry`] for a request that meets a passing API server error.

use std::sync::Arc;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use serde_json::Value;

use crate::cache::{self, Caches};
use crate::{Context, Error, MANAGER, configs, knative};
use canary_api::Canary;

/// KEDA's `keda.sh/v1alpha1` ScaledObject.
fn scaled_object() -> ApiResource {
    let gvk = kube::core::GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
    ApiResource::from_gvk_with_plural(&gvk, "scaledobjects")
}

/// Reads and writes of the objects around one canary. Reads come from the watch caches
/// (the first read of an object is a GET); writes are skipped when the cached object already
/// holds what would be written, and what a write returns updates the cache.
#[derive(Clone)]
pub struct World {
    client: kube::Client,
    ns: String,
    config_tracking: bool,
    caches: Arc<Caches>,
}

impl World {
    pub(crate) fn new(ctx: &Context, _canary: &Canary, ns: &str) -> Self {
        World {
            client: ctx.client.clone(),
            ns: ns.into(),
            config_tracking: ctx.settings.config_tracking,
            caches: ctx.caches.clone(),
        }
    }

    /// The API of a kind the world reads and writes; its group, version and plural come
    /// from k8s-openapi's types.
    fn api(&self, kind: &str) -> Api<DynamicObject> {
        use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
        use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
        use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
        use k8s_openapi::api::networking::v1::Ingress;
        let ar = match kind {
            "DaemonSet" => ApiResource::erase::<DaemonSet>(&()),
            "ConfigMap" => ApiResource::erase::<ConfigMap>(&()),
            "Secret" => ApiResource::erase::<Secret>(&()),
            "Service" => ApiResource::erase::<Service>(&()),
            "HorizontalPodAutoscaler" => ApiResource::erase::<HorizontalPodAutoscaler>(&()),
            "Ingress" => ApiResource::erase::<Ingress>(&()),
            "ScaledObject" => scaled_object(),
            "ApisixRoute" => canary_router::apisix::resource(),
            knative::SERVICE => canary_router::knative::service_resource(),
            knative::REVISION => canary_router::knative::revision_resource(),
            _ => ApiResource::erase::<Deployment>(&()),
        };
        Api::namespaced_with(self.client.clone(), &self.ns, &ar)
    }

    fn object(&self, kind: &str, name: &str) -> String {
        format!("{} {}/{name}", kind.to_lowercase(), self.ns)
    }

    fn encode(&self, kind: &str, name: &str, obj: DynamicObject) -> Result<Value, Error> {
        serde_json::to_value(obj)
            .map_err(|e| Error::Encode(format!("{}: {e}", self.object(kind, name))))
    }

    /// The object as JSON, `None` when it does not exist.
    pub async fn get(&self, kind: &str, name: &str) -> Result<Option<Value>, Error> {
        let cache = self.cache_of(kind);
        if let Some(known) = cache.as_ref().and_then(|c| c.lookup(&self.ns, name)) {
            return Ok(known);
        }
        let api = self.api(kind);
        let obj = retry(|| api.get_opt(name))
            .await
            .map_err(|e| Error::kube("get", self.object(kind, name), e))?;
        let obj = obj.map(|o| self.encode(kind, name, o)).transpose()?;
        if let Some(c) = cache {
            c.fill(&self.ns, name, obj.as_ref());
        }
        Ok(obj)
    }

    /// The cache of `kind`: the kinds watched from the start, and those watched from their
    /// first read: the Ingresses the nginx and skipper routers read (shared with them) and
    /// KEDA ScaledObjects.
    fn cache_of(&self, kind: &str) -> Option<Arc<cache::Cache>> {
        match kind {
            "Ingress" => self.caches.routing(&canary_router::ingress::resource()),
            "ScaledObject" => self.caches.routing(&scaled_object()),
            "ApisixRoute" => self.caches.routing(&canary_router::apisix::resource()),
            knative::SERVICE => self
                .caches
                .routing(&canary_router::knative::service_resource()),
            knative::REVISION => self
                .caches
                .routing(&canary_router::knative::revision_resource()),
            _ => self.caches.of(kind).cloned(),
        }
    }

    /// True when the cached object already holds `desired` (an apply or a merge patch).
    fn unchanged(&self, kind: &str, name: &str, desired: &Value) -> bool {
        let cached = self.cache_of(kind).and_then(|c| c.lookup(&self.ns, name));
        matches!(cached, Some(Some(current)) if cache::holds(&current, desired))
    }

    fn written(&self, kind: &str, name: &str, obj: DynamicObject) {
        if let (Some(c), Ok(v)) = (self.cache_of(kind), serde_json::to_value(obj)) {
            c.written(&self.ns, name, &v);
        }
    }

    /// The tracked configs of the target; `Ok(Err(message))` when a required one is missing.
    /// A Knative Service's revisions carry their configs: none is tracked (as Flagger).
    pub(crate) async fn tracked_configs(
        &self,
        kind: &str,
        target: &Value,
    ) -> Result<Result<configs::Tracked, String>, Error> {
        let mut out = configs::Tracked::new();
        if !self.config_tracking || target.is_null() || kind == knative::SERVICE {
            return Ok(Ok(out));
        }
        for r in configs::referenced(&target["spec"]["template"]["spec"]) {
            let kind = if r.kind == "configmap" {
                "ConfigMap"
            } else {
                "Secret"
            };
            match self.get(kind, &r.name).await? {
                None if r.optional => {}
                None => {
                    return Ok(Err(format!(
                        "the target's pods use {} {}.{}, which is not found",
                        r.kind, r.name, self.ns
                    )));
                }
                Some(o) if configs::trackable(r.kind, &o) => {
                    out.insert(format!("{}/{}", r.kind, r.name), (configs::checksum(&o), o));
                }
                Some(_) => {}
            }
        }
        Ok(Ok(out))
    }

    /// Server-side applies `obj` (field manager `flaggerd`), unless the object already
    /// holds it.
    pub async fn apply(&self, kind: &str, obj: &Value) -> Result<(), Error> {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        if self.unchanged(kind, name, obj) {
            return Ok(());
        }
        let api = self.api(kind);
        let written = retry(|| canary_router::managed::apply(&api, name, obj, MANAGER))
            .await
            .map_err(|e| Error::kube("apply", self.object(kind, name), e))?;
        self.written(kind, name, written);
        Ok(())
    }

    /// Merge-patches `name`, unless the object already holds the patch.
    pub async fn merge(&self, kind: &str, name: &str, patch: &Value) -> Result<(), Error> {
        if self.unchanged(kind, name, patch) {
            return Ok(());
        }
        let params = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        };
        let (api, merge) = (self.api(kind), Patch::Merge(patch));
        let written = retry(|| api.patch(name, &params, &merge))
            .await
            .map_err(|e| Error::kube("patch", self.object(kind, name), e))?;
        self.written(kind, name, written);
        Ok(())
    }
}

/// Retries a request on transient errors a few times, shortly: most blips of the API
/// server pass within a second; longer outages fall to the canary's backoff.
pub async fn retry<T, F, Fut>(mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if crate::retriable(&e) && attempt < 4 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
