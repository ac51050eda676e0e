//! Server-side apply: field ownership per manager (`metadata.managedFields`), conflicts
//! between managers, and removal of fields a manager stops applying.
//!
//! Fields are tracked at their leaves; list items of keyed lists are addressed by their
//! merge key (`k:{"name":"podinfod"}`), other lists are atomic, as in Kubernetes.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::patch::merge_key;

/// A path to a field: `f:spec`, `f:containers`, `k:{"name":"app"}`, `f:image`.
pub type FieldPath = Vec<String>;

/// Fields that belong to the object's identity, never owned.
const IDENTITY: [&str; 4] = ["apiVersion", "kind", "status", "metadata"];

/// The leaves of an object, as field paths.
pub fn leaves(object: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    if let Value::Object(map) = object {
        for (k, v) in map {
            if IDENTITY.contains(&k.as_str()) {
                continue;
            }
            walk(v, k, vec![format!("f:{k}")], &mut out);
        }
        if let Some(meta) = map.get("metadata") {
            // Owner references: a list keyed by uid, as the API server tracks it.
            if let Some(refs) = meta.get("ownerReferences") {
                let path = vec!["f:metadata".into(), "f:ownerReferences".into()];
                walk(refs, "ownerReferences", path, &mut out);
            }
            for k in ["labels", "annotations"] {
                if let Some(Value::Object(m)) = meta.get(k) {
                    for name in m.keys() {
                        out.insert(vec![
                            "f:metadata".into(),
                            format!("f:{k}"),
                            format!("f:{name}"),
                        ]);
                    }
                }
            }
        }
    }
    out
}

fn walk(v: &Value, field: &str, path: FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let mut p = path.clone();
                p.push(format!("f:{k}"));
                walk(child, k, p, out);
            }
        }
        Value::Array(items) if !items.is_empty() => match merge_key(field, items.first()) {
            Some(key) if items.iter().all(|i| i.get(key).is_some()) => {
                for item in items {
                    let mut p = path.clone();
                    p.push(format!("k:{}", json!({ key: item[key] })));
                    p.push(".".into());
                    out.insert(p.clone());
                    p.pop();
                    walk_item(item, p, out);
                }
            }
            _ => {
                out.insert(path);
            }
        },
        _ => {
            out.insert(path);
        }
    }
}

fn walk_item(item: &Value, path: FieldPath, out: &mut BTreeSet<FieldPath>) {
    if let Value::Object(m) = item {
        for (k, child) in m {
            let mut p = path.clone();
            p.push(format!("f:{k}"));
            walk(child, k, p, out);
        }
    }
}

/// The value at a field path, if any.
pub fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut v = object;
    for seg in path {
        if seg == "." {
            continue;
        }
        if let Some(f) = seg.strip_prefix("f:") {
            v = v.get(f)?;
        } else if let Some(k) = seg.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).ok()?;
            v = v
                .as_array()?
                .iter()
                .find(|item| key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))?;
        } else {
            return None;
        }
    }
    Some(v)
}

/// Removes the field at a path (and a keyed list item when the path ends with `.`).
pub fn remove_at(object: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    if last == "." {
        let Some((item, list_path)) = parent.split_last() else {
            return;
        };
        if let (Some(k), Some(Value::Array(items))) =
            (item.strip_prefix("k:"), value_at_mut(object, list_path))
            && let Ok(key) = serde_json::from_str::<Map<String, Value>>(k)
        {
            items.retain(|i| !key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)));
        }
        return;
    }
    if let (Some(f), Some(Value::Object(m))) =
        (last.strip_prefix("f:"), value_at_mut(object, parent))
    {
        m.remove(f);
    }
}

fn value_at_mut<'a>(object: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut v = object;
    for seg in path {
        if let Some(f) = seg.strip_prefix("f:") {
            v = v.get_mut(f)?;
        } else if let Some(k) = seg.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).ok()?;
            v = v
                .as_array_mut()?
                .iter_mut()
                .find(|item| key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))?;
        }
    }
    Some(v)
}

/// One entry of `metadata.managedFields`, decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Managed {
    /// Manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// Owned leaves.
    pub fields: BTreeSet<FieldPath>,
    /// API version of the entry.
    pub api_version: String,
    /// Time of the last change.
    pub time: String,
}

