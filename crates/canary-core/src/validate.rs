//! Spec validation: every problem at once, each naming its field path.
//!
//! The CRD schema already checks types; this checks what a schema cannot say (a schedule
//! that goes backwards, a metric with nothing to query, a duration Flagger could not parse,
//! a regular expression that does not compile, a name too long for the objects generated
//! from it) and what Flagger's schema encodes as `oneOf`. Every number and duration the
//! engine computes with is bounded here, so no input accepted by the API server can make it
//! overflow.

mod analysis;
mod names;

use std::fmt;

use crate::duration;
use crate::spec::{CanarySpec, HttpMatch, IntOrString, KNOWN_PROVIDERS, Settings, StringMatch};

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

/// The longest summary [`summarize`] returns; conditions and events stay readable and well
/// under the API server's limits whatever the spec holds.
pub const MAX_SUMMARY: usize = 4096;

/// Joins problems into one line, as events and conditions show them; past
/// [`MAX_SUMMARY`] bytes the rest is counted, not listed.
pub fn summarize(errors: &[ValidationError]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        let text = e.to_string();
        let sep = if out.is_empty() { "" } else { "; " };
        if out.len() + sep.len() + text.len() > MAX_SUMMARY {
            let rest = errors.len() - i;
            if out.is_empty() {
                out = truncate(&text, MAX_SUMMARY);
                if rest > 1 {
                    out.push_str(&format!("; and {} more problems", rest - 1));
                }
            } else {
                out.push_str(&format!("; and {rest} more problems"));
            }
            return out;
        }
        out.push_str(sep);
        out.push_str(&text);
    }
    out
}

