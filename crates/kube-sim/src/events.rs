//! core/v1 and events.k8s.io/v1 Events are one object in Kubernetes, shown in two forms.
//! kube-sim stores the core/v1 form and converts for the events.k8s.io API.

use serde_json::{Value, json};

/// events.k8s.io/v1 to core/v1.
pub fn from_events_v1(e: &Value) -> Value {
    if e.get("involvedObject").is_some() || e["apiVersion"] == "v1" {
        return e.clone();
    }
    let series = &e["series"];
    let count = series["count"]
        .as_i64()
        .or_else(|| e["deprecatedCount"].as_i64())
        .unwrap_or(1);
    let first = e["deprecatedFirstTimestamp"].clone();
    let last = if series["lastObservedTime"].is_string() {
        series["lastObservedTime"].clone()
    } else {
        e["deprecatedLastTimestamp"].clone()
    };
    let event_time = e["eventTime"].clone();
    let ts = |v: &Value| {
        if v.is_string() {
            v.clone()
        } else {
            event_time.clone()
        }
    };
    let mut out = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": e["metadata"],
        "involvedObject": e["regarding"],
        "reason": e["reason"],
        "message": e["note"],
        "type": e["type"],
        "count": count,
        "firstTimestamp": ts(&first),
        "lastTimestamp": ts(&last),
        "eventTime": event_time,
        "reportingComponent": e["reportingController"],
        "reportingInstance": e["reportingInstance"],
        "source": {"component": e["reportingController"]},
        "action": e["action"],
        "related": e["related"],
    });
    if let Some(m) = out.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    out
}

/// core/v1 to events.k8s.io/v1.
pub fn to_events_v1(e: &Value) -> Value {
    let mut out = json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": e["metadata"],
        "regarding": e["involvedObject"],
        "reason": e["reason"],
        "note": e["message"],
        "type": e["type"],
        "eventTime": e["eventTime"],
        "reportingController": e.get("reportingComponent").cloned().unwrap_or_else(|| e["source"]["component"].clone()),
        "reportingInstance": e["reportingInstance"],
        "action": e["action"],
        "related": e["related"],
        "deprecatedCount": e["count"],
        "deprecatedFirstTimestamp": e["firstTimestamp"],
        "deprecatedLastTimestamp": e["lastTimestamp"],
    });
    if e["count"].as_i64().unwrap_or(1) > 1 {
        out["series"] = json!({"count": e["count"], "lastObservedTime": e["lastTimestamp"]});
    }
    if let Some(m) = out.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    out
}
