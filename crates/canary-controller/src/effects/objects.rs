//! The effects that write the generated objects around the target: the primary workload and
//! its autoscaler, the config copies, the Services, a Service target's copies, a Knative
//! Service's annotation and traffic, and their promotion, scaling and revert.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::Effects;
use crate::{Error, configs, knative, services, workload};

impl Effects {
    /// The primary workload, its autoscaler, the config copies and the `-primary` and
    /// `-canary` Services. An existing primary's template is never changed here.
    pub(super) async fn initialize(&self) -> Result<(), Error> {
        if self.canary.spec.target_ref.is_knative_service() {
            return self.knative_initialize().await;
        }
        if self.canary.spec.target_ref.kind == "Service" {
            return self.service_target_copies().await;
        }
        let Some(sel) = &self.scene.sel else {
            return Ok(());
        };
        let spec: &canary_core::CanarySpec = &self.canary.spec;
        if self.scene.primary.is_none() {
            let primary = self.desired_primary(sel).await?;
            self.scene
                .world
                .apply(&spec.target_ref.kind, &primary)
                .await?;
        }
        self.primary_autoscaler(false).await?;
        for role in [services::Role::Canary, services::Role::Primary] {
            self.service(sel, role).await?;
        }
        Ok(())
    }

    /// A Knative Service's initialization, while the canary initializes (as Flagger's): its
    /// latest revision named primary, with all the traffic. Later steps leave both to the
    /// router and promotion.
    pub(super) async fn knative_initialize(&self) -> Result<(), Error> {
        let phase = self.canary.status.as_ref().and_then(|s| s.phase);
        if !matches!(phase, None | Some(canary_core::Phase::Initializing)) {
            return Ok(());
        }
        let Some(patch) = knative::initialization(&self.scene.target) else {
            return Ok(());
        };
        let name = &self.canary.spec.target_ref.name;
        self.scene.world.merge(knative::SERVICE, name, &patch).await
    }

    /// A Service target's copies, as Flagger's service controller keeps them: `-canary`
    /// follows the target at every step, `-primary` is made once (and changed by promotion).
    pub(super) async fn service_target_copies(&self) -> Result<(), Error> {
        if self.scene.target.is_null() {
            return Ok(());
        }
        let name = &self.canary.spec.target_ref.name;
        let world = &self.scene.world;
        let canary_name = format!("{name}-canary");
        let mut copy = services::target_copy(&self.canary, &self.scene.target, &canary_name, None);
        if let Some(current) = world.get("Service", &canary_name).await? {
            not_owned_unless_ours(&mut copy, &current, &self.canary);
        }
        world.apply("Service", &copy).await?;
        if self.scene.primary.is_none() {
            let primary_name = format!("{name}-primary");
            let primary =
                services::target_copy(&self.canary, &self.scene.target, &primary_name, None);
            world.apply("Service", &primary).await?;
        }
        Ok(())
    }

    pub(super) fn ports(&self) -> Vec<Value> {
        let spec: &canary_core::CanarySpec = &self.canary.spec;
        if spec.service.port_discovery {
            services::discovered_ports(&self.scene.target, &spec.service)
        } else {
            Vec::new()
        }
    }

    /// The apex Service.
    pub(super) async fn apex(&self, sel: &workload::Selector) -> Result<(), Error> {
        self.service(sel, services::Role::Apex).await
    }

    /// One of the canary's Services: created and owned when absent; when it is the user's
    /// (made before the canary), adopted as Flagger does: selector and ports flaggerd's, the
    /// rest the user's, never owned, so deleting the canary does not delete it.
    pub(super) async fn service(
        &self,
        sel: &workload::Selector,
        role: services::Role,
    ) -> Result<(), Error> {
        let desired = services::build(&self.canary, sel, role, &self.ports());
        let name = desired["metadata"]["name"].as_str().unwrap_or_default();
        match self.scene.world.get("Service", name).await? {
            Some(existing) if !self.owned_by_canary(&existing) => {
                let patch = services::adopt(&existing, &self.canary, sel, role, &self.ports());
                self.scene.world.merge("Service", name, &patch).await
            }
            _ => self.scene.world.apply("Service", &desired).await,
        }
    }