/// `text` cut to at most `max` bytes on a character boundary, with `...` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
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
                "unknown provider {:?}; expected one of {}",
                truncate(p, 64),
                KNOWN_PROVIDERS.join(", ")
            ),
        );
    }
    let t = &spec.target_ref;
    match t.kind.as_str() {
        "Deployment" | "DaemonSet" | "Service" => {}
        "" => v.push(
            "spec.targetRef.kind",
            "required; expected Deployment, DaemonSet or Service",
        ),
        other => v.push(
            "spec.targetRef.kind",
            format!(
                "{:?} is not supported; expected Deployment, DaemonSet or Service",
                truncate(other, 64)
            ),
        ),
    }
    let allowed: &[&str] = match t.kind.as_str() {
        "Service" => &["v1", crate::spec::KNATIVE_SERVING],
        _ => &["apps/v1"],
    };
    if let Some(api) = t.api_version.as_deref()
        && !allowed.contains(&api)
    {
        v.push(
            "spec.targetRef.apiVersion",
            format!(
                "{:?} is not supported for a {}; expected {}",
                truncate(api, 64),
                if t.kind.is_empty() { "target" } else { &t.kind },
                allowed.join(" or ")
            ),
        );
    }
    if t.kind == "Service" && spec.autoscaler_ref.is_some() {
        v.push(
            "spec.autoscalerRef",
            match t.is_knative_service() {
                true => "a Knative Service scales itself; remove autoscalerRef",
                false => "a Service target has no replicas to scale; remove autoscalerRef",
            },
        );
    }
    names::generated(&mut v, spec);
    if let Some(a) = &spec.autoscaler_ref {
        if a.kind != "HorizontalPodAutoscaler" && a.kind != "ScaledObject" {
            v.push(
                "spec.autoscalerRef.kind",
                format!(
                    "{:?} is not supported; expected HorizontalPodAutoscaler or ScaledObject",
                    truncate(&a.kind, 64)
                ),
            );
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
    service(&mut v, spec);
    if let Some(s) = spec.progress_deadline_seconds
        && s < 1
    {
        v.push(
            "spec.progressDeadlineSeconds",
            format!("{s} must be at least 1"),
        );
    }
    match (&spec.analysis, &spec.canary_analysis) {
        (Some(a), _) => analysis::analysis(&mut v, "spec.analysis", a),
        (None, Some(a)) => analysis::analysis(&mut v, "spec.canaryAnalysis", a),
        (None, None) if !spec.skip_analysis => {
            v.push("spec.analysis", "required unless skipAnalysis is true")
        }
        _ => {}
    }
    v.found
}

/// [`validate`], plus the checks that depend on where the canary lives and how the
/// controller is configured: with `no_cross_namespace_refs`, a MetricTemplate,
/// AlertProvider or Gloo upstream of another namespace than `namespace` is refused.
pub fn validate_in(
    spec: &CanarySpec,
    namespace: &str,
    settings: &Settings,
) -> Vec<ValidationError> {
    let mut found = validate(spec);
    if settings.no_cross_namespace_refs {
        let mut v = Problems::default();
        let mut check = |path: String, what: &str, name: &str, ns: Option<&str>| {
            if let Some(other) = ns.filter(|n| !n.is_empty() && *n != namespace) {
                v.push(
                    path,
                    format!(
                        "{what} {}.{} is in another namespace than the canary ({}); \
                         cross-namespace references are blocked (-no-cross-namespace-refs)",
                        truncate(name, 64),
                        truncate(other, 64),
                        truncate(namespace, 64)
                    ),
                );
            }
        };
        if let Some(u) = &spec.upstream_ref {
            check(
                "spec.upstreamRef.namespace".into(),
                "gloo upstream",
                &u.name,
                u.namespace.as_deref(),
            );
        }
        let (key, analysis) = match (&spec.analysis, &spec.canary_analysis) {
            (Some(a), _) => ("spec.analysis", Some(a)),
            (None, a) => ("spec.canaryAnalysis", a.as_ref()),
        };
        if let Some(a) = analysis {
            for (i, m) in a.metrics.iter().enumerate() {
                if let Some(t) = &m.template_ref {
                    check(
                        format!("{key}.metrics[{i}].templateRef.namespace"),
                        "metric template",
                        &t.name,
                        t.namespace.as_deref(),
                    );
                }
            }
            for (i, alert) in a.alerts.iter().enumerate() {
                let p = &alert.provider_ref;
                check(
                    format!("{key}.alerts[{i}].providerRef.namespace"),
                    "alert provider",
                    &p.name,
                    p.namespace.as_deref(),
                );
            }
        }
        found.extend(v.found);
    }
    let no_ingress = spec.ingress_ref.as_ref().is_none_or(|r| r.name.is_empty());
    let provider = spec.provider(settings);
    if provider == "apisix" && spec.route_ref.as_ref().is_none_or(|r| r.name.is_empty()) {
        found.push(ValidationError {
            path: "spec.routeRef".into(),
            message: "required by the apisix provider: the ApisixRoute whose <route>-<service>-canary copy routes to the canary".into(),
        });
    }
    // Flagger's `verifyKnativeCanary`: the knative provider routes only a Knative Service,
    // which no other provider can route.
    match (spec.target_ref.is_knative_service(), provider == "knative") {
        (true, false) => found.push(ValidationError {
            path: "spec.provider".into(),
            message: format!(
                "{provider:?} cannot route a Knative Service target; a serving.knative.dev/v1 Service needs the knative provider"
            ),
        }),
        (false, true) => found.push(ValidationError {
            path: "spec.targetRef".into(),
            message: format!(
                "the knative provider routes only a Knative Service (apiVersion serving.knative.dev/v1, kind Service), not {} {}",
                spec.target_ref.api_version.as_deref().unwrap_or("(no apiVersion)"),
                spec.target_ref.kind
            ),
        }),
        _ => {}
    }
    if INGRESS_CLONERS.contains(&provider) && no_ingress {
        found.push(ValidationError {
            path: "spec.ingressRef".into(),
            message: format!("required by the {provider} provider: the Ingress whose <name>-canary copy routes to the canary"),
        });
    }
    found
}

/// The providers that route with a copy of the Ingress `spec.ingressRef` names.
pub const INGRESS_CLONERS: [&str; 2] = ["nginx", "skipper"];

/// True for the provider names Flagger accepts, including `smi:<version>:<mesh>`.
pub fn is_known_provider(name: &str) -> bool {
    KNOWN_PROVIDERS.contains(&name)
        || KNOWN_PROVIDERS
            .iter()
            .any(|p| p.starts_with("smi:") && name.starts_with(&format!("{p}:")))
}

fn service(v: &mut Problems, spec: &CanarySpec) {
    let s = &spec.service;
    // A Knative Service is exposed by Knative: `spec.service` is not read.
    if spec.target_ref.is_knative_service() {
        return;
    }
    if *s == crate::spec::CanaryService::default() {
        v.push(
            "spec.service",
            "required: the port of the Services in front of the target (spec.service.port)",
        );
        return;
    }
    if !(1..=65535).contains(&s.port) {
        v.push(
            "spec.service.port",
            format!("{} is not a port; expected 1 to 65535", s.port),
        );
    }
    if let Some(IntOrString::Int(p)) = s.target_port
        && !(1..=65535).contains(&p)
    {
        v.push(
            "spec.service.targetPort",
            format!("{p} is not a port; expected 1 to 65535 or a port name"),
        );
    }
    for (path, text) in [
        ("spec.service.timeout", &s.timeout),
        ("spec.service.backendTimeout", &s.backend_timeout),
        (
            "spec.service.retries.perTryTimeout",
            &s.retries.as_ref().and_then(|r| r.per_try_timeout.clone()),
        ),
    ] {
        if let Some(text) = text {
            v.duration(path, text);
        }
    }
    if s.delegation && (!s.hosts.is_empty() || !s.gateways.is_empty()) {
        v.push(
            "spec.service.delegation",
            "cannot be used with hosts or gateways",
        );
    }
    for (i, m) in s.r#match.iter().enumerate() {
        http_match(v, &format!("spec.service.match[{i}]"), m);
    }
}

