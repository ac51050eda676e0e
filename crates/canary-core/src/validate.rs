//! Spec validation: every problem at once, each naming its field path.
//!
//! The CRD schema already checks types; this checks what a schema cannot say (a schedule
//! that goes backwards, a metric with nothing to query, a duration Flagger could not parse)
//! and what Flagger's schema encodes as `oneOf`.

use std::collections::BTreeSet;
use std::fmt;

use crate::duration;
use crate::spec::{CanaryAnalysis, CanarySpec, HookType, KNOWN_PROVIDERS, Metric, Webhook};

/// One problem in a canary spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// Field path, e.g. `spec.analysis.stepWeights[2]`.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Joins problems into one line, as events and conditions show them.
pub fn summarize(errors: &[ValidationError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks a canary spec and returns every problem found (empty when valid).
pub fn validate(spec: &CanarySpec) -> Vec<ValidationError> {
    let mut v = Problems::default();
    if let Some(p) = spec.provider.as_deref()
        && !p.is_empty()
        && !is_known_provider(p)
    {
        v.push(
            "spec.provider",
            format!(
                "unknown provider {p:?}; expected one of {}",
                KNOWN_PROVIDERS.join(", ")
            ),
        );
    }
    let t = &spec.target_ref;
    match t.kind.as_str() {
        "Deployment" | "DaemonSet" => {}
        "" => v.push(
            "spec.targetRef.kind",
            "required; expected Deployment or DaemonSet",
        ),
        other => v.push(
            "spec.targetRef.kind",
            format!("{other:?} is not supported; expected Deployment or DaemonSet"),
        ),
    }
    if t.name.is_empty() {
        v.push("spec.targetRef.name", "required");
    }
    if let Some(api) = t.api_version.as_deref()
        && api != "apps/v1"
    {
        v.push(
            "spec.targetRef.apiVersion",
            format!("{api:?} is not supported; expected apps/v1"),
        );
    }
    if let Some(a) = &spec.autoscaler_ref {
        if a.kind != "HorizontalPodAutoscaler" {
            v.push(
                "spec.autoscalerRef.kind",
                format!(
                    "{:?} is not supported; expected HorizontalPodAutoscaler",
                    a.kind
                ),
            );
        }
        if a.name.is_empty() {
            v.push("spec.autoscalerRef.name", "required");
        }
        if let Some(r) = &a.primary_scaler_replicas {
            let path = "spec.autoscalerRef.primaryScalerReplicas";
            if r.min_replicas.is_some_and(|m| m < 1) {
                v.push(format!("{path}.minReplicas"), "must be at least 1");
            }
            if r.max_replicas.is_some_and(|m| m < 1) {
                v.push(format!("{path}.maxReplicas"), "must be at least 1");
            }
            if let (Some(min), Some(max)) = (r.min_replicas, r.max_replicas)
                && min > max
            {
                v.push(
                    path,
                    format!("minReplicas {min} is greater than maxReplicas {max}"),
                );
            }
        }
    }
    if !(1..=65535).contains(&spec.service.port) {
        v.push(
            "spec.service.port",
            format!("{} is not a port; expected 1 to 65535", spec.service.port),
        );
    }
    if let Some(timeout) = spec.service.timeout.as_deref() {
        v.duration("spec.service.timeout", timeout);
    }
    if spec.service.delegation
        && (!spec.service.hosts.is_empty() || !spec.service.gateways.is_empty())
    {
        v.push(
            "spec.service.delegation",
            "cannot be used with hosts or gateways",
        );
    }
    if let Some(s) = spec.progress_deadline_seconds
        && s < 1
    {
        v.push(
            "spec.progressDeadlineSeconds",
            format!("{s} must be at least 1"),
        );
    }
    match (&spec.analysis, &spec.canary_analysis) {
        (Some(a), _) => analysis(&mut v, "spec.analysis", a),
        (None, Some(a)) => analysis(&mut v, "spec.canaryAnalysis", a),
        (None, None) if !spec.skip_analysis => {
            v.push("spec.analysis", "required unless skipAnalysis is true")
        }
        _ => {}
    }
    v.0
}

/// True for the provider names Flagger accepts, including `smi:<version>:<mesh>`.
pub fn is_known_provider(name: &str) -> bool {
    KNOWN_PROVIDERS.contains(&name)
        || KNOWN_PROVIDERS
            .iter()
            .any(|p| p.starts_with("smi:") && name.starts_with(&format!("{p}:")))
}

#[derive(Default)]
struct Problems(Vec<ValidationError>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ValidationError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn duration(&mut self, path: &str, text: &str) {
        if let Err(e) = duration::parse(text) {
            self.push(path, e.to_string());
        }
    }

    fn percent(&mut self, path: &str, value: Option<i32>, min: i32) {
        if let Some(w) = value
            && !(min..=100).contains(&w)
        {
            self.push(path, format!("{w} is out of range; expected {min} to 100"));
        }
    }
}

fn analysis(v: &mut Problems, path: &str, a: &CanaryAnalysis) {
    match a.interval.as_deref() {
        None => v.push(format!("{path}.interval"), "required, e.g. 1m"),
        Some(i) => v.duration(&format!("{path}.interval"), i),
    }
    match a.threshold {
        None => v.push(
            format!("{path}.threshold"),
            "required: the failed checks that roll back",
        ),
        Some(t) if t < 0 => v.push(
            format!("{path}.threshold"),
            format!("{t} must not be negative"),
        ),
        _ => {}
    }
    let has_iterations = a.iterations.unwrap_or(0) > 0;
    let has_step = a.step_weight.unwrap_or(0) > 0;
    if !has_iterations && !has_step && a.step_weights.is_empty() {
        v.push(
            path,
            "one of iterations, stepWeight or stepWeights is required",
        );
    }
    if let Some(i) = a.iterations
        && i < 0
    {
        v.push(
            format!("{path}.iterations"),
            format!("{i} must not be negative"),
        );
    }
    v.percent(&format!("{path}.stepWeight"), a.step_weight, 0);
    v.percent(&format!("{path}.maxWeight"), a.max_weight, 0);
    v.percent(
        &format!("{path}.stepWeightPromotion"),
        a.step_weight_promotion,
        0,
    );
    v.percent(&format!("{path}.mirrorWeight"), a.mirror_weight, 0);
    v.percent(
        &format!("{path}.primaryReadyThreshold"),
        a.primary_ready_threshold,
        0,
    );
    v.percent(
        &format!("{path}.canaryReadyThreshold"),
        a.canary_ready_threshold,
        0,
    );
    for (i, w) in a.step_weights.iter().enumerate() {
        let p = format!("{path}.stepWeights[{i}]");
        if !(1..=100).contains(w) {
            v.push(&p, format!("{w} is out of range; expected 1 to 100"));
        } else if i > 0 && *w <= a.step_weights[i - 1] {
            v.push(&p, "must be greater than the previous step");
        }
    }
    if let Some(s) = &a.session_affinity {
        let p = format!("{path}.sessionAffinity");
        if s.cookie_name.is_empty() {
            v.push(format!("{p}.cookieName"), "required");
        }
        if s.primary_cookie_name.as_deref() == Some(s.cookie_name.as_str()) {
            v.push(
                format!("{p}.primaryCookieName"),
                "must differ from cookieName",
            );
        }
        if let Some(ss) = s.same_site.as_deref()
            && !matches!(ss, "Strict" | "Lax" | "None")
        {
            v.push(
                format!("{p}.sameSite"),
                format!("{ss:?}; expected Strict, Lax or None"),
            );
        }
    }
    let mut names = BTreeSet::new();
    for (i, m) in a.metrics.iter().enumerate() {
        metric(v, &format!("{path}.metrics[{i}]"), m);
        if !m.name.is_empty() && !names.insert(m.name.as_str()) {
            v.push(
                format!("{path}.metrics[{i}].name"),
                format!("duplicate metric {:?}", m.name),
            );
        }
    }
    for (i, w) in a.webhooks.iter().enumerate() {
        webhook(v, &format!("{path}.webhooks[{i}]"), w);
    }
    for (i, alert) in a.alerts.iter().enumerate() {
        let p = format!("{path}.alerts[{i}]");
        if alert.name.is_empty() {
            v.push(format!("{p}.name"), "required");
        }
        if alert.provider_ref.name.is_empty() {
            v.push(format!("{p}.providerRef.name"), "required");
        }
        if let Some(s) = alert.severity.as_deref()
            && !matches!(s, "" | "info" | "warn" | "error")
        {
            v.push(
                format!("{p}.severity"),
                format!("{s:?}; expected info, warn or error"),
            );
        }
    }
}

fn metric(v: &mut Problems, path: &str, m: &Metric) {
    if m.name.is_empty() {
        v.push(format!("{path}.name"), "required");
    }
    if let Some(i) = m.interval.as_deref() {
        v.duration(&format!("{path}.interval"), i);
    }
    if m.builtin().is_none() && m.query.is_none() && m.template_ref.is_none() {
        v.push(
            path,
            format!(
                "metric {:?} is not builtin (request-success-rate, request-duration) and has no templateRef or query",
                m.name
            ),
        );
    }
    if let Some(t) = &m.template_ref
        && t.name.is_empty()
    {
        v.push(format!("{path}.templateRef.name"), "required");
    }
    match &m.threshold_range {
        Some(r) => match (r.min, r.max) {
            (None, None) => v.push(format!("{path}.thresholdRange"), "needs min, max or both"),
            (Some(min), Some(max)) if min > max => v.push(
                format!("{path}.thresholdRange"),
                format!("min {min} is greater than max {max}"),
            ),
            _ => {}
        },
        None if m.threshold.is_none() => v.push(
            format!("{path}.thresholdRange"),
            "required: the accepted range of the value",
        ),
        None => {}
    }
}

fn webhook(v: &mut Problems, path: &str, w: &Webhook) {
    if w.name.is_empty() {
        v.push(format!("{path}.name"), "required");
    }
    if w.kind().is_none() {
        let known: Vec<&str> = HookType::ALL.iter().map(|t| t.as_str()).collect();
        v.push(
            format!("{path}.type"),
            format!(
                "unknown type {:?}; expected one of {}",
                w.r#type.as_deref().unwrap_or(""),
                known.join(", ")
            ),
        );
    }
    let url = w.url.as_str();
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => {}
        _ => v.push(
            format!("{path}.url"),
            format!("{url:?} is not an http or https URL"),
        ),
    }
    if let Some(t) = w.timeout.as_deref() {
        v.duration(&format!("{path}.timeout"), t);
    }
    if let Some(r) = w.retries
        && r < 0
    {
        v.push(
            format!("{path}.retries"),
            format!("{r} must not be negative"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{CanaryAnalysis, Metric, TargetRef, ThresholdRange};

    fn valid() -> CanarySpec {
        CanarySpec {
            target_ref: TargetRef {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: "podinfo".into(),
                ..Default::default()
            },
            service: crate::spec::CanaryService {
                port: 9898,
                ..Default::default()
            },
            analysis: Some(CanaryAnalysis {
                interval: Some("1m".into()),
                threshold: Some(5),
                step_weight: Some(10),
                max_weight: Some(50),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_spec_has_no_problems() {
        assert_eq!(validate(&valid()), vec![]);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_path() {
        let mut spec = valid();
        spec.provider = Some("consul".into());
        spec.target_ref.kind = "StatefulSet".into();
        spec.service.port = 0;
        let a = spec.analysis.as_mut().expect("analysis");
        a.interval = Some("1 minute".into());
        a.step_weight = None;
        a.step_weights = vec![5, 10, 10, 120];
        a.metrics = vec![
            Metric {
                name: "error-rate".into(),
                ..Default::default()
            },
            Metric {
                name: "request-success-rate".into(),
                threshold_range: Some(ThresholdRange {
                    min: Some(99.0),
                    max: Some(1.0),
                }),
                ..Default::default()
            },
        ];
        a.webhooks = vec![crate::spec::Webhook {
            name: "gate".into(),
            r#type: Some("confirm".into()),
            url: "flagger-loadtester.test/".into(),
            timeout: Some("soon".into()),
            ..Default::default()
        }];
        let paths: Vec<String> = validate(&spec).into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            [
                "spec.provider",
                "spec.targetRef.kind",
                "spec.service.port",
                "spec.analysis.interval",
                "spec.analysis.stepWeights[2]",
                "spec.analysis.stepWeights[3]",
                "spec.analysis.metrics[0]",
                "spec.analysis.metrics[0].thresholdRange",
                "spec.analysis.metrics[1].thresholdRange",
                "spec.analysis.webhooks[0].type",
                "spec.analysis.webhooks[0].url",
                "spec.analysis.webhooks[0].timeout",
            ]
        );
        let text = summarize(&validate(&spec));
        assert!(
            text.contains("spec.analysis.stepWeights[2]: must be greater than the previous step")
        );
        assert!(text.contains("spec.targetRef.kind: \"StatefulSet\" is not supported; expected Deployment or DaemonSet"));
    }

    #[test]
    fn smi_providers_may_name_a_mesh() {
        assert!(is_known_provider("smi:v1alpha3:linkerd"));
        assert!(!is_known_provider("smi:v9"));
    }
}
