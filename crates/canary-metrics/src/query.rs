//! Flagger's builtin queries per provider (flagger-behaviour.md 4.1) and MetricTemplate
//! rendering with Go's text/template, as Flagger's `RenderQuery`.

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

/// Renders a query as Flagger's `RenderQuery` does: Go's text/template with the model's
/// functions (`name`, `namespace`, `target`, `service`, `ingress`, `route`, `interval`,
/// `variables`), no data and `missingkey=error` (see [`crate::gotemplate`]).
pub fn render(template_name: &str, text: &str, model: &Model) -> Result<String, RenderError> {
    use crate::gotemplate::Value;
    let functions: crate::gotemplate::Functions = [
        ("name", &model.name),
        ("namespace", &model.namespace),
        ("target", &model.target),
        ("service", &model.service),
        ("ingress", &model.ingress),
        ("route", &model.route),
        ("interval", &model.interval),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Value::Str(v.clone())))
    .chain(std::iter::once((
        "variables".to_string(),
        Value::Map(
            model
                .variables
                .iter()
                .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
                .collect(),
        ),
    )))
    .collect();
    crate::gotemplate::render(text, &functions).map_err(|p| RenderError {
        template: template_name.into(),
        offset: p.offset,
        problem: p.message,
    })
}

/// The observer of a provider: which builtin queries it uses.
pub fn observer(provider: &str) -> &'static str {
    match provider {
        p if p.starts_with("appmesh") => "appmesh",
        "linkerd" => "linkerd",
        "nginx" => "nginx",
        "osm" => "osm",
        "contour" => "contour",
        p if p.starts_with("gloo") => "gloo",
        "skipper" => "skipper",
        "traefik" => "traefik",
        "kuma" => "kuma",
        "apisix" => "apisix",
        "knative" => "knative",
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
        ("nginx", Builtin::SuccessRate) => NGINX_SUCCESS,
        ("nginx", Builtin::Duration) => NGINX_DURATION,
        ("osm", Builtin::SuccessRate) => OSM_SUCCESS,
        ("osm", Builtin::Duration) => OSM_DURATION,
        ("contour", Builtin::SuccessRate) => CONTOUR_SUCCESS,
        ("contour", Builtin::Duration) => CONTOUR_DURATION,
        ("gloo", Builtin::SuccessRate) => GLOO_SUCCESS,
        ("gloo", Builtin::Duration) => GLOO_DURATION,
        ("skipper", Builtin::SuccessRate) => SKIPPER_SUCCESS,
        ("skipper", Builtin::Duration) => SKIPPER_DURATION,
        ("traefik", Builtin::SuccessRate) => TRAEFIK_SUCCESS,
        ("traefik", Builtin::Duration) => TRAEFIK_DURATION,
        ("kuma", Builtin::SuccessRate) => KUMA_SUCCESS,
        ("kuma", Builtin::Duration) => KUMA_DURATION,
        ("apisix", Builtin::SuccessRate) => APISIX_SUCCESS,
        ("apisix", Builtin::Duration) => APISIX_DURATION,
        ("knative", Builtin::SuccessRate) => KNATIVE_SUCCESS,
        ("knative", Builtin::Duration) => KNATIVE_DURATION,
        (_, Builtin::SuccessRate) => ISTIO_SUCCESS,
        (_, Builtin::Duration) => ISTIO_DURATION,
    }
}

