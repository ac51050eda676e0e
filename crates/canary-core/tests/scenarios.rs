//! The seeds' scenarios, played through the engine with scripted observations; each asserts
//! the exact event texts, in order.

#[path = "support/seeds.rs"]
mod common;

use canary_core::sim::Sim;
use canary_core::{Action, HookType, MetricOutcome, Phase, Settings};
use common::{Scripted, initialized, initialized_with, seed, without_waits};

fn weights(from: u32, to: u32, step: usize) -> Vec<String> {
    (from..=to)
        .step_by(step)
        .map(|w| format!("Advance podinfo.test canary weight {w}"))
        .collect()
}

#[test]
fn seed_004_promotion_advances_by_five_to_fifty_then_promotes() {
    let mut sim = initialized("004-istio.yaml", "istio");
    let mark = sim.events.len();
    sim.set_revision("rev-2");
    let phase = sim.run_until(
        &mut Scripted::healthy(),
        &[Phase::Succeeded, Phase::Failed],
        40,
    );
    assert_eq!(phase, Phase::Succeeded);
    let mut expected = vec![
        "New revision detected! Scaling up podinfo.test".to_string(),
        "Starting canary analysis for podinfo.test".into(),
        "Pre-rollout check acceptance-test passed".into(),
    ];
    expected.extend(weights(5, 50, 5));
    expected.extend([
        "Copying podinfo.test template spec to podinfo-primary.test".to_string(),
        "Routing all traffic to primary".into(),
        "Promotion completed! Scaling down podinfo.test".into(),
    ]);
    let messages = sim.messages_since(mark);
    assert_eq!(without_waits(messages.clone()), expected);
    // The seed shows the canary and the primary rollouts being waited for.
    assert!(messages.contains(
        &"Waiting for podinfo.test rollout to finish: 0 of 1 updated replicas are available".into()
    ));
    assert!(messages.contains(
        &"Waiting for podinfo-primary.test rollout to finish: 0 of 1 updated replicas are available"
            .into()
    ));
    assert_eq!(sim.status.canary_weight, 0);
    assert_eq!(sim.status.last_promoted_spec, "rev-2");
    assert_eq!(sim.routes.primary, 100);
    assert_eq!(sim.target.replicas, 0);
    let promoted = sim.status.condition("Promoted").expect("condition");
    assert_eq!(
        (promoted.status.as_str(), promoted.reason.as_str()),
        ("True", "Succeeded")
    );
}

#[test]
fn seed_004_rollback_halts_on_success_rate_then_rolls_back_at_ten() {
    let mut sim = initialized("004-istio.yaml", "istio");
    let mark = sim.events.len();
    sim.set_revision("rev-3");
    let rates = [69.17, 61.39, 55.06, 47.00, 38.08];
    let mut script = Scripted::healthy();
    script.success_rate = Box::new(move |step| {
        // Healthy for the first three weight steps, then the seed's error rates.
        let bad_from = 8;
        if step < bad_from {
            MetricOutcome::Value(100.0)
        } else {
            MetricOutcome::Value(rates[((step - bad_from) as usize).min(rates.len() - 1)])
        }
    });
    let phase = sim.run_until(&mut script, &[Phase::Succeeded, Phase::Failed], 60);
    assert_eq!(phase, Phase::Failed);
    let messages = without_waits(sim.messages_since(mark));
    let halts: Vec<&String> = messages.iter().filter(|m| m.starts_with("Halt")).collect();
    assert_eq!(halts.len(), 10, "{messages:#?}");
    assert_eq!(
        halts[0],
        "Halt podinfo.test advancement success rate 69.17% < 99%"
    );
    assert_eq!(
        halts[1],
        "Halt podinfo.test advancement success rate 61.39% < 99%"
    );
    assert_eq!(
        halts[3],
        "Halt podinfo.test advancement success rate 47.00% < 99%"
    );
    assert_eq!(
        halts[4],
        "Halt podinfo.test advancement success rate 38.08% < 99%"
    );
    assert_eq!(
        messages[messages.len() - 2..],
        [
            "Rolling back podinfo.test failed checks threshold reached 10".to_string(),
            "Canary failed! Scaling down podinfo.test".to_string(),
        ]
    );
    assert!(messages.contains(&"Advance podinfo.test canary weight 15".to_string()));
    assert_eq!(sim.status.failed_checks, 10);
    assert_eq!(sim.status.canary_weight, 0);
    assert_eq!((sim.routes.primary, sim.routes.canary), (100, 0));
    assert_eq!(sim.target.replicas, 0);
    assert!(sim.effects.contains(&Action::RunPostRolloutHooks {
        phase: Phase::Failed
    }));
    let report = sim.status.analysis.as_ref().expect("explanation in status");
    let rate = report
        .checks
        .iter()
        .find(|c| c.name == "request-success-rate")
        .expect("check");
    assert_eq!(rate.value, Some(38.08));
    assert_eq!(rate.threshold.as_deref(), Some(">= 99"));
}

