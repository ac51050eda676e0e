//! Replica counts, as Flagger picks them: the `-primary` Deployment's, the target's when it
//! is scaled up for an analysis or restored on deletion, and the `-primary` autoscaler's
//! bounds. The shell reads the counts from the objects and writes what these return.

/// Replicas of the `-primary` Deployment: with an autoscaler, once the primary has replicas,
/// those (the autoscaler's to change); else the target's when above zero, else 1.
pub fn primary(target: Option<i64>, primary: Option<i64>, autoscaled: bool) -> i64 {
    match primary {
        Some(current) if autoscaled => current,
        _ => positive(target).unwrap_or(1),
    }
}

/// Replicas the target is scaled up to for an analysis: its own when above zero; else,
/// without an autoscaler, the primary's (when above zero); with one, its minimum when above
/// one; else 1.
pub fn scale_up(target: Option<i64>, primary: Option<i64>, autoscaler_min: Option<i64>) -> i64 {
    if let Some(r) = positive(target) {
        return r;
    }
    match autoscaler_min {
        None => positive(primary).unwrap_or(1),
        Some(min) => min.max(1),
    }
}

/// Replicas the target gets back when its canary is deleted with `revertOnDeletion`: the
/// primary's when above zero, else its own when above zero, else 1.
pub fn restored(target: Option<i64>, primary: Option<i64>) -> i64 {
    positive(primary).or(positive(target)).unwrap_or(1)
}

/// A KEDA trigger's query for the `-primary` ScaledObject: `<target>` and `<target>-canary`
/// become `<target>-primary`, as Flagger rewrites it when `primaryScalerQueries` does not name
/// the trigger. A `<target>-primary` already there stays as it is (Flagger makes it
/// `<target>-primary-primary`).
pub fn primary_query(query: &str, target: &str) -> String {
    let primary = format!("{target}-primary");
    let canary = format!("{target}-canary");
    // Split on the longer names first so the bare name is replaced only where it stands alone.
    query
        .split(primary.as_str())
        .map(|part| {
            part.split(canary.as_str())
                .map(|p| p.replace(target, &primary))
                .collect::<Vec<_>>()
                .join(&primary)
        })
        .collect::<Vec<_>>()
        .join(&primary)
}

/// The `-primary` autoscaler's `(minReplicas, maxReplicas)`: the target autoscaler's, each
/// replaced by `autoscalerRef.primaryScalerReplicas` where it is set.
pub fn primary_bounds(
    target: (Option<i32>, i32),
    overrides: Option<&crate::spec::ScalerReplicas>,
) -> (Option<i32>, i32) {
    let min = overrides.and_then(|o| o.min_replicas);
    let max = overrides.and_then(|o| o.max_replicas);
    (min.or(target.0), max.unwrap_or(target.1))
}

fn positive(replicas: Option<i64>) -> Option<i64> {
    replicas.filter(|r| *r > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ScalerReplicas;

    #[test]
    fn keda_queries_aim_at_the_primary() {
        assert_eq!(
            primary_query(
                r#"sum(rate(http_requests_total{ app="podinfo" }[30s]))"#,
                "podinfo"
            ),
            r#"sum(rate(http_requests_total{ app="podinfo-primary" }[30s]))"#
        );
        assert_eq!(
            primary_query(
                "a{d=\"podinfo-canary\",p=\"podinfo-primary\",t=\"podinfo\"}",
                "podinfo"
            ),
            "a{d=\"podinfo-primary\",p=\"podinfo-primary\",t=\"podinfo-primary\"}"
        );
        assert_eq!(primary_query("up", "podinfo"), "up");
    }

    #[test]
    fn the_primary_copies_the_target_unless_an_autoscaler_drives_it() {
        assert_eq!(primary(Some(3), None, false), 3);
        assert_eq!(primary(Some(0), None, false), 1);
        assert_eq!(primary(None, Some(7), false), 1);
        assert_eq!(primary(Some(3), Some(7), true), 7);
        assert_eq!(primary(Some(3), None, true), 3);
    }

    #[test]
    fn a_target_scaled_to_zero_comes_back_with_the_primary_or_the_autoscaler_minimum() {
        assert_eq!(scale_up(Some(2), Some(5), Some(4)), 2);
        assert_eq!(scale_up(Some(0), Some(5), None), 5);
        assert_eq!(scale_up(Some(0), None, None), 1);
        assert_eq!(scale_up(Some(0), Some(5), Some(4)), 4);
        assert_eq!(scale_up(Some(0), Some(5), Some(1)), 1);
        assert_eq!(scale_up(None, Some(0), None), 1);
    }

    #[test]
    fn a_restored_target_gets_the_primary_replicas() {
        assert_eq!(restored(Some(0), Some(4)), 4);
        assert_eq!(restored(Some(2), None), 2);
        assert_eq!(restored(Some(0), Some(0)), 1);
    }

    #[test]
    fn primary_scaler_replicas_override_each_bound() {
        let only_min = ScalerReplicas {
            min_replicas: Some(2),
            ..Default::default()
        };
        let only_max = ScalerReplicas {
            max_replicas: Some(9),
            ..Default::default()
        };
        assert_eq!(primary_bounds((Some(1), 5), None), (Some(1), 5));
        assert_eq!(primary_bounds((Some(1), 5), Some(&only_min)), (Some(2), 5));
        assert_eq!(primary_bounds((None, 5), Some(&only_max)), (None, 9));
    }
}
