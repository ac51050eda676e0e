//! One reconcile of one canary. In order:
//!
//! 1. Leave the canary to its task if it carries out effects (the task asks for a
//!    reconcile when done).
//! 2. Read the canary; report it if it does not decode.
//! 3. Observe its world (unless its spec is invalid); resume the effects of a recorded
//!    step if some are left.
//! 4. Report what keeps it from running (a missing target, an unsupported provider...).
//! 5. Let canary-core decide, with the webhook and metric results gathered for this step;
//!    if the engine needs more, gather them in the canary's task (or wait for the gathering
//!    under way) and stop here. A decision taken without them (a new revision came) cancels
//!    the gathering.
//! 6. Record the decided status with its effects (`status.step`), then hand the effects to
//!    the canary's task.
//!
//! A reconcile never waits on a webhook, a metric query or an alert, so one canary's slow
//! hook never holds up another. All state lives in the Canary's status and the cluster.

use std::sync::Arc;
use std::time::Duration;

use canary_api::{Canary, Lenient};
use canary_core::CanaryRef;
use chrono::{DateTime, Utc};
use kube::Resource;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use crate::crashpoints::{self, Class};
use crate::events::stamp;
use crate::journal::Recorded;
use crate::{Context, Error, effects, gather, journal, observe, report, tasks};

/// The longest a canary waits for its next look when nothing changes: a far analysis
/// interval is counted down in steps of this.
const MAX_REQUEUE: Duration = Duration::from_secs(3600);
/// How often a reconcile looks again while the watch has not shown flaggerd's own write.
const CATCH_UP_POLL: Duration = Duration::from_millis(20);
/// The wait before deciding again after the canary changed under a write.
const AFTER_CONFLICT: Duration = Duration::from_millis(100);

/// Reconciles one canary.
pub async fn reconcile(obj: Arc<Lenient<Canary>>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = tokio::time::Instant::now();
    let object = ObjectRef::from_obj(&*obj);
    let key = tasks::key_of(&object);
    let meta = obj.meta();
    let uid = meta.uid.clone().unwrap_or_default();
    if ctx.tasks.effects_running(&key, &uid) {
        return Ok(Action::await_change());
    }
    let (ns, name) = (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    );
    // The canary as the watch cache holds it now (its turn may have come after the trigger),
    // once the cache shows flaggerd's own last write of it: a step decided on an older status
    // would be decided twice. Without the controller's cache (a reconcile called on its
    // own), it is read from the API server.
    let stored = ctx.canaries.get().and_then(|store| store.get(&object));
    let stored_rv = stored
        .as_ref()
        .and_then(|c| c.meta().resource_version.clone());
    if ctx.own_writes.behind(&key, stored_rv.as_deref()) {
        return Ok(Action::requeue(CATCH_UP_POLL));
    }
    let fresh = match ctx.canaries.get() {
        Some(_) => stored.map(|c| (*c).clone()),
        None => {
            let api: Api<Lenient<Canary>> = Api::namespaced(ctx.client.clone(), &ns);
            crate::world::retry(|| api.get_opt(&name))
                .await
                .map_err(|e| Error::kube("get", format!("canary {ns}/{name}"), e))?
        }
    };
    let canary = match fresh {
        None => {
            ctx.tasks.forget(&key, None);
            return Ok(Action::await_change());
        }
        Some(Lenient::Undecodable(u)) => {
            ctx.tasks.forget(&key, None);
            return report::undecodable(&ctx, "Canary", &u).await;
        }
        Some(Lenient::Decoded(c)) => Arc::new(c),
    };
    let status = canary.status.clone().unwrap_or_default();
    // An invalid spec is reported by the engine; nothing is read on its behalf (a
    // StatefulSet target is not looked up as a Deployment) unless it is being deleted.
    let invalid =
        !canary_core::validate::validate_in(&canary.spec, &ns, &ctx.settings.engine).is_empty();
    let scene = if invalid && canary.metadata.deletion_timestamp.is_none() {
        observe::Scene::unobserved(&ctx, &canary)
    } else {
        observe::scene(&ctx, &canary).await?
    };
    if let Some(step) = status.step.clone()
        && let Some(from) = journal::resume_point(&ctx, &key, &step)
    {
        journal::carry_out(&ctx, canary, scene, step, from, true, true);
        return Ok(Action::await_change());
    }
    if canary.metadata.deletion_timestamp.is_none()
        && let Some(problem) = &scene.problem
    {
        ctx.tasks.forget(&key, None);
        return report::blocked(&ctx, &canary, problem).await;
    }
    let mut obs = scene.observation(&canary);
    if let Some(gathered) = ctx.tasks.gathered(&key, &gather::work(&canary, &status)) {
        obs.webhooks = gathered.webhooks;
        obs.metrics = gathered.metrics;
        obs.providers_online = gathered.providers_online;
    }
    let now = to_micros((ctx.clock)());
    let spec: &canary_core::CanarySpec = &canary.spec;
    let canary_ref = CanaryRef {
        name: &name,
        namespace: &ns,
        spec,
        settings: &ctx.settings.engine,
    };
    let step = canary_core::advance(&canary_ref, &status, &obs, now);
    if step.request().is_some() {
        if !ctx.tasks.gathering(&key, &gather::work(&canary, &status)) {
            gather::start(&ctx, canary.clone(), status, obs);
        }
        return Ok(Action::await_change());
    }
    let record = journal::new_record(&step.actions, now);
    // A step that changes nothing in the status (a wait) is not recorded: its effects are a
    // tick's (a wait event), done again at the next tick, and writing it would wake the
    // canary at once through its own watch.
    let must_record = record.effects.iter().any(effects::needs_record);
    let mut decided = (*canary).clone();
    if step.status != status || must_record {
        let mut next = step.status.clone();
        next.step = Some(record.clone());
        match journal::record(&ctx, &canary, &next).await? {
            Recorded::Written => {}
            Recorded::Stale => return Ok(Action::requeue(AFTER_CONFLICT)),
            Recorded::Gone => return Ok(Action::await_change()),
        }
        crashpoints::reached(Class::Durable, &format!("decided {key} {}", stamp(now))).await;
        decided.status = Some(next);
        journal::carry_out(&ctx, Arc::new(decided), scene, record, (0, 0), true, false);
    } else if !record.effects.is_empty() {
        journal::carry_out(&ctx, canary.clone(), scene, record, (0, 0), false, false);
    }
    // A step of an analysis under way, taken at or after its due time: how late it came.
    if let (Some(last), Some(phase)) = (status.last_transition_time, status.phase)
        && phase.is_active()
        && step.status.last_transition_time != status.last_transition_time
        && let Some(due) = spec.next_step_due(&ctx.settings.engine, last)
        && due <= now
    {
        let lag = (now - due).to_std().unwrap_or_default();
        ctx.stats.step_lag(lag.as_secs_f64());
    }
    if let Some(phase) = step.status.phase {
        ctx.stats.set_status(&spec.target_ref.name, &ns, phase);
    }
    ctx.stats
        .observe_duration(&spec.target_ref.name, &ns, started.elapsed().as_secs_f64());
    // Nothing due: looked at again after -control-loop-interval, as Flagger's control loop
    // does, from the caches (no request unless something changed).
    let resync = ctx
        .settings
        .control_loop_interval
        .max(Duration::from_secs(1));
    Ok(Action::requeue(
        step.requeue().map_or(resync, |d| d.min(MAX_REQUEUE)),
    ))
}

/// A step's time, cut to the microseconds its marks and keys print, so a step read back from
/// the status is the same step.
fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let micros = t.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(t)
}
