//! `spec.analysis`: the schedule, metrics, webhooks, alerts and A/B matches.

use std::collections::BTreeSet;

use super::{Problems, truncate};
use crate::spec::{CanaryAnalysis, HookType, Metric, Webhook};

pub(super) fn analysis(v: &mut Problems, path: &str, a: &CanaryAnalysis) {
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
                format!("{:?}; expected Strict, Lax or None", truncate(ss, 64)),
            );
        }
    }
    for (i, m) in a.r#match.iter().enumerate() {
        super::http_match(v, &format!("{path}.match[{i}]"), m);
    }
    let mut names = BTreeSet::new();
    for (i, m) in a.metrics.iter().enumerate() {
        metric(v, &format!("{path}.metrics[{i}]"), m);
        if !m.name.is_empty() && !names.insert(m.name.as_str()) {
            v.push(
                format!("{path}.metrics[{i}].name"),
                format!("duplicate metric {:?}", truncate(&m.name, 64)),
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
                format!("{:?}; expected info, warn or error", truncate(s, 64)),
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
                truncate(&m.name, 64)
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
                truncate(w.r#type.as_deref().unwrap_or(""), 64),
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
            format!("{:?} is not an http or https URL", truncate(url, 128)),
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