#[test]
fn seed_002_latency_halts_with_the_seed_text() {
    let mut sim = initialized("002-appmesh-v1beta2.yaml", "appmesh:v1beta2");
    let mark = sim.events.len();
    sim.set_revision("rev-2");
    let mut script = Scripted::healthy();
    script.duration_ms = Box::new(|step| {
        MetricOutcome::Value(if step < 6 {
            120.0
        } else if step % 2 == 0 {
            1200.0
        } else {
            1450.0
        })
    });
    let phase = sim.run_until(&mut script, &[Phase::Succeeded, Phase::Failed], 60);
    assert_eq!(phase, Phase::Failed);
    let messages = without_waits(sim.messages_since(mark));
    assert!(
        messages.contains(&"Halt podinfo.test advancement request duration 1.20s > 0.5s".into())
    );
    assert!(
        messages.contains(&"Halt podinfo.test advancement request duration 1.45s > 0.5s".into())
    );
    assert!(
        messages.contains(&"Rolling back podinfo.test failed checks threshold reached 5".into())
    );
    assert_eq!(
        messages.last().map(String::as_str),
        Some("Canary failed! Scaling down podinfo.test")
    );
}

#[test]
fn seed_002_ab_testing_runs_ten_iterations_then_promotes() {
    for fixture in ["002-appmesh-ab-header.yaml", "002-appmesh-ab-cookie.yaml"] {
        let mut sim = initialized(fixture, "appmesh:v1beta2");
        let mark = sim.events.len();
        sim.set_revision("rev-2");
        let phase = sim.run_until(
            &mut Scripted::healthy(),
            &[Phase::Succeeded, Phase::Failed],
            40,
        );
        assert_eq!(phase, Phase::Succeeded, "{fixture}");
        let mut expected = vec![
            "New revision detected! Scaling up podinfo.test".to_string(),
            "Starting canary analysis for podinfo.test".into(),
        ];
        expected.extend((1..=10).map(|i| format!("Advance podinfo.test canary iteration {i}/10")));
        expected.extend([
            "Copying podinfo.test template spec to podinfo-primary.test".to_string(),
            "Routing all traffic to primary".into(),
            "Promotion completed! Scaling down podinfo.test".into(),
        ]);
        assert_eq!(
            without_waits(sim.messages_since(mark)),
            expected,
            "{fixture}"
        );
        // A/B routes everything that matches to the canary while iterating.
        assert!(sim.effects.contains(&Action::SetRoutes {
            primary: 0,
            canary: 100,
            mirrored: false
        }));
    }
}

#[test]
fn blue_green_with_the_kubernetes_provider_iterates_then_promotes() {
    let mut sim = initialized_with("001-linkerd.yaml", "kubernetes", |spec| {
        spec.provider = Some("kubernetes".into());
        let analysis = spec.analysis.as_mut().expect("analysis");
        analysis.iterations = Some(3);
        analysis.step_weight = None;
        analysis.max_weight = None;
    });
    let mut script = Scripted::healthy();
    let mark = sim.events.len();
    sim.set_revision("rev-2");
    assert_eq!(
        sim.run_until(&mut script, &[Phase::Succeeded], 30),
        Phase::Succeeded
    );
    let expected = vec![
        "New revision detected! Scaling up podinfo.test",
        "Starting canary analysis for podinfo.test",
        "Pre-rollout check acceptance-test passed",
        "Advance podinfo.test canary iteration 1/3",
        "Advance podinfo.test canary iteration 2/3",
        "Advance podinfo.test canary iteration 3/3",
        "Copying podinfo.test template spec to podinfo-primary.test",
        "Promotion completed! Scaling down podinfo.test",
    ];
    assert_eq!(without_waits(sim.messages_since(mark)), expected);
    // No routing object: traffic is never shifted by weight.
    assert!(
        !sim.effects
            .iter()
            .any(|a| matches!(a, Action::SetRoutes { canary: 1..=99, .. }))
    );
}

