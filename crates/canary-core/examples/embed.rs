//! A controller of its own around canary-core, outside flaggerd: the loop an embedder writes.
//!
//! `cargo run -p canary-core --example embed`
//!
//! Each reconcile observes its world, calls [`advance`], answers the step's request (webhooks,
//! metrics, provider checks) and calls again, then stores the returned status and carries out
//! the actions in order. Here the world is two in-memory deployments and a router; a real
//! controller reads and writes its API server at the same places (`observe` and `act`).

use std::time::Duration;

use canary_core::observe::MetricResult;
use canary_core::{
    Action, CanaryRef, CanarySpec, CanaryStatus, HookResult, MetricOutcome, Observation, Phase,
    Revision, Routes, Scale, Settings, WorkloadKind, WorkloadStatus, advance,
};
use chrono::{DateTime, TimeZone, Utc};

/// What this controller manages: the target, its primary copy and the weights between them.
struct World {
    target_image: String,
    target_replicas: i32,
    primary_image: Option<String>,
    routes: Routes,
    now: DateTime<Utc>,
}

impl World {
    /// What the engine needs to know before a step. Rollouts complete at once here.
    fn observe(&self) -> Observation {
        let ready = |name: &str, replicas: i32| {
            WorkloadStatus::ready(WorkloadKind::Deployment, format!("{name}.demo"), replicas)
        };
        Observation {
            target: Revision {
                spec_hash: canary_core::hash::spec_hash(
                    &serde_json::json!({"image": self.target_image}),
                ),
                ..Revision::default()
            },
            primary: self.primary_image.as_ref().map(|_| ready("app-primary", 2)),
            canary: Some(ready("app", self.target_replicas)),
            routes: Ok(self.routes),
            ..Observation::default()
        }
    }

    /// Answers a request of the engine into the observation: every webhook passes, the
    /// success rate is 99.5% and the latency 80 ms, the metric server answers.
    fn answer(&self, request: &Action, spec: &CanarySpec, observation: &mut Observation) {
        match request {
            Action::RunWebhooks { kind, .. } => {
                let results = spec
                    .analysis()
                    .map(|a| {
                        a.hooks(*kind)
                            .map(|h| HookResult {
                                name: h.name.clone(),
                                outcome: Ok(()),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                observation.webhooks.insert(*kind, results);
            }
            Action::QueryMetrics => {
                let metrics = spec
                    .analysis()
                    .map(|a| a.metrics.as_slice())
                    .unwrap_or_default();
                let results = metrics
                    .iter()
                    .map(|m| MetricResult {
                        name: m.name.clone(),
                        outcome: MetricOutcome::Value(match m.name.as_str() {
                            "request-duration" => 80.0,
                            _ => 99.5,
                        }),
                    })
                    .collect();
                observation.metrics = Some(results);
            }
            Action::CheckMetricProviders => observation.providers_online = Some(Ok(())),
            other => unreachable!("not a request: {other:?}"),
        }
    }

    /// Carries out one action; returns the requeue delay if it is one. Every action is
    /// matched, so a new one in canary-core is a compile error here, not a silent gap.
    fn act(&mut self, action: &Action) -> Option<Duration> {
        match action {
            Action::Initialize => {
                self.primary_image
                    .get_or_insert_with(|| self.target_image.clone());
            }
            Action::ReconcileRoutes | Action::SyncPrimaryAutoscaler => {}
            Action::SetRoutes {
                primary,
                canary,
                mirrored,
            } => {
                self.routes = Routes {
                    primary: *primary,
                    canary: *canary,
                    mirrored: *mirrored,
                };
            }
            Action::ScaleCanary(Scale::Zero) => self.target_replicas = 0,
            Action::ScaleCanary(Scale::FromZero) | Action::RestoreTarget => {
                self.target_replicas = 2
            }
            Action::Promote => self.primary_image = Some(self.target_image.clone()),
            Action::Emit(event) => println!("  event  {:?}: {}", event.level, event.message),
            Action::Alert(alert) => println!("  alert  {:?}: {}", alert.level, alert.message),
            Action::RunPostRolloutHooks { phase } => println!("  post-rollout hooks ({phase:?})"),
            Action::Revert | Action::AddFinalizer | Action::RemoveFinalizer | Action::Record(_) => {
            }
            Action::Requeue(after) => return Some(*after),
            Action::RunWebhooks { .. } | Action::QueryMetrics | Action::CheckMetricProviders => {
                unreachable!("requests are answered before the step is carried out")
            }
        }
        None
    }
}

/// A canary as a user writes it (the Canary's spec), here as JSON.
fn spec() -> CanarySpec {
    serde_json::from_value(serde_json::json!({
        "provider": "istio",
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"},
        "service": {"port": 80},
        "analysis": {
            "interval": "30s", "threshold": 2, "maxWeight": 30, "stepWeight": 10,
            "metrics": [
                {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"},
                {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "1m"}
            ],
            "webhooks": [{"name": "smoke", "type": "pre-rollout", "url": "http://tester/"}]
        }
    }))
    .expect("a valid spec")
}

fn main() {
    let spec = spec();
    let settings = Settings::new("istio");
    let canary = CanaryRef {
        name: "app",
        namespace: "demo",
        spec: &spec,
        settings: &settings,
    };
    let mut status = CanaryStatus::default();
    let mut world = World {
        target_image: "app:1.0".into(),
        target_replicas: 2,
        primary_image: None,
        routes: Routes::default(),
        now: Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("a date"),
    };
    let mut released = false;
    // Bounded: a release of three steps needs a few dozen reconciles.
    for _ in 0..100 {
        let mut observation = world.observe();
        let step = loop {
            let step = advance(&canary, &status, &observation, world.now);
            match step.request() {
                Some(request) => world.answer(request, &spec, &mut observation),
                None => break step,
            }
        };
        // Store the status first (a real controller writes it to the API server), then act.
        status = step.status;
        let mut requeue = Duration::from_secs(30);
        for action in &step.actions {
            if let Some(after) = world.act(action) {
                requeue = after;
            }
        }
        let phase = status.phase();
        println!(
            "{}  {phase:?}  weight {}  primary {}",
            world.now.format("%H:%M:%S"),
            world.routes.canary,
            world.primary_image.as_deref().unwrap_or("-")
        );
        if phase == Some(Phase::Initialized) && !released {
            println!("-- a new revision: app:2.0");
            world.target_image = "app:2.0".into();
            released = true;
        }
        if released && phase == Some(Phase::Succeeded) {
            assert_eq!(world.primary_image.as_deref(), Some("app:2.0"));
            println!("-- promoted: the primary runs app:2.0");
            return;
        }
        world.now += chrono::Duration::from_std(requeue).expect("a short delay");
    }
    panic!("the release did not finish within 100 reconciles");
}
