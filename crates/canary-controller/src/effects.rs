//! Carrying out one effect of a decided step: the writes of the generated objects (by
//! desired state, so doing one twice changes nothing), events (marked, so publishing one
//! twice counts once) and the outside calls (webhooks, alerts), whose progress the journal
//! records.

mod calls;

use std::collections::BTreeSet;
use std::sync::Arc;

use canary_api::Canary;
use canary_core::{Action, Level, Scale};
use chrono::{DateTime, Utc};
use kube::api::{Api, Patch};
use serde_json::{Value, json};

use crate::crashpoints::{self, Class};
use crate::events::{Mark, Published, stamp};
use crate::observe::Scene;
use crate::{Context, Error, configs, journal, knative, services, workload};

pub use calls::needs_record;

/// Carries out the effects of one step of one canary.
pub struct Effects {
    /// The controller's context.
    pub ctx: Arc<Context>,
    /// The canary with the status the step decided.
    pub canary: Arc<Canary>,
    /// What was observed of its world.
    pub scene: Scene,
    /// When the step was decided.
    pub decided_at: DateTime<Utc>,
    /// The step is recorded in status: outside calls record their progress there.
    pub recorded: bool,
}

impl Effects {
    fn ns(&self) -> &str {
        self.canary
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default()
    }

    fn id(&self) -> String {
        format!(
            "{}/{}",
            self.ns(),
            self.canary.metadata.name.as_deref().unwrap_or_default()
        )
    }

    /// Notes in memory how far the effects got, so a retry in this process (after a failed
    /// progress write, say) does not make a call again.
    fn note(&self, progress: crate::tasks::Progress) {
        let key = self.id();
        self.ctx
            .tasks
            .set_progress(&key, &journal::work(self.decided_at), progress);
    }

    fn mark(&self, place: impl Into<String>) -> Mark {
        Mark::new(self.decided_at, place)
    }