#[test]
fn blue_green_on_a_mesh_routes_all_traffic_to_the_canary_before_promotion() {
    let mut sim = initialized_with("004-istio.yaml", "istio", |spec| {
        let analysis = spec.analysis.as_mut().expect("analysis");
        analysis.iterations = Some(2);
        analysis.step_weight = None;
    });
    let mut script = Scripted::healthy();
    let mark = sim.events.len();
    sim.set_revision("rev-2");
    assert_eq!(
        sim.run_until(&mut script, &[Phase::Succeeded], 30),
        Phase::Succeeded
    );
    let messages = without_waits(sim.messages_since(mark));
    let tail: Vec<&str> = messages.iter().skip(3).map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "Advance podinfo.test canary iteration 1/2",
            "Advance podinfo.test canary iteration 2/2",
            "Routing all traffic to canary",
            "Copying podinfo.test template spec to podinfo-primary.test",
            "Routing all traffic to primary",
            "Promotion completed! Scaling down podinfo.test",
        ]
    );
}

#[test]
fn step_weights_follow_the_schedule() {
    let mut sim = initialized_with("004-istio.yaml", "istio", |spec| {
        let analysis = spec.analysis.as_mut().expect("analysis");
        analysis.step_weight = None;
        analysis.max_weight = None;
        analysis.step_weights = vec![1, 2, 10, 80];
    });
    let mut script = Scripted::healthy();
    let mark = sim.events.len();
    sim.set_revision("rev-2");
    assert_eq!(
        sim.run_until(&mut script, &[Phase::Succeeded], 30),
        Phase::Succeeded
    );
    let advances: Vec<String> = sim
        .messages_since(mark)
        .into_iter()
        .filter(|m| m.starts_with("Advance"))
        .collect();
    assert_eq!(
        advances,
        [1, 2, 10, 80].map(|w| format!("Advance podinfo.test canary weight {w}"))
    );
}

#[test]
fn step_weight_promotion_moves_traffic_back_in_steps() {
    let mut sim = initialized_with("004-istio.yaml", "istio", |spec| {
        spec.analysis
            .as_mut()
            .expect("analysis")
            .step_weight_promotion = Some(20);
    });
    let mut script = Scripted::healthy();
    let mark = sim.events.len();
    sim.set_revision("rev-2");
    assert_eq!(
        sim.run_until(&mut script, &[Phase::Succeeded], 40),
        Phase::Succeeded
    );
    let messages = without_waits(sim.messages_since(mark));
    let after_copy: Vec<&str> = messages
        .iter()
        .skip_while(|m| !m.starts_with("Copying"))
        .skip(1)
        .map(String::as_str)
        .collect();
    assert_eq!(
        after_copy,
        [
            "Advance podinfo.test primary weight 70",
            "Advance podinfo.test primary weight 90",
            "Advance podinfo.test primary weight 100",
            "Promotion completed! Scaling down podinfo.test",
        ]
    );
}

fn with_gate(kind: HookType) -> Sim {
    let (name, ns, mut spec) = seed("004-istio.yaml");
    spec.analysis
        .as_mut()
        .expect("analysis")
        .webhooks
        .push(canary_core::spec::Webhook {
            name: "gate".into(),
            r#type: Some(kind.as_str().into()),
            url: "http://flagger-loadtester.test/gate/check".into(),
            ..Default::default()
        });
    let mut sim = Sim::new(&name, &ns, spec, Settings::new("istio"));
    sim.run_until(&mut Scripted::healthy(), &[Phase::Initialized], 10);
    sim
}

fn gate_script(open: std::rc::Rc<std::cell::Cell<bool>>) -> Scripted {
    let mut script = Scripted::healthy();
    script.hooks = Box::new(move |kind, name, _| match (kind, name) {
        (HookType::Rollback, _) => Err("closed".into()),
        (_, "gate") if !open.get() => Err("Forbidden".into()),
        _ => Ok(()),
    });
    script
}

