//! What a step tells: events, alerts with their fields, the phase and conditions of the
//! status, and the checks of the analysis report.

use super::Tick;
use crate::action::{Action, Alert, Event, Level};
use crate::messages::{self as msg};
use crate::spec::Strategy;
use crate::status::{AnalysisReport, CheckReport, Condition, Phase};

impl<'a> Tick<'a> {
    pub(super) fn target(&self) -> &'a str {
        &self.c.spec.target_ref.name
    }

    pub(super) fn push(&mut self, action: Action) {
        self.actions.push(action);
    }

    pub(super) fn emit(&mut self, level: Level, message: impl Into<String>) {
        self.actions.push(Action::Emit(Event {
            level,
            message: message.into(),
        }));
    }

    pub(super) fn emit_iteration(&mut self, total: u32) {
        let done = self.status.iterations;
        self.emit(
            Level::Info,
            msg::advance_iteration(self.c.name, self.c.namespace, done, total),
        );
    }

    pub(super) fn alert(&mut self, level: Level, message: impl Into<String>, with_fields: bool) {
        let fields = if with_fields {
            self.alert_fields()
        } else {
            Vec::new()
        };
        self.actions.push(Action::Alert(Alert {
            level,
            message: message.into(),
            fields,
        }));
    }

    pub(super) fn alert_fields(&self) -> Vec<(String, String)> {
        let a = self.analysis();
        let routing = match self.c.spec.strategy() {
            Strategy::AbTesting => "A/B Testing".to_string(),
            Strategy::BlueGreen | Strategy::BlueGreenMirroring => "Blue/Green".to_string(),
            Strategy::Canary if !a.step_weights.is_empty() => {
                let steps: Vec<String> = a.step_weights.iter().map(|w| w.to_string()).collect();
                format!("Weight steps: {} max: {}", steps.join(","), a.max_weight())
            }
            Strategy::Canary => format!("Weight step: {} max: {}", a.step_weight(), a.max_weight()),
        };
        vec![
            (
                "Target".into(),
                format!("{}/{}.{}", self.kind, self.target(), self.c.namespace),
            ),
            ("Failed checks threshold".into(), a.threshold().to_string()),
            (
                "Progress deadline".into(),
                format!("{}s", self.c.spec.progress_deadline().as_secs()),
            ),
            ("Traffic routing".into(), routing),
        ]
    }

    /// Sets the phase with Flagger's side effects on weight, iterations, the promoted spec
    /// and the `Promoted` condition.
    pub(super) fn set_phase(&mut self, phase: Phase) {
        self.status.phase = Some(phase);
        // Flagger also zeroes the weight in WaitingPromotion, so status disagrees with the
        // routes (issue #1819); flaggerd keeps weight and iterations there.
        if !matches!(
            phase,
            Phase::Progressing | Phase::Waiting | Phase::Promoting | Phase::WaitingPromotion
        ) {
            self.status.canary_weight = 0;
            self.status.iterations = 0;
        }
        if matches!(phase, Phase::Initialized | Phase::Succeeded) {
            self.status.last_promoted_spec = self.status.last_applied_spec.clone();
        }
        let (value, message) = msg::promoted_condition(phase, self.kind);
        self.set_condition(msg::CONDITION_PROMOTED, value, phase.as_str(), message);
    }

    /// Flagger's `SyncStatus`: the phase with counters reset and the current revision stored.
    pub(super) fn sync_revision(&mut self, phase: Phase) {
        self.status.last_applied_spec = self.obs.target.spec_hash.clone();
        self.status.tracked_configs =
            (!self.obs.target.configs.is_empty()).then(|| self.obs.target.configs.clone());
        self.status.canary_weight = 0;
        self.status.failed_checks = 0;
        self.status.iterations = 0;
        self.set_phase(phase);
    }

    pub(super) fn set_condition(&mut self, kind: &str, value: &str, reason: &str, message: String) {
        let now = self.now;
        let conditions = &mut self.status.conditions;
        match conditions.iter_mut().find(|c| c.r#type == kind) {
            Some(c) if c.status == value && c.reason == reason && c.message == message => {}
            Some(c) => {
                if c.status != value {
                    c.last_transition_time = Some(now);
                }
                c.status = value.to_string();
                c.reason = reason.to_string();
                c.message = message;
                c.last_update_time = Some(now);
            }
            None => conditions.push(Condition {
                r#type: kind.to_string(),
                status: value.to_string(),
                last_update_time: Some(now),
                last_transition_time: Some(now),
                reason: reason.to_string(),
                message,
            }),
        }
    }

    pub(super) fn record_check(&mut self, check: CheckReport) {
        let now = self.now;
        let report = self.report.get_or_insert_with(|| AnalysisReport {
            decision: String::new(),
            last_run_time: Some(now),
            checks: Vec::new(),
        });
        report.checks.push(check);
    }

    /// All traffic to the primary, none mirrored.
    pub(super) fn all_to_primary(&mut self) {
        self.push(Action::SetRoutes {
            primary: crate::weights::TOTAL_WEIGHT,
            canary: 0,
            mirrored: false,
        });
    }

    /// The end of a release that succeeded: the canary scaled to zero, the phase, the
    /// outcome counted, the post-rollout hooks called. Events and alerts are the caller's.
    pub(super) fn succeed(&mut self, outcome: crate::action::Outcome) {
        self.push(Action::ScaleCanary(crate::action::Scale::Zero));
        self.set_phase(Phase::Succeeded);
        self.push(Action::Record(outcome));
        self.push(Action::RunPostRolloutHooks {
            phase: Phase::Succeeded,
        });
    }
}
