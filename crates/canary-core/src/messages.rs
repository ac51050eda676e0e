//! Every text flaggerd shows a user: event messages, alert messages, condition messages.
//!
//! They are Flagger's texts, word for word (see `docs/compatibility.md` for the few that
//! follow the seeds' wording instead). Keeping them in one module makes that easy to check.

use crate::duration::trim_float;
use crate::spec::HookType;
use crate::status::Phase;

/// The reason of every event flaggerd records, as Flagger.
pub const EVENT_REASON: &str = "Synced";
/// The condition Flagger maintains (`kubectl wait --for=condition=promoted`).
pub const CONDITION_PROMOTED: &str = "Promoted";
/// flaggerd's condition telling whether the spec is valid.
pub const CONDITION_VALID: &str = "Valid";
/// The finalizer added when `revertOnDeletion` is set.
pub const FINALIZER: &str = "finalizer.flagger.app";

/// Event while `spec.suspend` is true.
pub const SUSPENDED: &str = "skipping canary run as object is suspended";
/// Event when every metric provider answered.
pub const PROVIDERS_AVAILABLE: &str = "all the metrics providers are available!";
/// Event when traffic returns to the primary in one go.
pub const ROUTING_ALL_TO_PRIMARY: &str = "Routing all traffic to primary";
/// Blue/green event before the last, fully switched iteration.
pub const ROUTING_ALL_TO_CANARY: &str = "Routing all traffic to canary";
/// Blue/green-with-mirroring event before the last iteration.
pub const STOP_MIRRORING: &str = "Stop traffic mirroring and route all traffic to canary";
/// Kubernetes provider: `analysis.match` is ignored.
pub const KUBERNETES_NO_AB: &str =
    "A/B testing is not supported when using the kubernetes provider";
/// Kubernetes provider: weights are ignored.
pub const KUBERNETES_NO_PROGRESSIVE: &str =
    "Progressive traffic is not supported when using the kubernetes provider";
/// Kubernetes provider: iterations forced to 10.
pub const KUBERNETES_ITERATIONS: &str = "Setting canaryAnalysis.iterations: 10";

/// `Initialization done! podinfo.test`
pub fn initialization_done(name: &str, ns: &str) -> String {
    format!("Initialization done! {name}.{ns}")
}
/// `New revision detected! Scaling up podinfo.test`
pub fn new_revision(target: &str, ns: &str) -> String {
    format!("New revision detected! Scaling up {target}.{ns}")
}
/// `New revision detected! Restarting analysis for podinfo.test`
pub fn restarting_analysis(target: &str, ns: &str) -> String {
    format!("New revision detected! Restarting analysis for {target}.{ns}")
}
/// `Starting canary analysis for podinfo.test`
pub fn starting_analysis(target: &str, ns: &str) -> String {
    format!("Starting canary analysis for {target}.{ns}")
}
/// `Error checking metric providers: ...`
pub fn providers_error(err: &str) -> String {
    format!("Error checking metric providers: {err}")
}
/// `Advance podinfo.test canary weight 5`
pub fn advance_weight(name: &str, ns: &str, weight: u32) -> String {
    format!("Advance {name}.{ns} canary weight {weight}")
}
/// `Advance podinfo.test primary weight 60`
pub fn advance_primary_weight(name: &str, ns: &str, weight: u32) -> String {
    format!("Advance {name}.{ns} primary weight {weight}")
}
/// `Advance podinfo.test canary iteration 1/10`
pub fn advance_iteration(name: &str, ns: &str, done: u32, total: u32) -> String {
    format!("Advance {name}.{ns} canary iteration {done}/{total}")
}
/// `Copying podinfo.test template spec to podinfo-primary.test`
pub fn copying(target: &str, ns: &str) -> String {
    format!("Copying {target}.{ns} template spec to {target}-primary.{ns}")
}
/// `Promotion completed! Scaling down podinfo.test`
pub fn promotion_completed(target: &str, ns: &str) -> String {
    format!("Promotion completed! Scaling down {target}.{ns}")
}
/// `Promotion completed! Canary analysis was skipped for podinfo.test`
pub fn promotion_skipped(target: &str, ns: &str) -> String {
    format!("Promotion completed! Canary analysis was skipped for {target}.{ns}")
}
/// `Rolling back podinfo.test failed checks threshold reached 10`
pub fn rolling_back_threshold(name: &str, ns: &str, failed: u32) -> String {
    format!("Rolling back {name}.{ns} failed checks threshold reached {failed}")
}
/// `Rolling back podinfo.test manual webhook invoked`
pub fn rolling_back_manual(name: &str, ns: &str) -> String {
    format!("Rolling back {name}.{ns} manual webhook invoked")
}
/// `Rolling back podinfo.test progress deadline exceeded ...`
pub fn rolling_back_deadline(name: &str, ns: &str, err: &str) -> String {
    format!("Rolling back {name}.{ns} progress deadline exceeded {err}")
}
/// `Canary failed! Scaling down podinfo.test`
pub fn canary_failed(name: &str, ns: &str) -> String {
    format!("Canary failed! Scaling down {name}.{ns}")
}
/// `Promotion of podinfo.test failed, primary not ready: ...`
pub fn promotion_failed(name: &str, ns: &str, err: &str) -> String {
    format!("Promotion of {name}.{ns} failed, primary not ready: {err}")
}
/// `Terminating canary podinfo.test`
pub fn terminating(name: &str, ns: &str) -> String {
    format!("Terminating canary {name}.{ns}")
}
/// `Terminated canary podinfo.test`
pub fn terminated(name: &str, ns: &str) -> String {
    format!("Terminated canary {name}.{ns}")
}
/// The event of an invalid spec, listing every problem.
pub fn invalid_spec(problems: &str) -> String {
    format!("Invalid canary spec: {problems}")
}

