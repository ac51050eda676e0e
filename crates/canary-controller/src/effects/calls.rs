//! The effects that call outside the cluster (post-rollout and event webhooks) and the rule
//! for which effects record their progress.

use canary_api::Canary;
use canary_core::{Action, HookType, Level, Phase};

use super::Effects;
use crate::crashpoints::{self, Class};
use crate::events::stamp;
use crate::{Context, Error, journal};

/// True for the effects that make outside calls (webhooks, alerts): their progress is
/// recorded, since they cannot be undone or deduplicated by flaggerd.
pub fn calls_outside(ctx: &Context, canary: &Canary, effect: &Action) -> bool {
    match effect {
        Action::Alert(_) | Action::RunPostRolloutHooks { .. } => true,
        Action::Emit(_) => !event_hooks(ctx, canary).is_empty(),
        _ => false,
    }
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
    pub(super) fn call_key(&self, index: u32, kind: HookType, call: u32) -> String {
        format!(
            "{}:{}:{}:{index}.{call}",
            self.canary.metadata.uid.as_deref().unwrap_or_default(),
            stamp(self.decided_at),
            kind.as_str()
        )
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
            let payload = canary_webhooks::Payload::new(&self.canary, phase, hook)
                .with_key(self.call_key(index, HookType::PostRollout, j));
            let outcome = self.ctx.webhooks.call(hook, &payload).await;
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
            let mut payload = canary_webhooks::Payload::new(&self.canary, phase, hook)
                .with_key(self.call_key(index, HookType::Event, j));
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
            if let Err(err) = self.ctx.webhooks.call(hook, &payload).await {
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
