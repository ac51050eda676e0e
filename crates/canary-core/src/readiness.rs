//! Is a workload ready? Flagger's rules for Deployments and DaemonSets (readiness thresholds
//! and the progress deadline), as a pure function of the rollout status and the time.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::observe::{WorkloadKind, WorkloadStatus};

/// The answer to "is this workload ready?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Rolled out and available above the threshold.
    Ready,
    /// Not yet; try again later. The message says what is missing.
    Waiting(String),
    /// Not ready and past its deadline (or gone): the release fails.
    Failed(String),
}

/// Which copy of the workload is checked; only used for messages and the primary's
/// scaled-to-zero rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `<target>-primary`.
    Primary,
    /// The target itself.
    Canary,
}

/// Readiness of a workload.
///
/// `threshold` is the ready percentage (`primaryReadyThreshold` or `canaryReadyThreshold`).
/// A Deployment that is not ready fails once its `Available` condition has been
/// `False/MinimumReplicasUnavailable` for longer than `deadline`, or when Kubernetes reports
/// `ProgressDeadlineExceeded`; a DaemonSet fails once `deadline` has passed since
/// `since` (the canary's last status change, as in Flagger).
pub fn assess(
    workload: Option<&WorkloadStatus>,
    role: Role,
    threshold: u32,
    deadline: Duration,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Readiness {
    let Some(w) = workload else {
        return Readiness::Waiting(match role {
            Role::Primary => "waiting for the primary workload to be created".to_string(),
            Role::Canary => "waiting for the canary workload to be created".to_string(),
        });
    };
    match w.kind {
        WorkloadKind::Service => return Readiness::Ready,
        // Flagger retries a Revision that is not ready, with no deadline.
        WorkloadKind::KnativeRevision if w.available_replicas > 0 => return Readiness::Ready,
        WorkloadKind::KnativeRevision => {
            return Readiness::Waiting(format!("Knative Revision {} is not ready", w.name));
        }
        _ => {}
    }
    let waiting = |what: String| format!("Waiting for {} rollout to finish: {what}", w.name);
    if w.generation > w.observed_generation {
        let kind = w.kind.as_str().to_lowercase();
        return Readiness::Waiting(waiting(format!(
            "observed {kind} generation less than desired generation"
        )));
    }
    if w.progressing_reason.as_deref() == Some("ProgressDeadlineExceeded") {
        return Readiness::Failed(format!("{} exceeded its progress deadline", w.name));
    }
    let needed = (w.updated_replicas.max(0) as u64 * threshold as u64 / 100) as i32;
    let unit = match w.kind {
        WorkloadKind::DaemonSet => "pods",
        _ => "replicas",
    };
    let threshold_note = if threshold == 100 {
        String::new()
    } else {
        format!(" (readyThreshold {threshold}%)")
    };
    let problem = if w.updated_replicas < w.desired_replicas {
        Some(format!(
            "{} out of {} new {unit} have been updated",
            w.updated_replicas, w.desired_replicas
        ))
    } else if w.kind == WorkloadKind::Deployment && w.replicas > w.updated_replicas {
        Some(format!(
            "{} old replicas are pending termination",
            w.replicas.saturating_sub(w.updated_replicas)
        ))
    } else if w.available_replicas < needed {
        Some(format!(
            "{} of {}{threshold_note} updated {unit} are available",
            w.available_replicas, needed
        ))
    } else {
        None
    };
    if let Some(problem) = problem {
        let stuck_since = match w.kind {
            WorkloadKind::DaemonSet => since,
            _ => w.unavailable_since,
        };
        let past_deadline = stuck_since
            .is_some_and(|t| crate::duration::after(t, deadline).is_some_and(|d| d < now));
        return if past_deadline {
            Readiness::Failed(format!("{} progress deadline exceeded: {problem}", w.name))
        } else {
            Readiness::Waiting(waiting(problem))
        };
    }
    if role == Role::Primary && w.kind == WorkloadKind::Deployment && w.desired_replicas == 0 {
        return Readiness::Waiting(format!(
            "Halt advancement: primary deployment {} is scaled to zero",
            w.name
        ));
    }
    Readiness::Ready
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:10:00Z")
            .map(|t| t.to_utc())
            .unwrap()
    }

    fn deploy(updated: i32, available: i32) -> WorkloadStatus {
        WorkloadStatus {
            updated_replicas: updated,
            available_replicas: available,
            ..WorkloadStatus::ready(WorkloadKind::Deployment, "podinfo.test", 1)
        }
    }

    #[test]
    fn unavailable_replicas_read_like_the_seeds() {
        let r = assess(
            Some(&deploy(1, 0)),
            Role::Canary,
            100,
            Duration::from_secs(60),
            None,
            now(),
        );
        assert_eq!(
            r,
            Readiness::Waiting(
                "Waiting for podinfo.test rollout to finish: 0 of 1 updated replicas are available"
                    .into()
            )
        );
    }

    #[test]
    fn a_lower_threshold_accepts_partial_availability() {
        let mut w = deploy(4, 2);
        w.desired_replicas = 4;
        w.replicas = 4;
        assert_eq!(
            assess(
                Some(&w),
                Role::Canary,
                50,
                Duration::from_secs(60),
                None,
                now()
            ),
            Readiness::Ready
        );
        let r = assess(
            Some(&w),
            Role::Canary,
            75,
            Duration::from_secs(60),
            None,
            now(),
        );
        assert!(
            matches!(r, Readiness::Waiting(m) if m.ends_with("2 of 3 (readyThreshold 75%) updated replicas are available"))
        );
    }

    #[test]
    fn stuck_past_the_deadline_fails() {
        let mut w = deploy(1, 0);
        w.unavailable_since = Some(now() - chrono::Duration::seconds(61));
        let r = assess(
            Some(&w),
            Role::Canary,
            100,
            Duration::from_secs(60),
            None,
            now(),
        );
        assert!(matches!(r, Readiness::Failed(_)), "{r:?}");
        w.unavailable_since = Some(now() - chrono::Duration::seconds(59));
        let r = assess(
            Some(&w),
            Role::Canary,
            100,
            Duration::from_secs(60),
            None,
            now(),
        );
        assert!(matches!(r, Readiness::Waiting(_)), "{r:?}");
    }

    #[test]
    fn kubernetes_progress_deadline_exceeded_fails_at_once() {
        let mut w = deploy(1, 1);
        w.progressing_reason = Some("ProgressDeadlineExceeded".into());
        let r = assess(
            Some(&w),
            Role::Canary,
            100,
            Duration::from_secs(600),
            None,
            now(),
        );
        assert_eq!(
            r,
            Readiness::Failed("podinfo.test exceeded its progress deadline".into())
        );
    }

    #[test]
    fn a_newer_generation_waits_for_the_controller() {
        let mut w = deploy(1, 1);
        w.generation = 2;
        let r = assess(
            Some(&w),
            Role::Primary,
            100,
            Duration::from_secs(600),
            None,
            now(),
        );
        assert!(
            matches!(r, Readiness::Waiting(m) if m.contains("observed deployment generation less than desired generation"))
        );
    }

    #[test]
    fn a_missing_workload_is_waited_for() {
        let r = assess(
            None,
            Role::Primary,
            100,
            Duration::from_secs(600),
            None,
            now(),
        );
        assert!(matches!(r, Readiness::Waiting(_)));
    }

    #[test]
    fn daemonset_deadline_counts_from_the_last_status_change() {
        let mut w = WorkloadStatus::ready(WorkloadKind::DaemonSet, "agent.test", 3);
        w.updated_replicas = 1;
        let since = Some(now() - chrono::Duration::seconds(700));
        let r = assess(
            Some(&w),
            Role::Canary,
            100,
            Duration::from_secs(600),
            since,
            now(),
        );
        assert!(
            matches!(r, Readiness::Failed(m) if m.contains("1 out of 3 new pods have been updated"))
        );
    }
}
