//! Flagger's builtin queries per provider (flagger-behaviour.md 4.1) and MetricTemplate
//! rendering: Go-template style `{{ name }}` functions, as Flagger's `RenderQuery`.

use std::collections::BTreeMap;

use canary_core::spec::Builtin;

/// The values a query template can use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    /// `{{ name }}`: the canary's name.
    pub name: String,
    /// `{{ namespace }}`.
    pub namespace: String,
    /// `{{ target }}`: the target workload's name.
    pub target: String,
    /// `{{ service }}`: the apex service name.
    pub service: String,
    /// `{{ ingress }}`: the ingress name, else the target's.
    pub ingress: String,
    /// `{{ route }}`: the route name, else the target's.
    pub route: String,
    /// `{{ interval }}`: the metric's window, e.g. `1m`.
    pub interval: String,
    /// `{{ variables.key }}`: the metric's `templateVariables`.
    pub variables: BTreeMap<String, String>,
}

/// A template that cannot be rendered: what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {template}: {problem} at offset {offset}")]
pub struct RenderError {
    /// Template name (the MetricTemplate, or `builtin`/`query`).
    pub template: String,
    /// Byte offset of the problem.
    pub offset: usize,
    /// What is wrong.
    pub problem: String,
}

/// Renders `{{ fn }}` and `{{ variables.key }}` (also `{{ .Fn }}`-free forms with spaces).
pub fn render(template_name: &str, text: &str, model: &Model) -> Result<String, RenderError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(RenderError {
                template: template_name.into(),
                offset: offset + start,
                problem: "unclosed action: missing }}".into(),
            });
        };
        let expr = after[..end]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        let value = match expr {
            "name" => model.name.clone(),
            "namespace" => model.namespace.clone(),
            "target" => model.target.clone(),
            "service" => model.service.clone(),
            "ingress" => model.ingress.clone(),
            "route" => model.route.clone(),
            "interval" => model.interval.clone(),
            e => match e.strip_prefix("variables.") {
                Some(key) => model
                    .variables
                    .get(key)
                    .cloned()
                    .ok_or_else(|| RenderError {
                        template: template_name.into(),
                        offset: offset + start,
                        problem: format!("map has no entry for key {key:?} (templateVariables)"),
                    })?,
                None => {
                    return Err(RenderError {
                        template: template_name.into(),
                        offset: offset + start,
                        problem: format!(
                            "function {e:?} not defined; expected name, namespace, target, service, ingress, route, interval or variables.<key>"
                        ),
                    });
                }
            },
        };
        out.push_str(&value);
        let consumed = start + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The observer of a provider: which builtin queries it uses.
pub fn observer(provider: &str) -> &'static str {
    match provider {
        p if p.starts_with("appmesh") => "appmesh",
        "linkerd" => "linkerd",
        p if p == "kubernetes" || p.starts_with("gatewayapi") => "http",
        _ => "istio",
    }
}

/// Flagger's builtin query for a metric and observer, before rendering.
pub fn builtin(observer: &str, metric: Builtin) -> &'static str {
    match (observer, metric) {
        ("linkerd", Builtin::SuccessRate) => LINKERD_SUCCESS,
        ("linkerd", Builtin::Duration) => LINKERD_DURATION,
        ("appmesh", Builtin::SuccessRate) => APPMESH_SUCCESS,
        ("appmesh", Builtin::Duration) => APPMESH_DURATION,
        ("http", Builtin::SuccessRate) => HTTP_SUCCESS,
        ("http", Builtin::Duration) => HTTP_DURATION,
        (_, Builtin::SuccessRate) => ISTIO_SUCCESS,
        (_, Builtin::Duration) => ISTIO_DURATION,
    }
}

/// True when the observer's duration query answers seconds (converted to milliseconds).
pub fn duration_in_seconds(observer: &str) -> bool {
    observer == "http"
}

const ISTIO_SUCCESS: &str = r#"sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload=~"{{ target }}",response_code!~"5.*"}[{{ interval }}])) / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload=~"{{ target }}"}[{{ interval }}])) * 100"#;
const ISTIO_DURATION: &str = r#"histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload=~"{{ target }}"}[{{ interval }}])) by (le))"#;
const LINKERD_SUCCESS: &str = r#"sum(rate(response_total{namespace="{{ namespace }}",deployment=~"{{ target }}",classification!="failure",direction="inbound"}[{{ interval }}])) / sum(rate(response_total{namespace="{{ namespace }}",deployment=~"{{ target }}",direction="inbound"}[{{ interval }}])) * 100"#;
const LINKERD_DURATION: &str = r#"histogram_quantile(0.99, sum(rate(response_latency_ms_bucket{namespace="{{ namespace }}",deployment=~"{{ target }}",direction="inbound"}[{{ interval }}])) by (le))"#;
const APPMESH_SUCCESS: &str = r#"sum(rate(envoy_cluster_upstream_rq{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",envoy_response_code!~"5.*"}[{{ interval }}])) / sum(rate(envoy_cluster_upstream_rq{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}[{{ interval }}])) * 100"#;
const APPMESH_DURATION: &str = r#"histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}[{{ interval }}])) by (le))"#;
const HTTP_SUCCESS: &str = r#"sum(rate(http_request_duration_seconds_count{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",status!~"5.*"}[{{ interval }}])) / sum(rate(http_request_duration_seconds_count{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}[{{ interval }}])) * 100"#;
const HTTP_DURATION: &str = r#"histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}[{{ interval }}])) by (le))"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model {
            name: "podinfo".into(),
            namespace: "test".into(),
            target: "podinfo".into(),
            service: "podinfo".into(),
            ingress: "podinfo".into(),
            route: "podinfo".into(),
            interval: "1m".into(),
            variables: [("threshold".to_string(), "5".to_string())].into(),
        }
    }

    #[test]
    fn istio_success_rate_renders_as_flagger_writes_it() {
        let q =
            render("builtin", builtin("istio", Builtin::SuccessRate), &model()).expect("render");
        assert_eq!(
            q,
            r#"sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="test",destination_workload=~"podinfo",response_code!~"5.*"}[1m])) / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="test",destination_workload=~"podinfo"}[1m])) * 100"#
        );
    }

    #[test]
    fn templates_use_functions_and_variables() {
        let q = render("error-rate", "rate(x{ns=\"{{ namespace }}\",app=\"{{ target }}-primary\"}[{{interval}}]) > {{ variables.threshold }}", &model()).expect("render");
        assert_eq!(q, "rate(x{ns=\"test\",app=\"podinfo-primary\"}[1m]) > 5");
    }

    #[test]
    fn template_errors_name_the_template_and_position() {
        let e = render("latency", "sum(x{a=\"{{ bogus }}\"})", &model()).expect_err("unknown");
        assert_eq!(e.offset, 9);
        assert!(
            e.to_string()
                .starts_with("template latency: function \"bogus\" not defined"),
            "{e}"
        );
        let e = render("latency", "sum({{ variables.missing }})", &model()).expect_err("missing");
        assert!(
            e.to_string().contains("no entry for key \"missing\""),
            "{e}"
        );
        let e = render("latency", "sum({{ target )", &model()).expect_err("unclosed");
        assert!(e.to_string().contains("unclosed action"), "{e}");
    }

    #[test]
    fn providers_pick_flaggers_observers() {
        assert_eq!(observer("appmesh:v1beta2"), "appmesh");
        assert_eq!(observer("kubernetes"), "http");
        assert_eq!(observer("gatewayapi:v1"), "http");
        assert_eq!(observer("smi:v1alpha3"), "istio");
        assert_eq!(observer("linkerd"), "linkerd");
    }
}
