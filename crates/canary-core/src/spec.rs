//! The `spec` of a Flagger `Canary` (`flagger.app/v1beta1`), field for field.
//!
//! These types are the wire format: `canary-api` wraps them in the Kubernetes resource and
//! generates the CRD schema from them. Every struct keeps the fields it does not know in
//! `extra`, so a newer Flagger field survives a read and a write by flaggerd. Accessors apply
//! Flagger's defaults (interval 60s with a 10s floor, threshold at least 1, max weight 100...)
//! in one place; nothing here does I/O.

mod analysis;
mod service;

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use analysis::{
    Alert, Builtin, CanaryAnalysis, DEFAULT_INTERVAL, DEFAULT_METRIC_INTERVAL,
    DEFAULT_WEBHOOK_TIMEOUT, HookType, HttpMatch, Metric, ProviderRef, SessionAffinity,
    StringMatch, TemplateRef, ThresholdRange, Webhook,
};
pub use service::{
    CanaryService, CorsPolicy, CustomMetadata, HeaderOperations, Headers, IntOrString, ParentRef,
    Retries, Rewrite, UnmanagedMetadata,
};

/// Fields a struct does not model, kept verbatim so they survive a round trip.
pub type Extra = BTreeMap<String, serde_json::Value>;

/// Flagger's default for `progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);

/// The providers Flagger's CRD accepts in `spec.provider` (and `-mesh-provider`).
pub const KNOWN_PROVIDERS: &[&str] = &[
    "apisix",
    "appmesh",
    "appmesh:v1beta2",
    "contour",
    "gatewayapi:v1",
    "gatewayapi:v1beta1",
    "gloo",
    "istio",
    "knative",
    "kubernetes",
    "kuma",
    "linkerd",
    "nginx",
    "osm",
    "skipper",
    "smi:v1alpha1",
    "smi:v1alpha2",
    "smi:v1alpha3",
    "traefik",
];

/// `Canary.spec`: what to release (the target), how to expose it (the service) and how to
/// judge it (the analysis).
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanarySpec {
    /// Service mesh or ingress provider for this canary; overrides the controller's
    /// `-mesh-provider`.
    #[schemars(extend("enum" = KNOWN_PROVIDERS))]
    pub provider: Option<String>,
    /// Prometheus address for the builtin metrics; overrides `-metrics-server`.
    pub metrics_server: Option<String>,
    /// The workload under release: a Deployment or a DaemonSet.
    pub target_ref: TargetRef,
    /// The HorizontalPodAutoscaler (or KEDA ScaledObject) of the target, cloned as `-primary`.
    pub autoscaler_ref: Option<AutoscalerRef>,
    /// The Ingress to clone (NGINX provider).
    pub ingress_ref: Option<TargetRef>,
    /// The ApisixRoute to clone (APISIX provider).
    pub route_ref: Option<TargetRef>,
    /// The Gloo Upstream to copy into the generated upstreams.
    pub upstream_ref: Option<CrossNamespaceRef>,
    /// How the target is exposed: the generated Services and routing objects. A Knative
    /// Service target needs none (Flagger's CRD does not require it).
    #[serde(default)]
    pub service: CanaryService,
    /// How the canary is judged and how traffic moves.
    pub analysis: Option<CanaryAnalysis>,
    /// Deprecated alias of `analysis`, honoured when `analysis` is absent.
    pub canary_analysis: Option<CanaryAnalysis>,
    /// Seconds the canary (or primary) may take to make progress before it counts as failed.
    pub progress_deadline_seconds: Option<i32>,
    /// Promote without running metrics or webhooks.
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_analysis: bool,
    /// On deletion, restore the target and the routing the canary took over.
    #[serde(default, skip_serializing_if = "is_false")]
    pub revert_on_deletion: bool,
    /// Freeze the canary: no analysis step runs while true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspend: bool,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// A reference to an object in the canary's namespace.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// API version of the referent, e.g. `apps/v1`.
    pub api_version: Option<String>,
    /// Kind of the referent, e.g. `Deployment`.
    #[serde(default)]
    pub kind: String,
    /// Name of the referent.
    #[serde(default)]
    pub name: String,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// The API version of a Knative Service target.
pub const KNATIVE_SERVING: &str = "serving.knative.dev/v1";

impl TargetRef {
    /// A Knative Service (`serving.knative.dev/v1` `Service`), as Flagger's
    /// `IsKnativeService` tells it from a core Service.
    pub fn is_knative_service(&self) -> bool {
        self.kind == "Service" && self.api_version.as_deref() == Some(KNATIVE_SERVING)
    }

    /// A core `v1` Service target (Flagger's service controller).
    pub fn is_core_service(&self) -> bool {
        self.kind == "Service" && !self.is_knative_service()
    }
}

/// A reference to an object that may live in another namespace.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CrossNamespaceRef {
    /// API version of the referent.
    pub api_version: Option<String>,
    /// Kind of the referent.
    #[serde(default)]
    pub kind: String,
    /// Name of the referent.
    #[serde(default)]
    pub name: String,
    /// Namespace of the referent; the canary's namespace when empty.
    pub namespace: Option<String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// `spec.autoscalerRef`: the target's autoscaler, cloned as `<name>-primary`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerRef {
    /// API version, e.g. `autoscaling/v2`.
    pub api_version: Option<String>,
    /// `HorizontalPodAutoscaler` or `ScaledObject`.
    #[serde(default)]
    pub kind: String,
    /// Name of the autoscaler.
    #[serde(default)]
    pub name: String,
    /// KEDA only: trigger name to the query used in the primary ScaledObject.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub primary_scaler_queries: BTreeMap<String, String>,
    /// Replica bounds for the primary autoscaler only.
    pub primary_scaler_replicas: Option<ScalerReplicas>,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// `autoscalerRef.primaryScalerReplicas`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScalerReplicas {
    /// Minimum replicas of the primary autoscaler.
    pub min_replicas: Option<i32>,
    /// Maximum replicas of the primary autoscaler.
    pub max_replicas: Option<i32>,
}

