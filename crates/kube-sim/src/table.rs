//! `Table` responses (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`), so that
//! `kubectl get` prints the columns a real cluster prints: a CRD's printer columns, and the
//! usual columns of the built-in kinds.

use serde_json::{Value, json};

use crate::registry::ResourceType;

/// A table of `objects` of type `rt`; `include` is the `includeObject` parameter.
pub fn table(rt: &ResourceType, objects: &[Value], rv: u64, include: &str) -> Value {
    let columns = columns(rt);
    let definitions: Vec<Value> = std::iter::once(json!({"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}))
        .chain(columns.iter().map(|c| {
            json!({"name": c.name, "type": c.kind, "format": "", "description": c.name, "priority": c.priority})
        }))
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            cells.extend(columns.iter().map(|c| (c.value)(o)));
            let object = match include {
                "None" => Value::Null,
                "Object" => o.clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": definitions, "rows": rows,
    })
}

struct Column {
    name: String,
    kind: String,
    priority: i64,
    value: Box<dyn Fn(&Value) -> Value>,
}

fn column(
    name: &str,
    kind: &str,
    priority: i64,
    value: impl Fn(&Value) -> Value + 'static,
) -> Column {
    Column {
        name: name.into(),
        kind: kind.into(),
        priority,
        value: Box::new(value),
    }
}

fn age() -> Column {
    column("Age", "string", 0, |o| {
        json!(human_age(o["metadata"]["creationTimestamp"].as_str()))
    })
}

fn columns(rt: &ResourceType) -> Vec<Column> {
    if !rt.columns.is_empty() {
        return rt
            .columns
            .iter()
            .map(|c| {
                let path = c["jsonPath"].as_str().unwrap_or_default().to_string();
                let kind = c["type"].as_str().unwrap_or("string").to_string();
                let is_date = kind == "date";
                column(
                    c["name"].as_str().unwrap_or_default(),
                    &kind,
                    c["priority"].as_i64().unwrap_or(0),
                    move |o| {
                        let v = json_path(o, &path);
                        if is_date {
                            json!(human_age(v.as_str()))
                        } else {
                            render(v)
                        }
                    },
                )
            })
            .collect();
    }
    let int = |v: &Value| json!(v.as_i64().unwrap_or(0));
    match rt.kind.as_str() {
        "Deployment" => vec![
            column("Ready", "string", 0, |o| {
                json!(format!(
                    "{}/{}",
                    o["status"]["readyReplicas"].as_i64().unwrap_or(0),
                    o["spec"]["replicas"].as_i64().unwrap_or(0)
                ))
            }),
            column("Up-to-date", "integer", 0, move |o| {
                int(&o["status"]["updatedReplicas"])
            }),
            column("Available", "integer", 0, move |o| {
                int(&o["status"]["availableReplicas"])
            }),
            age(),
            column("Containers", "string", 1, |o| json!(containers(o, "name"))),
            column("Images", "string", 1, |o| json!(containers(o, "image"))),
        ],
        "DaemonSet" => vec![
            column("Desired", "integer", 0, move |o| {
                int(&o["status"]["desiredNumberScheduled"])
            }),
            column("Current", "integer", 0, move |o| {
                int(&o["status"]["currentNumberScheduled"])
            }),
            column("Ready", "integer", 0, move |o| {
                int(&o["status"]["numberReady"])
            }),
            column("Up-to-date", "integer", 0, move |o| {
                int(&o["status"]["updatedNumberScheduled"])
            }),
            column("Available", "integer", 0, move |o| {
                int(&o["status"]["numberAvailable"])
            }),
            age(),
        ],
        "Service" => vec![
            column("Type", "string", 0, |o| o["spec"]["type"].clone()),
            column("Cluster-IP", "string", 0, |o| {
                o["spec"]["clusterIP"].clone()
            }),
            column("External-IP", "string", 0, |_| json!("<none>")),
            column("Port(s)", "string", 0, |o| {
                let ports: Vec<String> = o["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
                    .collect();
                json!(ports.join(","))
            }),
            age(),
            column("Selector", "string", 1, |o| {
                json!(labels(&o["spec"]["selector"]))
            }),
        ],
        "Namespace" => vec![
            column("Status", "string", 0, |o| o["status"]["phase"].clone()),
            age(),
        ],
        "HorizontalPodAutoscaler" => vec![
            column("Reference", "string", 0, |o| {
                json!(format!(
                    "{}/{}",
                    o["spec"]["scaleTargetRef"]["kind"]
                        .as_str()
                        .unwrap_or_default(),
                    o["spec"]["scaleTargetRef"]["name"]
                        .as_str()
                        .unwrap_or_default()
                ))
            }),
            column("MinPods", "integer", 0, |o| {
                json!(o["spec"]["minReplicas"].as_i64().unwrap_or(1))
            }),
            column("MaxPods", "integer", 0, move |o| {
                int(&o["spec"]["maxReplicas"])
            }),
            column("Replicas", "integer", 0, move |o| {
                int(&o["status"]["currentReplicas"])
            }),
            age(),
        ],
        "Event" => vec![
            column("Last Seen", "string", 0, |o| {
                json!(human_age(
                    o["lastTimestamp"].as_str().or(o["eventTime"].as_str())
                ))
            }),
            column("Type", "string", 0, |o| o["type"].clone()),
            column("Reason", "string", 0, |o| o["reason"].clone()),
            column("Object", "string", 0, |o| {
                json!(format!(
                    "{}/{}",
                    o["involvedObject"]["kind"]
                        .as_str()
                        .unwrap_or_default()
                        .to_lowercase(),
                    o["involvedObject"]["name"].as_str().unwrap_or_default()
                ))
            }),
            column("Message", "string", 0, |o| o["message"].clone()),
        ],
        _ => vec![age()],
    }
}

fn containers(o: &Value, field: &str) -> String {
    let items = o["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    items
        .iter()
        .filter_map(|c| c[field].as_str().map(String::from))
        .collect::<Vec<_>>()
        .join(",")
}

fn labels(v: &Value) -> String {
    let map = v.as_object().cloned().unwrap_or_default();
    map.iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

fn render(v: Value) -> Value {
    match v {
        Value::Array(_) | Value::Object(_) => json!(v.to_string()),
        other => other,
    }
}

/// Evaluates a simple JSONPath (`.status.phase`, `.spec.analysis.stepWeights`).
pub fn json_path(obj: &Value, path: &str) -> Value {
    let mut v = obj;
    for seg in path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
    {
        v = match v.get(seg) {
            Some(x) => x,
            None => return Value::Null,
        };
    }
    v.clone()
}

/// Kubernetes' short age: `45s`, `3m12s`, `15m`, `2h30m`, `20h`, `3d`.
pub fn human_age(timestamp: Option<&str>) -> String {
    let Some(t) = timestamp.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) else {
        return "<unknown>".into();
    };
    let secs = (crate::api::wall_clock() - t.to_utc()).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
