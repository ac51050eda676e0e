//! What the shell saw before calling [`advance`](crate::advance): the target's revision, the
//! workloads' rollout status, the route weights, and, when the engine asked for them, the
//! results of webhooks and metric queries.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::spec::HookType;

/// Everything the engine needs from the outside world for one step.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The target's current revision.
    pub target: Revision,
    /// Rollout status of `<target>-primary`; `None` when it does not exist (yet).
    pub primary: Option<WorkloadStatus>,
    /// Rollout status of the target (the canary); `None` when it does not exist.
    pub canary: Option<WorkloadStatus>,
    /// Weights read back from the routing objects, or why they could not be read.
    pub routes: Result<Routes, String>,
    /// True when the canary has a deletion timestamp.
    pub deleting: bool,
    /// True when the canary carries flaggerd's finalizer.
    pub has_finalizer: bool,
    /// Webhook results, filled when the engine asked for a type with
    /// [`Action::RunWebhooks`](crate::Action::RunWebhooks).
    pub webhooks: BTreeMap<HookType, Vec<HookResult>>,
    /// Metric results in spec order, filled when the engine asked with
    /// [`Action::QueryMetrics`](crate::Action::QueryMetrics).
    pub metrics: Option<Vec<MetricResult>>,
    /// Metric providers' availability, filled when asked with
    /// [`Action::CheckMetricProviders`](crate::Action::CheckMetricProviders).
    pub providers_online: Option<Result<(), String>>,
}

impl Default for Observation {
    fn default() -> Self {
        Observation {
            target: Revision::default(),
            primary: None,
            canary: None,
            routes: Ok(Routes::default()),
            deleting: false,
            has_finalizer: false,
            webhooks: BTreeMap::new(),
            metrics: None,
            providers_online: None,
        }
    }
}

/// The target's revision: the pod template hash and the tracked configs' checksums.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revision {
    /// Hash of the pod template (see [`crate::hash`]).
    pub spec_hash: String,
    /// `configmap/<name>` or `secret/<name>` to checksum.
    pub configs: BTreeMap<String, String>,
}

/// Route weights as the routing objects hold them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Routes {
    /// Weight of the primary.
    pub primary: u32,
    /// Weight of the canary.
    pub canary: u32,
    /// True while the primary's traffic is mirrored to the canary.
    pub mirrored: bool,
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            primary: 100,
            canary: 0,
            mirrored: false,
        }
    }
}

/// Kind of workload, for readiness rules and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    #[default]
    Deployment,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// core/v1 Service (a Service target): always ready, as Flagger's service controller.
    Service,
    /// A Knative Revision (of a Knative Service target): ready when its `Ready` condition is
    /// `True` (`available_replicas` 1), as Flagger's Knative controller reads it.
    KnativeRevision,
}

impl WorkloadKind {
    /// The Kubernetes kind.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Service => "Service",
            WorkloadKind::KnativeRevision => "Revision",
        }
    }
}

/// The rollout status of a Deployment or DaemonSet, as its controller reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkloadStatus {
    /// Deployment or DaemonSet.
    pub kind: WorkloadKind,
    /// `<name>.<namespace>`, as events show it (`podinfo-primary.test`).
    pub name: String,
    /// `metadata.generation`.
    pub generation: i64,
    /// `status.observedGeneration`.
    pub observed_generation: i64,
    /// Deployment `spec.replicas` (DaemonSet: desired number scheduled).
    pub desired_replicas: i32,
    /// Deployment `status.replicas` (DaemonSet: current number scheduled).
    pub replicas: i32,
    /// `status.updatedReplicas` (DaemonSet: updatedNumberScheduled).
    pub updated_replicas: i32,
    /// `status.availableReplicas` (DaemonSet: numberAvailable).
    pub available_replicas: i32,
    /// Reason of the `Progressing` condition, e.g. `ProgressDeadlineExceeded`.
    pub progressing_reason: Option<String>,
    /// The `Available` condition when it is `False` with reason `MinimumReplicasUnavailable`:
    /// its last update time.
    pub unavailable_since: Option<DateTime<Utc>>,
}

/// Result of one webhook call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookResult {
    /// The webhook's name.
    pub name: String,
    /// `Ok` for an accepted status code, else the error or the response body.
    pub outcome: Result<(), String>,
}

/// Result of one metric query.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricResult {
    /// The metric's name in the spec.
    pub name: String,
    /// What the query gave.
    pub outcome: MetricOutcome,
}

/// What a metric query gave. Only a value can pass a check.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricOutcome {
    /// A number: percent for `request-success-rate`, milliseconds for `request-duration`.
    Value(f64),
    /// The query returned no series, or NaN (Flagger's `ErrNoValuesFound`).
    NoData(String),
    /// The provider was unreachable or answered an error.
    Error(String),
}

impl WorkloadStatus {
    /// A workload whose rollout is complete with `replicas` available.
    pub fn ready(kind: WorkloadKind, name: impl Into<String>, replicas: i32) -> Self {
        WorkloadStatus {
            kind,
            name: name.into(),
            generation: 1,
            observed_generation: 1,
            desired_replicas: replicas,
            replicas,
            updated_replicas: replicas,
            available_replicas: replicas,
            progressing_reason: None,
            unavailable_since: None,
        }
    }
}
