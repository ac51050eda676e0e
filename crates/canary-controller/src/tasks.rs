//! Each canary's background work, so that no reconcile worker ever waits on a webhook, a
//! metric query or an alert.
//!
//! Before a step is decided, a *gather* task calls the webhooks and runs the metric queries
//! the engine asks for and keeps their results here; after a step is decided, an *effects*
//! task carries out its effects. A canary has at most one task at a time. A reconcile that
//! finds its canary's effects running leaves the canary to them (the task asks for a reconcile
//! when it ends). A reconcile does go on while the canary's task gathers: if the engine
//! still needs what is being gathered it waits for it, and if it decides without it (a new
//! revision came, the canary became unready) the decision's effects replace the gathering,
//! which is cancelled. Deleting the canary cancels its task too.
//!
//! Nothing here is needed to continue after a restart: gathered results are asked again
//! (with the same idempotency keys), and effects resume from the step record in status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use canary_api::{Canary, Lenient};
use canary_core::Observation;
use futures::FutureExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::runtime::reflector::ObjectRef;

use crate::{Context, Error};

/// A canary's identity in the registry: `<namespace>/<name>`.
pub type Key = String;

/// How far a step's effects got: (effects done, calls done within the next effect).
pub type Progress = (u32, u32);

/// The registry of running tasks and gathered results.
pub struct Tasks {
    slots: Mutex<HashMap<Key, Slot>>,
    /// For each canary, what this process did of the last recorded step it carried out
    /// effects of. Kept apart from the slot, which later work replaces.
    done: Mutex<HashMap<Key, Done>>,
    wake: UnboundedSender<ObjectRef<Lenient<Canary>>>,
    woken: Mutex<Option<UnboundedReceiver<ObjectRef<Lenient<Canary>>>>>,
}

impl Default for Tasks {
    fn default() -> Self {
        let (wake, woken) = unbounded();
        Tasks {
            slots: Mutex::new(HashMap::new()),
            done: Mutex::new(HashMap::new()),
            wake,
            woken: Mutex::new(Some(woken)),
        }
    }
}

/// What this process did of a recorded step's effects.
#[derive(Default)]
struct Done {
    /// The step's work name.
    work: String,
    /// How far its effects got.
    progress: Progress,
    /// The outside calls made, by idempotency key, with their outcome: a retry in this
    /// process (after a failed write) does not call again.
    calls: HashMap<String, Result<(), String>>,
}

/// What a canary's slot holds.
#[derive(Default)]
struct Slot {
    /// The canary's uid: a new canary of the same name starts afresh.
    uid: String,
    /// The work the slot serves: `gather <generation>/<stamp>` or `effects <decided at>`.
    work: String,
    /// The running task.
    running: Option<tokio::task::AbortHandle>,
    /// A reconcile came while the task ran: ask for another when it ends.
    wanted: bool,
    /// Results gathered for `work`.
    gathered: Option<Observation>,
}

impl Tasks {
    /// The reconcile requests of finished tasks, for the controller; taken once.
    pub fn wake_ups(&self) -> Option<UnboundedReceiver<ObjectRef<Lenient<Canary>>>> {
        self.woken.lock().ok()?.take()
    }

    /// True when the canary's task carries out a step's effects: the reconcile leaves the
    /// canary to it, and the task asks for a reconcile when it ends. (A new canary of the
    /// same name forgets the old one's slot.)
    pub fn effects_running(&self, key: &str, uid: &str) -> bool {
        let Ok(mut slots) = self.slots.lock() else {
            return false;
        };
        let Some(slot) = slots.get_mut(key) else {
            return false;
        };
        if slot.uid != uid {
            if let Some(task) = slot.running.take() {
                task.abort();
            }
            slots.remove(key);
            return false;
        }
        let running = slot.running.as_ref().is_some_and(|t| !t.is_finished());
        if running && crate::journal::is_effects(&slot.work) {
            slot.wanted = true;
            return true;
        }
        false
    }