/// The release strategy Flagger derives from the analysis (`Canary.DeploymentStrategy()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Progressive traffic shifting by weight.
    Canary,
    /// Requests that match `analysis.match` go to the canary for `iterations` ticks.
    AbTesting,
    /// The canary is tested for `iterations` ticks, then all traffic switches at once.
    BlueGreen,
    /// Blue/green while the primary's traffic is mirrored to the canary.
    BlueGreenMirroring,
}

impl Strategy {
    /// The label Flagger's metrics use (`deployment_strategy`).
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Canary => "canary",
            Strategy::AbTesting => "ab-testing",
            Strategy::BlueGreen | Strategy::BlueGreenMirroring => "blue-green",
        }
    }
}

/// Settings of the controller that embeds the engine, the part of a decision that is not in
/// the canary itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Provider used when `spec.provider` is empty (Flagger's `-mesh-provider`).
    pub default_provider: String,
    /// The shortest analysis interval honoured; Flagger hard-codes 10s. Test clusters lower it.
    pub min_interval: Duration,
    /// Refuse references to MetricTemplates, AlertProviders and Gloo upstreams of another
    /// namespace (Flagger's `-no-cross-namespace-refs`).
    pub no_cross_namespace_refs: bool,
}

impl Settings {
    /// Flagger's behaviour: the given default provider and a 10s interval floor.
    pub fn new(default_provider: impl Into<String>) -> Self {
        Settings {
            default_provider: default_provider.into(),
            min_interval: Duration::from_secs(10),
            no_cross_namespace_refs: false,
        }
    }
}

impl CanarySpec {
    /// The analysis block, honouring the deprecated `canaryAnalysis` alias.
    pub fn analysis(&self) -> Option<&CanaryAnalysis> {
        self.analysis.as_ref().or(self.canary_analysis.as_ref())
    }

    /// The time between two analysis steps: the analysis' interval, or the default one,
    /// never under the controller's floor (`min_interval`).
    pub fn analysis_interval(&self, settings: &Settings) -> std::time::Duration {
        self.analysis()
            .map_or(DEFAULT_INTERVAL.max(settings.min_interval), |a| {
                a.interval(settings.min_interval)
            })
    }

    /// When the step after one taken at `last` is due, `None` past the end of the calendar.
    pub fn next_step_due(
        &self,
        settings: &Settings,
        last: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        crate::duration::after(last, self.analysis_interval(settings))
    }

    /// True when the canary is promoted without analysis (`skipAnalysis`, or no analysis at all).
    pub fn skips_analysis(&self) -> bool {
        self.skip_analysis || self.analysis().is_none()
    }

    /// The provider for this canary: `spec.provider`, else the controller's default.
    pub fn provider<'a>(&'a self, settings: &'a Settings) -> &'a str {
        match self.provider.as_deref() {
            Some(p) if !p.is_empty() => p,
            _ => &settings.default_provider,
        }
    }

    /// `progressDeadlineSeconds`, 600s when unset.
    pub fn progress_deadline(&self) -> Duration {
        match self.progress_deadline_seconds {
            Some(s) if s > 0 => Duration::from_secs(s as u64),
            _ => DEFAULT_PROGRESS_DEADLINE,
        }
    }

    /// The apex Service name: `service.name`, else the target's name.
    pub fn service_name(&self) -> &str {
        match self.service.name.as_deref() {
            Some(n) if !n.is_empty() => n,
            _ => &self.target_ref.name,
        }
    }

    /// The strategy Flagger derives: A/B with `match` and `iterations`, blue/green with
    /// `iterations` alone, else canary.
    pub fn strategy(&self) -> Strategy {
        let Some(a) = self.analysis() else {
            return Strategy::Canary;
        };
        let iterations = a.iterations.unwrap_or(0) > 0;
        match (iterations, a.r#match.is_empty(), a.mirror) {
            (true, false, _) => Strategy::AbTesting,
            (true, true, true) => Strategy::BlueGreenMirroring,
            (true, true, false) => Strategy::BlueGreen,
            _ => Strategy::Canary,
        }
    }
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// Schema of a field kept as free JSON: an object whose fields the API server must keep.
pub(crate) fn free_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// Schema of a list of free JSON objects.
pub(crate) fn free_object_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
    })
}
