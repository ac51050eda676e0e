//! What a step asks the shell to do: effects to carry out in order, and requests for
//! observations the step needs before it can decide.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::spec::HookType;
use crate::status::Phase;

/// The result of [`advance`](crate::advance): the next status and what to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The status to write (equal to the input when nothing changed).
    pub status: crate::CanaryStatus,
    /// What to do, in order.
    pub actions: Vec<Action>,
}

impl Step {
    /// The observation this step needs before it can decide, if any.
    ///
    /// When this is `Some`, the step carries no other action and an unchanged status: the
    /// shell obtains what is asked, adds it to the [`Observation`](crate::Observation) and
    /// calls [`advance`](crate::advance) again. Each kind of request is made at most once per
    /// tick, so the loop ends.
    pub fn request(&self) -> Option<&Action> {
        self.actions.iter().find(|a| a.is_request())
    }

    /// The events of this step, in order.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.actions.iter().filter_map(|a| match a {
            Action::Emit(e) => Some(e),
            _ => None,
        })
    }

    /// The requeue delay of this step.
    pub fn requeue(&self) -> Option<Duration> {
        self.actions.iter().find_map(|a| match a {
            Action::Requeue(d) => Some(*d),
            _ => None,
        })
    }
}

/// One thing for the shell to do.
///
/// Effects serialize (camelCase, one key per variant) because the shell records a decided
/// step's effects in `status.step` before carrying them out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Request: call the webhooks of a type, in spec order, with `phase` in the payload, and
    /// put the results in `Observation::webhooks`. `until` says when to stop early.
    RunWebhooks {
        /// Which webhooks.
        kind: HookType,
        /// The phase sent in the payload.
        phase: Phase,
        /// When to stop calling the rest.
        until: RunUntil,
    },
    /// Request: run every metric query and put the results in `Observation::metrics`.
    QueryMetrics,
    /// Request: check that the metric providers answer; result in
    /// `Observation::providers_online`.
    CheckMetricProviders,
    /// Create what is missing of the primary workload, its autoscaler, the `-primary`
    /// config copies and the `-canary`/`-primary` Services (App Mesh: its objects too).
    /// Never changes an existing primary's pod template.
    Initialize,
    /// Point the apex Service at the primary and reconcile the provider's routing objects,
    /// keeping their current weights.
    ReconcileRoutes,
    /// Set the route weights.
    SetRoutes {
        /// Primary weight.
        primary: u32,
        /// Canary weight.
        canary: u32,
        /// Mirror the primary's traffic to the canary.
        mirrored: bool,
    },
    /// Scale the target (the canary workload).
    ScaleCanary(Scale),
    /// Copy the target's pod template (and configs) to the primary.
    Promote,
    /// Push the target's autoscaler settings to the `-primary` autoscaler.
    SyncPrimaryAutoscaler,
    /// Call the post-rollout webhooks with `phase`; report each result as an event
    /// with [`crate::messages::post_rollout_result`].
    RunPostRolloutHooks {
        /// `Succeeded` or `Failed`.
        phase: Phase,
    },
    /// `revertOnDeletion`, first: scale the target back up (to the primary's replicas), or
    /// lift a DaemonSet's scale-to-zero node selector.
    RestoreTarget,
    /// `revertOnDeletion`, once the target serves: point the user's apex Service and the
    /// routes back at it.
    Revert,
    /// Add flaggerd's finalizer to the canary.
    AddFinalizer,
    /// Remove flaggerd's finalizer from the canary.
    RemoveFinalizer,
    /// Record an event on the canary (and forward it to the event webhooks).
    Emit(Event),
    /// Send an alert to the canary's alert providers.
    Alert(Alert),
    /// Count a finished analysis in the controller's metrics.
    Record(Outcome),
    /// Reconcile again after this delay.
    Requeue(Duration),
}

impl Action {
    /// The weights a [`Action::SetRoutes`] asks for; `None` for any other action.
    pub fn routes(&self) -> Option<crate::Routes> {
        match *self {
            Action::SetRoutes {
                primary,
                canary,
                mirrored,
            } => Some(crate::Routes {
                primary,
                canary,
                mirrored,
            }),
            _ => None,
        }
    }

    /// True for the actions that ask for an observation rather than change anything.
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            Action::RunWebhooks { .. } | Action::QueryMetrics | Action::CheckMetricProviders
        )
    }
}

/// When to stop calling webhooks of a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunUntil {
    /// Stop at the first failure (gates and tests).
    FirstFailure,
    /// Stop at the first success (rollback hooks).
    FirstSuccess,
}

/// Target scaling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scale {
    /// Scale to zero (DaemonSet: the scale-to-zero node selector).
    Zero,
    /// Scale up from zero, to the replicas Flagger would choose.
    FromZero,
}

/// A Kubernetes event on the canary. flaggerd records all with reason `Synced`, as Flagger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Severity.
    pub level: Level,
    /// Flagger's text.
    pub message: String,
}

/// Severity of an event or alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    /// Normal event, info alert.
    Info,
    /// Warning event, warn alert.
    Warn,
    /// Warning event logged as an error, error alert.
    Error,
}

impl Level {
    /// The Kubernetes event type.
    pub fn event_type(self) -> &'static str {
        match self {
            Level::Info => "Normal",
            Level::Warn | Level::Error => "Warning",
        }
    }
}

/// An alert for the canary's AlertProviders (or the global notifier).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Severity.
    pub level: Level,
    /// Flagger's text.
    pub message: String,
    /// Fields to attach (Target, Failed checks threshold, Progress deadline, Traffic routing).
    pub fields: Vec<(String, String)>,
}

/// A finished analysis, for `flagger_canary_successes_total` and `..._failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Promoted after analysis.
    Completed,
    /// Promoted without analysis.
    Skipped,
    /// Rolled back.
    Failed,
}
