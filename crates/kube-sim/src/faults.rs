//! Fault injection: a share of requests answered with an error, added latency, watches
//! dropped after some events or some time, and resourceVersion expiry. Every injected fault
//! is counted, so tests can assert that it happened.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The fault knobs, settable at start and at run time (`PUT /kube-sim/faults`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultConfig {
    /// Share (0 to 1) of API requests answered with an error instead.
    pub error_rate: f64,
    /// The error codes drawn from (409 only for writes); 409, 429, 500 and 503 when empty.
    pub error_codes: Vec<u16>,
    /// Latency added to every API request, in milliseconds.
    pub latency_ms: u64,
    /// Close each watch after this many events.
    pub watch_drop_after_events: Option<u64>,
    /// Close each watch after this many seconds.
    pub watch_drop_after_secs: Option<f64>,
    /// Seed of the pseudo-random draws, for repeatable runs.
    pub seed: u64,
}

/// How many faults of each kind were injected.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultCounters {
    /// Errors answered, by HTTP code.
    pub errors: BTreeMap<u16, u64>,
    /// Requests delayed.
    pub delayed: u64,
    /// Watches closed early.
    pub watch_drops: u64,
    /// Watches answered 410 Gone (expired resourceVersion).
    pub gone: u64,
}

/// The live fault state.
#[derive(Default)]
pub struct Faults {
    state: Mutex<(FaultConfig, FaultCounters, u64)>,
}

impl Faults {
    /// Faults configured by `config`.
    pub fn new(config: FaultConfig) -> Self {
        let seed = config.seed.max(1);
        Faults {
            state: Mutex::new((config, FaultCounters::default(), seed)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (FaultConfig, FaultCounters, u64)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current knobs.
    pub fn config(&self) -> FaultConfig {
        self.lock().0.clone()
    }

    /// Replaces the knobs (counters are kept).
    pub fn set(&self, config: FaultConfig) {
        let mut s = self.lock();
        s.2 ^= config.seed.max(1);
        s.0 = config;
    }

    /// The counters.
    pub fn counters(&self) -> FaultCounters {
        self.lock().1.clone()
    }

    /// The delay to add to a request.
    pub fn latency(&self) -> Option<Duration> {
        let mut s = self.lock();
        if s.0.latency_ms == 0 {
            return None;
        }
        s.1.delayed += 1;
        Some(Duration::from_millis(s.0.latency_ms))
    }

    /// The error to answer instead of serving a request, if one is drawn.
    pub fn error(&self, write: bool) -> Option<u16> {
        let mut s = self.lock();
        if s.0.error_rate <= 0.0 {
            return None;
        }
        let draw = next(&mut s.2);
        if (draw % 1_000_000) as f64 / 1_000_000.0 >= s.0.error_rate {
            return None;
        }
        let mut codes = if s.0.error_codes.is_empty() {
            vec![409, 429, 500, 503]
        } else {
            s.0.error_codes.clone()
        };
        if !write {
            codes.retain(|c| *c != 409);
        }
        if codes.is_empty() {
            return None;
        }
        let code = codes[(next(&mut s.2) as usize) % codes.len()];
        *s.1.errors.entry(code).or_default() += 1;
        Some(code)
    }

    /// When to drop a watch: after so many events, or so long.
    pub fn watch_limits(&self) -> (Option<u64>, Option<Duration>) {
        let s = self.lock();
        (
            s.0.watch_drop_after_events,
            s.0.watch_drop_after_secs.map(Duration::from_secs_f64),
        )
    }

    /// Counts a dropped watch.
    pub fn count_drop(&self) {
        self.lock().1.watch_drops += 1;
    }

    /// Counts a 410 Gone.
    pub fn count_gone(&self) {
        self.lock().1.gone += 1;
    }
}

fn next(state: &mut u64) -> u64 {
    // xorshift64*: repeatable and good enough to spread faults.
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}
