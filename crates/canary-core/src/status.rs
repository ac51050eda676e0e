//! `Canary.status`: Flagger's fields, plus `analysis`, flaggerd's explanation of the last
//! decision (each check's last value against its threshold).
//!
//! Everything the engine needs to continue lives here (and in the route weights), so a
//! restarted controller resumes where the last one stopped.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::spec::Extra;

/// The phases of a canary, serialized exactly as Flagger's.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Generated objects are being created; waiting for the primary to be ready.
    Initializing,
    /// The primary serves all traffic; waiting for a new revision.
    Initialized,
    /// A new revision waits for a `confirm-rollout` gate.
    Waiting,
    /// The analysis runs.
    Progressing,
    /// The analysis finished; a `confirm-promotion` gate holds the promotion.
    WaitingPromotion,
    /// The canary's spec was copied to the primary, which is rolling out.
    Promoting,
    /// Traffic is back on the primary; the canary is being scaled down.
    Finalising,
    /// The last revision was promoted.
    Succeeded,
    /// The last revision was rolled back.
    Failed,
    /// The canary is being deleted and its target restored.
    Terminating,
    /// Declared by Flagger, never set.
    Terminated,
}

impl Phase {
    /// The serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Initializing => "Initializing",
            Phase::Initialized => "Initialized",
            Phase::Waiting => "Waiting",
            Phase::Progressing => "Progressing",
            Phase::WaitingPromotion => "WaitingPromotion",
            Phase::Promoting => "Promoting",
            Phase::Finalising => "Finalising",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Terminating => "Terminating",
            Phase::Terminated => "Terminated",
        }
    }

    /// True while an analysis is under way (Flagger's `shouldAdvance` phases).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Phase::Progressing
                | Phase::Waiting
                | Phase::WaitingPromotion
                | Phase::Promoting
                | Phase::Finalising
        )
    }

    /// The value of Flagger's `flagger_canary_status` gauge: 0 progressing, 2 failed, 1 else.
    pub fn status_gauge(self) -> i64 {
        match self {
            Phase::Progressing => 0,
            Phase::Failed => 2,
            _ => 1,
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Canary.status`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// Current phase; absent on a canary never reconciled.
    #[serde(
        default,
        deserialize_with = "phase_or_empty",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub phase: Option<Phase>,
    /// Failed checks of the current analysis (cumulative, as in Flagger).
    #[serde(default)]
    pub failed_checks: u32,
    /// Traffic weight of the canary, informational.
    #[serde(default)]
    pub canary_weight: u32,
    /// Analysis steps done (A/B, blue/green).
    #[serde(default)]
    pub iterations: u32,
    /// Hash of the target's pod template at the last sync.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_applied_spec: String,
    /// Hash of the pod template last promoted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_promoted_spec: String,
    /// Checksums of the tracked ConfigMaps and Secrets (`configmap/<name>`, `secret/<name>`).
    pub tracked_configs: Option<BTreeMap<String, String>>,
    /// Time of the last status change.
    pub last_transition_time: Option<DateTime<Utc>>,
    /// The `Promoted` condition (and `Valid` when the spec is invalid).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Cookie that pins a session to the canary.
    pub session_affinity_cookie: Option<String>,
    /// Cookie that pins a session to the primary.
    pub primary_session_affinity_cookie: Option<String>,
    /// The previous canary cookie, expired when traffic returns to the primary.
    pub previous_session_affinity_cookie: Option<String>,
    /// flaggerd only: why the last analysis step decided what it did.
    pub analysis: Option<AnalysisReport>,
    /// flaggerd only: the effects of the last step, recorded with the status they lead to
    /// before any of them is carried out, and how far they have been carried out.
    pub step: Option<StepRecord>,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// The record of a decided step (`status.step`): written together with the status the step
/// leads to, before any effect, so that a controller that stops at any point resumes the
/// effects that are left instead of deciding the step again. See the controller's journal.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// When the step was decided; it identifies the step in event marks and webhook
    /// idempotency keys.
    pub decided_at: DateTime<Utc>,
    /// The effects, in order.
    #[schemars(schema_with = "effect_list")]
    pub effects: Vec<crate::Action>,
    /// Effects carried out and recorded as done. Effects with outside calls (webhooks,
    /// alerts) record their progress; the others are safe to carry out again.
    #[serde(default)]
    pub done: u32,
    /// Calls (webhook posts) made within effect number `done`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub calls: u32,
}

impl StepRecord {
    /// True when every effect is recorded as done.
    pub fn finished(&self) -> bool {
        self.done as usize >= self.effects.len()
    }
}

/// Schema of `status.step.effects`: an effect with fields is an object (`{"setRoutes": ...}`),
/// one without is its name (`"initialize"`), so each item is any JSON value the API server
/// keeps as it is (no `type`, which a structural schema allows with preserve-unknown-fields).
fn effect_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": { "x-kubernetes-preserve-unknown-fields": true }
    })
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A status condition (`Promoted`, or flaggerd's `Valid`).
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Promoted` or `Valid`.
    pub r#type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Last time the condition was written.
    pub last_update_time: Option<DateTime<Utc>>,
    /// Last time the status value changed.
    pub last_transition_time: Option<DateTime<Utc>>,
    /// Machine-readable reason (the phase for `Promoted`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// flaggerd's explanation of the last analysis step, kept in `status.analysis`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisReport {
    /// The decision of the last step, in the words of its event.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub decision: String,
    /// When the checks below ran.
    pub last_run_time: Option<DateTime<Utc>>,
    /// The last result of each check that ran, in the order they ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckReport>,
}

/// The last result of one metric or webhook check.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    /// Metric or webhook name.
    pub name: String,
    /// `metric` or the webhook type (`pre-rollout`, `rollout`, ...).
    pub kind: String,
    /// Outcome.
    pub result: CheckResult,
    /// Measured value (percent for success rate, milliseconds for duration).
    pub value: Option<f64>,
    /// The accepted range, e.g. `>= 99` or `<= 500`.
    pub threshold: Option<String>,
    /// Error text or answer of a failed check.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Outcome of a check.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// Within the threshold, or the hook answered success.
    Passed,
    /// Outside the threshold, or the hook answered failure.
    Failed,
    /// The query returned no data: counts as failed.
    NoData,
    /// The query or call failed: counts as failed.
    Error,
}

impl CanaryStatus {
    /// The phase, treating a missing one as `Initializing` is the caller's choice; this
    /// returns it as stored.
    pub fn phase(&self) -> Option<Phase> {
        self.phase
    }

    /// The condition of a type.
    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.r#type == kind)
    }
}

fn phase_or_empty<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Phase>, D::Error> {
    let raw: Option<String> = Option::deserialize(de)?;
    match raw.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => serde_json::from_value(serde_json::Value::String(text.to_string()))
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("unknown canary phase {text:?}"))),
    }
}