/// `Halt podinfo.test advancement success rate 69.17% < 99%`
pub fn halt_success_rate(name: &str, ns: &str, value: f64, op: char, bound: f64) -> String {
    format!(
        "Halt {name}.{ns} advancement success rate {value:.2}% {op} {}%",
        trim_float(bound)
    )
}
/// `Halt podinfo.test advancement request duration 1.20s > 0.5s` (values in milliseconds).
pub fn halt_request_duration(
    name: &str,
    ns: &str,
    value_ms: f64,
    op: char,
    bound_ms: f64,
) -> String {
    format!(
        "Halt {name}.{ns} advancement request duration {:.2}s {op} {}s",
        value_ms / 1000.0,
        trim_float(bound_ms / 1000.0)
    )
}
/// `Halt podinfo.test advancement error-rate 2.50 > 1` (custom and inline metrics).
pub fn halt_metric(name: &str, ns: &str, metric: &str, value: f64, op: char, bound: f64) -> String {
    format!(
        "Halt {name}.{ns} advancement {metric} {value:.2} {op} {}",
        trim_float(bound)
    )
}
/// No data for a builtin metric.
pub fn no_values_builtin(
    observer: &str,
    metric: &str,
    target: &str,
    ns: &str,
    err: &str,
) -> String {
    format!(
        "Halt advancement no values found for {observer} metric {metric} probably {target}.{ns} is not receiving traffic: {err}"
    )
}
/// No data for an inline query.
pub fn no_values_inline(metric: &str) -> String {
    format!("Halt advancement no values found for metric: {metric}")
}
/// No data for a MetricTemplate query.
pub fn no_values_template(metric: &str, err: &str) -> String {
    format!("Halt advancement no values found for custom metric: {metric}: {err}")
}
/// A builtin query failed.
pub fn prometheus_failed(err: &str) -> String {
    format!("Prometheus query failed: {err}")
}
/// An inline query failed.
pub fn prometheus_failed_for(metric: &str, err: &str) -> String {
    format!("Prometheus query failed for {metric}: {err}")
}
/// A MetricTemplate query failed.
pub fn metric_failed(metric: &str, err: &str) -> String {
    format!("Metric query failed for {metric}: {err}")
}
/// The shell gave no result for a metric.
pub fn metric_missing(metric: &str) -> String {
    format!("Metric query failed for {metric}: no result was observed")
}

