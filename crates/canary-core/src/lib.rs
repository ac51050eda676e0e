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

pub mod action;
pub mod duration;
pub mod hash;
mod machine;
pub mod messages;
pub mod observe;
pub mod readiness;
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
