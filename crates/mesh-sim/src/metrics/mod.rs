//! The series each mesh's proxies export for the requests they carried, under the names and
//! labels Flagger's builtin queries read:
//!
//! - Istio: `istio_requests_total` and `istio_request_duration_milliseconds`, as the
//!   destination's sidecar reports them (`reporter="destination"`, one series per pod, with
//!   the `pod` and `namespace` labels Prometheus's pod discovery adds) and as the source's
//!   does (`reporter="source"`, summed over the destination's pods, from mesh-sim's own
//!   pod, the capture point of every client): `destination_workload`,
//!   `destination_workload_namespace`, `destination_app`, `source_workload`, `response_code`;
//! - Linkerd: `response_total` and `response_latency_ms` (`deployment`, `namespace`,
//!   `direction="inbound"`, `classification` success or failure);
//! - App Mesh (Envoy): `envoy_cluster_upstream_rq` and `envoy_cluster_upstream_rq_time`
//!   (`kubernetes_namespace`, `kubernetes_pod_name`, `envoy_response_code`);
//! - the kubernetes and Gateway API providers (an instrumented app, podinfo's own):
//!   `http_request_duration_seconds` (`status`, with both the `kubernetes_namespace`,
//!   `kubernetes_pod_name` and the `namespace`, `pod`, `app` labels of a pod scrape).
//!
//! - Open Service Mesh (Envoy): `osm_request_total` and `osm_request_duration_ms`
//!   (`destination_namespace`, `destination_kind`, `destination_name`, `destination_pod`,
//!   `response_code`, from mesh-sim's own pod as the source);
//! - Contour's Envoy, for requests it routed: `envoy_cluster_upstream_rq` and
//!   `envoy_cluster_upstream_rq_time` by `envoy_cluster_name` (`<namespace>_<service>_<port>`),
//!   in the same families as App Mesh's; Gloo's, the same families by `<upstream>_<namespace>`;
//!   Kourier's (Knative), by `<namespace>/<revision>`;
//! - Kuma's sidecars, for requests a TrafficRoute split: Envoy's families with
//!   `envoy_cluster_name="localhost_<port>"` and the Kuma `service` that answered;
//! - Traefik, for requests it routed: `traefik_service_requests_total` and
//!   `traefik_service_request_duration_seconds` (`service` = `<ns>-<name>-<port>@kubernetescrd`,
//!   `code`, `method`, `protocol`);
//! - Skipper, for requests it routed: `skipper_response_duration_seconds` (`route`, `code`,
//!   `method`) and `skipper_serve_route_duration_seconds` (`route`), Prometheus's default
//!   buckets;
//! - APISIX, for requests it routed: `apisix_http_status` (`code`, `route`) and
//!   `apisix_http_latency` (`type="request"`, `route`), its plugin's default buckets;
//! - ingress-nginx, for requests its controller routed: `nginx_ingress_controller_requests`
//!   and `nginx_ingress_controller_response_duration_seconds` (`namespace`, `ingress`,
//!   `service`, `canary`, `status`, `method`, `path`, `host`, and the controller's constant
//!   labels).
//!
//! Every request is counted in all four, so one proxy serves whichever provider a canary
//! uses. Histograms use each project's default buckets. `workloads.rs` writes the sidecars'
//! and the app's families, `ingresses.rs` the ingress proxies' (and App Mesh's Envoy, which
//! shares Envoy's family with them).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::routing::{IngressHit, Upstream, Workload};

mod ingresses;
mod workloads;

const ISTIO_MS: &[f64] = &[
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];
const LINKERD_MS: &[f64] = &[
    1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 100.0, 200.0, 300.0, 400.0, 500.0,
    1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 10000.0, 20000.0, 30000.0, 40000.0, 50000.0,
];
const ENVOY_MS: &[f64] = &[
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];
const HTTP_SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const TRAEFIK_SECONDS: &[f64] = &[0.1, 0.3, 1.2, 5.0];
const APISIX_MS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 30000.0,
    60000.0,
];

/// The bucket layouts, in the order [`Series::buckets`] keeps them, with the unit scale
/// from milliseconds.
const LAYOUTS: [(&[f64], f64); 6] = [
    (ISTIO_MS, 1.0),
    (LINKERD_MS, 1.0),
    (ENVOY_MS, 1.0),
    (HTTP_SECONDS, 0.001),
    (TRAEFIK_SECONDS, 0.001),
    (APISIX_MS, 1.0),
];

