//! Patches: JSON merge (RFC 7386), JSON patch (RFC 6902) and Kubernetes' strategic merge
//! patch for the built-in kinds (lists merged by their keys, kubectl's `$patch`,
//! `$setElementOrder`, `$retainKeys` and `$deleteFromPrimitiveList` directives).

use serde_json::{Map, Value};

/// A patch that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The body is not a valid patch.
    #[error("invalid patch: {0}")]
    Invalid(String),
}

/// RFC 7386 JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902 JSON patch.
pub fn json(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| PatchError::Invalid(e.to_string()))?;
    json_patch::patch(target, &ops).map_err(|e| PatchError::Invalid(e.to_string()))
}

/// The merge key of a list field of the built-in kinds, as their Go types declare it.
pub fn merge_key(field: &str, sample: Option<&Value>) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        // Container ports merge on containerPort, Service ports on port.
        "ports" => match sample {
            Some(v) if v.get("containerPort").is_some() => "containerPort",
            _ => "port",
        },
        _ => return None,
    })
}

/// Lists of scalars that merge as sets.
fn is_primitive_merge_list(field: &str) -> bool {
    field == "finalizers"
}

/// Kubernetes strategic merge patch.
pub fn strategic(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    *target = smp_value(target.clone(), patch, "")?;
    Ok(())
}

fn smp_value(target: Value, patch: &Value, field: &str) -> Result<Value, PatchError> {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => smp_object(t, p).map(Value::Object),
        (Value::Array(t), Value::Array(p)) => smp_list(t, p, field),
        (_, p) => Ok(strip_directives(p.clone())),
    }
}

fn smp_object(
    mut target: Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Map<String, Value>, PatchError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut p = patch.clone();
            p.remove("$patch");
            return match strip_directives(Value::Object(p)) {
                Value::Object(m) => Ok(m),
                _ => Ok(Map::new()),
            };
        }
        Some("delete") => return Ok(Map::new()),
        _ => {}
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        target.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (key, value) in patch {
        if key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(remove)) =
                (target.get_mut(field), value)
            {
                items.retain(|i| !remove.contains(i));
            }
            continue;
        }
        if value.is_null() {
            target.remove(key);
            continue;
        }
        let merged = match target.remove(key) {
            Some(existing) => smp_value(existing, value, key)?,
            None => strip_directives(value.clone()),
        };
        target.insert(key.clone(), merged);
    }
    for (key, order) in patch {
        if let (Some(field), Value::Array(order)) = (key.strip_prefix("$setElementOrder/"), order)
            && let Some(Value::Array(items)) = target.get_mut(field)
        {
            reorder(items, order, field);
        }
    }
    Ok(target)
}

fn smp_list(mut target: Vec<Value>, patch: &[Value], field: &str) -> Result<Value, PatchError> {
    if is_primitive_merge_list(field) {
        for p in patch {
            if !target.contains(p) {
                target.push(p.clone());
            }
        }
        return Ok(Value::Array(target));
    }
    let sample = patch.first().or(target.first());
    let Some(key) = merge_key(field, sample) else {
        return Ok(Value::Array(
            patch.iter().cloned().map(strip_directives).collect(),
        ));
    };
    if patch
        .iter()
        .any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        let items = patch
            .iter()
            .filter(|p| p.get("$patch").is_none())
            .cloned()
            .map(strip_directives);
        return Ok(Value::Array(items.collect()));
    }
    for p in patch {
        let id = p.get(key).cloned();
        let pos = id
            .as_ref()
            .and_then(|id| target.iter().position(|t| t.get(key) == Some(id)));
        let delete = p.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                target.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                let existing = std::mem::take(&mut target[i]);
                target[i] = smp_value(existing, p, "")?;
            }
            (None, false) => target.push(strip_directives(p.clone())),
        }
    }
    Ok(Value::Array(target))
}

fn reorder(items: &mut Vec<Value>, order: &[Value], field: &str) {
    let Some(key) = merge_key(field, items.first()) else {
        return;
    };
    let mut ordered = Vec::with_capacity(items.len());
    for o in order {
        if let Some(i) = items.iter().position(|t| t.get(key) == o.get(key)) {
            ordered.push(items.remove(i));
        }
    }
    ordered.append(items);
    *items = ordered;
}

fn strip_directives(value: Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k, strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_directives).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_image_changes_one_container_and_keeps_the_rest() {
        let mut deploy = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "podinfod", "image": "podinfo:6.0.0", "ports": [{"containerPort": 9898, "name": "http"}]},
            {"name": "sidecar", "image": "envoy:1"}
        ]}}}});
        // What `kubectl set image deployment/podinfo podinfod=podinfo:6.0.1` sends.
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"image": "podinfo:6.0.1", "name": "podinfod"}]}}}});
        strategic(&mut deploy, &patch).expect("patch");
        let c = &deploy["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["image"], "podinfo:6.0.1");
        assert_eq!(c[0]["ports"][0]["containerPort"], 9898);
        assert_eq!(c[1]["image"], "envoy:1");
    }

    #[test]
    fn directives_delete_replace_and_order() {
        let mut obj = json!({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "metadata": {"finalizers": ["x"]}});
        let patch = json!({
            "env": [{"name": "A", "$patch": "delete"}, {"name": "C", "value": "3"}],
            "$setElementOrder/env": [{"name": "C"}, {"name": "B"}],
            "metadata": {"finalizers": ["y"], "$deleteFromPrimitiveList/finalizers": ["x"]}
        });
        strategic(&mut obj, &patch).expect("patch");
        assert_eq!(
            obj["env"],
            json!([{"name": "C", "value": "3"}, {"name": "B", "value": "2"}])
        );
        assert_eq!(obj["metadata"]["finalizers"], json!(["y"]));
    }

    #[test]
    fn lists_without_a_merge_key_are_replaced() {
        let mut obj = json!({"args": ["a", "b"]});
        strategic(&mut obj, &json!({"args": ["c"]})).expect("patch");
        assert_eq!(obj["args"], json!(["c"]));
    }
}
