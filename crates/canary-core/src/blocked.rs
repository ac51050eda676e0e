//! A canary that cannot run: why ([`Problem`]), which canary holds a workload two of them
//! target ([`holder`]), and the `Valid=False` condition that reports it ([`report`]).
//!
//! The shell reads the world and names what it found missing or wrong; the decisions (who
//! keeps a contested target, whether the condition is already reported) are made here.

use chrono::{DateTime, Utc};

use crate::messages::CONDITION_VALID;
use crate::status::{CanaryStatus, Condition};

/// Why a canary cannot run, as its `Valid` condition shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The condition's reason, e.g. `MissingReference`.
    pub reason: &'static str,
    /// What is wrong, with the field path.
    pub message: String,
}

impl Problem {
    /// A referenced object that does not exist or cannot be read (`MissingReference`);
    /// `path` is the field that names it.
    pub fn missing(path: &str, what: impl std::fmt::Display) -> Problem {
        Problem {
            reason: "MissingReference",
            message: format!("{path}: {what}"),
        }
    }

    /// A target flaggerd cannot release (`InvalidTarget`).
    pub fn invalid_target(what: impl std::fmt::Display) -> Problem {
        Problem {
            reason: "InvalidTarget",
            message: format!("spec.targetRef: {what}"),
        }
    }

    /// A provider flaggerd has no router for (`UnsupportedProvider`); `path` is
    /// `spec.provider` or the `-mesh-provider` flag.
    pub fn unsupported_provider(path: &str, what: impl std::fmt::Display) -> Problem {
        Problem {
            reason: "UnsupportedProvider",
            message: format!("{path}: {what}"),
        }
    }

    /// Another canary, `holder`, already releases the target `<kind> <target>` in `ns`
    /// (`TargetConflict`).
    pub fn target_conflict(kind: &str, target: &str, ns: &str, holder: &str) -> Problem {
        Problem {
            reason: "TargetConflict",
            message: format!(
                "spec.targetRef: {} {target}.{ns} is already the target of canary {holder}.{ns}; only one canary may target a workload",
                kind.to_lowercase()
            ),
        }
    }
}

/// A canary's claim on its target, as the shell reads it from the canary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim<'a> {
    /// The canary's name.
    pub name: &'a str,
    /// Its `metadata.uid`.
    pub uid: Option<&'a str>,
    /// True once it has a phase (it runs).
    pub running: bool,
    /// Its creation time, in seconds (the API server's resolution).
    pub created: Option<i64>,
}

/// Which of `rivals` (the other live canaries of the same namespace with the same target)
/// holds the workload instead of `me`, if one does: the canary that owns `<target>-primary`
/// (`primary_owner`, its uid); when none of them does, one that already runs before one that
/// does not, then the older, then the name first in order.
pub fn holder<'a>(
    me: &Claim<'_>,
    rivals: &[Claim<'a>],
    primary_owner: Option<&str>,
) -> Option<&'a str> {
    if let Some(owner) = primary_owner {
        if me.uid == Some(owner) {
            return None;
        }
        if let Some(h) = rivals.iter().find(|c| c.uid == Some(owner)) {
            return Some(h.name);
        }
    }
    let key = |c: &Claim<'_>| (!c.running, c.created, c.name.to_string());
    let mine = key(me);
    rivals
        .iter()
        .filter(|c| key(c) < mine)
        .map(|c| c.name)
        .min()
}

/// How a problem stands in the status.
#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    /// The `Valid` condition already says it, since this time.
    Reported(DateTime<Utc>),
    /// The status to write: the `Valid=False` condition set at `now`.
    Write(Box<CanaryStatus>),
}

/// Whether `status` already reports `problem`; if not, the status that does.
pub fn report(status: &CanaryStatus, problem: &Problem, now: DateTime<Utc>) -> Report {
    let since = status.condition(CONDITION_VALID).and_then(|c| {
        (c.status == "False" && c.reason == problem.reason && c.message == problem.message)
            .then_some(c.last_transition_time)
            .flatten()
    });
    if let Some(since) = since {
        return Report::Reported(since);
    }
    let mut next = status.clone();
    next.conditions.retain(|c| c.r#type != CONDITION_VALID);
    next.conditions.push(Condition {
        r#type: CONDITION_VALID.into(),
        status: "False".into(),
        last_update_time: Some(now),
        last_transition_time: Some(now),
        reason: problem.reason.into(),
        message: problem.message.clone(),
    });
    Report::Write(Box::new(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim<'a>(name: &'a str, uid: &'a str, running: bool, created: i64) -> Claim<'a> {
        Claim {
            name,
            uid: Some(uid),
            running,
            created: Some(created),
        }
    }

    #[test]
    fn the_owner_of_the_primary_holds_the_target() {
        let me = claim("b", "u-b", true, 1);
        let rivals = [claim("a", "u-a", false, 5)];
        assert_eq!(holder(&me, &rivals, Some("u-a")), Some("a"));
        assert_eq!(holder(&me, &rivals, Some("u-b")), None);
    }

    #[test]
    fn without_an_owner_a_running_canary_then_the_older_then_the_name() {
        let me = claim("b", "u-b", false, 1);
        assert_eq!(holder(&me, &[claim("a", "u-a", true, 9)], None), Some("a"));
        let me = claim("b", "u-b", true, 5);
        assert_eq!(holder(&me, &[claim("c", "u-c", true, 4)], None), Some("c"));
        assert_eq!(holder(&me, &[claim("c", "u-c", true, 6)], None), None);
        assert_eq!(holder(&me, &[claim("a", "u-a", true, 5)], None), Some("a"));
        assert_eq!(holder(&me, &[claim("c", "u-c", true, 5)], None), None);
        // An owner that is not among the rivals (deleted) decides nothing.
        assert_eq!(
            holder(&me, &[claim("c", "u-c", true, 4)], Some("u-x")),
            Some("c")
        );
    }

    #[test]
    fn a_conflict_names_the_field_the_target_and_the_holder() {
        let p = Problem::target_conflict("Deployment", "podinfo", "test", "other");
        assert_eq!(p.reason, "TargetConflict");
        assert_eq!(
            p.message,
            "spec.targetRef: deployment podinfo.test is already the target of canary other.test; only one canary may target a workload"
        );
    }

    #[test]
    fn a_problem_is_reported_once_and_again_when_it_changes() {
        let t0 = DateTime::from_timestamp(100, 0).unwrap();
        let t1 = DateTime::from_timestamp(200, 0).unwrap();
        let missing = Problem::missing("spec.targetRef", "deployment podinfo.test not found");
        let Report::Write(status) = report(&CanaryStatus::default(), &missing, t0) else {
            panic!("a new problem is written");
        };
        let valid = status.condition(CONDITION_VALID).unwrap();
        assert_eq!(
            (valid.status.as_str(), valid.reason.as_str()),
            ("False", "MissingReference")
        );
        assert_eq!(report(&status, &missing, t1), Report::Reported(t0));
        let other = Problem::invalid_target("no selector");
        let Report::Write(next) = report(&status, &other, t1) else {
            panic!("another problem is written");
        };
        assert_eq!(next.conditions.len(), 1);
        assert_eq!(
            next.condition(CONDITION_VALID)
                .unwrap()
                .last_transition_time,
            Some(t1)
        );
    }
}
