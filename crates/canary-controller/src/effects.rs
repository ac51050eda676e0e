//! Carrying out one effect of a decided step: the writes of the generated objects (by
//! desired state, so doing one twice changes nothing), events (marked, so publishing one
//! twice counts once) and the outside calls (webhooks, alerts), whose progress the journal
//! records.

mod calls;
mod objects;

use std::sync::Arc;

use canary_api::Canary;
use canary_core::{Action, Level, Scale};
use chrono::{DateTime, Utc};
use kube::api::{Api, Patch};
use serde_json::json;

use crate::crashpoints::{self, Class};
use crate::events::{Mark, Published, stamp};
use crate::observe::Scene;
use crate::{Context, Error, journal, workload};

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
