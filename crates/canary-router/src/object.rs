//! [`Objects`]: a provider's routing objects read (through the cache) and written with
//! server-side apply, a user's objects taken over and restored, and the test of what is the
//! canary's (the routers in `object_router.rs`, `cloned.rs` and `knative.rs` use it).

use canary_api::Canary;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use serde_json::{Value, json};

use crate::{Error, Result, appmesh, cached, managed};

/// Reads and writes a provider's routing objects: server-side apply (field manager
/// `flaggerd`), reads through a cache when it has one.
pub struct Objects {
    pub(crate) client: kube::Client,
    pub(crate) selector: Option<appmesh::PodSelector>,
    /// The client of the canary's own cluster: `client` unless the routing objects live in
    /// another cluster (`-kubeconfig-service-mesh`). Gloo reads the Services there.
    pub(crate) local: kube::Client,
    pub(crate) cache: Option<std::sync::Arc<dyn cached::ObjectCache>>,
    /// Whether the objects are owned by the canary (not when they live in another cluster).
    pub(crate) owner_references: bool,
    /// The controller's flags routers read.
    pub(crate) options: crate::Options,
}

/// The field manager of the routing objects.
pub const MANAGER: &str = "flaggerd";

impl Objects {
    fn api(&self, canary: &Canary, resource: &ApiResource) -> Api<DynamicObject> {
        if cluster_scoped(resource) {
            return Api::all_with(self.client.clone(), resource);
        }
        Api::namespaced_with(
            self.client.clone(),
            canary.metadata.namespace.as_deref().unwrap_or("default"),
            resource,
        )
    }

    /// An object, from the cache when it knows it.
    pub(crate) async fn get(
        &self,
        canary: &Canary,
        resource: &ApiResource,
        name: &str,
    ) -> Result<Option<Value>> {
        self.read(&self.client, scope(canary, resource), resource, name, true)
            .await
    }

    /// An object of the canary's own cluster and namespace (a Service Gloo's upstreams point
    /// at), wherever the routing objects live.
    pub(crate) async fn get_local(
        &self,
        canary: &Canary,
        resource: &ApiResource,
        name: &str,
    ) -> Result<Option<Value>> {
        self.read(&self.local, namespace(canary), resource, name, true)
            .await
    }

    /// An object of another namespace (Gloo's `upstreamRef`), read from the API server: the
    /// caches watch only the canaries' namespace when flaggerd runs with `-namespace`.
    pub(crate) async fn get_elsewhere(
        &self,
        ns: &str,
        resource: &ApiResource,
        name: &str,
    ) -> Result<Option<Value>> {
        self.read(&self.client, ns, resource, name, false).await
    }

    /// An object of namespace `ns` (none: cluster-scoped), from the cache when `cached` and
    /// the cache knows it.
    async fn read(
        &self,
        client: &kube::Client,
        ns: &str,
        resource: &ApiResource,
        name: &str,
        cached: bool,
    ) -> Result<Option<Value>> {
        let cache = self.cache.as_ref().filter(|_| cached);
        if let Some(known) = cache.and_then(|c| c.lookup(resource, ns, name)) {
            return Ok(known);
        }
        let api: Api<DynamicObject> = match ns {
            "" => Api::all_with(client.clone(), resource),
            _ => Api::namespaced_with(client.clone(), ns, resource),
        };
        let obj = api
            .get_opt(name)
            .await
            .map_err(|e| io("get", resource, ns, name, e))?
            .and_then(|o| serde_json::to_value(o).ok());
        if let Some(c) = cache {
            c.fill(resource, ns, name, obj.as_ref());
        }
        Ok(obj)
    }

