//! The three ClusterIP Services of a canary (flagger-behaviour.md 3.6): `<svc>` (apex) and
//! `<svc>-primary` select the primary, `<svc>-canary` selects the target.

use serde_json::{Map, Value, json};

use crate::workload::{Selector, owner_reference};

/// Which of the three Services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `<svc>`: what clients call; switched to the primary after initialization.
    Apex,
    /// `<svc>-primary`.
    Primary,
    /// `<svc>-canary`.
    Canary,
}

/// The desired Service of a role. `ports` are the discovered extra ports.
pub fn build(
    canary: &canary_api::Canary,
    sel: &Selector,
    role: Role,
    extra_ports: &[Value],
) -> Value {
    let spec = &canary.spec;
    let apex = spec.service_name().to_string();
    let (name, value, meta) = match role {
        Role::Apex => (apex.clone(), sel.primary_value(), &spec.service.apex),
        Role::Primary => (
            format!("{apex}-primary"),
            sel.primary_value(),
            &spec.service.primary,
        ),
        Role::Canary => (
            format!("{apex}-canary"),
            sel.value.clone(),
            &spec.service.canary,
        ),
    };
    let s = &spec.service;
    let target_port = match &s.target_port {
        Some(canary_core::spec::IntOrString::Int(p)) => json!(p),
        Some(canary_core::spec::IntOrString::String(p)) => json!(p),
        None => json!(s.port),
    };
    let mut port = json!({
        "name": s.port_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "http".into()),
        "port": s.port,
        "targetPort": target_port,
        "protocol": "TCP",
    });
    if let Some(p) = &s.app_protocol {
        port["appProtocol"] = json!(p);
    }
    let mut ports = vec![port];
    ports.extend(extra_ports.iter().cloned());
    let mut labels: Map<String, Value> = Map::new();
    let mut annotations: Map<String, Value> = Map::new();
    if let Some(m) = meta {
        labels.extend(m.labels.iter().map(|(k, v)| (k.clone(), json!(v))));
        annotations.extend(m.annotations.iter().map(|(k, v)| (k.clone(), json!(v))));
    }
    labels.insert(sel.label.clone(), json!(name));
    let mut svc_spec = json!({
        "type": "ClusterIP",
        "selector": {&sel.label: value},
        "ports": ports,
    });
    if s.headless {
        svc_spec["clusterIP"] = json!("None");
    }
    if let Some(d) = &s.traffic_distribution {
        svc_spec["trafficDistribution"] = json!(d);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": canary.metadata.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(canary)],
        },
        "spec": svc_spec,
    })
}

/// With `portDiscovery`, every container port of the target but the service port and the
/// mesh sidecars' (`istio-proxy`, `envoy`); unnamed ports are called `tcp-<container>-<i>`.
pub fn discovered_ports(target: &Value, service_port: i32) -> Vec<Value> {
    let mut out = Vec::new();
    let containers = target["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in containers {
        let cname = c["name"].as_str().unwrap_or_default();
        if cname == "istio-proxy" || cname == "envoy" {
            continue;
        }
        for (i, p) in c["ports"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let Some(number) = p["containerPort"].as_i64() else {
                continue;
            };
            if number == i64::from(service_port) {
                continue;
            }
            let name = p["name"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| format!("tcp-{cname}-{i}"));
            out.push(json!({"name": name, "port": number, "targetPort": name, "protocol": "TCP"}));
        }
    }
    out
}