/// The regular expressions of a request match must compile (RE2 syntax, as the meshes use).
pub(crate) fn http_match(v: &mut Problems, path: &str, m: &HttpMatch) {
    let fields = [
        ("uri", &m.uri),
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ];
    for (name, value) in fields {
        if let Some(s) = value {
            string_match(v, &format!("{path}.{name}"), s);
        }
    }
    let maps = [
        ("headers", &m.headers),
        ("queryParams", &m.query_params),
        ("withoutHeaders", &m.without_headers),
    ];
    for (name, map) in maps {
        for (key, s) in map {
            string_match(v, &format!("{path}.{name}[{key:?}]"), s);
        }
    }
}

/// The largest compiled program a match's regular expression may have: far beyond what the
/// meshes accept (Envoy's RE2 limits programs to 100 instructions by default), small enough
/// that validating a spec full of them stays cheap.
pub const MAX_REGEX_SIZE: usize = 256 * 1024;
/// The most regular expressions a spec may hold.
pub const MAX_REGEXES: usize = 100;

fn string_match(v: &mut Problems, path: &str, m: &StringMatch) {
    let Some(pattern) = m.regex.as_deref() else {
        return;
    };
    v.regexes += 1;
    if v.regexes > MAX_REGEXES {
        if v.regexes == MAX_REGEXES + 1 {
            v.push(
                format!("{path}.regex"),
                format!("too many regular expressions; a spec may hold at most {MAX_REGEXES}"),
            );
        }
        return;
    }
    let built = regex::RegexBuilder::new(pattern)
        .size_limit(MAX_REGEX_SIZE)
        .build();
    if let Err(e) = built {
        let reason = match e {
            regex::Error::CompiledTooBig(limit) => {
                format!("compiles to more than {limit} bytes")
            }
            other => other
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string(),
        };
        v.push(
            format!("{path}.regex"),
            format!(
                "{:?} is not a valid regular expression (RE2 syntax): {reason}",
                truncate(pattern, 128)
            ),
        );
    }
}

#[derive(Default)]
pub(crate) struct Problems {
    found: Vec<ValidationError>,
    /// Regular expressions met so far.
    regexes: usize,
}

