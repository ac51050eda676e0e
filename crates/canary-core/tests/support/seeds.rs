//! Shared helpers for canary-core's integration tests: the seed fixtures and scripts.

#![allow(dead_code)]

use canary_core::sim::{Script, Sim};
use canary_core::{CanarySpec, HookType, MetricOutcome, Settings};
use serde::Deserialize;

#[derive(Deserialize)]
struct Doc {
    metadata: Meta,
    spec: CanarySpec,
}

#[derive(Deserialize)]
struct Meta {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// Reads a seed fixture: (name, namespace, spec).
pub fn seed(file: &str) -> (String, String, CanarySpec) {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    let doc: Doc = serde_yaml_ng::from_str(&text).expect("valid fixture");
    let ns = doc.metadata.namespace.unwrap_or_else(|| "test".into());
    (doc.metadata.name, ns, doc.spec)
}

/// A simulation of a seed, initialized (primary ready, target scaled to zero).
pub fn initialized(file: &str, provider: &str) -> Sim {
    initialized_with(file, provider, |_| {})
}

/// A simulation of a seed edited by `edit`, initialized.
pub fn initialized_with(file: &str, provider: &str, edit: impl FnOnce(&mut CanarySpec)) -> Sim {
    let (name, ns, mut spec) = seed(file);
    edit(&mut spec);
    let mut sim = Sim::new(&name, &ns, spec, Settings::new(provider));
    let mut script = Scripted::healthy();
    let phase = sim.run_until(&mut script, &[canary_core::Phase::Initialized], 10);
    assert_eq!(
        phase,
        canary_core::Phase::Initialized,
        "events: {:?}",
        sim.events
    );
    sim
}

/// Answers of the webhooks by type, name and step.
pub type HookAnswers = Box<dyn FnMut(HookType, &str, u32) -> Result<(), String>>;

/// A script with per-step metric values and hook answers.
pub struct Scripted {
    /// `request-success-rate` (and any other metric) by step.
    pub success_rate: Box<dyn FnMut(u32) -> MetricOutcome>,
    /// `request-duration` by step, in milliseconds.
    pub duration_ms: Box<dyn FnMut(u32) -> MetricOutcome>,
    /// Webhook answers.
    pub hooks: HookAnswers,
}

impl Scripted {
    /// Every check passes; rollback gates stay closed.
    pub fn healthy() -> Self {
        Scripted {
            success_rate: Box::new(|_| MetricOutcome::Value(100.0)),
            duration_ms: Box::new(|_| MetricOutcome::Value(120.0)),
            hooks: Box::new(|kind, _, _| match kind {
                HookType::Rollback => Err("rollback gate closed".into()),
                _ => Ok(()),
            }),
        }
    }
}

impl Script for Scripted {
    fn webhook(&mut self, kind: HookType, name: &str, step: u32) -> Result<(), String> {
        (self.hooks)(kind, name, step)
    }
    fn metric(&mut self, name: &str, step: u32) -> MetricOutcome {
        match name {
            "request-duration" => (self.duration_ms)(step),
            _ => (self.success_rate)(step),
        }
    }
}

/// The messages of a run without the readiness waits, which depend on timing.
pub fn without_waits(messages: Vec<String>) -> Vec<String> {
    messages
        .into_iter()
        .filter(|m| !m.starts_with("Waiting for"))
        .collect()
}