/// Requests of one workload (pod) with one status code: count, sum and, per layout, the
/// (non-cumulative) count of each bucket.
#[derive(Clone, Default)]
struct Series {
    count: u64,
    sum_ms: f64,
    buckets: [Vec<u64>; 6],
}

impl Series {
    fn add(&mut self, other: &Series) {
        self.count += other.count;
        self.sum_ms += other.sum_ms;
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            mine.resize(theirs.len().max(mine.len()), 0);
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m += t;
            }
        }
    }

    /// The cumulative `(le, count)` rows of layout `i`, ending with `+Inf`.
    fn cumulative(&self, i: usize) -> Vec<(String, u64)> {
        let mut total = 0;
        let mut rows: Vec<(String, u64)> = LAYOUTS[i]
            .0
            .iter()
            .enumerate()
            .map(|(j, bound)| {
                total += self.buckets[i].get(j).copied().unwrap_or(0);
                (format_bound(*bound), total)
            })
            .collect();
        rows.push(("+Inf".into(), self.count));
        rows
    }
}

/// The proxy's counters; [`Metrics::render`] is the `/metrics` body.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(Workload, u16), Series>>,
    ingress: Mutex<BTreeMap<(IngressHit, u16), Series>>,
    upstreams: Mutex<BTreeMap<(Upstream, u16), Series>>,
}

impl Metrics {
    /// Counts one request answered by `workload` with `code` after `ms` milliseconds.
    pub fn record(&self, workload: &Workload, code: u16, ms: f64) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series
            .entry((workload.clone(), code))
            .or_default()
            .observe(ms);
    }

    /// Counts one request ingress-nginx routed through an Ingress.
    pub fn record_ingress(&self, hit: &IngressHit, code: u16, ms: f64) {
        let mut series = self.ingress.lock().unwrap_or_else(|e| e.into_inner());
        series.entry((hit.clone(), code)).or_default().observe(ms);
    }

    /// Counts one request an ingress proxy (Contour's Envoy, Traefik) sent to an upstream.
    pub fn record_upstream(&self, upstream: &Upstream, code: u16, ms: f64) {
        let mut series = self.upstreams.lock().unwrap_or_else(|e| e.into_inner());
        series
            .entry((upstream.clone(), code))
            .or_default()
            .observe(ms);
    }
}