    /// Applies `obj`, unless the current object already holds it. An object someone else
    /// made (not owned by the canary) is taken over as Flagger does: never owned, and its
    /// spec as it was kept in `flagger.kubernetes.io/original-configuration` (unless kubectl's
    /// last-applied configuration already holds it), for [`TrafficRouter::finalize`].
    pub(crate) async fn apply(
        &self,
        canary: &Canary,
        resource: &ApiResource,
        obj: &Value,
    ) -> Result<()> {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let ns = scope(canary, resource);
        let current = self.get(canary, resource, name).await?;
        if let Some(other) = current
            .as_ref()
            .and_then(|c| c["metadata"]["annotations"][CANARY_ANNOTATION].as_str())
            .filter(|other| *other != marker(canary))
        {
            return Err(Error::Invalid(format!(
                "{} {name} routes the canary {other}: a cluster-scoped routing object serves one canary; rename this canary's service (spec.service.name)",
                resource.kind.to_lowercase()
            )));
        }
        let mut obj = std::borrow::Cow::Borrowed(obj);
        if let Some(current) = current.as_ref().filter(|c| !self.ours(c, canary)) {
            let meta = &mut obj.to_mut()["metadata"];
            if let Some(m) = meta.as_object_mut() {
                m.remove("ownerReferences");
            }
            let kept = &current["metadata"]["annotations"];
            let original = match kept[ORIGINAL].as_str() {
                Some(text) => Some(text.to_string()),
                None if kept[LAST_APPLIED].is_string() => None,
                None => Some(serde_json::to_string(&current["spec"]).unwrap_or_default()),
            };
            if let Some(text) = original {
                meta["annotations"][ORIGINAL] = json!(text);
            }
            // Only the spec is taken over: top-level fields besides it (Kuma's `mesh`) stay
            // the user's, as Flagger's update keeps them.
            for (key, value) in current.as_object().into_iter().flatten() {
                if !SPEC_AND_META.contains(&key.as_str()) {
                    obj.to_mut()[key] = value.clone();
                }
            }
        } else if !self.owner_references
            && let Some(m) = obj.to_mut()["metadata"].as_object_mut()
        {
            m.remove("ownerReferences");
        }
        if current.as_ref().is_some_and(|c| cached::holds(c, &obj)) {
            return Ok(());
        }
        let written = managed::apply(&self.api(canary, resource), name, &obj, MANAGER)
            .await
            .map_err(|e| io("apply", resource, ns, name, e))?;
        if let (Some(c), Ok(v)) = (&self.cache, serde_json::to_value(written)) {
            c.written(resource, ns, name, &v);
        }
        Ok(())
    }
}

/// True for Kuma's TrafficRoute, the one cluster-scoped routing object: read and written
/// without a namespace, never owned (a namespaced Canary cannot own it), and told apart from a
/// user's by [`CANARY_ANNOTATION`].
pub fn cluster_scoped(resource: &ApiResource) -> bool {
    resource.group == "kuma.io"
}

/// The namespace an object of `resource` lives in for `canary`: none when cluster-scoped.
fn scope<'c>(canary: &'c Canary, resource: &ApiResource) -> &'c str {
    if cluster_scoped(resource) {
        ""
    } else {
        namespace(canary)
    }
}

/// The top-level fields of an object that are not "the rest" a take-over leaves alone.
const SPEC_AND_META: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

/// On a cluster-scoped routing object, the canary it was written for, `<namespace>/<name>`.
pub const CANARY_ANNOTATION: &str = "flaggerd.app/canary";

/// The value of [`CANARY_ANNOTATION`] for `canary`.
pub fn marker(canary: &Canary) -> String {
    format!(
        "{}/{}",
        namespace(canary),
        canary.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Where Flagger keeps the spec of a routing object it took over.
pub const ORIGINAL: &str = "flagger.kubernetes.io/original-configuration";
/// kubectl's copy of what was last applied, which Flagger restores from first.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// True when `obj` (in the canary's namespace) has an owner reference to `canary`: a
/// `flagger.app` Canary of its name, whatever its uid, as Flagger judges it. A Canary deleted
/// and made again under the same name so recognises its predecessor's objects (whose stale
/// reference its next apply replaces) instead of taking them over as a user's.
pub fn owned_by(obj: &Value, canary: &Canary) -> bool {
    let name = canary.metadata.name.as_deref().unwrap_or_default();
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter().any(|r| {
                r["kind"] == "Canary"
                    && r["apiVersion"]
                        .as_str()
                        .is_some_and(|v| v.starts_with("flagger.app/"))
                    && r["name"] == name
            })
        })
}

/// The spec a taken-over object had before: kubectl's last-applied configuration, else
/// flaggerd's (and Flagger's) annotation.
pub(crate) fn original_spec(obj: &Value) -> Option<Value> {
    let kept = &obj["metadata"]["annotations"];
    if let Some(text) = kept[LAST_APPLIED].as_str() {
        return serde_json::from_str::<Value>(text)
            .ok()
            .map(|v| v["spec"].clone());
    }
    kept[ORIGINAL]
        .as_str()
        .and_then(|t| serde_json::from_str(t).ok())
}

