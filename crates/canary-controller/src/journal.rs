//! The journal of a step: how flaggerd carries out each step's effects exactly once.
//!
//! 1. **Decide, then record.** The status the step leads to is written together with the
//!    step's effects (`status.step`), in one write conditioned on the canary's
//!    resourceVersion, before any effect is carried out. If the canary changed since it was
//!    read, nothing is written and the step is decided again.
//! 2. **Carry out, recording outside calls.** The effects run in order in the canary's
//!    task. Writes of generated objects are by desired state and events carry a mark, so
//!    doing either again changes nothing; a webhook or alert call cannot be taken back, so
//!    after each one `status.step.done`/`calls` is advanced (a JSON patch that first tests
//!    the step's `decidedAt`).
//! 3. **Resume, never decide twice.** A reconcile that finds a step record not carried out
//!    to its end (after a crash, a failed write, a new leader) carries out the rest from the
//!    recorded progress before any new decision.
//!
//! The one window: a call made and not yet recorded when flaggerd dies is made again on
//! restart, with the same payload and `Idempotency-Key` header, so a receiver that keys on
//! it (the loadtester does) acts once.

use std::sync::Arc;

use canary_api::{Canary, Lenient};
use canary_core::status::StepRecord;
use canary_core::{Action, CanaryStatus};
use chrono::{DateTime, Utc};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

use crate::crashpoints::{self, Class};
use crate::effects::Effects;
use crate::events::stamp;
use crate::observe::Scene;
use crate::{Context, Error, MANAGER, tasks};

/// The canaries' versions flaggerd wrote and its watch has not shown yet. The controller
/// decides on the watch cache of canaries; a cache that has not caught up with flaggerd's
/// own last write would decide a step again, so the reconcile waits for it (shortly: a write
/// not seen within [`CATCH_UP`] is taken as superseded, and the write of a decision is
/// conditioned on the version it read anyway).
#[derive(Default)]
pub struct OwnWrites {
    pending: std::sync::Mutex<std::collections::HashMap<String, (String, std::time::Instant)>>,
}

/// How long the watch may lag flaggerd's own write before the reconcile goes on without it.
pub const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(2);

impl OwnWrites {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (String, std::time::Instant)>>
    {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// flaggerd wrote version `rv` of canary `key`.
    pub fn wrote(&self, key: &str, rv: Option<&str>) {
        if let Some(rv) = rv {
            let now = std::time::Instant::now();
            self.lock().insert(key.to_string(), (rv.to_string(), now));
        }
    }

    /// The watch shows version `rv` of canary `key`.
    pub fn seen(&self, key: &str, rv: Option<&str>) {
        let mut pending = self.lock();
        if pending
            .get(key)
            .is_some_and(|(w, _)| Some(w.as_str()) == rv)
        {
            pending.remove(key);
        }
    }

    /// True while the watch has not shown flaggerd's last write of canary `key`; `current`
    /// is the version the store holds now (a write that changed nothing keeps the version
    /// and sends no watch event).
    pub fn behind(&self, key: &str, current: Option<&str>) -> bool {
        let mut pending = self.lock();
        match pending.get(key) {
            Some((rv, at)) if at.elapsed() < CATCH_UP && Some(rv.as_str()) != current => true,
            Some(_) => {
                pending.remove(key);
                false
            }
            None => false,
        }
    }
}

/// Outcome of recording a decided step.
#[derive(Debug, PartialEq, Eq)]
pub enum Recorded {
    /// The status and the step record are written.
    Written,
    /// The canary changed since it was read: decide again.
    Stale,
    /// The canary is gone.
    Gone,
}

/// Writes `status` (holding the step record, or a report's condition) in place of the
/// canary's status, only if the canary is still the version that was read.
pub async fn record(
    ctx: &Context,
    canary: &Canary,
    status: &CanaryStatus,
) -> Result<Recorded, Error> {
    let ns = canary.metadata.namespace.clone().unwrap_or_default();
    let name = canary.metadata.name.clone().unwrap_or_default();
    let api: Api<Canary> = Api::namespaced(ctx.client.clone(), &ns);
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let mut updated = canary.clone();
    updated.status = Some(status.clone());
    match api.replace_status(&name, &params, &updated).await {
        Ok(written) => {
            let key = format!("{ns}/{name}");
            ctx.own_writes
                .wrote(&key, written.metadata.resource_version.as_deref());
            Ok(Recorded::Written)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Recorded::Stale),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Recorded::Gone),
        Err(e) => Err(Error::kube(
            "write the status of",
            format!("canary {ns}/{name}"),
            e,
        )),
    }
}

