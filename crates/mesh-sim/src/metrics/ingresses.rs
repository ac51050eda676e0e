//! The families of the ingress proxies, for the requests each routed, labelled with its name
//! for the upstream: Envoy's (Contour's, Gloo's and Kourier's by `envoy_cluster_name`, Kuma's
//! dataplanes by Kuma service, in the same family as App Mesh's sidecars by pod), Traefik's,
//! Skipper's, APISIX's and ingress-nginx's.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Series, by_workload, counter, histogram, per_workload, pod_labels};
use crate::routing::{IngressHit, Proxy, Upstream, Workload};

/// Writes the ingress proxies' families (and App Mesh's Envoy, which shares one).
pub(super) fn render(
    out: &mut String,
    series: &BTreeMap<(Workload, u16), Series>,
    upstreams: &BTreeMap<(Upstream, u16), Series>,
    ingress: &BTreeMap<(IngressHit, u16), Series>,
) {
    let by_labels = |proxy: Proxy, labels: &dyn Fn(&Upstream, u16) -> String| {
        let mut merged: BTreeMap<String, Series> = BTreeMap::new();
        for ((u, code), s) in upstreams.iter().filter(|((u, _), _)| u.proxy == proxy) {
            merged.entry(labels(u, *code)).or_default().add(s);
        }
        merged
    };
    // Envoy's families: App Mesh's sidecars by pod, the Envoy-based ingresses by upstream
    // cluster, Kuma's dataplanes by the inbound cluster `localhost_<port>` of the Kuma
    // service, in one family each.
    let envoy = |u: &Upstream, _| format!("envoy_cluster_name=\"{}\"", u.name);
    let envoy_by_code = by_labels(Proxy::Envoy, &|u, code| {
        format!("{},envoy_response_code=\"{code}\"", envoy(u, code))
    });
    let kuma = |u: &Upstream, _| {
        let port = u.name.rsplit('_').next().unwrap_or_default();
        format!(
            "envoy_cluster_name=\"localhost_{port}\",service=\"{}\"",
            u.name
        )
    };
    let kuma_by_code = by_labels(Proxy::Kuma, &|u, code| {
        format!("{},envoy_response_code=\"{code}\"", kuma(u, code))
    });
    counter(
        out,
        "envoy_cluster_upstream_rq",
        &mut series
            .iter()
            .map(|((w, code), s)| {
                (
                    format!("{},envoy_response_code=\"{code}\"", pod_labels(w)),
                    s.count,
                )
            })
            .chain(envoy_by_code.iter().map(|(l, s)| (l.clone(), s.count)))
            .chain(kuma_by_code.iter().map(|(l, s)| (l.clone(), s.count))),
    );
    per_workload(
        out,
        "envoy_cluster_upstream_rq_time",
        pod_labels,
        &by_workload(series),
        2,
    );
    let envoy_rows = by_labels(Proxy::Envoy, &envoy);
    for (labels, s) in envoy_rows.iter().chain(&by_labels(Proxy::Kuma, &kuma)) {
        histogram(out, "envoy_cluster_upstream_rq_time", labels, s, 2);
    }
    // Traefik's, by service, code, method and protocol.
    let traefik = by_labels(Proxy::Traefik, &|u, code| {
        format!(
            "code=\"{code}\",method=\"{}\",protocol=\"http\",service=\"{}\"",
            u.method, u.name
        )
    });
    counter(
        out,
        "traefik_service_requests_total",
        &mut traefik.iter().map(|(l, s)| (l.clone(), s.count)),
    );
    let _ = writeln!(
        out,
        "# TYPE traefik_service_request_duration_seconds histogram"
    );
    for (labels, s) in &traefik {
        histogram(
            out,
            "traefik_service_request_duration_seconds",
            labels,
            s,
            4,
        );
    }
    // Skipper's, by route ID, code and method.
    let skipper = by_labels(Proxy::Skipper, &|u, code| {
        format!(
            "code=\"{code}\",method=\"{}\",route=\"{}\"",
            u.method, u.name
        )
    });
    let skipper_route = by_labels(Proxy::Skipper, &|u, _| format!("route=\"{}\"", u.name));
    let _ = writeln!(out, "# TYPE skipper_response_duration_seconds histogram");
    for (labels, s) in &skipper {
        histogram(out, "skipper_response_duration_seconds", labels, s, 3);
    }
    let _ = writeln!(out, "# TYPE skipper_serve_route_duration_seconds histogram");
    for (labels, s) in &skipper_route {
        histogram(out, "skipper_serve_route_duration_seconds", labels, s, 3);
    }
    // APISIX's prometheus plugin, by route name (`prefer_name`).
    let apisix = by_labels(Proxy::Apisix, &|u, code| {
        format!(
            "code=\"{code}\",route=\"{}\",matched_uri=\"\",matched_host=\"\",service=\"\",consumer=\"\",node=\"\"",
            u.name
        )
    });
    counter(
        out,
        "apisix_http_status",
        &mut apisix.iter().map(|(l, s)| (l.clone(), s.count)),
    );
    let apisix_latency = by_labels(Proxy::Apisix, &|u, _| {
        format!(
            "type=\"request\",route=\"{}\",service=\"\",consumer=\"\",node=\"\"",
            u.name
        )
    });
    let _ = writeln!(out, "# TYPE apisix_http_latency histogram");
    for (labels, s) in &apisix_latency {
        histogram(out, "apisix_http_latency", labels, s, 5);
    }
    counter(
        out,
        "nginx_ingress_controller_requests",
        &mut ingress
            .iter()
            .map(|((hit, code), s)| (nginx_labels(hit, *code), s.count)),
    );
    let _ = writeln!(
        out,
        "# TYPE nginx_ingress_controller_response_duration_seconds histogram"
    );
    for ((hit, code), s) in ingress.iter() {
        let labels = nginx_labels(hit, *code);
        histogram(
            out,
            "nginx_ingress_controller_response_duration_seconds",
            &labels,
            s,
            3,
        );
    }
}

/// ingress-nginx's labels of a request (its controller in namespace `ingress-nginx`).
fn nginx_labels(hit: &IngressHit, code: u16) -> String {
    format!(
        "canary=\"{}\",controller_class=\"k8s.io/ingress-nginx\",controller_namespace=\"ingress-nginx\",controller_pod=\"mesh-sim\",host=\"{}\",ingress=\"{}\",method=\"{}\",namespace=\"{}\",path=\"{}\",service=\"{}\",status=\"{code}\"",
        hit.canary, hit.host, hit.ingress, hit.method, hit.namespace, hit.path, hit.service
    )
}