impl Problems {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.found.push(ValidationError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn duration(&mut self, path: &str, text: &str) {
        if let Err(e) = duration::parse(text) {
            let message = match e {
                duration::DurationError::Invalid(t) => {
                    duration::DurationError::Invalid(truncate(&t, 64))
                }
                duration::DurationError::TooLong(t) => {
                    duration::DurationError::TooLong(truncate(&t, 64))
                }
                other => other,
            };
            self.push(path, message.to_string());
        }
    }

    pub(crate) fn percent(&mut self, path: &str, value: Option<i32>, min: i32) {
        if let Some(w) = value
            && !(min..=100).contains(&w)
        {
            self.push(path, format!("{w} is out of range; expected {min} to 100"));
        }
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
        spec.service.port_name = Some("http".into());
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
        assert!(text.contains("spec.targetRef.kind: \"StatefulSet\" is not supported; expected Deployment, DaemonSet or Service"));
    }

    #[test]
    fn invalid_regexes_and_names_too_long_for_generated_objects_are_reported() {
        let mut spec = valid();
        spec.target_ref.name = "a".repeat(60);
        let a = spec.analysis.as_mut().expect("analysis");
        a.r#match = vec![crate::spec::HttpMatch {
            headers: [(
                "x-canary".to_string(),
                crate::spec::StringMatch {
                    regex: Some("(insider".into()),
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        }];
        let text = summarize(&validate(&spec));
        assert!(
            text.contains("spec.analysis.match[0].headers[\"x-canary\"].regex: \"(insider\" is not a valid regular expression"),
            "{text}"
        );
        assert!(text.contains("spec.targetRef.name: \"aaaa"), "{text}");
        assert!(
            text.contains("68 characters long; Service names have at most 63"),
            "{text}"
        );
    }

    #[test]
    fn a_spec_holds_a_bounded_number_of_regular_expressions() {
        let mut spec = valid();
        let a = spec.analysis.as_mut().expect("analysis");
        a.r#match = (0..150)
            .map(|i| crate::spec::HttpMatch {
                uri: Some(crate::spec::StringMatch {
                    regex: Some(format!("^/v{i}/.*$")),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        let errors = validate(&spec);
        assert_eq!(
            errors,
            vec![ValidationError {
                path: "spec.analysis.match[100].uri.regex".into(),
                message: "too many regular expressions; a spec may hold at most 100".into(),
            }]
        );
    }

    #[test]
    fn durations_longer_than_go_holds_are_refused() {
        let mut spec = valid();
        spec.analysis.as_mut().expect("analysis").interval = Some("180000000000m".into());
        assert_eq!(
            summarize(&validate(&spec)),
            "spec.analysis.interval: duration \"180000000000m\" is too long; the longest is 2562047h47m16s"
        );
    }

    #[test]
    fn a_summary_of_many_problems_is_bounded() {
        let errors: Vec<ValidationError> = (0..1000)
            .map(|i| ValidationError {
                path: format!("spec.analysis.webhooks[{i}].name"),
                message: "required".into(),
            })
            .collect();
        let text = summarize(&errors);
        assert!(text.len() <= MAX_SUMMARY + 40, "{}", text.len());
        assert!(text.ends_with("more problems"), "{text}");
        assert_eq!(truncate("héllo", 4), "h...");
    }

    #[test]
    fn smi_providers_may_name_a_mesh() {
        assert!(is_known_provider("smi:v1alpha3:linkerd"));
        assert!(!is_known_provider("smi:v9"));
    }

    #[test]
    fn cross_namespace_references_are_refused_only_when_blocked() {
        let spec: CanarySpec = serde_json::from_value(serde_json::json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "upstreamRef": {"name": "up", "namespace": "gloo-system"},
            "analysis": {"interval": "1m", "threshold": 5, "iterations": 3,
                "metrics": [
                    {"name": "a", "templateRef": {"name": "shared", "namespace": "istio-system"}, "thresholdRange": {"max": 1}},
                    {"name": "b", "templateRef": {"name": "local", "namespace": "test"}, "thresholdRange": {"max": 1}},
                    {"name": "c", "templateRef": {"name": "implicit"}, "thresholdRange": {"max": 1}}],
                "alerts": [{"name": "x", "providerRef": {"name": "slack", "namespace": "flagger"}}]}
        }))
        .expect("spec");
        let mut settings = Settings::new("istio");
        assert_eq!(validate_in(&spec, "test", &settings), validate(&spec));
        settings.no_cross_namespace_refs = true;
        let paths: Vec<String> = validate_in(&spec, "test", &settings)
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "spec.upstreamRef.namespace: gloo upstream up.gloo-system is in another namespace than the canary (test); cross-namespace references are blocked (-no-cross-namespace-refs)",
                "spec.analysis.metrics[0].templateRef.namespace: metric template shared.istio-system is in another namespace than the canary (test); cross-namespace references are blocked (-no-cross-namespace-refs)",
                "spec.analysis.alerts[0].providerRef.namespace: alert provider slack.flagger is in another namespace than the canary (test); cross-namespace references are blocked (-no-cross-namespace-refs)",
            ]
        );
    }

    #[test]
    fn the_nginx_provider_needs_the_ingress_to_clone() {
        let mut spec: CanarySpec = serde_json::from_value(serde_json::json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "threshold": 5, "iterations": 3}
        }))
        .expect("spec");
        let nginx = Settings::new("nginx");
        let refused: Vec<String> = validate_in(&spec, "test", &nginx)
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            refused,
            [
                "spec.ingressRef: required by the nginx provider: the Ingress whose <name>-canary copy routes to the canary"
            ]
        );
        assert!(validate_in(&spec, "test", &Settings::new("istio")).is_empty());
        spec.ingress_ref = serde_json::from_value(
            serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo"}),
        )
        .ok();
        assert!(validate_in(&spec, "test", &nginx).is_empty());
    }

    #[test]
    fn a_knative_service_goes_with_the_knative_provider_and_no_autoscaler() {
        let spec = |target: serde_json::Value, extra: serde_json::Value| -> CanarySpec {
            let mut v = serde_json::json!({
                "targetRef": target,
                "service": {"port": 80},
                "analysis": {"interval": "1m", "threshold": 5, "iterations": 3}
            });
            for (k, x) in extra.as_object().into_iter().flatten() {
                v[k] = x.clone();
            }
            serde_json::from_value(v).expect("spec")
        };
        let knative = serde_json::json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "podinfo"});
        let problems = |s: &CanarySpec, provider: &str| -> Vec<String> {
            validate_in(s, "test", &Settings::new(provider))
                .into_iter()
                .map(|e| e.to_string())
                .collect()
        };
        assert!(problems(&spec(knative.clone(), serde_json::json!({})), "knative").is_empty());
        assert_eq!(
            problems(&spec(knative.clone(), serde_json::json!({})), "istio"),
            [
                "spec.provider: \"istio\" cannot route a Knative Service target; a serving.knative.dev/v1 Service needs the knative provider"
            ]
        );
        let deployment =
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"});
        assert_eq!(
            problems(&spec(deployment, serde_json::json!({})), "knative"),
            [
                "spec.targetRef: the knative provider routes only a Knative Service (apiVersion serving.knative.dev/v1, kind Service), not apps/v1 Deployment"
            ]
        );
        let scaled = spec(
            knative,
            serde_json::json!({"autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"}}),
        );
        assert_eq!(
            problems(&scaled, "knative"),
            ["spec.autoscalerRef: a Knative Service scales itself; remove autoscalerRef"]
        );
        let other = spec(
            serde_json::json!({"apiVersion": "serving.knative.dev/v2", "kind": "Service", "name": "podinfo"}),
            serde_json::json!({}),
        );
        assert_eq!(
            problems(&other, "kubernetes"),
            [
                "spec.targetRef.apiVersion: \"serving.knative.dev/v2\" is not supported for a Service; expected v1 or serving.knative.dev/v1"
            ]
        );
    }
}
