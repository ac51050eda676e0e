//! `spec.analysis`: the schedule, the checks (metrics and webhooks) and the alerts.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Extra, is_false};
use crate::duration;

/// Flagger's default analysis interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Flagger's default metric interval.
pub const DEFAULT_METRIC_INTERVAL: &str = "1m";
/// Flagger's default webhook timeout.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// `spec.analysis` (Flagger's `CanaryAnalysis`).
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryAnalysis {
    /// Time between two analysis steps, e.g. `1m`; 60s by default, at least 10s.
    #[schemars(regex(pattern = r"^[0-9]+(m|s)"))]
    pub interval: Option<String>,
    /// Failed checks that roll the canary back.
    pub threshold: Option<i32>,
    /// Canary weight at which promotion starts (100 by default).
    pub max_weight: Option<i32>,
    /// Weight added to the canary at each step.
    pub step_weight: Option<i32>,
    /// Explicit weight schedule, e.g. `[1, 2, 10, 80]`; `stepWeight` takes precedence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_weights: Vec<i32>,
    /// Weight moved back to the primary at each step after promotion; 0 moves it all at once.
    pub step_weight_promotion: Option<i32>,
    /// Analysis steps for A/B testing and blue/green.
    pub iterations: Option<i32>,
    /// Mirror the primary's traffic to the canary.
    #[serde(default, skip_serializing_if = "is_false")]
    pub mirror: bool,
    /// Percentage of requests mirrored (Istio).
    pub mirror_weight: Option<i32>,
    /// Percentage of primary pods that must be available (100 by default).
    pub primary_ready_threshold: Option<i32>,
    /// Percentage of canary pods that must be available (100 by default).
    pub canary_ready_threshold: Option<i32>,
    /// A/B testing conditions: matching requests go to the canary.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub r#match: Vec<HttpMatch>,
    /// Sticky canary sessions through a cookie (Istio, Gateway API).
    pub session_affinity: Option<SessionAffinity>,
    /// Metric checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// Webhooks: gates, tests, load generation, notifications.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<Webhook>,
    /// Alerts sent to AlertProviders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<Alert>,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

impl CanaryAnalysis {
    /// The interval between steps: 60s when unset or unreadable, never below `floor`.
    pub fn interval(&self, floor: Duration) -> Duration {
        let parsed = self
            .interval
            .as_deref()
            .and_then(|s| duration::parse(s).ok());
        parsed.unwrap_or(DEFAULT_INTERVAL).max(floor)
    }

    /// The failed-checks threshold; values below 1 count as 1, as in Flagger.
    pub fn threshold(&self) -> u32 {
        self.threshold.unwrap_or(0).max(1) as u32
    }

    /// The number of iterations (A/B, blue/green), 0 when unset.
    pub fn iterations(&self) -> u32 {
        self.iterations.unwrap_or(0).max(0) as u32
    }

    /// The weight at which promotion starts: the last of `stepWeights` (at most 100), else
    /// `maxWeight`, else 100.
    pub fn max_weight(&self) -> u32 {
        if let Some(last) = self.step_weights.last() {
            return (*last).clamp(0, 100) as u32;
        }
        match self.max_weight {
            Some(w) if w > 0 => w.min(100) as u32,
            _ => 100,
        }
    }

    /// The weight added at each step, 0 when `stepWeights` is used instead.
    pub fn step_weight(&self) -> u32 {
        self.step_weight.unwrap_or(0).max(0) as u32
    }

    /// `stepWeightPromotion`, 0 when unset.
    pub fn step_weight_promotion(&self) -> u32 {
        self.step_weight_promotion.unwrap_or(0).clamp(0, 100) as u32
    }

    /// Ready threshold of the primary in percent.
    pub fn primary_ready_threshold(&self) -> u32 {
        self.primary_ready_threshold.unwrap_or(100).clamp(0, 100) as u32
    }

    /// Ready threshold of the canary in percent.
    pub fn canary_ready_threshold(&self) -> u32 {
        self.canary_ready_threshold.unwrap_or(100).clamp(0, 100) as u32
    }

    /// The webhooks of one type, in spec order.
    pub fn hooks(&self, kind: HookType) -> impl Iterator<Item = &Webhook> {
        self.webhooks.iter().filter(move |w| w.kind() == Some(kind))
    }
}

/// A request match condition (Istio `HTTPMatchRequest`, mapped to each provider).
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatch {
    /// Name of the match, used in logs.
    pub name: Option<String>,
    /// URI condition.
    pub uri: Option<StringMatch>,
    /// URI scheme condition.
    pub scheme: Option<StringMatch>,
    /// HTTP method condition.
    pub method: Option<StringMatch>,
    /// Authority condition.
    pub authority: Option<StringMatch>,
    /// Header conditions, keyed by lower-case header name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// Query parameter conditions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_params: BTreeMap<String, StringMatch>,
    /// Headers that must not match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Destination port.
    pub port: Option<u32>,
    /// Labels of the calling workload.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Namespace of the calling workload.
    pub source_namespace: Option<String>,
    /// Gateways the match applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Case-insensitive URI matching.
    pub ignore_uri_case: Option<bool>,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// A string condition: exactly one of exact, prefix, suffix or regex.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct StringMatch {
    /// Exact value.
    pub exact: Option<String>,
    /// Prefix.
    pub prefix: Option<String>,
    /// Suffix.
    pub suffix: Option<String>,
    /// RE2 regular expression.
    pub regex: Option<String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// `analysis.sessionAffinity`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SessionAffinity {
    /// Cookie that pins a user to the canary.
    #[serde(default)]
    pub cookie_name: String,
    /// Cookie that pins a user to the primary.
    pub primary_cookie_name: Option<String>,
    /// Cookie domain.
    pub domain: Option<String>,
    /// HttpOnly cookie attribute.
    #[serde(default, skip_serializing_if = "is_false")]
    pub http_only: bool,
    /// Cookie lifetime in seconds (86400 by default).
    pub max_age: Option<i32>,
    /// Partitioned cookie attribute.
    #[serde(default, skip_serializing_if = "is_false")]
    pub partitioned: bool,
    /// Cookie path.
    pub path: Option<String>,
    /// SameSite attribute: `Strict`, `Lax` or `None`.
    pub same_site: Option<String>,
    /// Secure cookie attribute.
    #[serde(default, skip_serializing_if = "is_false")]
    pub secure: bool,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// A metric check in `analysis.metrics`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    /// Name: `request-success-rate` and `request-duration` are builtin; others need a
    /// `templateRef` or a `query`.
    #[serde(default)]
    pub name: String,
    /// Window of the query, e.g. `1m` (the default).
    pub interval: Option<String>,
    /// Deprecated single threshold.
    pub threshold: Option<f64>,
    /// Accepted range of the value.
    pub threshold_range: Option<ThresholdRange>,
    /// Deprecated inline PromQL.
    pub query: Option<String>,
    /// The MetricTemplate that holds the query.
    pub template_ref: Option<TemplateRef>,
    /// Values for `{{ variables.key }}` in the template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub template_variables: BTreeMap<String, String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// The builtin metrics Flagger knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// `request-success-rate`, in percent.
    SuccessRate,
    /// `request-duration`, the P99 in milliseconds.
    Duration,
}

impl Metric {
    /// The builtin metric this is, when it has no template.
    pub fn builtin(&self) -> Option<Builtin> {
        if self.template_ref.is_some() {
            return None;
        }
        match self.name.as_str() {
            "request-success-rate" => Some(Builtin::SuccessRate),
            "request-duration" => Some(Builtin::Duration),
            _ => None,
        }
    }

    /// The query window, `1m` when unset.
    pub fn interval_or_default(&self) -> &str {
        match self.interval.as_deref() {
            Some(i) if !i.is_empty() => i,
            _ => DEFAULT_METRIC_INTERVAL,
        }
    }
}

/// `thresholdRange`: the value must lie within `[min, max]`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct ThresholdRange {
    /// Lowest accepted value.
    pub min: Option<f64>,
    /// Highest accepted value.
    pub max: Option<f64>,
}

