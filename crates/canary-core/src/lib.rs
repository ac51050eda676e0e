//! canary-core: the analysis engine of flaggerd, pure and embeddable.
//!
//! It holds Flagger's `Canary` spec and status model, validation that reports every problem
//! with its field path, readiness rules, the weight schedule, and the state machine that
//! decides each analysis step: [`advance`] takes the canary, its last status and what the
//! shell observed, and returns the next status and a list of [`Action`]s.
//!
//! It must never do I/O: no clock (time is an argument), no sleeping, no async, no kube,
//! tokio, hyper or reqwest in its dependency tree (`cargo xtask test` checks this). A failed
//! analysis is data in the status, never an `Err`.
//!
//! # Embedding it in a controller
//!
//! `examples/embed.rs` is a whole controller of its own around this crate
//! (`cargo run -p canary-core --example embed`). Each time it reconciles a canary:
//!
//! 1. It fills an [`Observation`]: the target's [`Revision`], the primary's and the target's
//!    [`WorkloadStatus`], the current [`Routes`], whether the canary is being deleted.
//! 2. It calls [`advance`] with a [`CanaryRef`] (name, namespace, [`CanarySpec`],
//!    [`Settings`]), the last [`CanaryStatus`] and the time. While [`Step::request`] names a
//!    request ([`Action::RunWebhooks`], [`Action::QueryMetrics`],
//!    [`Action::CheckMetricProviders`]), it puts the answer in the observation and calls
//!    [`advance`] again; each kind is asked at most once per reconcile.
//! 3. It stores [`Step::status`] first, then carries out [`Step::actions`] in order; each
//!    [`Action`] variant says what it asks (create the primary, set the weights, scale,
//!    promote, emit an event, alert, requeue).
//! 4. It reconciles again after the [`Action::Requeue`] delay, or when something it watches
//!    changes.
//!
//! Before that, a canary whose references cannot be resolved is not advanced: the shell
//! names the [`blocked::Problem`] (a contested target is settled by [`blocked::holder`])
//! and writes the condition [`blocked::report`] returns. When it carries out a scale or a
//! promotion it takes the replica counts from [`scaling`].
//!
//! # Stability
//!
//! The public API is [`advance`] and [`metrics_observer`], the types they take and return
//! ([`CanaryRef`], [`Observation`] and its parts, [`Step`], [`Action`] and its parts), the
//! spec and status models (Flagger's `flagger.app/v1beta1` schema: fields follow Flagger),
//! [`validate()`](fn@validate), [`messages`] (Flagger's texts, word for word), [`weights`], [`readiness`],
//! [`blocked`], [`scaling`], [`hash`] and [`duration`]. [`sim`] is a test aid and may change. Until 1.0 a breaking
//! change is named in the CHANGELOG.

pub mod action;
pub mod blocked;
pub mod duration;
pub mod hash;
mod machine;
pub mod messages;
pub mod observe;
pub mod readiness;
pub mod scaling;
pub mod sim;
pub mod spec;
pub mod status;
pub mod validate;
pub mod weights;

pub use action::{Action, Alert, Event, Level, Outcome, RunUntil, Scale, Step};
pub use machine::{CanaryRef, advance, metrics_observer};
pub use observe::{
    HookResult, MetricOutcome, MetricResult, Observation, Revision, Routes, WorkloadKind,
    WorkloadStatus,
};
pub use readiness::Readiness;
pub use spec::{CanarySpec, HookType, Settings, Strategy};
pub use status::{CanaryStatus, Phase};
pub use validate::{ValidationError, validate};

/// An error and its causes on one line (`a: b: c`), skipping a cause its parent already
/// says.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
