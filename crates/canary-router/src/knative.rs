//! Knative: the target itself routes. A Knative Service (`serving.knative.dev/v1`) keeps
//! every revision of its template; flaggerd marks the revision that serves as the primary
//! with the annotation `flagger.app/primary-revision` and splits `spec.traffic` between it
//! and the latest revision, which is the canary (flagger-behaviour.md 3.1, 3.7). Knative's
//! controller programs the split and reports it in `status.traffic`, where the weights are
//! read back.
//!
//! One difference from Flagger (listed in docs/compatibility.md): once the primary is the
//! latest revision, Knative lists it twice in `status.traffic`; the primary's weight is read
//! from the entry that is not the `latestRevision` one (Flagger reads the first entry of that
//! name, the latest one, and so reports the canary's weight as the primary's).

use async_trait::async_trait;
use canary_api::Canary;
use canary_core::Routes;
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::object::{Objects, namespace};
use crate::{Error, Result, TrafficRouter};

/// The annotation on the Knative Service naming the primary revision.
pub const PRIMARY_REVISION: &str = "flagger.app/primary-revision";

/// Knative Serving's Service kind.
pub fn service_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("serving.knative.dev", "v1", "Service");
    ApiResource::from_gvk_with_plural(&gvk, "services")
}

/// Knative Serving's Revision kind.
pub fn revision_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("serving.knative.dev", "v1", "Revision");
    ApiResource::from_gvk_with_plural(&gvk, "revisions")
}

/// The revision named primary on a Knative Service.
pub fn primary_revision(service: &Value) -> Option<&str> {
    service["metadata"]["annotations"][PRIMARY_REVISION]
        .as_str()
        .filter(|n| !n.is_empty())
}

/// The latest revision Knative created for the Service's template.
pub fn latest_revision(service: &Value) -> Option<&str> {
    service["status"]["latestCreatedRevisionName"]
        .as_str()
        .filter(|n| !n.is_empty())
}

/// `spec.traffic` for `routes`: the latest revision (the canary) and the primary revision.
pub fn traffic(primary: &str, routes: Routes) -> Value {
    json!([
        {"latestRevision": true, "percent": routes.canary},
        {"revisionName": primary, "percent": routes.primary},
    ])
}

