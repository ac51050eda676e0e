//! The three ClusterIP Services of a canary (flagger-behaviour.md 3.6): `<svc>` (apex) and
//! `<svc>-primary` select the primary, `<svc>-canary` selects the target. Each carries
//! Flux's "leave it alone" annotations, as Flagger's `filterMetadata` sets them; an apex
//! Service the user made is adopted as Flagger does: its selector and ports become
//! flaggerd's, its other metadata stays, and it is never owned by the canary.

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
    let ports = ports(canary, extra_ports);
    let mut labels: Map<String, Value> = Map::new();
    let mut annotations: Map<String, Value> = Map::new();
    if let Some(m) = meta {
        labels.extend(m.labels.iter().map(|(k, v)| (k.clone(), json!(v))));
        annotations.extend(m.annotations.iter().map(|(k, v)| (k.clone(), json!(v))));
    }
    annotations.extend(flux_annotations());
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

pub use canary_router::flux_annotations;

/// The Service's ports: `service.port` to `targetPort` (the port itself when unset), named
/// `portName` (`http`), then the discovered ones.
fn ports(canary: &canary_api::Canary, extra_ports: &[Value]) -> Vec<Value> {
    let s = &canary.spec.service;
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
    ports
}

/// The merge patch that adopts a Service the user made (`existing`) for `role`: the
/// selector becomes flaggerd's alone (the primary's, or the target's for `-canary`), the
/// ports flaggerd's (keeping the node port of a port of the same name), and Flux's
/// annotations are added; labels, other annotations, the type and the owner stay the user's.
pub fn adopt(
    existing: &Value,
    canary: &canary_api::Canary,
    sel: &Selector,
    role: Role,
    extra_ports: &[Value],
) -> Value {
    let value = match role {
        Role::Canary => sel.value.clone(),
        Role::Apex | Role::Primary => sel.primary_value(),
    };
    let mut selector = Map::new();
    if let Some(old) = existing["spec"]["selector"].as_object() {
        for key in old.keys().filter(|k| **k != sel.label) {
            selector.insert(key.clone(), Value::Null);
        }
    }
    selector.insert(sel.label.clone(), json!(value));
    let old_ports = existing["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ports: Vec<Value> = ports(canary, extra_ports)
        .into_iter()
        .map(|mut p| {
            let node_port = old_ports
                .iter()
                .find(|o| o["name"] == p["name"])
                .and_then(|o| o["nodePort"].as_i64())
                .filter(|n| *n > 0);
            if let Some(n) = node_port {
                p["nodePort"] = json!(n);
            }
            p
        })
        .collect();
    json!({
        "metadata": {"annotations": flux_annotations()},
        "spec": {"selector": selector, "ports": ports},
    })
}

/// The merge patch that gives a user's apex Service back its selector when the canary is
/// deleted: the one in kubectl's last-applied configuration, else the target's label alone
/// (as Flagger's finalize).
pub fn revert(apex: &Value, sel: &Selector) -> Value {
    let stored =
        apex["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .and_then(|last| last["spec"]["selector"].as_object().cloned());
    let wanted = stored.unwrap_or_else(|| {
        let mut only = Map::new();
        only.insert(sel.label.clone(), json!(sel.value));
        only
    });
    let mut selector = Map::new();
    if let Some(current) = apex["spec"]["selector"].as_object() {
        for key in current.keys().filter(|k| !wanted.contains_key(*k)) {
            selector.insert(key.clone(), Value::Null);
        }
    }
    selector.extend(wanted);
    json!({"spec": {"selector": selector}})
}

/// With `portDiscovery`, the target's container ports but the service's own (the one
/// `targetPort` names or numbers, else `service.port`) and the mesh sidecars' (`istio-proxy`,
/// `envoy`), each to its own number; an unnamed port is called `tcp-<container>-<i>`, and of
/// two ports of one name the last counts (Flagger's `getPorts`).
pub fn discovered_ports(target: &Value, service: &canary_core::spec::CanaryService) -> Vec<Value> {
    use canary_core::spec::IntOrString;
    let own = |name: Option<&str>, number: i64| match &service.target_port {
        None => number == i64::from(service.port),
        Some(IntOrString::Int(p)) => number == i64::from(*p),
        Some(IntOrString::String(p)) => name == Some(p.as_str()),
    };
    let mut out: Vec<Value> = Vec::new();
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
            if own(p["name"].as_str(), number) {
                continue;
            }
            let name = p["name"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| format!("tcp-{cname}-{i}"));
            out.retain(|o| o["name"] != name.as_str());
            out.push(
                json!({"name": name, "port": number, "targetPort": number, "protocol": "TCP"}),
            );
        }
    }
    out
}