    pub(super) fn owned_by_canary(&self, obj: &Value) -> bool {
        canary_router::owned_by(obj, &self.canary)
    }

    /// Copies the target's template (and configs) to the primary, unless the target changed
    /// since the step was decided: the primary never gets a revision that was not analysed.
    pub(super) async fn promote(&self) -> Result<(), Error> {
        let spec: &canary_core::CanarySpec = &self.canary.spec;
        if self.scene.target.is_null() {
            return Ok(());
        }
        let status = self.canary.status.clone().unwrap_or_default();
        let current = workload::revision_hash(knative::target_kind(spec), &self.scene.target);
        let configs: std::collections::BTreeMap<String, String> = self
            .scene
            .tracked
            .iter()
            .map(|(k, (sum, _))| (k.clone(), sum.clone()))
            .collect();
        if current != status.last_applied_spec
            || configs != status.tracked_configs.clone().unwrap_or_default()
        {
            tracing::warn!(
                canary = %self.id(),
                "the target changed while its promotion was pending: the primary keeps its revision and the new one will be analysed"
            );
            return Ok(());
        }
        if spec.target_ref.is_knative_service() {
            return match knative::promotion(&self.scene.target) {
                Some(patch) => {
                    let world = &self.scene.world;
                    world
                        .merge(knative::SERVICE, &spec.target_ref.name, &patch)
                        .await
                }
                None => Ok(()),
            };
        }
        if spec.target_ref.kind == "Service" {
            let name = format!("{}-primary", spec.target_ref.name);
            let prefixes = &self.ctx.settings.include_label_prefix;
            let mut primary =
                services::target_copy(&self.canary, &self.scene.target, &name, Some(prefixes));
            if let Some(current) = &self.scene.primary {
                not_owned_unless_ours(&mut primary, current, &self.canary);
            }
            return self.scene.world.apply("Service", &primary).await;
        }
        let Some(sel) = &self.scene.sel else {
            return Ok(());
        };
        let mut primary = self.desired_primary(sel).await?;
        if let Some(current) = &self.scene.primary {
            if spec.target_ref.kind == "Deployment" {
                let (target, current_replicas) = self.scene.replicas();
                primary["spec"]["replicas"] = json!(canary_core::scaling::primary(
                    target,
                    current_replicas,
                    spec.autoscaler_ref.is_some(),
                ));
            }
            not_owned_unless_ours(&mut primary, current, &self.canary);
        }
        self.scene
            .world
            .apply(&spec.target_ref.kind, &primary)
            .await
    }

    /// Writes the `-primary` copies of the tracked configs and returns the primary workload
    /// built from the target.
    pub(super) async fn desired_primary(&self, sel: &workload::Selector) -> Result<Value, Error> {
        let prefixes = &self.ctx.settings.include_label_prefix;
        for (_, (_, obj)) in self.scene.tracked.iter() {
            let kind = obj["kind"].as_str().unwrap_or("ConfigMap");
            let existing = self.scene.world.get(kind, &configs::copy_name(obj)).await?;
            let copy = configs::primary_copy(obj, existing.as_ref(), &self.canary, prefixes);
            self.scene.world.apply(kind, &copy).await?;
        }
        let names: BTreeSet<String> = self.scene.tracked.keys().cloned().collect();
        Ok(workload::primary(
            &self.scene.target,
            &self.canary,
            sel,
            &names,
            &self.flagger_id(),
            prefixes,
        ))
    }

    /// Creates the `-primary` autoscaler, or (with `update`) pushes the target's settings to it.
    pub(super) async fn primary_autoscaler(&self, update: bool) -> Result<(), Error> {
        let spec: &canary_core::CanarySpec = &self.canary.spec;
        let Some(a) = &spec.autoscaler_ref else {
            return Ok(());
        };
        let primary_name = format!("{}-primary", a.name);
        let world = &self.scene.world;
        let existing = world.get(&a.kind, &primary_name).await?;
        if !update && existing.is_some() {
            return Ok(());
        }
        let Some(scaler) = world.get(&a.kind, &a.name).await? else {
            return Err(Error::Missing(format!(
                "{} {}.{} not found",
                a.kind.to_lowercase(),
                a.name,
                self.ns()
            )));
        };
        let mut obj = match a.kind.as_str() {
            "ScaledObject" => workload::primary_scaled_object(&scaler, &self.canary),
            _ => workload::primary_autoscaler(&scaler, &self.canary)?,
        };
        if let Some(current) = &existing {
            not_owned_unless_ours(&mut obj, current, &self.canary);
        }
        world.apply(&a.kind, &obj).await
    }