pub(crate) fn namespace(canary: &Canary) -> &str {
    canary.metadata.namespace.as_deref().unwrap_or("default")
}

impl Objects {
    /// True when `obj` is one of the canary's routing objects rather than a user's: owned by
    /// the canary, or, in another cluster (no owner references there), written by flaggerd
    /// and never taken over (a user's object carries its original spec after the take-over).
    /// Objects read there come without the caches, so their managed fields are known.
    pub(crate) fn ours(&self, obj: &Value, canary: &Canary) -> bool {
        if owned_by(obj, canary) {
            return true;
        }
        let kept = &obj["metadata"]["annotations"];
        // A user's object taken over carries the marker too, and its original spec.
        if kept[CANARY_ANNOTATION] == marker(canary).as_str() && kept[ORIGINAL].is_null() {
            return true;
        }
        let kept = &obj["metadata"]["annotations"];
        !self.owner_references
            && kept[ORIGINAL].is_null()
            && kept[LAST_APPLIED].is_null()
            && obj["metadata"]["managedFields"]
                .as_array()
                .is_some_and(|m| m.iter().any(|e| e["manager"] == MANAGER))
    }

    /// Gives a user's object back its spec from before the take-over. Without a copy it is
    /// left as it is, as Flagger does (a warning, not an error that would hold the canary's
    /// deletion forever).
    pub(crate) async fn restore(
        &self,
        canary: &Canary,
        resource: &ApiResource,
        name: &str,
        current: &Value,
    ) -> Result<()> {
        let Some(spec) = original_spec(current) else {
            tracing::warn!(
                "{} {name}.{}: original configuration not found, unable to revert",
                resource.kind,
                namespace(canary)
            );
            return Ok(());
        };
        let mut restored = json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": name},
            "spec": spec,
        });
        if !cluster_scoped(resource) {
            restored["metadata"]["namespace"] = json!(namespace(canary));
        }
        // Top-level fields besides the spec (Kuma's `mesh`) stay as they are.
        for (key, value) in current.as_object().into_iter().flatten() {
            if !SPEC_AND_META.contains(&key.as_str()) {
                restored[key] = value.clone();
            }
        }
        let params = PatchParams::apply(MANAGER).force();
        self.api(canary, resource)
            .patch(name, &params, &Patch::Apply(&restored))
            .await
            .map_err(|e| io("restore", resource, scope(canary, resource), name, e))?;
        Ok(())
    }
}

impl Objects {
    /// Merge-patches `current`, an object someone else owns (the Knative Service a canary
    /// targets) as the caller just read it, unless it already holds the patch.
    pub(crate) async fn merge(
        &self,
        canary: &Canary,
        resource: &ApiResource,
        current: &Value,
        patch: &Value,
    ) -> Result<()> {
        if cached::holds(current, patch) {
            return Ok(());
        }
        let ns = scope(canary, resource);
        let name = current["metadata"]["name"].as_str().unwrap_or_default();
        let params = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        };
        let written = self
            .api(canary, resource)
            .patch(name, &params, &Patch::Merge(patch))
            .await
            .map_err(|e| io("patch", resource, ns, name, e))?;
        if let (Some(c), Ok(v)) = (&self.cache, serde_json::to_value(written)) {
            c.written(resource, ns, name, &v);
        }
        Ok(())
    }

    /// Deletes an object if it is there.
    pub(crate) async fn delete(
        &self,
        canary: &Canary,
        resource: &ApiResource,
        name: &str,
    ) -> Result<()> {
        let params = kube::api::DeleteParams {
            grace_period_seconds: Some(2),
            ..Default::default()
        };
        match self.api(canary, resource).delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(io("delete", resource, scope(canary, resource), name, e)),
        }
    }
}

/// A failed request about `resource` `ns/name`.
pub(crate) fn io(
    verb: &'static str,
    resource: &ApiResource,
    ns: &str,
    name: &str,
    source: kube::Error,
) -> Error {
    Error::Kube {
        verb,
        object: match ns {
            "" => format!("{} {name}", resource.kind.to_lowercase()),
            _ => format!("{} {ns}/{name}", resource.kind.to_lowercase()),
        },
        source: Box::new(source),
    }
}