/// A Service target's spec as its copies take it: without what the API server assigns to
/// each Service (`clusterIP`, `clusterIPs`, node ports), which a copy cannot share; a
/// headless target's `clusterIP: None` is kept.
pub fn copyable_spec(target: &Value) -> Value {
    let mut spec = target["spec"].clone();
    let headless = spec["clusterIP"] == "None";
    if let Some(m) = spec.as_object_mut() {
        m.remove("healthCheckNodePort");
        if !headless {
            m.remove("clusterIP");
            m.remove("clusterIPs");
        }
    }
    for port in spec["ports"].as_array_mut().into_iter().flatten() {
        if let Some(p) = port.as_object_mut() {
            p.remove("nodePort");
        }
    }
    spec
}

/// The `<target>-primary` or `<target>-canary` copy of a Service target (Flagger's service
/// controller): the target's spec ([`copyable_spec`], `service.trafficDistribution` when the
/// canary sets it), its labels and annotations (all, or for the primary at promotion those
/// `prefixes` keep) but kubectl's last-applied copy, owned by the canary.
pub fn target_copy(
    canary: &canary_api::Canary,
    target: &Value,
    name: &str,
    prefixes: Option<&[String]>,
) -> Value {
    let meta = |field: &str| -> Value {
        let all = ["*".to_string()];
        Value::Object(crate::workload::filter_metadata(
            &target["metadata"][field],
            prefixes.unwrap_or(&all),
        ))
    };
    let mut spec = copyable_spec(target);
    if let Some(d) = &canary.spec.service.traffic_distribution {
        spec["trafficDistribution"] = json!(d);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": canary.metadata.namespace,
            "labels": meta("labels"),
            "annotations": meta("annotations"),
            "ownerReferences": [owner_reference(canary)],
        },
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(service: &str) -> canary_api::Canary {
        let yaml = format!(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{name: podinfo, namespace: test, uid: u1}}\nspec:\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}\n  service: {service}\n  skipAnalysis: true\n"
        );
        canary_api::Canary::from_yaml(&yaml).expect("canary")
    }

    fn target() -> Value {
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "podinfod", "ports": [
                {"name": "http", "containerPort": 9898},
                {"name": "http-metrics", "containerPort": 9797},
                {"containerPort": 9999}]},
            {"name": "istio-proxy", "ports": [{"name": "http-envoy-prom", "containerPort": 15090}]},
        ]}}}})
    }

    fn sel() -> Selector {
        Selector {
            label: "app".into(),
            value: "podinfo".into(),
        }
    }

    #[test]
    fn generated_services_carry_fluxs_annotations() {
        let c = canary("{port: 80, apex: {annotations: {team: a}}}");
        for role in [Role::Apex, Role::Primary, Role::Canary] {
            let svc = build(&c, &sel(), role, &[]);
            let a = &svc["metadata"]["annotations"];
            assert_eq!(a["kustomize.toolkit.fluxcd.io/reconcile"], "disabled");
            assert_eq!(a["helm.toolkit.fluxcd.io/driftDetection"], "disabled");
        }
        assert_eq!(
            build(&c, &sel(), Role::Apex, &[])["metadata"]["annotations"]["team"],
            "a"
        );
    }

    #[test]
    fn discovery_leaves_out_the_port_target_port_names_and_maps_numbers() {
        let names = |service: &str| -> Vec<(String, i64)> {
            discovered_ports(&target(), &canary(service).spec.service)
                .iter()
                .map(|p| {
                    assert_eq!(
                        p["port"], p["targetPort"],
                        "a discovered port targets its number"
                    );
                    (
                        p["name"].as_str().unwrap_or_default().to_string(),
                        p["port"].as_i64().unwrap_or_default(),
                    )
                })
                .collect()
        };
        let all = [
            ("http-metrics".to_string(), 9797),
            ("tcp-podinfod-2".to_string(), 9999),
        ];
        // targetPort names the container port: that port is the service's own.
        assert_eq!(names("{port: 80, targetPort: http}"), all);
        // No targetPort: the service port's number is left out.
        assert_eq!(names("{port: 9898}"), all);
        // A numeric targetPort: that number is left out, the service port's is not.
        let with_http = names("{port: 9797, targetPort: 9898}");
        assert_eq!(
            with_http,
            [
                ("http-metrics".to_string(), 9797),
                ("tcp-podinfod-2".to_string(), 9999)
            ]
        );
    }

    #[test]
    fn an_adopted_service_gets_flaggerds_selector_and_ports_and_keeps_the_rest() {
        let c = canary("{port: 80, targetPort: http, portDiscovery: true}");
        let existing = json!({
            "metadata": {"name": "podinfo", "labels": {"team": "a"}},
            "spec": {"type": "NodePort", "selector": {"app": "podinfo", "tier": "web"},
                "ports": [{"name": "http", "port": 8080, "targetPort": 9898, "nodePort": 30080}]},
        });
        let extra = discovered_ports(&target(), &c.spec.service);
        let patch = adopt(&existing, &c, &sel(), Role::Apex, &extra);
        assert_eq!(
            patch["spec"]["selector"],
            json!({"app": "podinfo-primary", "tier": null})
        );
        assert_eq!(
            patch["spec"]["ports"][0],
            json!({"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "nodePort": 30080})
        );
        assert_eq!(patch["spec"]["ports"].as_array().map(Vec::len), Some(3));
        assert_eq!(
            patch["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/reconcile"],
            "disabled"
        );
        assert!(
            patch["metadata"].get("ownerReferences").is_none(),
            "never owned"
        );
        assert!(
            patch["metadata"].get("labels").is_none(),
            "labels stay the user's"
        );
    }

    #[test]
    fn a_users_apex_selector_comes_back_from_kubectls_last_applied_configuration() {
        let last = json!({"apiVersion": "v1", "kind": "Service",
            "spec": {"selector": {"app": "podinfo", "tier": "web"}}});
        let apex = json!({
            "metadata": {"annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": last.to_string()}},
            "spec": {"selector": {"app": "podinfo-primary", "extra": "x"}}});
        assert_eq!(
            revert(&apex, &sel()),
            json!({"spec": {"selector": {"extra": null, "app": "podinfo", "tier": "web"}}})
        );
        // Without kubectl's copy: the target's label alone.
        let bare = json!({"spec": {"selector": {"app": "podinfo-primary", "extra": "x"}}});
        assert_eq!(
            revert(&bare, &sel()),
            json!({"spec": {"selector": {"extra": null, "app": "podinfo"}}})
        );
    }

    #[test]
    fn a_headless_targets_copies_stay_headless() {
        let target = json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "a"}}});
        assert_eq!(copyable_spec(&target)["clusterIP"], "None");
        let plain = json!({"spec": {"clusterIP": "10.0.0.7", "type": "NodePort",
            "ports": [{"port": 80, "nodePort": 30080}]}});
        let spec = copyable_spec(&plain);
        assert!(spec["clusterIP"].is_null() && spec["ports"][0]["nodePort"].is_null());
    }
}
