//! The state machine: one analysis step of one canary, as Flagger's scheduler takes it.
//!
//! [`advance`] follows `advanceCanary` in Flagger's `scheduler.go` branch for branch
//! (flagger-behaviour.md section 2): initialization, new-revision detection and gates,
//! readiness, rollback hooks, promotion traffic shift, finalisation, the failed-checks
//! threshold, pre-rollout hooks or the analysis, then the strategy's next move. Where the
//! engine needs webhook or metric results it returns a request instead of deciding; see
//! [`Step::request`].

mod checks;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::action::{Action, Alert, Event, Level, Outcome, RunUntil, Scale, Step};
use crate::messages::{self as msg, alerts};
use crate::observe::{HookResult, Observation, Routes};
use crate::readiness::{self, Readiness, Role};
use crate::spec::{CanaryAnalysis, CanarySpec, HookType, Settings, Strategy};
use crate::status::{AnalysisReport, CanaryStatus, CheckReport, CheckResult, Condition, Phase};
use crate::validate::{summarize, validate_in};
use crate::weights::{self, TOTAL_WEIGHT};

/// The canary a step is about: its identity, its spec and the controller's settings.
#[derive(Clone, Copy, Debug)]
pub struct CanaryRef<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.namespace`.
    pub namespace: &'a str,
    /// The spec.
    pub spec: &'a CanarySpec,
    /// Settings of the embedding controller.
    pub settings: &'a Settings,
}

/// Takes one step: from the canary, its last status and what the shell observed at `now`,
/// decides the next status and the actions to carry out, in order.
///
/// Pure: it reads no clock, does no I/O and never fails. A failed check is data in the
/// returned status and events. When a webhook or metric result is needed and absent from
/// `observation`, the step is a single request (see [`Step::request`]).
pub fn advance(
    canary: &CanaryRef<'_>,
    status: &CanaryStatus,
    observation: &Observation,
    now: DateTime<Utc>,
) -> Step {
    let mut tick = Tick::new(canary, status, observation, now);
    match tick.run() {
        Ok(()) => tick.finish(status),
        Err(Need(request)) => Step {
            status: status.clone(),
            actions: vec![request],
        },
    }
}

/// Flagger's name for the builtin-metric observer of a canary: the provider, except that a
/// controller whose default provider is Linkerd always uses Linkerd's queries.
pub fn metrics_observer(spec: &CanarySpec, settings: &Settings) -> String {
    match spec.provider.as_deref() {
        Some(p) if !p.is_empty() => {
            if settings.default_provider.contains("linkerd") {
                "linkerd".to_string()
            } else {
                p.to_string()
            }
        }
        _ => settings.default_provider.clone(),
    }
}

/// How often a terminating canary looks at its target coming back up.
const TERMINATING_POLL: Duration = Duration::from_secs(2);

/// A request for an observation the step needs before it can decide.
struct Need(Action);

type Flow = Result<(), Need>;

struct Tick<'a> {
    c: &'a CanaryRef<'a>,
    obs: &'a Observation,
    now: DateTime<Utc>,
    status: CanaryStatus,
    actions: Vec<Action>,
    interval: Duration,
    provider: &'a str,
    kind: &'a str,
    report: Option<AnalysisReport>,
}

const EMPTY_ANALYSIS: &CanaryAnalysis = &CanaryAnalysis {
    interval: None,
    threshold: None,
    max_weight: None,
    step_weight: None,
    step_weights: Vec::new(),
    step_weight_promotion: None,
    iterations: None,
    mirror: false,
    mirror_weight: None,
    primary_ready_threshold: None,
    canary_ready_threshold: None,
    r#match: Vec::new(),
    session_affinity: None,
    metrics: Vec::new(),
    webhooks: Vec::new(),
    alerts: Vec::new(),
    extra: std::collections::BTreeMap::new(),
};

impl<'a> Tick<'a> {
    fn new(
        c: &'a CanaryRef<'a>,
        status: &CanaryStatus,
        obs: &'a Observation,
        now: DateTime<Utc>,
    ) -> Self {
        let interval = c.spec.analysis_interval(c.settings);
        Tick {
            c,
            obs,
            now,
            status: status.clone(),
            actions: Vec::new(),
            interval,
            provider: c.spec.provider(c.settings),
            kind: if c.spec.target_ref.kind.is_empty() {
                "Deployment"
            } else {
                &c.spec.target_ref.kind
            },
            report: None,
        }
    }

    fn analysis(&self) -> &'a CanaryAnalysis {
        self.c.spec.analysis().unwrap_or(EMPTY_ANALYSIS)
    }

    fn phase(&self) -> Phase {
        self.status.phase.unwrap_or(Phase::Initializing)
    }

    fn run(&mut self) -> Flow {
        let (name, ns) = (self.c.name, self.c.namespace);
        // A canary being deleted is finalized even when suspended, as Flagger does: else its
        // finalizer would hold `kubectl delete` and its namespace's deletion forever.
        if self.obs.deleting {
            if !self.obs.has_finalizer {
                return Ok(());
            }
            if self.phase() != Phase::Terminating {
                self.set_phase(Phase::Terminating);
                self.emit(Level::Info, msg::terminating(name, ns));
                self.push(Action::RestoreTarget);
                self.push(Action::Requeue(TERMINATING_POLL));
                return Ok(());
            }
            // As Flagger: traffic goes back to the target only once it serves again. A target
            // that is gone, or past its progress deadline, does not hold the deletion.
            if self.obs.canary.is_some()
                && let Ok(false) = self.ready(self.canary_readiness())
            {
                self.push(Action::Requeue(TERMINATING_POLL));
                return Ok(());
            }
            self.push(Action::Revert);
            // Recorded before the finalizer goes: once it is gone, so is the canary.
            self.emit(Level::Info, msg::terminated(name, ns));
            self.push(Action::RemoveFinalizer);
            return Ok(());
        }
        if self.c.spec.suspend {
            self.emit(Level::Info, msg::SUSPENDED);
            return Ok(());
        }
        match (self.c.spec.revert_on_deletion, self.obs.has_finalizer) {
            (true, false) => self.push(Action::AddFinalizer),
            (false, true) => self.push(Action::RemoveFinalizer),
            _ => {}
        }
        if !self.spec_is_valid() {
            return Ok(());
        }
        if self.status.phase.is_none() {
            self.set_phase(Phase::Initializing);
            if !self.c.spec.skips_analysis() && !self.analysis().metrics.is_empty() {
                match &self.obs.providers_online {
                    None => return Err(Need(Action::CheckMetricProviders)),
                    Some(Ok(())) => self.emit(Level::Info, msg::PROVIDERS_AVAILABLE),
                    Some(Err(e)) => self.emit(Level::Error, msg::providers_error(e)),
                }
            }
        }
        self.push(Action::Initialize);
        if self.phase() == Phase::Initializing {
            return self.initialize();
        }
        self.push(Action::ReconcileRoutes);
        self.advance_analysis()
    }

    /// Waits for the primary, then hands traffic to it and scales the target to zero.
    fn initialize(&mut self) -> Flow {
        match self.ready(self.primary_readiness()) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(_) => return self.rollback(),
        }
        self.push(Action::ReconcileRoutes);
        self.push(Action::ScaleCanary(Scale::Zero));
        self.sync_revision(Phase::Initialized);
        self.status.last_promoted_spec = self.status.last_applied_spec.clone();
        self.emit(
            Level::Info,
            msg::initialization_done(self.c.name, self.c.namespace),
        );
        self.alert(Level::Info, alerts::initialized(self.kind), true);
        Ok(())
    }

    fn advance_analysis(&mut self) -> Flow {
        let (name, ns, target) = (self.c.name, self.c.namespace, self.target());
        let phase = self.phase();
        let changed = self.revision_changed();
        if !phase.is_active() && !changed {
            return Ok(());
        }
        if matches!(phase, Phase::Progressing | Phase::WaitingPromotion) && changed {
            self.push(Action::SetRoutes {
                primary: TOTAL_WEIGHT,
                canary: 0,
                mirrored: false,
            });
            self.sync_revision(Phase::Progressing);
            self.emit(Level::Info, msg::restarting_analysis(target, ns));
            return Ok(());
        }
        // A new revision from an idle phase starts at once; every later step waits for the
        // interval since the last status change, however often the shell calls.
        if phase.is_active()
            && let Some(wait) = self.not_due()
        {
            self.push(Action::Requeue(wait));
            return Ok(());
        }
        let skip = self.c.spec.skips_analysis();
        if !skip {
            match self.ready(self.primary_readiness()) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(m) if matches!(phase, Phase::Promoting | Phase::Finalising) => {
                    self.failed_promotion(&m);
                    return Ok(());
                }
                Err(_) => return self.rollback(),
            }
        }
        let routes = self.routes();
        let Ok(routes) = routes else {
            if let Err(e) = routes {
                self.emit(Level::Warn, e);
            }
            return Ok(());
        };
        if !matches!(
            phase,
            Phase::Progressing | Phase::WaitingPromotion | Phase::Promoting | Phase::Finalising
        ) {
            return self.start_revision();
        }
        match self.ready(self.canary_readiness()) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(m) => {
                if !skip {
                    self.alert(Level::Error, alerts::deadline_exceeded(&m), false);
                }
                return self.rollback();
            }
        }
        if skip {
            return self.promote_without_analysis();
        }
        if matches!(
            phase,
            Phase::Progressing | Phase::Waiting | Phase::WaitingPromotion
        ) && self.rollback_requested()?
        {
            self.emit(Level::Warn, msg::rolling_back_manual(name, ns));
            self.alert(Level::Warn, alerts::MANUAL_ROLLBACK, false);
            return self.rollback();
        }
        if phase == Phase::Promoting {
            if self.c.spec.autoscaler_ref.is_some() {
                self.push(Action::SyncPrimaryAutoscaler);
            }
            self.shift_traffic_to_primary(routes);
            return Ok(());
        }
        if phase == Phase::Finalising {
            self.push(Action::ScaleCanary(Scale::Zero));
            self.set_phase(Phase::Succeeded);
            self.push(Action::Record(Outcome::Completed));
            self.push(Action::RunPostRolloutHooks {
                phase: Phase::Succeeded,
            });
            self.emit(Level::Info, msg::promotion_completed(target, ns));
            self.alert(Level::Info, alerts::SUCCEEDED, false);
            return Ok(());
        }
        if self.status.failed_checks >= self.analysis().threshold() {
            return self.rollback();
        }
        let a = self.analysis();
        if routes.canary == 0 && self.status.iterations == 0 && !(a.mirror && routes.mirrored) {
            self.emit(Level::Info, msg::starting_analysis(target, ns));
            if !self.pre_rollout_passed()? {
                self.status.failed_checks = self.status.failed_checks.saturating_add(1);
                return Ok(());
            }
        } else if !self.analysis_passed()? {
            self.status.failed_checks = self.status.failed_checks.saturating_add(1);
            return Ok(());
        }
        self.next_move(routes)
    }

    /// The strategy's next move after a successful analysis step.
    fn next_move(&mut self, routes: Routes) -> Flow {
        let a = self.analysis();
        let mut iterations = a.iterations();
        let mut ab = !a.r#match.is_empty();
        if self.provider == "kubernetes" {
            if ab {
                self.emit(Level::Warn, msg::KUBERNETES_NO_AB);
                ab = false;
            }
            if iterations < 1 {
                self.emit(Level::Warn, msg::KUBERNETES_NO_PROGRESSIVE);
                self.emit(Level::Warn, msg::KUBERNETES_ITERATIONS);
                iterations = 10;
            }
        }
        if iterations > 0 && ab {
            self.ab_testing(iterations)
        } else if iterations > 0 {
            self.blue_green(iterations, routes)
        } else {
            self.canary_step(routes)
        }
    }

    fn ab_testing(&mut self, iterations: u32) -> Flow {
        if iterations > self.status.iterations {
            self.push(Action::SetRoutes {
                primary: 0,
                canary: TOTAL_WEIGHT,
                mirrored: false,
            });
            self.status.iterations = self.status.iterations.saturating_add(1);
            self.emit_iteration(iterations);
            return Ok(());
        }
        if self.promotion_confirmed()? {
            self.promote();
        }
        Ok(())
    }

    fn blue_green(&mut self, iterations: u32, routes: Routes) -> Flow {
        let mesh = self.provider != "kubernetes";
        let mirror = self.analysis().mirror;
        if iterations > self.status.iterations {
            if mesh && mirror && !routes.mirrored {
                self.push(Action::SetRoutes {
                    primary: TOTAL_WEIGHT,
                    canary: 0,
                    mirrored: true,
                });
            }
            self.status.iterations = self.status.iterations.saturating_add(1);
            self.emit_iteration(iterations);
            return Ok(());
        }
        if !self.promotion_confirmed()? {
            return Ok(());
        }
        if iterations == self.status.iterations {
            if mesh {
                let text = if mirror {
                    msg::STOP_MIRRORING
                } else {
                    msg::ROUTING_ALL_TO_CANARY
                };
                self.emit(Level::Info, text);
                self.push(Action::SetRoutes {
                    primary: 0,
                    canary: TOTAL_WEIGHT,
                    mirrored: false,
                });
            }
            // One more analysed step with all traffic on the canary, then promotion.
            self.status.iterations = self.status.iterations.saturating_add(1);
            return Ok(());
        }
        self.promote();
        Ok(())
    }

    fn canary_step(&mut self, routes: Routes) -> Flow {
        let a = self.analysis();
        let step = weights::next_step_weight(a, routes.canary);
        if step == 0 {
            return Ok(());
        }
        if !routes.mirrored
            && !matches!(
                self.phase(),
                Phase::Promoting | Phase::WaitingPromotion | Phase::Finalising
            )
            && !self.traffic_increase_confirmed()?
        {
            return Ok(());
        }
        if routes.canary < a.max_weight() {
            let (canary, mirrored) = if a.mirror && routes.canary == 0 {
                if routes.mirrored {
                    (step, false)
                } else {
                    (0, true)
                }
            } else {
                (routes.canary.saturating_add(step).min(TOTAL_WEIGHT), false)
            };
            self.push(Action::SetRoutes {
                primary: TOTAL_WEIGHT - canary,
                canary,
                mirrored,
            });
            self.status.canary_weight = canary;
            self.emit(
                Level::Info,
                msg::advance_weight(self.c.name, self.c.namespace, canary),
            );
            return Ok(());
        }
        if self.promotion_confirmed()? {
            self.promote();
        }
        Ok(())
    }

    /// After `Promote`: moves traffic back to the primary, at once or by
    /// `stepWeightPromotion`, then enters `Finalising`.
    fn shift_traffic_to_primary(&mut self, routes: Routes) {
        let step = self.analysis().step_weight_promotion();
        if self.provider == "kubernetes" {
            self.set_phase(Phase::Finalising);
        } else if step == 0 || routes.canary == 0 {
            self.emit(Level::Info, msg::ROUTING_ALL_TO_PRIMARY);
            self.push(Action::SetRoutes {
                primary: TOTAL_WEIGHT,
                canary: 0,
                mirrored: false,
            });
            self.set_phase(Phase::Finalising);
        } else {
            let canary = routes.canary.saturating_sub(step);
            let primary = TOTAL_WEIGHT - canary;
            self.push(Action::SetRoutes {
                primary,
                canary,
                mirrored: false,
            });
            self.emit(
                Level::Info,
                msg::advance_primary_weight(self.c.name, self.c.namespace, primary),
            );
            if primary == TOTAL_WEIGHT {
                self.set_phase(Phase::Finalising);
            } else {
                self.status.canary_weight = canary;
            }
        }
    }

    /// A new revision from an idle or waiting phase: confirm-rollout gates, then scale up.
    fn start_revision(&mut self) -> Flow {
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

    fn promote(&mut self) {
        self.emit(Level::Info, msg::copying(self.target(), self.c.namespace));
        self.push(Action::Promote);
        self.set_phase(Phase::Promoting);
    }

    fn promote_without_analysis(&mut self) -> Flow {
        let (target, ns) = (self.target(), self.c.namespace);
        self.push(Action::SetRoutes {
            primary: TOTAL_WEIGHT,
            canary: 0,
            mirrored: false,
        });
        self.emit(Level::Info, msg::copying(target, ns));
        self.push(Action::Promote);
        if self.c.spec.autoscaler_ref.is_some() {
            self.push(Action::SyncPrimaryAutoscaler);
        }
        self.push(Action::ScaleCanary(Scale::Zero));
        self.set_phase(Phase::Succeeded);
        self.push(Action::Record(Outcome::Skipped));
        self.push(Action::RunPostRolloutHooks {
            phase: Phase::Succeeded,
        });
        self.emit(Level::Info, msg::promotion_skipped(target, ns));
        self.alert(Level::Info, alerts::SKIPPED, false);
        Ok(())
    }

    fn rollback(&mut self) -> Flow {
        let (name, ns) = (self.c.name, self.c.namespace);
        let failed = self.status.failed_checks;
        if self.c.spec.analysis().is_some() && failed >= self.analysis().threshold() {
            self.emit(Level::Warn, msg::rolling_back_threshold(name, ns, failed));
            self.alert(Level::Error, alerts::threshold_reached(failed), false);
        }
        self.push(Action::SetRoutes {
            primary: TOTAL_WEIGHT,
            canary: 0,
            mirrored: false,
        });
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
    fn failed_promotion(&mut self, err: &str) {
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

    fn finish(mut self, before: &CanaryStatus) -> Step {
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
    fn track_session_cookies(&mut self) {
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

    fn target(&self) -> &'a str {
        &self.c.spec.target_ref.name
    }

    fn push(&mut self, action: Action) {
        self.actions.push(action);
    }

    fn emit(&mut self, level: Level, message: impl Into<String>) {
        self.actions.push(Action::Emit(Event {
            level,
            message: message.into(),
        }));
    }

    fn emit_iteration(&mut self, total: u32) {
        let done = self.status.iterations;
        self.emit(
            Level::Info,
            msg::advance_iteration(self.c.name, self.c.namespace, done, total),
        );
    }

    fn alert(&mut self, level: Level, message: impl Into<String>, with_fields: bool) {
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

    fn alert_fields(&self) -> Vec<(String, String)> {
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
    fn set_phase(&mut self, phase: Phase) {
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
    fn sync_revision(&mut self, phase: Phase) {
        self.status.last_applied_spec = self.obs.target.spec_hash.clone();
        self.status.tracked_configs =
            (!self.obs.target.configs.is_empty()).then(|| self.obs.target.configs.clone());
        self.status.canary_weight = 0;
        self.status.failed_checks = 0;
        self.status.iterations = 0;
        self.set_phase(phase);
    }

    fn set_condition(&mut self, kind: &str, value: &str, reason: &str, message: String) {
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

    /// Validates the spec; an invalid spec is reported in the `Valid` condition and an event,
    /// and stops the step.
    fn spec_is_valid(&mut self) -> bool {
        let errors = validate_in(self.c.spec, self.c.namespace, self.c.settings);
        if errors.is_empty() {
            if self.status.condition(msg::CONDITION_VALID).is_some() {
                self.set_condition(
                    msg::CONDITION_VALID,
                    "True",
                    "Valid",
                    "spec is valid".into(),
                );
            }
            return true;
        }
        let summary = summarize(&errors);
        let unchanged = self
            .status
            .condition(msg::CONDITION_VALID)
            .is_some_and(|c| c.status == "False" && c.message == summary);
        if !unchanged {
            self.emit(Level::Error, msg::invalid_spec(&summary));
        }
        self.set_condition(msg::CONDITION_VALID, "False", "InvalidSpec", summary);
        false
    }

    /// Flagger's `HasTargetChanged || HaveDependenciesChanged`. A template equal to the last
    /// promoted one (a manual rollback) is not a change.
    fn revision_changed(&self) -> bool {
        let target = &self.obs.target;
        let target_changed = self.status.last_applied_spec.is_empty()
            || (target.spec_hash != self.status.last_promoted_spec
                && target.spec_hash != self.status.last_applied_spec);
        let tracked = self.status.tracked_configs.clone().unwrap_or_default();
        target_changed || tracked != target.configs
    }

    fn not_due(&self) -> Option<Duration> {
        let last = self.status.last_transition_time?;
        // A due time past the end of the calendar never comes: wait a whole interval again.
        let Some(due) = crate::duration::after(last, self.interval) else {
            return Some(self.interval);
        };
        (due > self.now).then(|| (due - self.now).to_std().unwrap_or(self.interval))
    }

    fn routes(&self) -> Result<Routes, String> {
        if self.provider == "kubernetes" {
            // No routing object: blue/green through the ClusterIP services only.
            return Ok(if self.status.iterations > 0 {
                Routes {
                    primary: 0,
                    canary: TOTAL_WEIGHT,
                    mirrored: false,
                }
            } else {
                Routes::default()
            });
        }
        // Weights come from objects anyone can edit: a value over 100 means all traffic.
        self.obs.routes.clone().map(|r| Routes {
            primary: r.primary.min(TOTAL_WEIGHT),
            canary: r.canary.min(TOTAL_WEIGHT),
            mirrored: r.mirrored,
        })
    }

    fn primary_readiness(&self) -> Readiness {
        readiness::assess(
            self.obs.primary.as_ref(),
            Role::Primary,
            self.analysis().primary_ready_threshold(),
            self.c.spec.progress_deadline(),
            self.status.last_transition_time,
            self.now,
        )
    }

    fn canary_readiness(&self) -> Readiness {
        readiness::assess(
            self.obs.canary.as_ref(),
            Role::Canary,
            self.analysis().canary_ready_threshold(),
            self.c.spec.progress_deadline(),
            self.status.last_transition_time,
            self.now,
        )
    }

    /// Reports a workload that is not ready: `Ok(true)` when ready, `Ok(false)` after a wait
    /// event, `Err(message)` after the failure event.
    fn ready(&mut self, readiness: Readiness) -> Result<bool, String> {
        match readiness {
            Readiness::Ready => Ok(true),
            Readiness::Waiting(m) => {
                self.emit(Level::Warn, m);
                Ok(false)
            }
            Readiness::Failed(m) => {
                self.emit(Level::Warn, m.clone());
                Err(m)
            }
        }
    }

    fn muted(&self, kind: HookType, hook: &str) -> bool {
        self.analysis()
            .hooks(kind)
            .any(|w| w.name == hook && w.mute_alert)
    }

    /// The results of the webhooks of a type in spec order, asking for them when absent.
    /// A hook the shell gave no result for counts as failed.
    fn hooks(
        &mut self,
        kind: HookType,
        phase: Phase,
        until: RunUntil,
    ) -> Result<Vec<HookResult>, Need> {
        let names: Vec<&str> = self
            .analysis()
            .hooks(kind)
            .map(|w| w.name.as_str())
            .collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let Some(results) = self.obs.webhooks.get(&kind) else {
            return Err(Need(Action::RunWebhooks { kind, phase, until }));
        };
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let outcome = match results.get(i) {
                Some(HookResult { name: n, outcome }) if n == name => outcome.clone(),
                _ => Err("no result was observed for this webhook".to_string()),
            };
            let stop = match until {
                RunUntil::FirstFailure => outcome.is_err(),
                RunUntil::FirstSuccess => outcome.is_ok(),
            };
            self.record_check(CheckReport {
                name: name.to_string(),
                kind: kind.as_str().to_string(),
                result: if outcome.is_ok() {
                    CheckResult::Passed
                } else {
                    CheckResult::Failed
                },
                value: None,
                threshold: None,
                message: outcome.clone().err().unwrap_or_default(),
            });
            out.push(HookResult {
                name: name.to_string(),
                outcome,
            });
            if stop {
                break;
            }
        }
        Ok(out)
    }

    fn record_check(&mut self, check: CheckReport) {
        let now = self.now;
        let report = self.report.get_or_insert_with(|| AnalysisReport {
            decision: String::new(),
            last_run_time: Some(now),
            checks: Vec::new(),
        });
        report.checks.push(check);
    }
}