/// `Halt podinfo.test advancement waiting for approval gate`
pub fn halt_waiting_approval(name: &str, ns: &str, hook: &str) -> String {
    format!("Halt {name}.{ns} advancement waiting for approval {hook}")
}
/// A pre-rollout hook failed.
pub fn halt_pre_rollout(name: &str, ns: &str, hook: &str, err: &str) -> String {
    format!("Halt {name}.{ns} advancement pre-rollout check {hook} failed {err}")
}
/// A rollout hook failed.
pub fn halt_external(name: &str, ns: &str, hook: &str, err: &str) -> String {
    format!("Halt {name}.{ns} advancement external check {hook} failed {err}")
}
/// A confirm-traffic-increase gate is closed.
pub fn halt_traffic_increase(name: &str, ns: &str, hook: &str) -> String {
    format!("Halt {name}.{ns} advancement waiting for traffic increase approval {hook}")
}
/// A confirm-promotion gate is closed.
pub fn halt_promotion_approval(name: &str, ns: &str, hook: &str) -> String {
    format!("Halt {name}.{ns} advancement waiting for promotion approval {hook}")
}
/// A rollback hook answered anything but success.
pub fn rollback_not_signaled(hook: &str) -> String {
    format!("Rollback hook {hook} not signaling a rollback")
}
/// `Pre-rollout check acceptance-test passed` and the other gates' success events.
pub fn check_passed(kind: HookType, hook: &str) -> String {
    let label = match kind {
        HookType::ConfirmRollout => "Confirm-rollout",
        HookType::PreRollout => "Pre-rollout",
        HookType::ConfirmTrafficIncrease => "Confirm-traffic-increase",
        HookType::ConfirmPromotion => "Confirm-promotion",
        HookType::PostRollout => "Post-rollout",
        HookType::Rollback => "Rollback",
        HookType::Rollout => "Rollout",
        HookType::Event => "Event",
    };
    format!("{label} check {hook} passed")
}
/// The event for one post-rollout hook result: `(is_warning, text)`.
pub fn post_rollout_result(hook: &str, outcome: &Result<(), String>) -> (bool, String) {
    match outcome {
        Ok(()) => (false, check_passed(HookType::PostRollout, hook)),
        Err(err) => (true, format!("Post-rollout hook {hook} failed {err}")),
    }
}

/// Alert texts.
pub mod alerts {
    /// After initialization.
    pub fn initialized(kind: &str) -> String {
        format!("New {kind} detected, initialization completed.")
    }
    /// When an analysis starts.
    pub const PROGRESSING: &str = "New revision detected, progressing canary analysis.";
    /// A confirm-rollout gate holds the canary.
    pub const WAITING_APPROVAL: &str = "Canary is waiting for approval.";
    /// A confirm-traffic-increase gate holds the canary.
    pub const WAITING_TRAFFIC: &str = "Canary traffic increase is waiting for approval.";
    /// A confirm-promotion gate holds the canary.
    pub const WAITING_PROMOTION: &str = "Canary promotion is waiting for approval.";
    /// A rollback hook rolled the canary back.
    pub const MANUAL_ROLLBACK: &str = "Rolling back manual webhook invoked";
    /// Promoted.
    pub const SUCCEEDED: &str = "Canary analysis completed successfully, promotion finished.";
    /// Promoted without analysis.
    pub const SKIPPED: &str = "Canary analysis was skipped, promotion finished.";
    /// Rolled back on failed checks.
    pub fn threshold_reached(failed: u32) -> String {
        format!("Failed checks threshold reached {failed}")
    }
    /// Promotion failed.
    pub fn promotion_failed(err: &str) -> String {
        format!("Promotion failed, primary not ready: {err}")
    }
    /// Rolled back at the progress deadline (Flagger sends none; see docs/compatibility.md).
    pub fn deadline_exceeded(err: &str) -> String {
        format!("Progress deadline exceeded {err}")
    }
}

/// The `Promoted` condition's status and message for a phase.
pub fn promoted_condition(phase: Phase, kind: &str) -> (&'static str, String) {
    match phase {
        Phase::Initializing => (
            "Unknown",
            format!("New {kind} detected, starting initialization."),
        ),
        Phase::Initialized => ("True", format!("{kind} initialization completed.")),
        Phase::Waiting | Phase::WaitingPromotion => ("Unknown", "Waiting for approval.".into()),
        Phase::Progressing => (
            "Unknown",
            "New revision detected, progressing canary analysis.".into(),
        ),
        Phase::Promoting => (
            "Unknown",
            "Canary analysis completed, starting primary rolling update.".into(),
        ),
        Phase::Finalising => (
            "Unknown",
            "Canary analysis completed, routing all traffic to primary.".into(),
        ),
        Phase::Succeeded => (
            "True",
            "Canary analysis completed successfully, promotion finished.".into(),
        ),
        Phase::Failed => (
            "False",
            format!("Canary analysis failed, {kind} scaled to zero."),
        ),
        Phase::Terminating | Phase::Terminated => ("Unknown", "Canary is being deleted.".into()),
    }
}