    /// True when the canary's task is gathering for `work`: the reconcile waits for it.
    pub fn gathering(&self, key: &str, work: &str) -> bool {
        let Ok(mut slots) = self.slots.lock() else {
            return false;
        };
        let Some(slot) = slots.get_mut(key) else {
            return false;
        };
        let running = slot.running.as_ref().is_some_and(|t| !t.is_finished());
        if running && slot.work == work {
            slot.wanted = true;
            return true;
        }
        false
    }

    /// The results gathered for `work`, if the slot serves it.
    pub fn gathered(&self, key: &str, work: &str) -> Option<Observation> {
        let slots = self.slots.lock().ok()?;
        let slot = slots.get(key)?;
        (slot.work == work).then(|| slot.gathered.clone()).flatten()
    }

    /// The effects of the recorded step `work` already carried out in this process.
    pub fn progress(&self, key: &str, work: &str) -> Option<Progress> {
        let done = self.done.lock().ok()?;
        let d = done.get(key)?;
        (d.work == work).then_some(d.progress)
    }

    /// Records effects of the recorded step `work` carried out.
    pub fn set_progress(&self, key: &str, work: &str, progress: Progress) {
        self.with_done(key, work, |d| d.progress = progress.max(d.progress));
    }

    /// The outcome of the outside call `call` of step `work`, if this process made it.
    pub fn recall(&self, key: &str, work: &str, call: &str) -> Option<Result<(), String>> {
        let done = self.done.lock().ok()?;
        let d = done.get(key)?;
        (d.work == work)
            .then(|| d.calls.get(call).cloned())
            .flatten()
    }

    /// Remembers that the outside call `call` of step `work` was made.
    pub fn remember(&self, key: &str, work: &str, call: &str, outcome: Result<(), String>) {
        self.with_done(key, work, |d| {
            d.calls.insert(call.to_string(), outcome);
        });
    }

    fn with_done(&self, key: &str, work: &str, change: impl FnOnce(&mut Done)) {
        if let Ok(mut done) = self.done.lock() {
            let d = done.entry(key.to_string()).or_default();
            if d.work != work {
                *d = Done {
                    work: work.to_string(),
                    ..Done::default()
                };
            }
            change(d);
        }
    }

    /// Keeps results gathered for `work`.
    pub fn set_gathered(&self, key: &str, work: &str, gathered: Observation) {
        if let Ok(mut slots) = self.slots.lock()
            && let Some(slot) = slots.get_mut(key)
            && slot.work == work
        {
            slot.gathered = Some(gathered);
        }
    }

    /// Asks for a reconcile of `canary` after `delay`.
    fn wake_later(&self, canary: ObjectRef<Lenient<Canary>>, delay: std::time::Duration) {
        let sender = self.wake.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = sender.unbounded_send(canary);
        });
    }

    /// Marks the task of `work` ended; true when a reconcile came while it ran.
    fn ended(&self, key: &str, work: &str) -> bool {
        match self.slots.lock() {
            Ok(mut slots) => match slots.get_mut(key) {
                Some(slot) if slot.work == work => {
                    slot.running = None;
                    std::mem::take(&mut slot.wanted)
                }
                _ => false,
            },
            Err(_) => true,
        }
    }

    /// Asks for a reconcile of `canary` now.
    pub fn wake(&self, canary: &ObjectRef<Lenient<Canary>>) {
        let _ = self.wake.unbounded_send(canary.clone());
    }

    /// How many canaries have a task running.
    pub fn count_running(&self) -> usize {
        self.slots.lock().map_or(0, |s| {
            s.values()
                .filter(|slot| slot.running.as_ref().is_some_and(|t| !t.is_finished()))
                .count()
        })
    }

    /// Cancels the canary's task and forgets it (the canary was deleted). With `uid`, only
    /// if the slot belongs to that canary: a late deletion of an old canary must not stop the
    /// work of a new one of the same name.
    pub fn forget(&self, key: &str, uid: Option<&str>) {
        if let Ok(mut slots) = self.slots.lock() {
            if uid.is_some_and(|u| slots.get(key).is_some_and(|s| s.uid != u)) {
                return;
            }
            if let Some(task) = slots.remove(key).and_then(|s| s.running) {
                task.abort();
            }
        }
        if let Ok(mut done) = self.done.lock() {
            done.remove(key);
        }
    }
}