    /// The autoscaler's minimum, for a target scaled up: the HPA's `minReplicas` (1 when
    /// unset), the ScaledObject's `minReplicaCount` (1 when unset or 0).
    pub(super) async fn hpa_min(&self) -> Result<Option<i64>, Error> {
        let Some(a) = &self.canary.spec.autoscaler_ref else {
            return Ok(None);
        };
        let scaler = self.scene.world.get(&a.kind, &a.name).await?;
        let field = match a.kind.as_str() {
            "ScaledObject" => "minReplicaCount",
            _ => "minReplicas",
        };
        Ok(scaler.map(|s| s["spec"][field].as_i64().unwrap_or(1)))
    }

    /// Pauses a KEDA ScaledObject of the target at zero replicas while its canary is scaled
    /// down (`autoscaling.keda.sh/paused-replicas: "0"`), or lifts the pause; an HPA needs
    /// neither, as in Flagger.
    pub(super) async fn pause_target_scaler(&self, paused: bool) -> Result<(), Error> {
        let Some(a) = &self.canary.spec.autoscaler_ref else {
            return Ok(());
        };
        if a.kind != "ScaledObject" || self.scene.world.get(&a.kind, &a.name).await?.is_none() {
            return Ok(());
        }
        let value = if paused { json!("0") } else { Value::Null };
        let patch = json!({"metadata": {"annotations": {workload::PAUSED_REPLICAS: value}}});
        self.scene.world.merge(&a.kind, &a.name, &patch).await
    }

    /// `revertOnDeletion`: the target gets the primary's replicas back, a user's apex
    /// Service its target selector, and the router reverts its objects.
    /// Scales the target back up for `revertOnDeletion`: to the primary's replicas (else
    /// its own, else 1), or lifts a DaemonSet's scale-to-zero node selector.
    pub(super) async fn restore_target(&self) -> Result<(), Error> {
        let spec: &canary_core::CanarySpec = &self.canary.spec;
        let kind = spec.target_ref.kind.as_str();
        if self.scene.target.is_null() || kind == "Service" {
            return Ok(());
        }
        self.pause_target_scaler(false).await?;
        let (target, primary) = self.scene.replicas();
        let replicas = canary_core::scaling::restored(target, primary);
        let patch = workload::scale_patch(kind, replicas);
        self.scene
            .world
            .merge(kind, &spec.target_ref.name, &patch)
            .await
    }

    /// Points the user's apex Service and the routes back at the target (once it serves).
    pub(super) async fn revert(&self) -> Result<(), Error> {
        let spec: &canary_core::CanarySpec = &self.canary.spec;
        let world = &self.scene.world;
        if let (Some(sel), Some(apex)) = (
            &self.scene.sel,
            world.get("Service", spec.service_name()).await?,
        ) && !self.owned_by_canary(&apex)
        {
            let patch = services::revert(&apex, sel);
            world.merge("Service", spec.service_name(), &patch).await?;
        }
        if let Some(router) = &self.scene.router {
            router
                .finalize(&self.canary)
                .await
                .map_err(|e| self.route(e))?;
        }
        Ok(())
    }
}

/// A `-primary` object that exists without the canary's owner reference (made before the
/// canary, or by someone else) is updated but never made the canary's, as Flagger sets the
/// reference only when it creates the object: deleting the canary does not delete it.
pub(super) fn not_owned_unless_ours(
    desired: &mut Value,
    current: &Value,
    canary: &canary_api::Canary,
) {
    if !canary_router::owned_by(current, canary)
        && let Some(meta) = desired["metadata"].as_object_mut()
    {
        meta.remove("ownerReferences");
    }
}
