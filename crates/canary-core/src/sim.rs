//! An offline simulation of one canary: a model cluster that carries out the engine's
//! actions (routes, scaling, promotion) and answers its requests from a script.
//!
//! Tests, the benchmark and `cargo xtask demo` drive [`advance`] through it;
//! `kubectl canary simulate` will too. It is pure: time moves by the requeue each step asks.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::action::{Action, Event, Scale, Step};
use crate::machine::{CanaryRef, advance};
use crate::observe::{
    HookResult, MetricOutcome, MetricResult, Observation, Revision, Routes, WorkloadKind,
    WorkloadStatus,
};
use crate::spec::{CanarySpec, HookType, Settings};
use crate::status::{CanaryStatus, Phase};

/// Answers the engine's webhook and metric requests; `step` counts the steps taken.
pub trait Script {
    /// The answer of webhook `name` of type `kind`.
    fn webhook(&mut self, kind: HookType, name: &str, step: u32) -> Result<(), String> {
        let _ = (kind, name, step);
        Ok(())
    }
    /// The value of metric `name`.
    fn metric(&mut self, name: &str, step: u32) -> MetricOutcome;
}

/// A script where every hook passes and every metric has the same value per name.
#[derive(Clone, Debug, Default)]
pub struct Healthy;

impl Script for Healthy {
    fn metric(&mut self, name: &str, _: u32) -> MetricOutcome {
        match name {
            "request-duration" => MetricOutcome::Value(120.0),
            _ => MetricOutcome::Value(100.0),
        }
    }
}

/// A simulated workload: how many replicas it wants and how many steps it takes to be ready.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// Replicas wanted (0 when scaled down).
    pub replicas: i32,
    /// Steps left before the rollout completes.
    pub rollout_steps: u32,
    /// When the current rollout started.
    pub since: DateTime<Utc>,
    /// A rollout that never completes.
    pub broken: bool,
}

/// The model cluster around one canary.
pub struct Sim {
    /// Canary name.
    pub name: String,
    /// Canary namespace.
    pub namespace: String,
    /// The spec.
    pub spec: CanarySpec,
    /// Controller settings.
    pub settings: Settings,
    /// The canary's status as last written.
    pub status: CanaryStatus,
    /// Current route weights.
    pub routes: Routes,
    /// The target's current revision.
    pub revision: Revision,
    /// The target (canary) workload.
    pub target: Workload,
    /// The primary workload, once created.
    pub primary: Option<Workload>,
    /// Replicas the workloads run when scaled up.
    pub replicas: i32,
    /// Steps a rollout takes.
    pub rollout_steps: u32,
    /// The simulated clock.
    pub now: DateTime<Utc>,
    /// Events recorded so far.
    pub events: Vec<Event>,
    /// Every effect carried out, in order (requests and events excluded).
    pub effects: Vec<Action>,
    /// Steps taken.
    pub steps: u32,
    /// True when the canary is being deleted.
    pub deleting: bool,
    /// True while the canary carries the finalizer.
    pub finalizer: bool,
}

impl Sim {
    /// A canary whose target runs `replicas` ready replicas of revision `spec_hash`.
    pub fn new(name: &str, namespace: &str, spec: CanarySpec, settings: Settings) -> Self {
        let now = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        Sim {
            name: name.into(),
            namespace: namespace.into(),
            spec,
            settings,
            status: CanaryStatus::default(),
            routes: Routes::default(),
            revision: Revision {
                spec_hash: "rev-1".into(),
                configs: BTreeMap::new(),
            },
            target: Workload {
                replicas: 1,
                rollout_steps: 0,
                since: now,
                broken: false,
            },
            primary: None,
            replicas: 1,
            rollout_steps: 1,
            now,
            events: Vec::new(),
            effects: Vec::new(),
            steps: 0,
            deleting: false,
            finalizer: false,
        }
    }

    /// A new revision of the target (as `kubectl set image` makes).
    pub fn set_revision(&mut self, spec_hash: &str) {
        self.revision.spec_hash = spec_hash.into();
        self.start_rollout(false);
    }

    /// A new revision whose pods never become ready.
    pub fn set_broken_revision(&mut self, spec_hash: &str) {
        self.revision.spec_hash = spec_hash.into();
        self.start_rollout(true);
    }

    fn start_rollout(&mut self, broken: bool) {
        self.target.rollout_steps = self.rollout_steps;
        self.target.since = self.now;
        self.target.broken = broken;
    }