/// Reads `metadata.managedFields`.
pub fn read(object: &Value) -> Vec<Managed> {
    let entries = object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    entries
        .iter()
        .map(|e| {
            let mut fields = BTreeSet::new();
            decode(&e["fieldsV1"], Vec::new(), &mut fields);
            Managed {
                manager: e["manager"].as_str().unwrap_or_default().into(),
                operation: e["operation"].as_str().unwrap_or("Update").into(),
                fields,
                api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
                time: e["time"].as_str().unwrap_or_default().into(),
            }
        })
        .collect()
}

/// Writes `metadata.managedFields`, dropping managers that own nothing.
pub fn write(object: &mut Value, managers: &[Managed]) {
    let entries: Vec<Value> = managers
        .iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            json!({
                "manager": m.manager, "operation": m.operation, "apiVersion": m.api_version,
                "time": m.time, "fieldsType": "FieldsV1", "fieldsV1": encode(&m.fields),
            })
        })
        .collect();
    if entries.is_empty() {
        if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("managedFields");
        }
    } else {
        object["metadata"]["managedFields"] = Value::Array(entries);
    }
}

fn encode(fields: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut node = &mut root;
        for seg in path {
            let child = node.entry(seg.clone()).or_insert_with(|| json!({}));
            match child.as_object_mut() {
                Some(m) => node = m,
                None => break,
            }
        }
    }
    Value::Object(root)
}

fn decode(node: &Value, path: FieldPath, out: &mut BTreeSet<FieldPath>) {
    let Some(map) = node.as_object() else { return };
    if map.is_empty() && !path.is_empty() {
        out.insert(path);
        return;
    }
    for (k, v) in map {
        let mut p = path.clone();
        p.push(k.clone());
        decode(v, p, out);
    }
}

/// A field two managers both want.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// The field, e.g. `.spec.replicas`.
    pub field: String,
}

/// Renders a path as `.spec.template.spec.containers[name="podinfod"].image`.
pub fn dotted(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if let Some(f) = seg.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = seg.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(kk, kv)| format!("{kk}={kv}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        }
    }
    out
}

