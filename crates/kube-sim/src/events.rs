//! core/v1 and events.k8s.io/v1 Events are one object in Kubernetes, shown in two forms.
//! kube-sim stores the core/v1 form and converts for the events.k8s.io API.

use serde_json::{Value, json};

/// events.k8s.io/v1 to core/v1, as Kubernetes converts: the `deprecated*` fields become
/// `count`, `firstTimestamp`, `lastTimestamp` and `source` (absent when they are), and a
/// series stays a series (core/v1 has one too) rather than becoming a count.
pub fn from_events_v1(e: &Value) -> Value {
    if e.get("involvedObject").is_some() || e["apiVersion"] == "v1" {
        return e.clone();
    }
    let mut out = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": e["metadata"],
        "involvedObject": e["regarding"],
        "reason": e["reason"],
        "message": e["note"],
        "type": e["type"],
        "count": e["deprecatedCount"],
        "firstTimestamp": e["deprecatedFirstTimestamp"],
        "lastTimestamp": e["deprecatedLastTimestamp"],
        "series": e["series"],
        "eventTime": e["eventTime"],
        "reportingComponent": e["reportingController"],
        "reportingInstance": e["reportingInstance"],
        "source": e["deprecatedSource"],
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
        "series": e["series"],
        "deprecatedSource": e["source"],
        "deprecatedCount": e["count"],
        "deprecatedFirstTimestamp": e["firstTimestamp"],
        "deprecatedLastTimestamp": e["lastTimestamp"],
    });
    if let Some(m) = out.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    out
}