#[test]
fn a_closed_confirm_rollout_gate_waits_then_reopens() {
    let mut sim = with_gate(HookType::ConfirmRollout);
    let open = std::rc::Rc::new(std::cell::Cell::new(false));
    let mut script = gate_script(open.clone());
    let mark = sim.events.len();
    sim.set_revision("rev-2");
    for _ in 0..5 {
        sim.step(&mut script);
    }
    assert_eq!(sim.status.phase, Some(Phase::Waiting));
    assert_eq!(
        sim.target.replicas, 0,
        "the canary stays scaled down while waiting"
    );
    assert_eq!(
        sim.messages_since(mark),
        ["Halt podinfo.test advancement waiting for approval gate"],
        "the halt is reported once"
    );
    open.set(true);
    assert_eq!(
        sim.run_until(&mut script, &[Phase::Succeeded], 40),
        Phase::Succeeded
    );
    let messages = sim.messages_since(mark);
    assert!(messages.contains(&"Confirm-rollout check gate passed".into()));
}

#[test]
fn a_closed_confirm_promotion_gate_holds_then_promotes() {
    let mut sim = with_gate(HookType::ConfirmPromotion);
    let open = std::rc::Rc::new(std::cell::Cell::new(false));
    let mut script = gate_script(open.clone());
    let mark = sim.events.len();
    sim.set_revision("rev-2");
    assert_eq!(
        sim.run_until(&mut script, &[Phase::WaitingPromotion], 40),
        Phase::WaitingPromotion
    );
    for _ in 0..4 {
        sim.step(&mut script);
    }
    assert_eq!(sim.status.phase, Some(Phase::WaitingPromotion));
    assert!(
        !sim.effects.contains(&Action::Promote),
        "no promotion while the gate is closed"
    );
    assert_eq!(sim.routes.canary, 50, "traffic stays at max weight");
    assert_eq!(
        sim.status.canary_weight, 50,
        "status agrees with the routes (Flagger #1819)"
    );
    open.set(true);
    assert_eq!(
        sim.run_until(&mut script, &[Phase::Succeeded], 20),
        Phase::Succeeded
    );
    let messages = without_waits(sim.messages_since(mark));
    let halts = messages
        .iter()
        .filter(|m| m.contains("waiting for promotion approval gate"))
        .count();
    assert_eq!(halts, 1);
    assert!(messages.contains(&"Confirm-promotion check gate passed".into()));
}

#[test]
fn a_closed_traffic_increase_gate_pauses_the_weight() {
    let mut sim = with_gate(HookType::ConfirmTrafficIncrease);
    let open = std::rc::Rc::new(std::cell::Cell::new(true));
    let mut script = gate_script(open.clone());
    sim.set_revision("rev-2");
    while sim.routes.canary < 15 {
        sim.step(&mut script);
    }
    open.set(false);
    let mark = sim.events.len();
    for _ in 0..3 {
        sim.step(&mut script);
    }
    assert_eq!(sim.routes.canary, 15);
    assert!(
        sim.messages_since(mark).iter().all(
            |m| m == "Halt podinfo.test advancement waiting for traffic increase approval gate"
        )
    );
    assert_eq!(
        sim.status.failed_checks, 0,
        "a closed gate is not a failed check"
    );
    open.set(true);
    assert_eq!(
        sim.run_until(&mut script, &[Phase::Succeeded], 40),
        Phase::Succeeded
    );
}

#[test]
fn a_new_revision_mid_analysis_restarts_it() {
    let mut sim = initialized("004-istio.yaml", "istio");
    let mut script = Scripted::healthy();
    sim.set_revision("rev-2");
    while sim.routes.canary < 20 {
        sim.step(&mut script);
    }
    let mark = sim.events.len();
    sim.set_revision("rev-3");
    sim.step(&mut script);
    assert_eq!(
        sim.messages_since(mark),
        ["New revision detected! Restarting analysis for podinfo.test"]
    );
    assert_eq!((sim.routes.primary, sim.routes.canary), (100, 0));
    assert_eq!(sim.status.canary_weight, 0);
    assert_eq!(sim.status.last_applied_spec, "rev-3");
    assert_eq!(
        sim.run_until(&mut script, &[Phase::Succeeded], 40),
        Phase::Succeeded
    );
    assert_eq!(sim.status.last_promoted_spec, "rev-3");
}