/// A reference to a MetricTemplate.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct TemplateRef {
    /// Template name.
    #[serde(default)]
    pub name: String,
    /// Template namespace; the canary's when empty.
    pub namespace: Option<String>,
}

/// The webhook types of `analysis.webhooks[].type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookType {
    /// Gate before a new revision is scaled up.
    ConfirmRollout,
    /// Test before any traffic reaches the canary.
    PreRollout,
    /// Check (or load generation) at every analysis step; the default type.
    Rollout,
    /// Gate before each weight increase.
    ConfirmTrafficIncrease,
    /// Gate before promotion.
    ConfirmPromotion,
    /// Notification after success or failure.
    PostRollout,
    /// Receives every event flaggerd records for the canary.
    Event,
    /// A 2xx answer rolls the canary back at once.
    Rollback,
}

impl serde::Serialize for HookType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for HookType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        HookType::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown webhook type {text:?}")))
    }
}

impl HookType {
    /// Every type, in the order of a release.
    pub const ALL: [HookType; 8] = [
        HookType::ConfirmRollout,
        HookType::PreRollout,
        HookType::Rollout,
        HookType::ConfirmTrafficIncrease,
        HookType::ConfirmPromotion,
        HookType::PostRollout,
        HookType::Event,
        HookType::Rollback,
    ];

