//! Objects migrated from Flagger: the fields Flagger's client wrote (plain updates, field
//! manager `flagger`) become flaggerd's, so server-side apply removes those flaggerd no longer
//! sends (an env var dropped from the target leaves the primary), as kubectl's upgrade from
//! client-side to server-side apply does.
//!
//! flaggerd applies an object, and when the answer still lists an `Update` entry of Flagger's
//! manager, sends [`upgrade`]'s JSON patch (guarded by the resourceVersion) and applies again.
//! Objects flaggerd made never have such an entry, so it costs nothing after the first write.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Map, Value, json};

/// Server-side applies `obj` (forced, as `manager`); when the answer shows fields of
/// Flagger's still owned by its `Update` entries, moves them to `manager` ([`upgrade`]) and
/// applies again, so those no longer sent are removed. A failed move is logged and left to
/// the next write: the apply itself went through.
pub async fn apply(
    api: &Api<DynamicObject>,
    name: &str,
    obj: &Value,
    manager: &str,
) -> Result<DynamicObject, kube::Error> {
    let params = PatchParams::apply(manager).force();
    let written = match api.patch(name, &params, &Patch::Apply(obj)).await {
        Ok(w) => w,
        // The apply may be refused because of what Flagger's entry keeps: its owner reference
        // to a Canary of another uid beside flaggerd's makes two controllers. Move Flagger's
        // fields first, then apply again; any other refusal stands.
        Err(kube::Error::Api(e)) if e.code == 422 => {
            let current = api.get(name).await?;
            if !take_over(api, name, &current, manager).await {
                return Err(kube::Error::Api(e));
            }
            return api.patch(name, &params, &Patch::Apply(obj)).await;
        }
        Err(e) => return Err(e),
    };
    if !take_over(api, name, &written, manager).await {
        return Ok(written);
    }
    api.patch(name, &params, &Patch::Apply(obj)).await
}

/// Moves the fields of Flagger's `Update` entries of `current` to `manager`; true when it did.
async fn take_over(
    api: &Api<DynamicObject>,
    name: &str,
    current: &DynamicObject,
    manager: &str,
) -> bool {
    // What `upgrade` reads, not the whole object: this runs after every write.
    let meta = &current.metadata;
    let written = json!({
        "apiVersion": current.types.as_ref().map(|t| t.api_version.as_str()),
        "metadata": {"resourceVersion": meta.resource_version, "managedFields": meta.managed_fields},
    });
    let Some(patch) = upgrade(&written, manager)
        .and_then(|p| serde_json::from_value::<json_patch::Patch>(p).ok())
    else {
        return false;
    };
    match api
        .patch(
            name,
            &PatchParams {
                field_manager: Some(manager.into()),
                ..Default::default()
            },
            &Patch::<()>::Json(patch),
        )
        .await
    {
        Ok(_) => {
            tracing::info!(
                object = name,
                "took over the fields Flagger wrote (managed fields upgraded)"
            );
            true
        }
        Err(e) => {
            tracing::warn!(
                object = name,
                "cannot take over the fields Flagger wrote: {e}"
            );
            false
        }
    }
}

/// The field managers of Flagger's client (client-go names it after the binary).
pub const FLAGGER_MANAGERS: [&str; 1] = ["flagger"];

/// The JSON patch that moves the fields of Flagger's `Update` entries into `manager`'s
/// `Apply` entry of `written` (the object as the API server last returned it), or `None`
/// when there is nothing to move.
pub fn upgrade(written: &Value, manager: &str) -> Option<Value> {
    let entries = written["metadata"]["managedFields"].as_array()?;
    let legacy = |e: &Value| {
        e["operation"] == "Update"
            && e["subresource"].as_str().is_none_or(str::is_empty)
            && e["manager"]
                .as_str()
                .is_some_and(|m| FLAGGER_MANAGERS.contains(&m))
    };
    let ours = |e: &Value| e["operation"] == "Apply" && e["manager"] == manager;
    if !entries.iter().any(legacy) {
        return None;
    }
    let mut fields = Value::Object(Map::new());
    for e in entries.iter().filter(|e| legacy(e) || ours(e)) {
        union(&mut fields, &e["fieldsV1"]);
    }
    let time = entries
        .iter()
        .filter(|e| ours(e))
        .find_map(|e| e["time"].as_str())
        .unwrap_or_default();
    let mut kept: Vec<Value> = entries
        .iter()
        .filter(|e| !legacy(e) && !ours(e))
        .cloned()
        .collect();
    let mut entry = json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": written["apiVersion"],
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    });
    if !time.is_empty() {
        entry["time"] = json!(time);
    }
    kept.push(entry);
    Some(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": written["metadata"]["resourceVersion"]},
        {"op": "replace", "path": "/metadata/managedFields", "value": kept},
    ]))
}

/// Adds the field set `more` to `into` (both `fieldsV1` trees).
fn union(into: &mut Value, more: &Value) {
    let (Some(into), Some(more)) = (into.as_object_mut(), more.as_object()) else {
        return;
    };
    for (key, sub) in more {
        union(into.entry(key.clone()).or_insert_with(|| json!({})), sub);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flaggers_update_entry_becomes_part_of_flaggerds_apply_entry() {
        let written = json!({
        "apiVersion": "apps/v1",
        "metadata": {"resourceVersion": "42", "managedFields": [
            {"manager": "flagger", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {"f:env": {}}}}}}}},
            {"manager": "flagger", "operation": "Update", "subresource": "status", "fieldsV1": {"f:status": {}}},
            {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:metadata": {}}},
            {"manager": "flaggerd", "operation": "Apply", "apiVersion": "apps/v1", "time": "t1",
             "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {"f:image": {}}}}}}}},
        ]}});
        let patch = upgrade(&written, "flaggerd").expect("a patch");
        assert_eq!(
            patch[0],
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": "42"})
        );
        let entries = patch[1]["value"].as_array().expect("entries");
        let managers: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| {
                (
                    e["manager"].as_str().unwrap_or(""),
                    e["operation"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            managers,
            [
                ("flagger", "Update"),
                ("kube-controller-manager", "Update"),
                ("flaggerd", "Apply")
            ],
            "the status entry and other managers stay"
        );
        assert_eq!(
            entries[2]["fieldsV1"],
            json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {"f:env": {}, "f:image": {}}}}}}})
        );
        assert_eq!(entries[2]["time"], "t1");
        // Nothing of Flagger's left: no patch.
        let done = json!({"metadata": {"managedFields": [entries[1].clone(), entries[2].clone()]}});
        assert_eq!(upgrade(&done, "flaggerd"), None);
    }
}