#[test]
fn a_revision_that_never_becomes_ready_fails_at_the_progress_deadline() {
    let mut sim = initialized("004-istio.yaml", "istio");
    let mark = sim.events.len();
    sim.set_broken_revision("rev-2");
    let phase = sim.run_until(
        &mut Scripted::healthy(),
        &[Phase::Failed, Phase::Succeeded],
        30,
    );
    assert_eq!(phase, Phase::Failed);
    let messages = sim.messages_since(mark);
    assert_eq!(
        messages.first().map(String::as_str),
        Some("New revision detected! Scaling up podinfo.test")
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("progress deadline exceeded")),
        "{messages:#?}"
    );
    assert_eq!(
        messages.last().map(String::as_str),
        Some("Canary failed! Scaling down podinfo.test")
    );
    // progressDeadlineSeconds is 60 and the interval 10s: about six waits, never a step.
    assert!(
        !sim.effects
            .iter()
            .any(|a| matches!(a, Action::SetRoutes { canary: 1.., .. }))
    );
    assert_eq!(
        sim.status.last_applied_spec, "rev-2",
        "the failed revision does not retrigger"
    );
    sim.step(&mut Scripted::healthy());
    assert_eq!(sim.status.phase, Some(Phase::Failed));
}

#[test]
fn skip_analysis_promotes_without_checks() {
    let (name, ns, mut spec) = seed("004-istio.yaml");
    spec.skip_analysis = true;
    let mut sim = Sim::new(&name, &ns, spec, Settings::new("istio"));
    let mut script = Scripted::healthy();
    script.success_rate = Box::new(|_| MetricOutcome::Value(0.0));
    sim.run_until(&mut script, &[Phase::Initialized], 10);
    let mark = sim.events.len();
    sim.set_revision("rev-2");
    assert_eq!(
        sim.run_until(&mut script, &[Phase::Succeeded], 10),
        Phase::Succeeded
    );
    assert_eq!(
        without_waits(sim.messages_since(mark)),
        [
            "New revision detected! Scaling up podinfo.test",
            "Copying podinfo.test template spec to podinfo-primary.test",
            "Promotion completed! Canary analysis was skipped for podinfo.test",
        ]
    );
    assert!(
        sim.effects
            .contains(&Action::Record(canary_core::Outcome::Skipped))
    );
}

#[test]
fn suspend_freezes_an_analysis_in_flight() {
    let mut sim = initialized("004-istio.yaml", "istio");
    let mut script = Scripted::healthy();
    sim.set_revision("rev-2");
    while sim.routes.canary < 10 {
        sim.step(&mut script);
    }
    sim.spec.suspend = true;
    let (mark, status, effects) = (sim.events.len(), sim.status.clone(), sim.effects.len());
    for _ in 0..3 {
        sim.step(&mut script);
    }
    assert_eq!(
        sim.messages_since(mark),
        vec!["skipping canary run as object is suspended"; 3]
    );
    assert_eq!(sim.status, status);
    assert_eq!(
        sim.effects.len(),
        effects,
        "nothing is touched while suspended"
    );
    sim.spec.suspend = false;
    assert_eq!(
        sim.run_until(&mut script, &[Phase::Succeeded], 40),
        Phase::Succeeded
    );
}

#[test]
fn an_unreachable_prometheus_counts_as_a_failed_check() {
    let mut sim = initialized("004-istio.yaml", "istio");
    let mut script = Scripted::healthy();
    script.success_rate = Box::new(|step| {
        if step < 5 {
            MetricOutcome::Value(100.0)
        } else {
            MetricOutcome::Error("Prometheus unreachable".into())
        }
    });
    let mark = sim.events.len();
    sim.set_revision("rev-2");
    assert_eq!(
        sim.run_until(&mut script, &[Phase::Failed, Phase::Succeeded], 60),
        Phase::Failed
    );
    let messages = sim.messages_since(mark);
    assert!(messages.contains(&"Prometheus query failed: Prometheus unreachable".into()));
}

