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
        ("", "Secret") => {
            default(obj, "type", json!("Opaque"));
            string_data(obj);
        }
        _ => {}
    }
}

/// Why the API server cannot decode `obj` as its built-in kind, for the fields kube-sim
/// reads: a Secret's `stringData` holds strings only (a null reads as an empty string).
pub fn undecodable(rt: &ResourceType, obj: &Value) -> Option<String> {
    if (rt.group.as_str(), rt.kind.as_str()) != ("", "Secret") {
        return None;
    }
    let (key, value) = obj["stringData"]
        .as_object()?
        .iter()
        .find(|(_, v)| !v.is_string() && !v.is_null())?;
    let found = match value {
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        _ => "value",
    };
    Some(format!(
        "Secret in version \"v1\" cannot be handled as a Secret: json: cannot unmarshal {found} into Go struct field Secret.stringData of type string (key {key:?})"
    ))
}

/// A Secret's `stringData` merged into `data`, base64-encoded, and dropped: the API server
/// never stores or returns `stringData`.
fn string_data(obj: &mut Value) {
    use base64::Engine;
    let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    for (k, v) in strings {
        let text = v.as_str().unwrap_or_default();
        obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
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
