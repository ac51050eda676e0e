//! The weight schedule: how far the next step moves traffic to the canary.

use crate::spec::CanaryAnalysis;

/// Total weight of a route: primary plus canary always add up to this.
pub const TOTAL_WEIGHT: u32 = 100;

/// The weight the next step adds to the canary, from `canary` (the current canary weight).
///
/// `stepWeight` wins when set; otherwise `stepWeights` gives the schedule, capped so the
/// canary never exceeds 100. Zero means the analysis has no weight schedule (blue/green or
/// A/B).
pub fn next_step_weight(analysis: &CanaryAnalysis, canary: u32) -> u32 {
    let step = analysis.step_weight();
    if step > 0 || analysis.step_weights.is_empty() {
        return step;
    }
    let max_step = TOTAL_WEIGHT.saturating_sub(canary);
    if max_step == 0 {
        // At 100% the next "step" is the promotion; any non-zero value leads there.
        return 1;
    }
    let weights: Vec<u32> = analysis
        .step_weights
        .iter()
        .map(|w| (*w).max(0) as u32)
        .collect();
    if canary == 0 {
        return max_step.min(weights[0]);
    }
    for pair in weights.windows(2) {
        if pair[0] == canary {
            return max_step.min(pair[1].saturating_sub(canary));
        }
    }
    max_step
}

/// The canary weight after one step from `canary`, never above 100.
pub fn advance(analysis: &CanaryAnalysis, canary: u32) -> u32 {
    canary
        .saturating_add(next_step_weight(analysis, canary))
        .min(TOTAL_WEIGHT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(step: Option<i32>, steps: &[i32], max: Option<i32>) -> CanaryAnalysis {
        CanaryAnalysis {
            step_weight: step,
            step_weights: steps.to_vec(),
            max_weight: max,
            ..Default::default()
        }
    }

    fn schedule(a: &CanaryAnalysis) -> Vec<u32> {
        let mut out = vec![];
        let mut w = 0;
        while w < a.max_weight() {
            w = advance(a, w);
            out.push(w);
        }
        out
    }

    #[test]
    fn step_weight_overshoots_max_weight_by_at_most_one_step() {
        assert_eq!(
            schedule(&analysis(Some(20), &[], Some(50))),
            vec![20, 40, 60]
        );
        assert_eq!(schedule(&analysis(Some(5), &[], Some(50))).len(), 10);
    }

    #[test]
    fn step_weights_follow_the_list() {
        assert_eq!(
            schedule(&analysis(None, &[1, 2, 10, 80], None)),
            vec![1, 2, 10, 80]
        );
    }

    #[test]
    fn step_weights_stop_at_100() {
        let a = analysis(None, &[50, 100], None);
        assert_eq!(schedule(&a), vec![50, 100]);
        assert_eq!(next_step_weight(&a, 100), 1);
    }

    #[test]
    fn an_unknown_current_weight_jumps_to_the_end() {
        let a = analysis(None, &[10, 20, 30], None);
        assert_eq!(next_step_weight(&a, 15), 85);
    }
}