#[test]
fn no_data_counts_as_a_failed_check_with_flaggers_message() {
    let mut sim = initialized("004-istio.yaml", "istio");
    let mut script = Scripted::healthy();
    script.success_rate = Box::new(|_| MetricOutcome::NoData("no values found".into()));
    sim.set_revision("rev-2");
    let mark = sim.events.len();
    assert_eq!(
        sim.run_until(&mut script, &[Phase::Failed, Phase::Succeeded], 60),
        Phase::Failed
    );
    assert!(sim.messages_since(mark).contains(
        &"Halt advancement no values found for istio metric request-success-rate probably podinfo.test is not receiving traffic: no values found".into()
    ));
}

#[test]
fn a_failing_pre_rollout_hook_counts_and_never_shifts_traffic() {
    let mut sim = initialized("004-istio.yaml", "istio");
    let mut script = Scripted::healthy();
    script.hooks = Box::new(|kind, _, _| match kind {
        HookType::PreRollout => Err("exit status 1".into()),
        _ => Ok(()),
    });
    sim.set_revision("rev-2");
    assert_eq!(
        sim.run_until(&mut script, &[Phase::Failed, Phase::Succeeded], 60),
        Phase::Failed
    );
    assert!(sim.events.iter().any(|e| e.message
        == "Halt podinfo.test advancement pre-rollout check acceptance-test failed exit status 1"));
    assert_eq!(sim.routes.canary, 0);
}

#[test]
fn a_rollback_hook_answering_ok_rolls_back_at_once() {
    let mut sim = with_gate(HookType::Rollback);
    let open = std::rc::Rc::new(std::cell::Cell::new(false));
    let mut script = Scripted::healthy();
    let flag = open.clone();
    script.hooks = Box::new(move |kind, _, _| match kind {
        HookType::Rollback if !flag.get() => Err("Forbidden".into()),
        _ => Ok(()),
    });
    sim.set_revision("rev-2");
    while sim.routes.canary < 10 {
        sim.step(&mut script);
    }
    open.set(true);
    let mark = sim.events.len();
    sim.step(&mut script);
    assert_eq!(
        sim.messages_since(mark),
        [
            "Rollback check gate passed",
            "Rolling back podinfo.test manual webhook invoked",
            "Canary failed! Scaling down podinfo.test",
        ]
    );
    assert_eq!(sim.status.phase, Some(Phase::Failed));
}

#[test]
fn an_invalid_spec_is_reported_in_a_condition_and_one_event() {
    let (name, ns, mut spec) = seed("004-istio.yaml");
    spec.analysis.as_mut().expect("analysis").step_weights = vec![10, 5];
    spec.analysis.as_mut().expect("analysis").step_weight = None;
    let mut sim = Sim::new(&name, &ns, spec, Settings::new("istio"));
    for _ in 0..3 {
        sim.step(&mut Scripted::healthy());
    }
    assert_eq!(
        sim.messages_since(0),
        [
            "Invalid canary spec: spec.analysis.stepWeights[1]: must be greater than the previous step"
        ]
    );
    let valid = sim.status.condition("Valid").expect("condition");
    assert_eq!(valid.status, "False");
    assert!(
        sim.primary.is_none(),
        "nothing is created for an invalid spec"
    );
}

#[test]
fn revert_on_deletion_adds_a_finalizer_and_reverts() {
    let (name, ns, mut spec) = seed("004-istio.yaml");
    spec.revert_on_deletion = true;
    let mut sim = Sim::new(&name, &ns, spec, Settings::new("istio"));
    sim.run_until(&mut Scripted::healthy(), &[Phase::Initialized], 10);
    assert!(sim.finalizer);
    sim.deleting = true;
    let mark = sim.events.len();
    sim.step(&mut Scripted::healthy());
    assert_eq!(
        sim.messages_since(mark),
        ["Terminating canary podinfo.test"]
    );
    assert!(sim.effects.contains(&Action::RestoreTarget));
    assert!(
        !sim.effects.contains(&Action::Revert),
        "no traffic to a target still at zero"
    );
    assert!(sim.finalizer);
    // The target comes back up; only then do the routes and the Service go back to it.
    for _ in 0..20 {
        if !sim.finalizer {
            break;
        }
        sim.step(&mut Scripted::healthy());
    }
    assert!(sim.effects.contains(&Action::Revert));
    assert!(!sim.finalizer);
    let messages = sim.messages_since(mark);
    assert_eq!(
        messages.first().map(String::as_str),
        Some("Terminating canary podinfo.test")
    );
    assert_eq!(
        messages.last().map(String::as_str),
        Some("Terminated canary podinfo.test")
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Waiting for podinfo.test rollout to finish")),
        "it waited for the target: {messages:?}"
    );
}

