#![allow(missing_docs)]
//! Benchmark of `advance` on a typical progressing canary (seed 004 at weight 25, with the
//! webhook and metric results already observed), and of a whole simulated promotion.

use std::hint::black_box;

use canary_core::sim::{Healthy, Sim};
use canary_core::{
    CanaryRef, CanarySpec, HookResult, HookType, MetricOutcome, MetricResult, Phase, Routes,
    Settings, advance,
};
use criterion::{Criterion, criterion_group, criterion_main};

fn spec() -> CanarySpec {
    let text = include_str!("../tests/fixtures/004-istio.yaml");
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).expect("fixture");
    serde_yaml_ng::from_value(doc["spec"].clone()).expect("spec")
}

fn progressing(c: &mut Criterion) {
    let spec = spec();
    let settings = Settings::new("istio");
    let mut sim = Sim::new("podinfo", "test", spec.clone(), settings.clone());
    sim.run_until(&mut Healthy, &[Phase::Initialized], 10);
    sim.set_revision("rev-2");
    while sim.routes.canary < 25 {
        sim.step(&mut Healthy);
    }
    let status = sim.status.clone();
    let mut obs = sim.observe();
    obs.routes = Ok(Routes {
        primary: 75,
        canary: 25,
        mirrored: false,
    });
    obs.webhooks.insert(
        HookType::Rollout,
        vec![HookResult {
            name: "load-test".into(),
            outcome: Ok(()),
        }],
    );
    obs.metrics = Some(vec![
        MetricResult {
            name: "request-success-rate".into(),
            outcome: MetricOutcome::Value(99.9),
        },
        MetricResult {
            name: "request-duration".into(),
            outcome: MetricOutcome::Value(120.0),
        },
    ]);
    let canary = CanaryRef {
        name: "podinfo",
        namespace: "test",
        spec: &spec,
        settings: &settings,
    };
    let now = sim.now;
    c.bench_function("advance/progressing_step", |b| {
        b.iter(|| advance(black_box(&canary), black_box(&status), black_box(&obs), now))
    });
    c.bench_function("sim/full_promotion", |b| {
        b.iter(|| {
            let mut sim = Sim::new("podinfo", "test", spec.clone(), settings.clone());
            sim.run_until(&mut Healthy, &[Phase::Initialized], 10);
            sim.set_revision("rev-2");
            sim.run_until(&mut Healthy, &[Phase::Succeeded], 40)
        })
    });
}

criterion_group!(benches, progressing);
criterion_main!(benches);