/// Runs `job` for the canary as `work`, cancelling whatever its slot did before unless it
/// served the same work (whose gathered results and progress are kept).
///
/// When the job ends, the canary is reconciled again if `wake` is set or a reconcile came
/// meanwhile; when it fails (or panics, a flaggerd bug), after the canary's backoff delay,
/// and a failure that retrying will not cure (the API server refused a write) is also a
/// Warning event on the canary.
pub fn spawn<F>(
    ctx: &Arc<Context>,
    canary: &ObjectRef<Lenient<Canary>>,
    uid: &str,
    work: String,
    wake: bool,
    job: F,
) where
    F: std::future::Future<Output = Result<(), Error>> + Send + 'static,
{
    let key = key_of(canary);
    let Ok(mut slots) = ctx.tasks.slots.lock() else {
        return;
    };
    let slot = slots.entry(key.clone()).or_default();
    if let Some(task) = slot.running.take() {
        task.abort();
    }
    if slot.uid != uid || slot.work != work {
        *slot = Slot {
            uid: uid.to_string(),
            work: work.clone(),
            ..Slot::default()
        };
    }
    let (ctx2, canary, uid) = (ctx.clone(), canary.clone(), uid.to_string());
    let task = tokio::spawn(async move {
        let result = match std::panic::AssertUnwindSafe(job).catch_unwind().await {
            Ok(r) => r,
            Err(panic) => Err(Error::Panic(crate::run::panic_message(panic.as_ref()))),
        };
        let wanted = ctx2.tasks.ended(&key, &work);
        // A task's failures back off on their own count: the reconcile that resumes the
        // task succeeds, and must not reset it.
        let backoff = format!("{key} task");
        match result {
            Ok(()) => {
                ctx2.backoff.succeeded(&backoff);
                if wake || wanted {
                    ctx2.tasks.wake(&canary);
                }
            }
            Err(e) => {
                let delay = ctx2.backoff.failed(&backoff);
                let text = crate::error_chain(&e);
                tracing::warn!(canary = %key, "{text}; retrying in {:.1}s", delay.as_secs_f64());
                if !e.transient() {
                    report_failure(&ctx2, &canary, &uid, &text).await;
                }
                ctx2.tasks.wake_later(canary, delay);
            }
        }
    });
    slot.running = Some(task.abort_handle());
}

/// A failure of a canary's task, as a Warning event on the canary (one per failure: a
/// repeat raises the event's count).
async fn report_failure(ctx: &Context, canary: &ObjectRef<Lenient<Canary>>, uid: &str, text: &str) {
    let meta = kube::api::ObjectMeta {
        name: Some(canary.name.clone()),
        namespace: canary.namespace.clone(),
        uid: Some(uid.to_string()),
        ..Default::default()
    };
    let object = crate::effects::object_reference(&meta, "Canary");
    let message = format!("cannot carry out the step, will retry: {text}");
    let mark = crate::events::Mark::new((ctx.clock)(), "failed");
    if let Err(e) = ctx
        .events
        .publish(&object, canary_core::Level::Warn, &message, &mark)
        .await
    {
        tracing::warn!(canary = %key_of(canary), "cannot record the failure: {}", crate::error_chain(&e));
    }
}

/// The registry key of a canary.
pub fn key_of(canary: &ObjectRef<Lenient<Canary>>) -> Key {
    format!(
        "{}/{}",
        canary.namespace.as_deref().unwrap_or_default(),
        canary.name
    )
}
