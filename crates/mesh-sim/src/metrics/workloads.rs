//! The families the workloads' sidecars (and the app itself) export, one series per pod or
//! per destination workload: Istio's, Linkerd's, OSM's, and podinfo's own
//! `http_request_duration_seconds`. (App Mesh's Envoy shares its family with the ingress
//! proxies': `ingresses.rs`.)

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Series, by_workload, counter, histogram, per_workload, pod_labels};
use crate::routing::Workload;

/// Writes the workloads' families.
pub(super) fn render(out: &mut String, series: &BTreeMap<(Workload, u16), Series>) {
    // Istio's, Linkerd's and OSM's histograms carry no status code: one per workload.
    let by_workload = by_workload(series);
    // The source's sidecar sees the destination workload, not its pods.
    let mut by_destination: BTreeMap<(&str, &str, u16), Series> = BTreeMap::new();
    let mut by_destination_only: BTreeMap<(&str, &str), Series> = BTreeMap::new();
    for ((w, code), s) in series.iter() {
        let key = (w.namespace.as_str(), w.deployment.as_str());
        by_destination
            .entry((key.0, key.1, *code))
            .or_default()
            .add(s);
        by_destination_only.entry(key).or_default().add(s);
    }
    counter(
        out,
        "istio_requests_total",
        &mut series
            .iter()
            .map(|((w, code), s)| {
                let labels = istio_destination_labels(w);
                (format!("{labels},response_code=\"{code}\""), s.count)
            })
            .chain(by_destination.iter().map(|((ns, workload, code), s)| {
                let labels = istio_source_labels(ns, workload);
                (format!("{labels},response_code=\"{code}\""), s.count)
            })),
    );
    let _ = writeln!(out, "# TYPE istio_request_duration_milliseconds histogram");
    for (w, s) in &by_workload {
        let labels = istio_destination_labels(w);
        histogram(out, "istio_request_duration_milliseconds", &labels, s, 0);
    }
    for ((ns, workload), s) in &by_destination_only {
        let labels = istio_source_labels(ns, workload);
        histogram(out, "istio_request_duration_milliseconds", &labels, s, 0);
    }
    counter(
        out,
        "response_total",
        &mut series.iter().map(|((w, code), s)| {
            let class = if *code >= 500 { "failure" } else { "success" };
            let labels = format!(
                "{},classification=\"{class}\",status_code=\"{code}\"",
                linkerd_labels(w)
            );
            (labels, s.count)
        }),
    );
    let _ = writeln!(out, "# TYPE response_latency_ms histogram");
    for (w, s) in &by_workload {
        histogram(out, "response_latency_ms", &linkerd_labels(w), s, 1);
    }
    counter(
        out,
        "osm_request_total",
        &mut series.iter().map(|((w, code), s)| {
            (
                format!("{},response_code=\"{code}\"", osm_labels(w)),
                s.count,
            )
        }),
    );
    per_workload(out, "osm_request_duration_ms", osm_labels, &by_workload, 0);
    let _ = writeln!(out, "# TYPE http_request_duration_seconds histogram");
    for ((w, code), s) in series.iter() {
        let labels = format!(
            "{},namespace=\"{}\",pod=\"{}\",app=\"{}\",status=\"{code}\"",
            pod_labels(w),
            w.namespace,
            w.pod,
            w.deployment
        );
        histogram(out, "http_request_duration_seconds", &labels, s, 3);
    }
}

/// The labels of the destination's sidecar: its pod, as Prometheus's pod discovery adds it.
fn istio_destination_labels(w: &Workload) -> String {
    format!(
        "reporter=\"destination\",{},source_workload=\"mesh-sim\",source_workload_namespace=\"mesh-sim\",namespace=\"{}\",pod=\"{}\"",
        istio_destination(&w.namespace, &w.deployment),
        w.namespace,
        w.pod
    )
}

/// The labels of the source's sidecar (mesh-sim's own pod).
fn istio_source_labels(ns: &str, workload: &str) -> String {
    format!(
        "reporter=\"source\",{},source_workload=\"mesh-sim\",source_workload_namespace=\"mesh-sim\",namespace=\"mesh-sim\",pod=\"mesh-sim\"",
        istio_destination(ns, workload)
    )
}

fn istio_destination(ns: &str, workload: &str) -> String {
    format!(
        "destination_workload_namespace=\"{ns}\",destination_workload=\"{workload}\",destination_service_namespace=\"{ns}\",destination_app=\"{workload}\""
    )
}

fn linkerd_labels(w: &Workload) -> String {
    format!(
        "namespace=\"{}\",deployment=\"{}\",pod=\"{}\",direction=\"inbound\"",
        w.namespace, w.deployment, w.pod
    )
}

/// OSM's labels of a request to `w` from mesh-sim's own pod.
fn osm_labels(w: &Workload) -> String {
    format!(
        "source_namespace=\"mesh-sim\",source_kind=\"Deployment\",source_name=\"mesh-sim\",source_pod=\"mesh-sim\",destination_namespace=\"{}\",destination_kind=\"Deployment\",destination_name=\"{}\",destination_pod=\"{}\"",
        w.namespace, w.deployment, w.pod
    )
}