impl Series {
    fn observe(&mut self, ms: f64) {
        let s = self;
        s.count += 1;
        s.sum_ms += ms;
        for (i, (bounds, scale)) in LAYOUTS.iter().enumerate() {
            let counts = &mut s.buckets[i];
            counts.resize(bounds.len(), 0);
            if let Some(j) = bounds.iter().position(|b| ms * scale <= *b) {
                counts[j] += 1;
            }
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let upstreams = self.upstreams.lock().unwrap_or_else(|e| e.into_inner());
        let ingress = self.ingress.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        workloads::render(&mut out, &series);
        ingresses::render(&mut out, &series, &upstreams, &ingress);
        out
    }
}

/// A counter family: its TYPE line and one row per label set.
fn counter(out: &mut String, name: &str, rows: &mut dyn Iterator<Item = (String, u64)>) {
    let _ = writeln!(out, "# TYPE {name} counter");
    for (labels, n) in rows {
        let _ = writeln!(out, "{name}{{{labels}}} {n}");
    }
}

/// The requests of each workload, whatever their status code.
fn by_workload(series: &BTreeMap<(Workload, u16), Series>) -> BTreeMap<&Workload, Series> {
    let mut out: BTreeMap<&Workload, Series> = BTreeMap::new();
    for ((w, _), s) in series.iter() {
        out.entry(w).or_default().add(s);
    }
    out
}

fn pod_labels(w: &Workload) -> String {
    format!(
        "kubernetes_namespace=\"{}\",kubernetes_pod_name=\"{}\"",
        w.namespace, w.pod
    )
}

fn format_bound(b: f64) -> String {
    if b.fract() == 0.0 {
        format!("{b:.0}")
    } else {
        format!("{b}")
    }
}

/// A histogram family with one series per workload, in bucket layout `layout`.
fn per_workload(
    out: &mut String,
    name: &str,
    labels: fn(&Workload) -> String,
    by_workload: &BTreeMap<&Workload, Series>,
    layout: usize,
) {
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (w, s) in by_workload {
        histogram(out, name, &labels(w), s, layout);
    }
}

fn histogram(out: &mut String, name: &str, labels: &str, s: &Series, layout: usize) {
    for (le, n) in s.cumulative(layout) {
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
    }
    let sum = s.sum_ms * LAYOUTS[layout].1;
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", s.count);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Proxy;

    #[test]
    fn contour_and_traefik_series_name_their_upstreams() {
        let m = Metrics::default();
        let w = Workload {
            namespace: "test".into(),
            deployment: "podinfo".into(),
            image: "podinfo:6.0.1".into(),
            pod: "podinfo-abc-12345".into(),
        };
        m.record(&w, 200, 5.0);
        let c = Upstream {
            proxy: Proxy::Envoy,
            name: "test_podinfo-canary_9898".into(),
            method: "GET".into(),
        };
        m.record_upstream(&c, 500, 5.0);
        m.record_upstream(&c, 200, 7.0);
        m.record_upstream(
            &Upstream {
                method: "POST".into(),
                ..c.clone()
            },
            200,
            7.0,
        );
        let t = Upstream {
            proxy: Proxy::Traefik,
            name: "test-podinfo-canary-9898@kubernetescrd".into(),
            method: "GET".into(),
        };
        m.record_upstream(&t, 200, 150.0);
        let text = m.render();
        for line in [
            r#"envoy_cluster_upstream_rq{envoy_cluster_name="test_podinfo-canary_9898",envoy_response_code="500"} 1"#,
            r#"envoy_cluster_upstream_rq{kubernetes_namespace="test",kubernetes_pod_name="podinfo-abc-12345",envoy_response_code="200"} 1"#,
            r#"envoy_cluster_upstream_rq{envoy_cluster_name="test_podinfo-canary_9898",envoy_response_code="200"} 2"#,
            r#"envoy_cluster_upstream_rq_time_count{envoy_cluster_name="test_podinfo-canary_9898"} 3"#,
            r#"envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="test_podinfo-canary_9898",le="10"} 3"#,
            r#"traefik_service_requests_total{code="200",method="GET",protocol="http",service="test-podinfo-canary-9898@kubernetescrd"} 1"#,
            r#"traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="test-podinfo-canary-9898@kubernetescrd",le="0.1"} 0"#,
            r#"traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="test-podinfo-canary-9898@kubernetescrd",le="0.3"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        for family in [
            "envoy_cluster_upstream_rq",
            "envoy_cluster_upstream_rq_time",
        ] {
            let types = text
                .lines()
                .filter(|l| l.starts_with(&format!("# TYPE {family} ")))
                .count();
            assert_eq!(types, 1, "one TYPE line for {family}");
        }
    }

    #[test]
    fn ingress_nginx_series_carry_the_main_ingress_and_the_canary_upstream() {
        let m = Metrics::default();
        let hit = IngressHit {
            namespace: "test".into(),
            ingress: "podinfo".into(),
            service: "podinfo".into(),
            canary: "test-podinfo-canary-9898".into(),
            host: "app.example.com".into(),
            path: "/".into(),
            method: "GET".into(),
        };
        m.record_ingress(&hit, 200, 30.0);
        m.record_ingress(&hit, 200, 50.0);
        let text = m.render();
        let labels = r#"canary="test-podinfo-canary-9898",controller_class="k8s.io/ingress-nginx",controller_namespace="ingress-nginx",controller_pod="mesh-sim",host="app.example.com",ingress="podinfo",method="GET",namespace="test",path="/",service="podinfo",status="200""#;
        for line in [
            format!("nginx_ingress_controller_requests{{{labels}}} 2"),
            format!("nginx_ingress_controller_response_duration_seconds_sum{{{labels}}} 0.08"),
            format!("nginx_ingress_controller_response_duration_seconds_count{{{labels}}} 2"),
            format!(
                "nginx_ingress_controller_response_duration_seconds_bucket{{{labels},le=\"0.05\"}} 2"
            ),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