/// Renders an observer's builtin query. Skipper names its routes after the Ingress with every
/// non-word character as `_`, so its observer sees the model so encoded (as Flagger's).
pub fn render_builtin(
    observer: &str,
    metric: Builtin,
    model: &Model,
) -> Result<String, RenderError> {
    if observer != "skipper" {
        return render("builtin", builtin(observer, metric), model);
    }
    let word = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let encoded = Model {
        name: word(&model.name),
        namespace: word(&model.namespace),
        target: word(&model.target),
        service: word(&model.service),
        ingress: word(&model.ingress),
        ..model.clone()
    };
    render("builtin", builtin(observer, metric), &encoded)
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

// ingress-nginx labels a request the canary Ingress served with the main Ingress's name and
// a non-empty `canary` (the canary upstream); the duration is a mean in milliseconds.
const NGINX_SUCCESS: &str = r#"sum(rate(nginx_ingress_controller_requests{namespace="{{ namespace }}",ingress="{{ ingress }}",canary!="",status!~"5.*"}[{{ interval }}])) / sum(rate(nginx_ingress_controller_requests{namespace="{{ namespace }}",ingress="{{ ingress }}",canary!=""}[{{ interval }}])) * 100"#;
const NGINX_DURATION: &str = r#"sum(rate(nginx_ingress_controller_response_duration_seconds_sum{namespace="{{ namespace }}",ingress="{{ ingress }}",canary!=""}[{{ interval }}])) / sum(rate(nginx_ingress_controller_response_duration_seconds_count{namespace="{{ namespace }}",ingress="{{ ingress }}",canary!=""}[{{ interval }}])) * 1000"#;

// Open Service Mesh's Envoy series, by destination Deployment.
const OSM_SUCCESS: &str = r#"sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_kind="Deployment",destination_name="{{ target }}",response_code!~"5.*"}[{{ interval }}])) / sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_kind="Deployment",destination_name="{{ target }}"}[{{ interval }}])) * 100"#;
const OSM_DURATION: &str = r#"histogram_quantile(0.99, sum(rate(osm_request_duration_ms_bucket{destination_namespace="{{ namespace }}",destination_kind="Deployment",destination_name="{{ target }}"}[{{ interval }}])) by (le))"#;

// Contour's Envoy clusters are `<namespace>_<service>-canary_<port>`.
const CONTOUR_SUCCESS: &str = r#"sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+",envoy_response_code!~"5.*"}[{{ interval }}])) / sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+"}[{{ interval }}])) * 100"#;
const CONTOUR_DURATION: &str = r#"histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+"}[{{ interval }}])) by (le))"#;

// Gloo's Envoy clusters are its Upstreams: `<namespace>-<target>-canaryupstream-<port>_<namespace>`.
const GLOO_SUCCESS: &str = r#"sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+",envoy_response_code!~"5.*"}[{{ interval }}])) / sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+"}[{{ interval }}])) * 100"#;
const GLOO_DURATION: &str = r#"histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=~"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+"}[{{ interval }}])) by (le))"#;

// Skipper's routes from an Ingress: `kube(ew)?_<ns>__<ingress>_canary__<host>__<service>_canary`.
const SKIPPER_SUCCESS: &str = r#"{{- $route := printf "kube(ew)?_%s__%s_canary__.*__%s_canary(_[0-9]+)?" namespace ingress service }}sum(rate(skipper_response_duration_seconds_bucket{route=~"{{ $route }}",code!~"5..",le="+Inf"}[{{ interval }}])) / sum(rate(skipper_response_duration_seconds_bucket{route=~"{{ $route }}",le="+Inf"}[{{ interval }}])) * 100"#;
const SKIPPER_DURATION: &str = r#"{{- $route := printf "kube(ew)?_%s__%s_canary__.*__%s_canary(_[0-9]+)?" namespace ingress service }}sum(rate(skipper_serve_route_duration_seconds_sum{route=~"{{ $route }}"}[{{ interval }}])) / sum(rate(skipper_serve_route_duration_seconds_count{route=~"{{ $route }}"}[{{ interval }}])) * 1000"#;

// Traefik's services from a TraefikService: `<ns>-<target>-canary-<port>@kubernetescrd`.
const TRAEFIK_SUCCESS: &str = r#"sum(rate(traefik_service_request_duration_seconds_bucket{service=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd",code!~"5..",le="+Inf"}[{{ interval }}])) / sum(rate(traefik_service_request_duration_seconds_bucket{service=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd",le="+Inf"}[{{ interval }}])) * 100"#;
const TRAEFIK_DURATION: &str = r#"histogram_quantile(0.99, sum(rate(traefik_service_request_duration_seconds_bucket{service=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd"}[{{ interval }}])) by (le)) * 1000"#;

// Kuma's Envoy clusters are Kuma services: `<target>-canary_<ns>_svc_<port>`.
const KUMA_SUCCESS: &str = r#"sum(rate(envoy_cluster_upstream_rq{service=~"{{ target }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+",envoy_response_code!~"5.*"}[{{ interval }}])) / sum(rate(envoy_cluster_upstream_rq{service=~"{{ target }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+"}[{{ interval }}])) * 100"#;
const KUMA_DURATION: &str = r#"histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{service=~"{{ target }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+"}[{{ interval }}])) by (le))"#;

// APISIX's routes from the canary's ApisixRoute: `<ns>_<route>-<target>-canary_<rule>`.
const APISIX_SUCCESS: &str = r#"sum(rate(apisix_http_status{route=~"{{ namespace }}_{{ route }}-{{ target }}-canary_.+",code!~"5.."}[{{ interval }}])) / sum(rate(apisix_http_status{route=~"{{ namespace }}_{{ route }}-{{ target }}-canary_.+"}[{{ interval }}])) * 100"#;
const APISIX_DURATION: &str = r#"histogram_quantile(0.99, sum(rate(apisix_http_latency_bucket{type=~"request",route=~"{{ namespace }}_{{ route }}-{{ target }}-canary_.+"}[{{ interval }}])) by (le))"#;

// Knative's Envoy clusters by `<namespace>/<route>` (the revision).
const KNATIVE_SUCCESS: &str = r#"sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"{{ namespace }}/{{ route }}",envoy_response_code!~"5.*"}[{{ interval }}])) / sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"{{ namespace }}/{{ route }}"}[{{ interval }}])) * 100"#;
const KNATIVE_DURATION: &str = r#"histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=~"{{ namespace }}/{{ route }}"}[{{ interval }}])) by (le))"#;

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

    /// Every builtin query as Flagger's observers render it for seed podinfo, in
    /// `tests/snapshots/builtin-queries.txt` (`UPDATE_EXPECT=1 cargo test -p canary-metrics
    /// --lib` rewrites it).
    #[test]
    fn every_builtin_query_as_flagger_renders_it() {
        use std::fmt::Write;
        let mut out = String::new();
        for observer in [
            "istio", "linkerd", "appmesh", "http", "nginx", "osm", "contour", "gloo", "skipper",
            "traefik", "kuma", "apisix", "knative",
        ] {
            for (name, metric) in [
                ("request-success-rate", Builtin::SuccessRate),
                ("request-duration", Builtin::Duration),
            ] {
                let query = render_builtin(observer, metric, &model()).expect("render");
                let _ = writeln!(out, "{observer} {name}\n{query}\n");
            }
        }
        expect_test::expect_file!["../tests/snapshots/builtin-queries.txt"].assert_eq(&out);
    }

    #[test]
    fn providers_pick_flaggers_observers() {
        assert_eq!(observer("appmesh:v1beta2"), "appmesh");
        assert_eq!(observer("kubernetes"), "http");
        assert_eq!(observer("gatewayapi:v1"), "http");
        assert_eq!(observer("smi:v1alpha3"), "istio");
        assert_eq!(observer("linkerd"), "linkerd");
        assert_eq!(observer("nginx"), "nginx");
        assert_eq!(observer("osm"), "osm");
        assert_eq!(observer("gloo"), "gloo");
        assert_eq!(observer("contour"), "contour");
        assert_eq!(observer("knative"), "knative");
    }

    #[test]
    fn skipper_sees_names_with_non_word_characters_as_underscores() {
        let m = Model {
            namespace: "prod-eu".into(),
            ingress: "web.app".into(),
            service: "web-app".into(),
            ..model()
        };
        let q = render_builtin("skipper", Builtin::SuccessRate, &m).expect("render");
        assert!(
            q.contains(
                r#"route=~"kube(ew)?_prod_eu__web_app_canary__.*__web_app_canary(_[0-9]+)?""#
            ),
            "{q}"
        );
    }
}