    /// The spelling in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            HookType::ConfirmRollout => "confirm-rollout",
            HookType::PreRollout => "pre-rollout",
            HookType::Rollout => "rollout",
            HookType::ConfirmTrafficIncrease => "confirm-traffic-increase",
            HookType::ConfirmPromotion => "confirm-promotion",
            HookType::PostRollout => "post-rollout",
            HookType::Event => "event",
            HookType::Rollback => "rollback",
        }
    }

    /// Reads a type; the empty string is `rollout`, as in Flagger.
    pub fn parse(text: &str) -> Option<HookType> {
        if text.is_empty() {
            return Some(HookType::Rollout);
        }
        HookType::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// A webhook in `analysis.webhooks`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Name, shown in events.
    #[serde(default)]
    pub name: String,
    /// Type; `rollout` when empty.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["", "confirm-rollout", "pre-rollout", "rollout", "confirm-promotion", "post-rollout", "event", "rollback", "confirm-traffic-increase"]))]
    pub r#type: Option<String>,
    /// Address the payload is posted to.
    #[serde(default)]
    pub url: String,
    /// Request timeout, `10s` by default.
    pub timeout: Option<String>,
    /// Retries on connection errors, 429 and 5xx.
    pub retries: Option<i32>,
    /// Skip TLS verification.
    #[serde(default, rename = "disableTLS", skip_serializing_if = "is_false")]
    pub disable_tls: bool,
    /// Send no alert when this gate holds the canary.
    #[serde(default, skip_serializing_if = "is_false")]
    pub mute_alert: bool,
    /// Metadata sent in the payload (`type`, `cmd` for the loadtester).
    pub metadata: Option<BTreeMap<String, String>>,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

impl Webhook {
    /// The hook's type, `None` when the spec names an unknown one.
    pub fn kind(&self) -> Option<HookType> {
        HookType::parse(self.r#type.as_deref().unwrap_or(""))
    }

    /// The request timeout: 10s when unset or unreadable.
    pub fn timeout(&self) -> Duration {
        match self.timeout.as_deref() {
            Some(t) if t.len() >= 2 => duration::parse(t).unwrap_or(DEFAULT_WEBHOOK_TIMEOUT),
            _ => DEFAULT_WEBHOOK_TIMEOUT,
        }
    }
}

/// An alert in `analysis.alerts`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Name of the alert.
    #[serde(default)]
    pub name: String,
    /// Lowest severity sent: `info`, `warn` or `error`.
    #[schemars(extend("enum" = ["", "info", "warn", "error"]))]
    pub severity: Option<String>,
    /// The AlertProvider to send to.
    #[serde(default)]
    pub provider_ref: ProviderRef,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// A reference to an AlertProvider.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct ProviderRef {
    /// Provider name.
    #[serde(default)]
    pub name: String,
    /// Provider namespace; the canary's when empty.
    pub namespace: Option<String>,
}