    /// Carries out effect `index`, skipping its first `calls_done` calls.
    pub async fn one(&self, index: u32, effect: &Action, calls_done: u32) -> Result<(), Error> {
        let spec: &canary_core::CanarySpec = &self.canary.spec;
        let kind = spec.target_ref.kind.as_str();
        let target_name = spec.target_ref.name.as_str();
        let target_exists = !self.scene.target.is_null();
        match effect {
            Action::Initialize => self.initialize().await?,
            Action::ReconcileRoutes => {
                if let Some(sel) = &self.scene.sel {
                    self.apex(sel).await?;
                }
                if let Some(router) = &self.scene.router {
                    router
                        .reconcile(&self.canary)
                        .await
                        .map_err(|e| self.route(e))?;
                }
            }
            Action::SetRoutes {
                primary,
                canary,
                mirrored,
            } => {
                let routes = canary_core::Routes {
                    primary: *primary,
                    canary: *canary,
                    mirrored: *mirrored,
                };
                if let Some(router) = &self.scene.router {
                    router
                        .set_routes(&self.canary, routes)
                        .await
                        .map_err(|e| self.route(e))?;
                }
                let ns = self.ns();
                self.ctx
                    .stats
                    .set_weight(target_name, ns, *primary, *canary);
            }
            Action::ScaleCanary(scale) if target_exists && kind != "Service" => {
                self.pause_target_scaler(matches!(scale, Scale::Zero))
                    .await?;
                let replicas = match scale {
                    Scale::Zero => 0,
                    Scale::FromZero => {
                        let (target, primary) = self.scene.replicas();
                        canary_core::scaling::scale_up(target, primary, self.hpa_min().await?)
                    }
                };
                let patch = workload::scale_patch(kind, replicas);
                self.scene.world.merge(kind, target_name, &patch).await?;
            }
            Action::Promote => self.promote().await?,
            Action::SyncPrimaryAutoscaler => self.primary_autoscaler(true).await?,
            Action::RunPostRolloutHooks { phase } => {
                self.post_rollout(index, *phase, calls_done).await?
            }
            Action::RestoreTarget => self.restore_target().await?,
            Action::Revert => self.revert().await?,
            Action::AddFinalizer | Action::RemoveFinalizer => {
                self.finalizer(matches!(effect, Action::AddFinalizer))
                    .await?
            }
            Action::Emit(e) => {
                self.publish(e.level, &e.message, self.mark(index.to_string()))
                    .await?;
                self.forward_event(index, e, calls_done).await?;
            }
            Action::Alert(a) => {
                let key = self.call_key(index, "alert", 0);
                let sent = self
                    .call_once(&key, || self.ctx.notifier.send(&self.canary, a))
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(canary = %self.id(), "alert not sent: {e}");
                }
                if self.recorded {
                    let point = format!("sent {} {}#{index}", self.id(), stamp(self.decided_at));
                    crashpoints::reached(Class::Window, &point).await;
                }
            }
            Action::Record(outcome) => {
                let strategy = spec.strategy().as_str();
                self.ctx
                    .stats
                    .count(target_name, self.ns(), strategy, *outcome)
            }
            Action::ScaleCanary(_)
            | Action::Requeue(_)
            | Action::RunWebhooks { .. }
            | Action::QueryMetrics
            | Action::CheckMetricProviders => {}
        }
        Ok(())
    }

    async fn publish(&self, level: Level, message: &str, mark: Mark) -> Result<Published, Error> {
        let object = object_reference(&self.canary.metadata, "Canary");
        self.ctx
            .events
            .publish(&object, level, message, &mark)
            .await
    }

    fn route(&self, source: canary_router::Error) -> Error {
        Error::Route {
            canary: self.id(),
            source,
        }
    }

    /// The primary workload, its autoscaler, the config copies and the `-primary` and
    /// `-canary` Services. An existing primary's template is never changed here.
    async fn initialize(&self) -> Result<(), Error> {
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
    async fn knative_initialize(&self) -> Result<(), Error> {
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
    async fn service_target_copies(&self) -> Result<(), Error> {
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

    fn ports(&self) -> Vec<Value> {
        let spec: &canary_core::CanarySpec = &self.canary.spec;
        if spec.service.port_discovery {
            services::discovered_ports(&self.scene.target, &spec.service)
        } else {
            Vec::new()
        }
    }

    /// The apex Service.
    async fn apex(&self, sel: &workload::Selector) -> Result<(), Error> {
        self.service(sel, services::Role::Apex).await
    }

    /// One of the canary's Services: created and owned when absent; when it is the user's
    /// (made before the canary), adopted as Flagger does: selector and ports flaggerd's, the
    /// rest the user's, never owned, so deleting the canary does not delete it.
    async fn service(&self, sel: &workload::Selector, role: services::Role) -> Result<(), Error> {
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

    fn owned_by_canary(&self, obj: &Value) -> bool {
        canary_router::owned_by(obj, &self.canary)
    }

    /// Copies the target's template (and configs) to the primary, unless the target changed
    /// since the step was decided: the primary never gets a revision that was not analysed.
    async fn promote(&self) -> Result<(), Error> {
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
    async fn desired_primary(&self, sel: &workload::Selector) -> Result<Value, Error> {
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
    async fn primary_autoscaler(&self, update: bool) -> Result<(), Error> {
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
    async fn hpa_min(&self) -> Result<Option<i64>, Error> {
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
    async fn pause_target_scaler(&self, paused: bool) -> Result<(), Error> {
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
    async fn restore_target(&self) -> Result<(), Error> {
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
    async fn revert(&self) -> Result<(), Error> {
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

    /// Adds or removes flaggerd's finalizer with a JSON patch that tests the list first, so
    /// it never overwrites another controller's change.
    async fn finalizer(&self, add: bool) -> Result<(), Error> {
        let current: Vec<String> = self.canary.metadata.finalizers.clone().unwrap_or_default();
        let f = canary_core::messages::FINALIZER.to_string();
        let mut wanted: Vec<String> = current.iter().filter(|x| **x != f).cloned().collect();
        if add {
            wanted.push(f);
        }
        if wanted == current {
            return Ok(());
        }
        let api: Api<Canary> = Api::namespaced(self.ctx.client.clone(), self.ns());
        let name = self.canary.metadata.name.as_deref().unwrap_or_default();
        // Guarded by a test of the list read, as kube-runtime's finalizer helper does: a
        // finalizer someone else added meanwhile is never dropped.
        let ops = match &self.canary.metadata.finalizers {
            None => json!([{"op": "add", "path": "/metadata/finalizers", "value": wanted}]),
            Some(_) => json!([
                {"op": "test", "path": "/metadata/finalizers", "value": current},
                {"op": "replace", "path": "/metadata/finalizers", "value": wanted},
            ]),
        };
        let patch: json_patch::Patch = serde_json::from_value(ops)
            .map_err(|e| Error::Encode(format!("finalizer patch: {e}")))?;
        match api
            .patch(name, &crate::write_params(), &Patch::<()>::Json(patch))
            .await
        {
            Ok(written) => {
                let rv = written.metadata.resource_version.as_deref();
                self.ctx.own_writes.wrote(&self.id(), rv);
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(Error::kube("patch", format!("canary {}", self.id()), e)),
        }
    }

    /// The primary's `flagger-id`: new for each promotion, the same when a promotion is
    /// carried out again (it derives from the step, not the clock).
    fn flagger_id(&self) -> String {
        let seed = json!({
            "revision": canary_core::hash::spec_hash(&self.scene.target["spec"]["template"]),
            "step": stamp(self.decided_at),
        });
        canary_core::hash::config_checksum(&seed)
    }
}

/// A reference to a flagger.app object of `kind` for an event.
pub fn object_reference(
    meta: &kube::api::ObjectMeta,
    kind: &str,
) -> k8s_openapi::api::core::v1::ObjectReference {
    k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(format!("{}/{}", canary_api::GROUP, canary_api::VERSION)),
        kind: Some(kind.into()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: None,
        field_path: None,
    }
}

/// A `-primary` object that exists without the canary's owner reference (made before the
/// canary, or by someone else) is updated but never made the canary's, as Flagger sets the
/// reference only when it creates the object: deleting the canary does not delete it.
fn not_owned_unless_ours(desired: &mut Value, current: &Value, canary: &canary_api::Canary) {
    if !canary_router::owned_by(current, canary)
        && let Some(meta) = desired["metadata"].as_object_mut()
    {
        meta.remove("ownerReferences");
    }
}
