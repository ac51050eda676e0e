//! Properties that hold for any valid spec and any sequence of observations.

#[path = "support/seeds.rs"]
mod common;

use canary_core::sim::{Script, Sim};
use canary_core::spec::{HttpMatch, StringMatch, Webhook};
use canary_core::{Action, HookType, MetricOutcome, Phase, Settings};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Schedule {
    Step { step: i32, max: i32 },
    Steps(Vec<i32>),
    Iterations { iterations: i32, ab: bool },
}

#[derive(Clone, Debug)]
struct Case {
    schedule: Schedule,
    threshold: i32,
    mirror: bool,
    promotion_gate: bool,
    step_promotion: i32,
    provider: &'static str,
    ticks: Vec<Tick>,
}

#[derive(Clone, Debug)]
struct Tick {
    metric: u8,
    hooks_ok: bool,
    gate_open: bool,
    new_revision: bool,
}

fn schedule() -> impl Strategy<Value = Schedule> {
    prop_oneof![
        (1..60i32, 1..=100i32).prop_map(|(step, max)| Schedule::Step { step, max }),
        prop::collection::btree_set(1..=100i32, 1..5)
            .prop_map(|s| Schedule::Steps(s.into_iter().collect())),
        (1..6i32, any::<bool>())
            .prop_map(|(iterations, ab)| Schedule::Iterations { iterations, ab }),
    ]
}

