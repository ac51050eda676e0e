//! How a release starts and ends: a new revision, promotion (with or without analysis),
//! rollback, a failed promotion, and the step's status and session cookies.

use super::{Flow, Tick};
use crate::action::{Action, Level, Outcome, Scale, Step};
use crate::messages::{self as msg, alerts};
use crate::spec::HookType;
use crate::status::{CanaryStatus, Phase};
use crate::weights::TOTAL_WEIGHT;

impl Tick<'_> {
    /// A new revision from an idle or waiting phase: confirm-rollout gates, then scale up.
    pub(super) fn start_revision(&mut self) -> Flow {
        let (target, ns) = (self.target(), self.c.namespace);
        let phase = self.phase();
        let kind = HookType::ConfirmRollout;
        if let Some((hook, _)) = self.first_failing_hook(kind, phase, true)? {
            if phase != Phase::Waiting {
                self.set_phase(Phase::Waiting);
                self.emit(
                    Level::Warn,
                    msg::halt_waiting_approval(self.c.name, ns, &hook),
                );
                if !self.muted(kind, &hook) {
                    self.alert(Level::Warn, alerts::WAITING_APPROVAL, false);
                }
            }
            return Ok(());
        }
        self.emit(Level::Info, msg::new_revision(target, ns));
        self.alert(Level::Info, alerts::PROGRESSING, true);
        self.push(Action::ScaleCanary(Scale::FromZero));
        self.sync_revision(Phase::Progressing);
        Ok(())
    }

    pub(super) fn promote(&mut self) {
        self.emit(Level::Info, msg::copying(self.target(), self.c.namespace));
        self.push(Action::Promote);
        self.set_phase(Phase::Promoting);
    }

    pub(super) fn promote_without_analysis(&mut self) -> Flow {
        let (target, ns) = (self.target(), self.c.namespace);
        self.all_to_primary();
        self.emit(Level::Info, msg::copying(target, ns));
        self.push(Action::Promote);
        if self.c.spec.autoscaler_ref.is_some() {
            self.push(Action::SyncPrimaryAutoscaler);
        }
        self.succeed(Outcome::Skipped);
        self.emit(Level::Info, msg::promotion_skipped(target, ns));
        self.alert(Level::Info, alerts::SKIPPED, false);
        Ok(())
    }

    pub(super) fn rollback(&mut self) -> Flow {
        let (name, ns) = (self.c.name, self.c.namespace);
        let failed = self.status.failed_checks;
        if self.c.spec.analysis().is_some() && failed >= self.analysis().threshold() {
            self.emit(Level::Warn, msg::rolling_back_threshold(name, ns, failed));
            self.alert(Level::Error, alerts::threshold_reached(failed), false);
        }
        self.all_to_primary();
        self.emit(Level::Warn, msg::canary_failed(name, ns));
        self.push(Action::ScaleCanary(Scale::Zero));
        self.sync_revision(Phase::Failed);
        self.status.failed_checks = failed;
        self.push(Action::Record(Outcome::Failed));
        self.push(Action::RunPostRolloutHooks {
            phase: Phase::Failed,
        });
        Ok(())
    }

    /// The primary did not become ready after promotion: keep the canary serving.
    pub(super) fn failed_promotion(&mut self, err: &str) {
        let (name, ns) = (self.c.name, self.c.namespace);
        self.emit(Level::Warn, msg::promotion_failed(name, ns, err));
        self.alert(Level::Error, alerts::promotion_failed(err), false);
        self.push(Action::SetRoutes {
            primary: 0,
            canary: TOTAL_WEIGHT,
            mirrored: false,
        });
        self.set_phase(Phase::Failed);
        self.status.canary_weight = TOTAL_WEIGHT;
        self.push(Action::Record(Outcome::Failed));
        self.push(Action::RunPostRolloutHooks {
            phase: Phase::Failed,
        });
    }

    pub(super) fn finish(mut self, before: &CanaryStatus) -> Step {
        self.track_session_cookies();
        if let Some(report) = self.report.take() {
            self.status.analysis = Some(report);
        }
        if let Some(report) = self.status.analysis.as_mut()
            && report.last_run_time == Some(self.now)
            && let Some(Action::Emit(e)) = self
                .actions
                .iter()
                .rev()
                .find(|a| matches!(a, Action::Emit(_)))
        {
            report.decision = e.message.clone();
        }
        let mut compare = self.status.clone();
        compare.last_transition_time = before.last_transition_time;
        if compare != *before {
            self.status.last_transition_time = Some(self.now);
        }
        if !self.actions.iter().any(|a| matches!(a, Action::Requeue(_))) && !self.obs.deleting {
            self.actions.push(Action::Requeue(self.interval));
        }
        Step {
            status: self.status,
            actions: self.actions,
        }
    }

    /// Session affinity: the step that first sends traffic to the canary records the cookie
    /// of the revision; the step that takes it away keeps it as the previous cookie, which
    /// the router expires.
    pub(super) fn track_session_cookies(&mut self) {
        let Some(affinity) = self.analysis().session_affinity.as_ref() else {
            return;
        };
        let last = self.actions.iter().rev().find_map(|a| match a {
            Action::SetRoutes { canary, .. } => Some(*canary),
            _ => None,
        });
        match last {
            Some(w) if w > 0 && self.status.session_affinity_cookie.is_none() => {
                let revision = self.status.last_applied_spec.clone();
                self.status.session_affinity_cookie = Some(crate::hash::session_cookie(
                    &affinity.cookie_name,
                    &revision,
                ));
                self.status.primary_session_affinity_cookie = affinity
                    .primary_cookie_name
                    .as_ref()
                    .map(|name| crate::hash::session_cookie(name, &revision));
            }
            Some(0) if self.status.session_affinity_cookie.is_some() => {
                self.status.previous_session_affinity_cookie =
                    self.status.session_affinity_cookie.take();
                self.status.primary_session_affinity_cookie = None;
            }
            _ => {}
        }
    }

    // --- helpers -------------------------------------------------------------------------
}