/// Applies `config` for `manager` to `object` (the live object, or an empty one).
///
/// Without `force`, a field the config sets to another value than the live one, owned by
/// another manager, is a conflict. Fields the manager applied before and no longer applies
/// are removed unless another manager owns them.
pub fn apply(
    object: &Value,
    config: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
    let mut managers = read(object);
    let applied = leaves(config);
    let mut conflicts = Vec::new();
    for path in &applied {
        let same = value_at(object, path) == value_at(config, path);
        if same {
            continue;
        }
        for m in managers
            .iter()
            .filter(|m| m.manager != manager && m.fields.contains(path))
        {
            conflicts.push(Conflict {
                manager: m.manager.clone(),
                field: dotted(path),
            });
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let mut result = object.clone();
    let previous: BTreeSet<FieldPath> = managers
        .iter()
        .filter(|m| m.manager == manager && m.operation == "Apply")
        .flat_map(|m| m.fields.iter().cloned())
        .collect();
    for path in previous.difference(&applied) {
        let owned_elsewhere = managers
            .iter()
            .any(|m| m.manager != manager && m.fields.contains(path));
        if !owned_elsewhere {
            remove_at(&mut result, path);
        }
    }
    let mut body = config.clone();
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
    }
    crate::patch::strategic(&mut result, &body).map_err(|_| Vec::new())?;
    for m in managers.iter_mut().filter(|m| m.manager != manager) {
        m.fields.retain(|f| !applied.contains(f));
    }
    // A no-op apply changes nothing, not even the time of the entry, so the object keeps its
    // resourceVersion (as on a real API server).
    let unchanged = strip_managed(&result) == strip_managed(object)
        && managers
            .iter()
            .any(|m| m.manager == manager && m.operation == "Apply" && m.fields == applied);
    if unchanged && conflicts.is_empty() {
        return Ok(object.clone());
    }
    managers.retain(|m| !(m.manager == manager && m.operation == "Apply"));
    managers.push(Managed {
        manager: manager.into(),
        operation: "Apply".into(),
        fields: applied,
        api_version: config["apiVersion"].as_str().unwrap_or_default().into(),
        time: now.into(),
    });
    write(&mut result, &managers);
    Ok(result)
}

fn strip_managed(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    v
}

/// Records an ordinary write (`Update` operation) by `manager`: the leaves whose values
/// changed become its own.
pub fn record_update(before: &Value, after: &mut Value, manager: &str, now: &str) {
    let mut managers = read(before);
    let changed: BTreeSet<FieldPath> = leaves(after)
        .into_iter()
        .filter(|p| value_at(before, p) != value_at(after, p))
        .collect();
    if changed.is_empty() {
        write(after, &managers);
        return;
    }
    for m in managers.iter_mut() {
        m.fields.retain(|f| !changed.contains(f));
    }
    match managers
        .iter_mut()
        .find(|m| m.manager == manager && m.operation == "Update")
    {
        Some(m) => {
            m.fields.extend(changed);
            m.time = now.into();
        }
        None => managers.push(Managed {
            manager: manager.into(),
            operation: "Update".into(),
            fields: changed,
            api_version: after["apiVersion"].as_str().unwrap_or_default().into(),
            time: now.into(),
        }),
    }
    write(after, &managers);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_managers_conflict_on_a_field_and_force_takes_it() {
        let live = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}, "spec": {"replicas": 1}});
        let a = apply(
            &live,
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 2}}),
            "alice",
            false,
            "t",
        )
        .expect("first apply");
        let bob = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 3}});
        let err = apply(&a, &bob, "bob", false, "t").expect_err("conflict");
        assert_eq!(
            err,
            vec![Conflict {
                manager: "alice".into(),
                field: ".spec.replicas".into()
            }]
        );
        let forced = apply(&a, &bob, "bob", true, "t").expect("force");
        assert_eq!(forced["spec"]["replicas"], 3);
        let owners: Vec<String> = read(&forced).into_iter().map(|m| m.manager).collect();
        assert_eq!(owners, ["bob"]);
    }

    #[test]
    fn fields_no_longer_applied_are_removed_but_others_survive() {
        let live = json!({"metadata": {"name": "vs"}, "spec": {"hosts": ["a"]}});
        let mut v = apply(
            &live,
            &json!({"spec": {"hosts": ["a"], "gateways": ["mesh"]}}),
            "flaggerd",
            false,
            "t",
        )
        .expect("apply");
        let before = v.clone();
        v["spec"]["user"] = json!("keep me");
        record_update(&before, &mut v, "kubectl", "t");
        let v = apply(
            &v,
            &json!({"spec": {"hosts": ["a"]}}),
            "flaggerd",
            false,
            "t",
        )
        .expect("apply");
        assert!(v["spec"].get("gateways").is_none());
        assert_eq!(v["spec"]["user"], "keep me");
    }

    #[test]
    fn a_repeated_apply_changes_nothing() {
        let config = json!({"spec": {"hosts": ["a"]}});
        let once = apply(
            &json!({"metadata": {"name": "vs"}}),
            &config,
            "flaggerd",
            false,
            "t1",
        )
        .expect("apply");
        let twice = apply(&once, &config, "flaggerd", false, "t2").expect("apply");
        assert_eq!(once, twice);
    }

    #[test]
    fn owner_references_are_owned_by_uid_and_dropped_when_no_longer_applied() {
        let owner = |uid: &str| json!({"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo", "uid": uid, "controller": true});
        let config = |uid: &str| json!({"metadata": {"name": "vs", "ownerReferences": [owner(uid)]}, "spec": {"hosts": ["a"]}});
        let first = apply(
            &json!({"metadata": {"name": "vs"}}),
            &config("u1"),
            "flaggerd",
            true,
            "t",
        )
        .expect("apply");
        let second = apply(&first, &config("u2"), "flaggerd", true, "t").expect("apply");
        assert_eq!(second["metadata"]["ownerReferences"], json!([owner("u2")]));
    }

    #[test]
    fn keyed_list_items_are_owned_by_key() {
        let l = leaves(&json!({"spec": {"containers": [{"name": "app", "image": "x"}]}}));
        assert!(l.contains(&vec![
            "f:spec".to_string(),
            "f:containers".into(),
            "k:{\"name\":\"app\"}".into(),
            "f:image".into()
        ]));
    }
}
