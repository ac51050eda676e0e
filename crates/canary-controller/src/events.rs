//! Kubernetes events on the Canary, with Flagger's reason (`Synced`) and texts, also logged.
//!
//! kube-rs's recorder aggregates events by reason, action and type, so each distinct message
//! gets its own action (a short key derived from the text): repeats of one message become a
//! series, as client-go's recorder does for Flagger.

use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use canary_core::{Level, messages::EVENT_REASON};

/// Records events for canaries.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

impl Events {
    /// A recorder reporting as `flagger` from `instance`.
    pub fn new(client: kube::Client, instance: &str) -> Self {
        let reporter = Reporter {
            controller: "flagger".into(),
            instance: Some(instance.to_string()),
        };
        Events {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// Records and logs one event; a failure to record is logged, never fatal.
    pub async fn publish(&self, canary: &canary_api::Canary, level: Level, message: &str) {
        let id = format!(
            "{}.{}",
            canary.metadata.name.as_deref().unwrap_or_default(),
            canary.metadata.namespace.as_deref().unwrap_or_default()
        );
        match level {
            Level::Info => tracing::info!(canary = %id, "{message}"),
            Level::Warn => tracing::warn!(canary = %id, "{message}"),
            Level::Error => tracing::error!(canary = %id, "{message}"),
        }
        let event = Event {
            type_: if level == Level::Info {
                EventType::Normal
            } else {
                EventType::Warning
            },
            reason: EVENT_REASON.into(),
            note: Some(message.chars().take(1024).collect()),
            action: action_key(message),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &canary.object_ref(&())).await {
            tracing::warn!(canary = %id, "cannot record event: {e}");
        }
    }
}

/// A short, stable key per message: its first word and a hash of the text.
fn action_key(message: &str) -> String {
    let word: String = message
        .split_whitespace()
        .next()
        .unwrap_or("Event")
        .chars()
        .filter(|c| c.is_alphanumeric())
        .take(32)
        .collect();
    let hash = canary_core::hash::config_checksum(&serde_json::Value::String(message.to_string()));
    format!("{word}-{}", &hash[..8])
}