/// The weights Knative reports in `status.traffic`.
pub fn routes_of(service: &Value, canary: &Canary) -> Result<Routes> {
    let what = describe(canary);
    let primary = primary_revision(service)
        .ok_or_else(|| Error::Invalid(format!("{what} has no {PRIMARY_REVISION} annotation")))?;
    let entries: Vec<&Value> = service["status"]["traffic"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let latest = entries.iter().find(|t| t["latestRevision"] == true);
    // The primary's own entry; right after a promotion, before flaggerd writes the traffic
    // again, the primary is the latest revision and has only that entry.
    let named = |t: &&&Value| t["revisionName"] == primary;
    let primary_entry = entries
        .iter()
        .filter(named)
        .find(|t| t["latestRevision"] != true)
        .or_else(|| entries.iter().find(named));
    let (Some(latest), Some(primary_entry)) = (latest, primary_entry) else {
        return Err(Error::Invalid(format!(
            "{what}: status.traffic has no entry for the latest revision and the primary revision {primary} yet"
        )));
    };
    // A missing percent is not 0: Knative has not reported the split yet.
    let percent = |t: &Value, role: &str| {
        t["percent"].as_u64().map(|p| p as u32).ok_or_else(|| {
            Error::Invalid(format!(
                "{what}: status.traffic has no percent for the {role} revision"
            ))
        })
    };
    Ok(Routes {
        primary: percent(primary_entry, "primary")?,
        canary: percent(latest, "latest")?,
        mirrored: false,
    })
}

fn describe(canary: &Canary) -> String {
    format!(
        "knative service {}.{}",
        canary.spec.target_ref.name,
        namespace(canary)
    )
}

/// The router of the `knative` provider: writes the Knative Service the canary targets.
pub struct KnativeRouter {
    pub(crate) objects: Objects,
}

impl KnativeRouter {
    async fn service(&self, canary: &Canary) -> Result<Value> {
        let name = &canary.spec.target_ref.name;
        self.objects
            .get(canary, &service_resource(), name)
            .await?
            .ok_or_else(|| Error::Invalid(format!("{} not found", describe(canary))))
    }

    async fn merge(&self, canary: &Canary, service: &Value, patch: Value) -> Result<()> {
        self.objects
            .merge(canary, &service_resource(), service, &patch)
            .await
    }
}

#[async_trait]
impl TrafficRouter for KnativeRouter {
    /// Names the latest revision primary when no revision is.
    async fn reconcile(&self, canary: &Canary) -> Result<()> {
        let service = self.service(canary).await?;
        if primary_revision(&service).is_some() {
            return Ok(());
        }
        let latest = latest_revision(&service).ok_or_else(|| {
            Error::Invalid(format!(
                "{} has no revision yet (status.latestCreatedRevisionName is empty)",
                describe(canary)
            ))
        })?;
        let patch = json!({"metadata": {"annotations": {PRIMARY_REVISION: latest}}});
        self.merge(canary, &service, patch).await
    }

    async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<()> {
        let service = self.service(canary).await?;
        let primary = primary_revision(&service).ok_or_else(|| {
            Error::Invalid(format!(
                "{} has no {PRIMARY_REVISION} annotation",
                describe(canary)
            ))
        })?;
        let patch = json!({"spec": {"traffic": traffic(primary, routes)}});
        self.merge(canary, &service, patch).await
    }

    async fn get_routes(&self, canary: &Canary) -> Result<Routes> {
        routes_of(&self.service(canary).await?, canary)
    }

    /// Drops the primary annotation, as Flagger does; the traffic stays where it is.
    async fn finalize(&self, canary: &Canary) -> Result<()> {
        let name = &canary.spec.target_ref.name;
        let Some(service) = self.objects.get(canary, &service_resource(), name).await? else {
            return Ok(());
        };
        if primary_revision(&service).is_none() {
            return Ok(());
        }
        let patch = json!({"metadata": {"annotations": {PRIMARY_REVISION: null}}});
        self.merge(canary, &service, patch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary() -> Canary {
        let mut c = Canary::from_yaml(
            "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: knative
  targetRef: {apiVersion: serving.knative.dev/v1, kind: Service, name: podinfo}
  service: {port: 80}
",
        )
        .expect("canary");
        c.metadata.namespace = Some("test".into());
        c
    }

    fn service(primary: &str, traffic: Value) -> Value {
        json!({"metadata": {"annotations": {PRIMARY_REVISION: primary}},
            "status": {"latestCreatedRevisionName": "podinfo-00002", "traffic": traffic}})
    }

    #[test]
    fn weights_come_from_the_status_traffic() {
        let c = canary();
        let split = service(
            "podinfo-00001",
            json!([{"revisionName": "podinfo-00002", "latestRevision": true, "percent": 30},
                {"revisionName": "podinfo-00001", "latestRevision": false, "percent": 70}]),
        );
        let routes = routes_of(&split, &c).expect("routes");
        assert_eq!((routes.primary, routes.canary), (70, 30));
        // Promoted: the primary is the latest revision, listed twice once flaggerd wrote the
        // traffic, once only as the latest before.
        let promoted = service(
            "podinfo-00002",
            json!([{"revisionName": "podinfo-00002", "latestRevision": true, "percent": 0},
                {"revisionName": "podinfo-00002", "latestRevision": false, "percent": 100}]),
        );
        let routes = routes_of(&promoted, &c).expect("routes");
        assert_eq!((routes.primary, routes.canary), (100, 0));
        let just_promoted = service(
            "podinfo-00002",
            json!([{"revisionName": "podinfo-00002", "latestRevision": true, "percent": 40},
                {"revisionName": "podinfo-00001", "latestRevision": false, "percent": 60}]),
        );
        let routes = routes_of(&just_promoted, &c).expect("routes");
        assert_eq!((routes.primary, routes.canary), (40, 40));
        assert_eq!(
            routes_of(&service("podinfo-00001", json!([])), &c)
                .unwrap_err()
                .to_string(),
            "knative service podinfo.test: status.traffic has no entry for the latest revision and the primary revision podinfo-00001 yet"
        );
        assert_eq!(
            routes_of(&json!({}), &c).unwrap_err().to_string(),
            "knative service podinfo.test has no flagger.app/primary-revision annotation"
        );
        assert_eq!(
            traffic(
                "podinfo-00001",
                Routes {
                    primary: 90,
                    canary: 10,
                    mirrored: false
                }
            ),
            json!([{"latestRevision": true, "percent": 10}, {"revisionName": "podinfo-00001", "percent": 90}])
        );
    }
}