    /// The observation of the current state, without webhook or metric results.
    pub fn observe(&self) -> Observation {
        let status = |w: &Workload, name: String| {
            let ready = w.rollout_steps == 0 && !w.broken;
            WorkloadStatus {
                available_replicas: if ready { w.replicas } else { 0 },
                unavailable_since: (!ready).then_some(w.since),
                ..WorkloadStatus::ready(WorkloadKind::Deployment, name, w.replicas)
            }
        };
        let target = &self.spec.target_ref.name;
        Observation {
            target: self.revision.clone(),
            primary: self
                .primary
                .as_ref()
                .map(|p| status(p, format!("{target}-primary.{}", self.namespace))),
            canary: Some(status(&self.target, format!("{target}.{}", self.namespace))),
            routes: Ok(self.routes),
            deleting: self.deleting,
            has_finalizer: self.finalizer,
            ..Observation::default()
        }
    }

    /// One step: answers the engine's requests from `script`, carries out its actions, and
    /// moves the clock by the requested delay.
    pub fn step(&mut self, script: &mut dyn Script) -> Step {
        let mut obs = self.observe();
        let canary = CanaryRef {
            name: &self.name,
            namespace: &self.namespace,
            spec: &self.spec,
            settings: &self.settings,
        };
        let step = loop {
            let step = advance(&canary, &self.status, &obs, self.now);
            match step.request() {
                Some(Action::RunWebhooks { kind, .. }) => {
                    let kind = *kind;
                    let results = self
                        .spec
                        .analysis()
                        .map(|a| {
                            a.hooks(kind)
                                .map(|w| HookResult {
                                    name: w.name.clone(),
                                    outcome: script.webhook(kind, &w.name, self.steps),
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    obs.webhooks.insert(kind, results);
                }
                Some(Action::QueryMetrics) => {
                    let metrics = self
                        .spec
                        .analysis()
                        .map(|a| a.metrics.clone())
                        .unwrap_or_default();
                    obs.metrics = Some(
                        metrics
                            .iter()
                            .map(|m| MetricResult {
                                name: m.name.clone(),
                                outcome: script.metric(&m.name, self.steps),
                            })
                            .collect(),
                    );
                }
                Some(Action::CheckMetricProviders) => obs.providers_online = Some(Ok(())),
                _ => break step,
            }
        };
        self.apply(&step, script);
        self.steps += 1;
        step
    }

    /// Steps until the phase is one of `phases` (after at least one step) or `max` steps.
    pub fn run_until(&mut self, script: &mut dyn Script, phases: &[Phase], max: u32) -> Phase {
        for _ in 0..max {
            self.step(script);
            if let Some(p) = self.status.phase
                && phases.contains(&p)
            {
                return p;
            }
        }
        self.status.phase.unwrap_or(Phase::Initializing)
    }

    /// The messages of the events recorded since `from`.
    pub fn messages_since(&self, from: usize) -> Vec<String> {
        self.events[from..]
            .iter()
            .map(|e| e.message.clone())
            .collect()
    }

    fn apply(&mut self, step: &Step, script: &mut dyn Script) {
        self.status = step.status.clone();
        for p in [&mut self.target].into_iter().chain(self.primary.as_mut()) {
            p.rollout_steps = p.rollout_steps.saturating_sub(1);
        }
        for action in &step.actions {
            match action {
                Action::Emit(e) => {
                    self.events.push(e.clone());
                    continue;
                }
                Action::Requeue(d) => {
                    self.now = crate::duration::after(self.now, *d).unwrap_or(self.now);
                    continue;
                }
                Action::SetRoutes { .. } => self.routes = action.routes().unwrap_or(self.routes),
                Action::Initialize if self.primary.is_none() => {
                    self.primary = Some(Workload {
                        replicas: self.replicas,
                        rollout_steps: self.rollout_steps,
                        since: self.now,
                        broken: false,
                    })
                }
                Action::ScaleCanary(Scale::Zero) => self.target.replicas = 0,
                Action::ScaleCanary(Scale::FromZero) | Action::RestoreTarget => {
                    self.target.replicas = self.replicas;
                    self.target.rollout_steps = self.rollout_steps;
                    self.target.since = self.now;
                }
                Action::Promote => {
                    if let Some(p) = self.primary.as_mut() {
                        p.rollout_steps = self.rollout_steps;
                        p.since = self.now;
                        p.broken = self.target.broken;
                    }
                }
                Action::AddFinalizer => self.finalizer = true,
                Action::RemoveFinalizer => self.finalizer = false,
                Action::RunPostRolloutHooks { .. } => {
                    let hooks: Vec<String> = self
                        .spec
                        .analysis()
                        .map(|a| {
                            a.hooks(HookType::PostRollout)
                                .map(|w| w.name.clone())
                                .collect()
                        })
                        .unwrap_or_default();
                    for hook in hooks {
                        let outcome = script.webhook(HookType::PostRollout, &hook, self.steps);
                        let (warning, message) =
                            crate::messages::post_rollout_result(&hook, &outcome);
                        let level = if warning {
                            crate::Level::Warn
                        } else {
                            crate::Level::Info
                        };
                        self.events.push(Event { level, message });
                    }
                }
                _ => {}
            }
            self.effects.push(action.clone());
        }
    }
}
