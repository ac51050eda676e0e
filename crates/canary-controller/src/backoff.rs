//! Each canary's retry delay after failures: capped exponential backoff, per canary, so a
//! canary whose API calls keep failing waits longer and longer while the others go on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The delay after the first failure.
const FIRST: Duration = Duration::from_millis(500);
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(60);

/// Failures in a row, by canary (`<namespace>/<name>`).
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Counts a failure of `key` and returns how long to wait before the next try:
    /// 0.5s, 1s, 2s... up to a minute, plus up to a tenth more so that canaries failing
    /// together do not retry together.
    pub fn failed(&self, key: &str) -> Duration {
        let n = match self.failures.lock() {
            Ok(mut f) => {
                let n = f.entry(key.to_string()).or_default();
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        };
        let base = FIRST.saturating_mul(1u32 << (n - 1).min(16)).min(MAX);
        base + jitter(key, n, base / 10)
    }

    /// Forgets the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut f) = self.failures.lock()
            && !f.is_empty()
        {
            f.remove(key);
        }
    }
}

/// A spread in `0..=max` that differs between canaries and attempts.
fn jitter(key: &str, n: u32, max: Duration) -> Duration {
    let seed = serde_json::json!([key, n]);
    let hash = canary_core::hash::spec_hash(&seed);
    let fraction = hash
        .bytes()
        .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64))
        % 1000;
    max.mul_f64(fraction as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_a_minute_and_reset_after_a_success() {
        let b = Backoff::default();
        let first = b.failed("test/a");
        assert!(first >= FIRST && first <= FIRST + FIRST / 10, "{first:?}");
        let second = b.failed("test/a");
        assert!(second >= 2 * FIRST, "{second:?}");
        for _ in 0..30 {
            b.failed("test/a");
        }
        let capped = b.failed("test/a");
        assert!(capped >= MAX && capped <= MAX + MAX / 10, "{capped:?}");
        assert!(
            b.failed("test/b") <= FIRST + FIRST / 10,
            "canaries back off apart"
        );
        b.succeeded("test/a");
        assert!(b.failed("test/a") <= FIRST + FIRST / 10);
    }
}
