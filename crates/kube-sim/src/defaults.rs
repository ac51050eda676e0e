//! Defaulting of the built-in kinds, as the API server does on create and update, for the
//! fields clients read back (Service cluster IPs and ports, Deployment strategy...).

use serde_json::{Value, json};

use crate::registry::ResourceType;

/// Fills in defaults on an object of type `rt`.
pub fn apply(rt: &ResourceType, obj: &mut Value) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => {
            if !obj["status"].is_object() {
                obj["status"] = json!({"phase": "Active"});
            }
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] =
                obj["metadata"]["name"].clone();
        }
        ("", "Service") => service(obj),
        ("apps", "Deployment") => {
            let spec = &mut obj["spec"];
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            default(
                spec,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
        }
        ("apps", "DaemonSet") => {
            let spec = &mut obj["spec"];
            default(spec, "revisionHistoryLimit", json!(10));
            default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
        }
        ("", "Secret") => default(obj, "type", json!("Opaque")),
        _ => {}
    }
}

fn default(obj: &mut Value, field: &str, value: Value) {
    if obj.get(field).is_none_or(Value::is_null) {
        obj[field] = value;
    }
}

fn service(obj: &mut Value) {
    let uid_tail = obj["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .rev()
        .take(4)
        .collect::<String>();
    let n = u32::from_str_radix(&uid_tail, 16).unwrap_or(1);
    let spec = &mut obj["spec"];
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    if spec.get("clusterIP").is_none_or(Value::is_null) {
        spec["clusterIP"] = json!(format!("10.96.{}.{}", (n >> 8) & 0xff, (n & 0xff).max(1)));
    }
    if spec.get("clusterIPs").is_none_or(Value::is_null) {
        spec["clusterIPs"] = json!([spec["clusterIP"]]);
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for p in ports {
            default(p, "protocol", json!("TCP"));
            if p.get("targetPort").is_none_or(Value::is_null) {
                p["targetPort"] = p["port"].clone();
            }
        }
    }
    if !obj["status"].is_object() {
        obj["status"] = json!({"loadBalancer": {}});
    }
}
