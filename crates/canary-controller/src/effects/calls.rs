//! The effects that call outside the cluster (post-rollout and event webhooks) and the rule
//! for which effects record their progress.

use canary_api::Canary;
use canary_core::{Action, HookType, Level, Phase};

use super::Effects;
use crate::crashpoints::{self, Class};
use crate::events::stamp;
use crate::{Context, Error, journal};

/// True for the effects that must be recorded before they are carried out: an alert and
/// the post-rollout webhooks only come with a status change, and cannot be undone. (Event
/// webhooks follow their event: recorded with a step that changes the status, sent once per
/// tick with one that does not.)
pub fn needs_record(effect: &Action) -> bool {
    matches!(
        effect,
        Action::Alert(_) | Action::RunPostRolloutHooks { .. }
    )
}

/// The `event` webhooks of the canary, or `-event-webhook` when it has none.
fn event_hooks(ctx: &Context, canary: &Canary) -> Vec<canary_core::spec::Webhook> {
    let own: Vec<_> = canary
        .spec
        .analysis()
        .map(|a| a.hooks(HookType::Event).cloned().collect())
        .unwrap_or_default();
    if !own.is_empty() {
        return own;
    }
    ctx.settings
        .event_webhook
        .iter()
        .map(|url| canary_core::spec::Webhook {
            name: "event-webhook".into(),
            url: url.clone(),
            ..Default::default()
        })
        .collect()
}

impl Effects {
    /// The idempotency key of a call made by effect `index`: the same on every attempt,
    /// before and after a restart.
    pub(super) fn call_key(&self, index: u32, kind: &str, call: u32) -> String {
        format!(
            "{}:{}:{kind}:{index}.{call}",
            self.canary.metadata.uid.as_deref().unwrap_or_default(),
            stamp(self.decided_at),
        )
    }

    /// Makes the outside call `key` once in this process: a retry of the effect (after a
    /// failed event or progress write) gets the first outcome instead of calling again. The
    /// outcome is kept as the text events show.
    pub(super) async fn call_once<F, Fut, E>(&self, key: &str, call: F) -> Result<(), String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
        E: std::error::Error,
    {
        let (canary, work) = (self.id(), journal::work(self.decided_at));
        if self.recorded
            && let Some(outcome) = self.ctx.tasks.recall(&canary, &work, key)
        {
            return outcome;
        }
        let outcome = call().await.map_err(|e| canary_core::error_chain(&e));
        if self.recorded {
            self.ctx
                .tasks
                .remember(&canary, &work, key, outcome.clone());
        }
        outcome
    }

    /// Calls the post-rollout webhooks in order, each result an event, until one fails.
    pub(super) async fn post_rollout(
        &self,
        index: u32,
        phase: Phase,
        calls_done: u32,
    ) -> Result<(), Error> {
        let hooks: Vec<_> = self
            .canary
            .spec
            .analysis()
            .map(|a| a.hooks(HookType::PostRollout).cloned().collect())
            .unwrap_or_default();
        for (j, hook) in hooks.iter().enumerate().skip(calls_done as usize) {
            let j = j as u32;
            let key = self.call_key(index, HookType::PostRollout.as_str(), j);
            let payload =
                canary_webhooks::Payload::new(&self.canary, phase, hook).with_key(key.clone());
            let outcome = self
                .call_once(&key, || self.ctx.webhooks.call(hook, &payload))
                .await;
            let point = format!("{} {}#{index}.{j}", self.id(), stamp(self.decided_at));
            crashpoints::reached(Class::Window, &format!("sent {point}")).await;
            let (warning, text) = canary_core::messages::post_rollout_result(&hook.name, &outcome);
            let level = if warning { Level::Warn } else { Level::Info };
            self.publish(level, &text, self.mark(format!("{index}.{j}")))
                .await?;
            // After a failure the remaining hooks are skipped, as in Flagger: the effect is done.
            let next = if outcome.is_err() {
                (index + 1, 0)
            } else {
                (index, j + 1)
            };
            if self.recorded {
                self.note(next);
                journal::progress(&self.ctx, &self.canary, self.decided_at, next).await?;
                crashpoints::reached(Class::Durable, &format!("call {point}")).await;
            }
            if outcome.is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Sends an event to the canary's `event` webhooks, or to `-event-webhook`.
    pub(super) async fn forward_event(
        &self,
        index: u32,
        e: &canary_core::Event,
        calls_done: u32,
    ) -> Result<(), Error> {
        let phase = self
            .canary
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(Phase::Initializing);
        let hooks = event_hooks(&self.ctx, &self.canary);
        for (j, hook) in hooks.iter().enumerate().skip(calls_done as usize) {
            let j = j as u32;
            let key = self.call_key(index, HookType::Event.as_str(), j);
            let mut payload =
                canary_webhooks::Payload::new(&self.canary, phase, hook).with_key(key.clone());
            payload
                .metadata
                .insert("eventMessage".into(), e.message.clone());
            payload
                .metadata
                .insert("eventType".into(), e.level.event_type().into());
            payload.metadata.insert(
                "timestamp".into(),
                self.decided_at.timestamp_millis().to_string(),
            );
            let sent = self
                .call_once(&key, || self.ctx.webhooks.call(hook, &payload))
                .await;
            if let Err(err) = sent {
                tracing::debug!(canary = %self.id(), "event webhook {} failed: {err}", hook.name);
            }
            let point = format!("{} {}#{index}.{j}", self.id(), stamp(self.decided_at));
            crashpoints::reached(Class::Window, &format!("sent {point}")).await;
            if self.recorded {
                self.note((index, j + 1));
                journal::progress(&self.ctx, &self.canary, self.decided_at, (index, j + 1)).await?;
                crashpoints::reached(Class::Durable, &format!("call {point}")).await;
            }
        }
        Ok(())
    }
}
