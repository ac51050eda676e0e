//! The checks of an analysis step: webhooks by type and metric queries against their
//! thresholds. Each records its result in the step's report; the first failure stops the
//! step with Flagger's event.

use super::{Need, Tick};
use crate::action::{Action, Level, RunUntil};
use crate::messages::{self as msg, alerts};
use crate::observe::{HookResult, MetricOutcome};
use crate::spec::{Builtin, HookType, Metric};
use crate::status::{CheckReport, CheckResult, Phase};

impl Tick<'_> {
    /// Calls the webhooks of `kind` until one fails and returns that one's name and error.
    /// With `announce`, each passing hook gets Flagger's "check passed" event.
    pub(super) fn first_failing_hook(
        &mut self,
        kind: HookType,
        phase: Phase,
        announce: bool,
    ) -> Result<Option<(String, String)>, Need> {
        for HookResult { name, outcome } in self.hooks(kind, phase, RunUntil::FirstFailure)? {
            match outcome {
                Ok(()) if announce => self.emit(Level::Info, msg::check_passed(kind, &name)),
                Ok(()) => {}
                Err(e) => return Ok(Some((name, e))),
            }
        }
        Ok(None)
    }

    /// Pre-rollout hooks, before any traffic reaches the canary.
    pub(super) fn pre_rollout_passed(&mut self) -> Result<bool, Need> {
        let failed = self.first_failing_hook(HookType::PreRollout, Phase::Progressing, true)?;
        let Some((hook, e)) = failed else {
            return Ok(true);
        };
        let text = msg::halt_pre_rollout(self.c.name, self.c.namespace, &hook, &e);
        self.emit(Level::Warn, text);
        Ok(false)
    }

    /// Rollout hooks, then the metrics: Flagger's `runAnalysis`.
    pub(super) fn analysis_passed(&mut self) -> Result<bool, Need> {
        let failed = self.first_failing_hook(HookType::Rollout, Phase::Progressing, false)?;
        if let Some((hook, e)) = failed {
            let text = msg::halt_external(self.c.name, self.c.namespace, &hook, &e);
            self.emit(Level::Warn, text);
            return Ok(false);
        }
        self.metrics_passed()
    }

    /// The confirm-traffic-increase gates; a closed one holds the weight.
    pub(super) fn traffic_increase_confirmed(&mut self) -> Result<bool, Need> {
        let kind = HookType::ConfirmTrafficIncrease;
        let Some((hook, _)) = self.first_failing_hook(kind, Phase::Progressing, true)? else {
            return Ok(true);
        };
        let text = msg::halt_traffic_increase(self.c.name, self.c.namespace, &hook);
        self.emit(Level::Warn, text);
        if !self.muted(kind, &hook) {
            self.alert(Level::Warn, alerts::WAITING_TRAFFIC, false);
        }
        Ok(false)
    }

    /// The confirm-promotion gates; when closed the canary waits in `WaitingPromotion`
    /// while the analysis goes on.
    pub(super) fn promotion_confirmed(&mut self) -> Result<bool, Need> {
        let kind = HookType::ConfirmPromotion;
        let Some((hook, _)) = self.first_failing_hook(kind, Phase::Progressing, true)? else {
            return Ok(true);
        };
        if self.phase() != Phase::WaitingPromotion {
            self.set_phase(Phase::WaitingPromotion);
            let text = msg::halt_promotion_approval(self.c.name, self.c.namespace, &hook);
            self.emit(Level::Warn, text);
            if !self.muted(kind, &hook) {
                self.alert(Level::Warn, alerts::WAITING_PROMOTION, false);
            }
        }
        Ok(false)
    }

    /// True when a rollback hook answers success.
    pub(super) fn rollback_requested(&mut self) -> Result<bool, Need> {
        let phase = self.phase();
        let results = self.hooks(HookType::Rollback, phase, RunUntil::FirstSuccess)?;
        for HookResult {
            name: hook,
            outcome,
        } in results
        {
            if outcome.is_ok() {
                self.emit(Level::Warn, msg::check_passed(HookType::Rollback, &hook));
                return Ok(true);
            }
            self.emit(Level::Info, msg::rollback_not_signaled(&hook));
        }
        Ok(false)
    }

    /// Every metric against its threshold: builtin and inline queries first, then templates,
    /// each in spec order, as Flagger. All are reported; the first failure halts.
    fn metrics_passed(&mut self) -> Result<bool, Need> {
        let metrics = &self.analysis().metrics;
        if metrics.is_empty() {
            return Ok(true);
        }
        let Some(results) = &self.obs.metrics else {
            return Err(Need(Action::QueryMetrics));
        };
        let ordered = metrics
            .iter()
            .filter(|m| m.template_ref.is_none())
            .chain(metrics.iter().filter(|m| m.template_ref.is_some()));
        let mut first_failure = None;
        for metric in ordered {
            let outcome = results
                .iter()
                .find(|r| r.name == metric.name)
                .map(|r| r.outcome.clone())
                .unwrap_or_else(|| {
                    MetricOutcome::Error("no result was observed for this metric".into())
                });
            let (check, halt) = self.judge(metric, &outcome);
            self.record_check(check);
            if first_failure.is_none() {
                first_failure = halt;
            }
        }
        match first_failure {
            Some((level, text)) => {
                self.emit(level, text);
                Ok(false)
            }
            None => Ok(true),
        }
    }

    /// One metric's result against its threshold: the report line and, when it fails, the
    /// event that halts the step.
    fn judge(&self, m: &Metric, outcome: &MetricOutcome) -> (CheckReport, Option<(Level, String)>) {
        let (name, ns) = (self.c.name, self.c.namespace);
        let builtin = m.builtin();
        let range = m.threshold_range.as_ref();
        let (min, max) = match (range, m.threshold, builtin) {
            (Some(r), _, _) => (r.min, r.max),
            (None, Some(t), Some(Builtin::SuccessRate)) => (Some(t), None),
            (None, Some(t), _) => (None, Some(t)),
            (None, None, _) => (None, None),
        };
        let threshold = match (min, max) {
            (Some(lo), Some(hi)) => Some(format!(">= {lo} and <= {hi}")),
            (Some(lo), None) => Some(format!(">= {lo}")),
            (None, Some(hi)) => Some(format!("<= {hi}")),
            (None, None) => None,
        };
        let mut check = CheckReport {
            name: m.name.clone(),
            kind: "metric".into(),
            result: CheckResult::Passed,
            value: None,
            threshold,
            message: String::new(),
        };
        let value = match outcome {
            MetricOutcome::Value(v) if v.is_finite() => *v,
            MetricOutcome::Value(_) | MetricOutcome::NoData(_) => {
                let err = match outcome {
                    MetricOutcome::NoData(e) => e.clone(),
                    _ => "no values found (NaN)".to_string(),
                };
                check.result = CheckResult::NoData;
                check.message = err.clone();
                let text = match (builtin, &m.template_ref) {
                    (Some(_), _) => {
                        let observer = super::metrics_observer(self.c.spec, self.c.settings);
                        msg::no_values_builtin(&observer, &m.name, self.target(), ns, &err)
                    }
                    (None, Some(_)) => msg::no_values_template(&m.name, &err),
                    (None, None) => msg::no_values_inline(&m.name),
                };
                return (check, Some((Level::Warn, text)));
            }
            MetricOutcome::Error(err) => {
                check.result = CheckResult::Error;
                check.message = err.clone();
                let text = match (builtin, &m.template_ref) {
                    (Some(_), _) => msg::prometheus_failed(err),
                    (None, Some(_)) => msg::metric_failed(&m.name, err),
                    (None, None) if m.query.is_some() => msg::prometheus_failed_for(&m.name, err),
                    (None, None) => msg::metric_failed(
                        &m.name,
                        "no usable metrics template and query were configured",
                    ),
                };
                return (check, Some((Level::Error, text)));
            }
        };
        check.value = Some(value);
        let violated = match (min, max) {
            (Some(lo), _) if value < lo => Some(('<', lo)),
            (_, Some(hi)) if value > hi => Some(('>', hi)),
            _ => None,
        };
        let Some((op, bound)) = violated else {
            return (check, None);
        };
        check.result = CheckResult::Failed;
        let text = match builtin {
            Some(Builtin::SuccessRate) => msg::halt_success_rate(name, ns, value, op, bound),
            Some(Builtin::Duration) => msg::halt_request_duration(name, ns, value, op, bound),
            None => msg::halt_metric(name, ns, &m.name, value, op, bound),
        };
        check.message = text.clone();
        (check, Some((Level::Warn, text)))
    }
}