/// Records that the step decided at `decided_at` got to `(done, calls)`; does nothing if a
/// newer step replaced it (the JSON patch tests `decidedAt` first).
pub async fn progress(
    ctx: &Context,
    canary: &Canary,
    decided_at: DateTime<Utc>,
    (done, calls): (u32, u32),
) -> Result<(), Error> {
    let ns = canary.metadata.namespace.clone().unwrap_or_default();
    let name = canary.metadata.name.clone().unwrap_or_default();
    let api: Api<Canary> = Api::namespaced(ctx.client.clone(), &ns);
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/status/step/decidedAt", "value": decided_at},
        {"op": "add", "path": "/status/step/done", "value": done},
        {"op": "add", "path": "/status/step/calls", "value": calls},
    ]))
    .map_err(|e| Error::Encode(format!("step progress patch: {e}")))?;
    let params = PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let patch = Patch::<()>::Json(patch);
    let sent = crate::world::retry(|| api.patch_status(&name, &params, &patch)).await;
    match sent {
        Ok(written) => {
            let key = format!("{ns}/{name}");
            ctx.own_writes
                .wrote(&key, written.metadata.resource_version.as_deref());
            Ok(())
        }
        // Gone, or a newer step: its progress no longer matters.
        Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409 | 422) => Ok(()),
        Err(e) => Err(Error::kube(
            "record the progress of",
            format!("canary {ns}/{name}"),
            e,
        )),
    }
}

/// Where to resume a recorded step: the recorded progress, or what this process carried
/// out since, whichever is further. `None` when the step is carried out.
pub fn resume_point(ctx: &Context, key: &str, step: &StepRecord) -> Option<(u32, u32)> {
    let recorded = (step.done, step.calls);
    let here = ctx.tasks.progress(key, &work(step.decided_at));
    let from = here.map_or(recorded, |h| h.max(recorded));
    (from.0 < step.effects.len() as u32).then_some(from)
}

/// The task work name of a step's effects.
pub fn work(decided_at: DateTime<Utc>) -> String {
    format!("effects {}", stamp(decided_at))
}

/// True for the work name of a step's effects.
pub fn is_effects(work: &str) -> bool {
    work.starts_with("effects ")
}

/// Carries out the effects of `step` from `from` in the canary's task. `recorded` says
/// whether the step is in the canary's status (outside calls then record their progress);
/// `wake` asks for a reconcile when the effects are done (a resumed step: the next
/// decision need not wait for the step's delay).
pub fn carry_out(
    ctx: &Arc<Context>,
    canary: Arc<Canary>,
    scene: Scene,
    step: StepRecord,
    from: (u32, u32),
    recorded: bool,
    wake: bool,
) {
    let object: ObjectRef<Lenient<Canary>> =
        ObjectRef::new(canary.metadata.name.as_deref().unwrap_or_default())
            .within(canary.metadata.namespace.as_deref().unwrap_or_default());
    let key = tasks::key_of(&object);
    let uid = canary.metadata.uid.clone().unwrap_or_default();
    let work = work(step.decided_at);
    let job = {
        let (ctx, key, work) = (ctx.clone(), key.clone(), work.clone());
        async move {
            let effects = Effects {
                ctx: ctx.clone(),
                canary,
                scene,
                decided_at: step.decided_at,
                recorded,
            };
            for (i, effect) in step.effects.iter().enumerate().skip(from.0 as usize) {
                let i = i as u32;
                let calls = if i == from.0 { from.1 } else { 0 };
                effects.one(i, effect, calls).await?;
                if !recorded {
                    continue;
                }
                ctx.tasks.set_progress(&key, &work, (i + 1, 0));
                // An alert's one call is recorded when the effect is done; effects with
                // several calls (webhooks) record each call.
                if matches!(effect, Action::Alert(_)) {
                    progress(&ctx, &effects.canary, step.decided_at, (i + 1, 0)).await?;
                }
                let point = format!("effect {key} {}#{i}", stamp(step.decided_at));
                crashpoints::reached(Class::Durable, &point).await;
            }
            Ok(())
        }
    };
    tasks::spawn(ctx, &object, &uid, work, wake, job);
}

/// The step record of a decision taken at `now`: its effects, without requests and delays.
pub fn new_record(actions: &[Action], now: DateTime<Utc>) -> StepRecord {
    StepRecord {
        decided_at: now,
        effects: actions
            .iter()
            .filter(|a| !a.is_request() && !matches!(a, Action::Requeue(_)))
            .cloned()
            .collect(),
        done: 0,
        calls: 0,
    }
}