#[test]
fn a_suspended_canary_is_still_finalized_when_deleted() {
    let (name, ns, mut spec) = seed("004-istio.yaml");
    spec.revert_on_deletion = true;
    let mut sim = Sim::new(&name, &ns, spec, Settings::new("istio"));
    sim.run_until(&mut Scripted::healthy(), &[Phase::Initialized], 10);
    sim.spec.suspend = true;
    sim.step(&mut Scripted::healthy());
    assert!(sim.finalizer, "suspended, the canary keeps its finalizer");
    sim.deleting = true;
    for _ in 0..20 {
        sim.step(&mut Scripted::healthy());
    }
    assert!(!sim.finalizer, "the finalizer goes, so the deletion ends");
}

#[test]
fn a_restarted_controller_resumes_from_the_stored_status() {
    // One run straight through; another where, after every step, the status goes through
    // JSON (as it does through the API server) and the observation is rebuilt from scratch.
    let run = |roundtrip: bool| {
        let mut sim = initialized("004-istio.yaml", "istio");
        let mark = sim.events.len();
        sim.set_revision("rev-2");
        for _ in 0..40 {
            sim.step(&mut Scripted::healthy());
            if roundtrip {
                let json = serde_json::to_string(&sim.status).expect("serialize");
                sim.status = serde_json::from_str(&json).expect("deserialize");
            }
        }
        (sim.messages_since(mark), sim.status.phase, sim.effects)
    };
    let (straight, phase, effects) = run(false);
    let (resumed, phase2, effects2) = run(true);
    assert_eq!(straight, resumed);
    assert_eq!(
        (phase, phase2),
        (Some(Phase::Succeeded), Some(Phase::Succeeded))
    );
    assert_eq!(effects.iter().filter(|a| **a == Action::Promote).count(), 1);
    assert_eq!(effects, effects2);
}

#[test]
fn calling_early_never_takes_a_step_before_the_interval() {
    let mut sim = initialized("004-istio.yaml", "istio");
    let mut script = Scripted::healthy();
    sim.set_revision("rev-2");
    while sim.routes.canary < 10 {
        sim.step(&mut script);
    }
    // A watch event makes the shell call again right away: nothing moves.
    let canary = canary_core::CanaryRef {
        name: &sim.name,
        namespace: &sim.namespace,
        spec: &sim.spec,
        settings: &sim.settings,
    };
    let early = sim.status.last_transition_time.expect("written") + chrono::Duration::seconds(3);
    let step = canary_core::advance(&canary, &sim.status, &sim.observe(), early);
    assert_eq!(step.status, sim.status);
    assert!(
        matches!(step.actions.as_slice(), [Action::Initialize, Action::ReconcileRoutes, Action::Requeue(d)] if d.as_secs() == 7)
    );
}

#[test]
fn session_affinity_records_the_cookie_while_the_canary_takes_traffic() {
    let mut sim = initialized_with("004-istio.yaml", "istio", |spec| {
        spec.analysis.as_mut().expect("analysis").session_affinity =
            Some(canary_core::spec::SessionAffinity {
                cookie_name: "flagger-cookie".into(),
                ..Default::default()
            });
    });
    let mut script = Scripted::healthy();
    sim.set_revision("rev-2");
    while sim.routes.canary == 0 {
        sim.step(&mut script);
    }
    let cookie = canary_core::hash::session_cookie("flagger-cookie", "rev-2");
    assert_eq!(
        sim.status.session_affinity_cookie.as_deref(),
        Some(cookie.as_str())
    );
    assert_eq!(
        sim.run_until(&mut script, &[Phase::Succeeded], 40),
        Phase::Succeeded
    );
    assert_eq!(sim.status.session_affinity_cookie, None);
    assert_eq!(
        sim.status.previous_session_affinity_cookie.as_deref(),
        Some(cookie.as_str()),
        "kept for the router to expire"
    );
}
