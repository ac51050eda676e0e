//! The state machine: one analysis step of one canary, as Flagger's scheduler takes it.
//!
//! [`advance`] follows `advanceCanary` in Flagger's `scheduler.go` branch for branch
//! (flagger-behaviour.md section 2): initialization, new-revision detection and gates,
//! readiness, rollback hooks, promotion traffic shift, finalisation, the failed-checks
//! threshold, pre-rollout hooks or the analysis, then the strategy's next move. Where the
//! engine needs webhook or metric results it returns a request instead of deciding; see
//! [`Step::request`].

mod checks;
mod endings;
mod report;
mod strategies;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::action::{Action, Level, Outcome, RunUntil, Scale, Step};
use crate::messages::{self as msg, alerts};
use crate::observe::{HookResult, Observation, Routes};
use crate::readiness::{self, Readiness, Role};
use crate::spec::{CanaryAnalysis, CanarySpec, HookType, Settings};
use crate::status::{AnalysisReport, CanaryStatus, CheckReport, CheckResult, Phase};
use crate::validate::{summarize, validate_in};
use crate::weights::TOTAL_WEIGHT;

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
    let provider = match spec.provider.as_deref() {
        Some(p) if !p.is_empty() => {
            if settings.default_provider.contains("linkerd") {
                "linkerd".to_string()
            } else {
                p.to_string()
            }
        }
        _ => settings.default_provider.clone(),
    };
    // A Service target measures the canary Service: Flagger appends `:service`, which only
    // the prefix-matched observers (App Mesh, Gloo) still recognise; the rest fall to Istio's.
    if spec.target_ref.is_core_service() {
        return format!("{provider}:service");
    }
    provider
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
            self.all_to_primary();
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
            self.succeed(Outcome::Completed);
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
}