fn tick() -> impl Strategy<Value = Tick> {
    (
        0..16u8,
        prop::bool::weighted(0.95),
        prop::bool::weighted(0.7),
        prop::bool::weighted(0.03),
    )
        .prop_map(|(metric, hooks_ok, gate_open, new_revision)| Tick {
            metric,
            hooks_ok,
            gate_open,
            new_revision,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        schedule(),
        1..6i32,
        any::<bool>(),
        any::<bool>(),
        0..60i32,
        prop::sample::select(vec!["istio", "kubernetes", "appmesh:v1beta2", "linkerd"]),
        prop::collection::vec(tick(), 10..60),
    )
        .prop_map(
            |(schedule, threshold, mirror, promotion_gate, step_promotion, provider, ticks)| Case {
                schedule,
                threshold,
                mirror,
                promotion_gate,
                step_promotion,
                provider,
                ticks,
            },
        )
}

/// Answers from the case's ticks and remembers what it answered in the current step.
struct Recorder {
    ticks: Vec<Tick>,
    metric_failed: bool,
    metrics_asked: bool,
    hooks_asked: bool,
    promotion_gate_closed: bool,
}

impl Recorder {
    fn at(&self, step: u32) -> &Tick {
        &self.ticks[step as usize % self.ticks.len()]
    }
}

impl Script for Recorder {
    fn webhook(&mut self, kind: HookType, name: &str, step: u32) -> Result<(), String> {
        self.hooks_asked = true;
        let t = self.at(step).clone();
        let ok = match (kind, name) {
            (HookType::Rollback, _) => false,
            (HookType::ConfirmPromotion, _) => t.gate_open,
            _ => t.hooks_ok,
        };
        if kind == HookType::ConfirmPromotion && !ok {
            self.promotion_gate_closed = true;
        }
        if ok { Ok(()) } else { Err("denied".into()) }
    }

    fn metric(&mut self, name: &str, step: u32) -> MetricOutcome {
        self.metrics_asked = true;
        let t = self.at(step).metric;
        let outcome = match (t, name) {
            (0, _) => MetricOutcome::NoData("no values found".into()),
            (1, _) => MetricOutcome::Error("Prometheus unreachable".into()),
            (2, "request-duration") => MetricOutcome::Value(900.0),
            (2, _) => MetricOutcome::Value(50.0),
            (3, _) => MetricOutcome::Value(f64::NAN),
            (_, "request-duration") => MetricOutcome::Value(100.0),
            _ => MetricOutcome::Value(100.0),
        };
        let passes = matches!((&outcome, name), (MetricOutcome::Value(v), "request-duration") if *v <= 500.0)
            || matches!((&outcome, name), (MetricOutcome::Value(v), "request-success-rate") if *v >= 99.0);
        self.metric_failed |= !passes;
        outcome
    }
}

fn sim_for(case: &Case) -> Sim {
    let (name, ns, mut spec) = common::seed("004-istio.yaml");
    spec.provider = Some(case.provider.into());
    let a = spec.analysis.as_mut().expect("analysis");
    a.step_weight = None;
    a.max_weight = None;
    match &case.schedule {
        Schedule::Step { step, max } => {
            a.step_weight = Some(*step);
            a.max_weight = Some(*max);
        }
        Schedule::Steps(steps) => a.step_weights = steps.clone(),
        Schedule::Iterations { iterations, ab } => {
            a.iterations = Some(*iterations);
            if *ab {
                let mut m = HttpMatch::default();
                m.headers.insert(
                    "x-canary".into(),
                    StringMatch {
                        exact: Some("insider".into()),
                        ..Default::default()
                    },
                );
                a.r#match = vec![m];
            }
        }
    }
    a.threshold = Some(case.threshold);
    a.mirror = case.mirror;
    a.step_weight_promotion = Some(case.step_promotion);
    if case.promotion_gate {
        a.webhooks.push(Webhook {
            name: "approve".into(),
            r#type: Some("confirm-promotion".into()),
            url: "http://flagger-loadtester.test/gate/check".into(),
            ..Default::default()
        });
    }
    assert!(
        canary_core::validate(&spec).is_empty(),
        "{:?}",
        canary_core::validate(&spec)
    );
    Sim::new(&name, &ns, spec, Settings::new(case.provider))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_step_keeps_the_invariants(case in case()) {
        let mut sim = sim_for(&case);
        let mut rec = Recorder { ticks: case.ticks.clone(), metric_failed: false, metrics_asked: false, hooks_asked: false, promotion_gate_closed: false };
        let analysis = sim.spec.analysis().cloned().expect("analysis");
        let (max_weight, step) = (analysis.max_weight(), analysis.step_weight());
        let threshold = analysis.threshold();
        sim.set_revision("rev-1");
        for i in 0..case.ticks.len() as u32 {
            if rec.at(i).new_revision {
                sim.set_revision(&format!("rev-{}", i + 2));
            }
            rec.metric_failed = false;
            rec.metrics_asked = false;
            rec.hooks_asked = false;
            rec.promotion_gate_closed = false;
            let before = sim.status.clone();
            let routes_before = sim.routes;
            let out = sim.step(&mut rec);
            for action in &out.actions {
                if let Action::SetRoutes { primary, canary, .. } = action {
                    prop_assert_eq!(primary + canary, 100, "weights must add up to 100");
                    prop_assert!(*canary <= 100);
                    if let Schedule::Step { .. } = case.schedule {
                        prop_assert!(*canary < max_weight + step, "canary {} overshoots max {} by more than one step {}", canary, max_weight, step);
                    }
                    if let Schedule::Steps(_) = case.schedule {
                        prop_assert!(*canary <= max_weight.max(100));
                    }
                }
            }
            let promoted = out.actions.contains(&Action::Promote);
            if promoted {
                prop_assert!(before.failed_checks < threshold, "promotion with failed checks {} >= threshold {}", before.failed_checks, threshold);
                prop_assert!(!rec.promotion_gate_closed, "promotion while the confirm-promotion gate is closed");
            }
            if rec.metrics_asked && rec.metric_failed {
                prop_assert!(!promoted, "a failed metric let the canary be promoted");
                prop_assert_eq!(out.status.failed_checks, before.failed_checks + 1, "a failed metric must count");
                let increased = out.actions.iter().any(|a| matches!(a, Action::SetRoutes { canary, .. } if *canary > routes_before.canary));
                prop_assert!(!increased, "a failed metric let traffic increase");
            }
            prop_assert!(out.request().is_none(), "the simulator answers every request");
            // The controller derives webhook idempotency keys from the last status change:
            // a step that called webhooks or queried metrics must change the status, so the
            // next step's calls get new keys.
            if rec.hooks_asked || rec.metrics_asked {
                prop_assert_ne!(&out.status, &before, "a step that ran checks left the status unchanged");
            }
            if sim.status.phase == Some(Phase::Succeeded) || sim.status.phase == Some(Phase::Failed) {
                prop_assert_eq!(sim.routes.canary + sim.routes.primary, 100);
            }
        }
    }
}
