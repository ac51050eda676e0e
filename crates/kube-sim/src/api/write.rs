//! Replacing and patching objects: preconditions, immutable metadata, finalizers of a
//! terminating object, field ownership, the status subresource and generations.

use serde_json::{Value, json};

use super::*;

impl Cluster {
    /// Replaces an object (PUT), or its status.
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        body: Value,
        target: Target,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let body = if rt.group == "events.k8s.io" {
            events::from_events_v1(&body)
        } else {
            body
        };
        let rv = body["metadata"]["resourceVersion"]
            .as_str()
            .map(String::from);
        let to = WriteTo {
            rt,
            ns,
            name,
            target,
            manager,
        };
        self.write(&to, rv, WriteKind::Update, |_| Ok(body))
    }

    /// Patches an object (or its status); server-side apply creates a missing one.
    pub fn patch(&self, to: &WriteTo<'_>, kind: PatchKind, body: Value) -> Result<Value, ApiError> {
        let WriteTo {
            rt,
            ns,
            name,
            manager,
            ..
        } = *to;
        if kind == PatchKind::Strategic
            && !crate::registry::builtins()
                .iter()
                .any(|b| b.storage == rt.storage)
        {
            return Err(ApiError { code: 415, reason: "UnsupportedMediaType", message: "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(), details: json!({}) });
        }
        if let PatchKind::Apply { .. } = kind
            && self.get(rt, ns, name).is_err()
        {
            let mut config = body.clone();
            config["metadata"]["name"] = json!(name);
            let mut store = self.lock();
            let mut obj = self.prepare_create(&store, rt, ns, config.clone(), manager)?;
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
            let obj = ssa::apply(&obj, &config, manager, true, &now())
                .map_err(|c| conflict(rt, name, &c))?;
            let stored = store.put(Self::key(rt, ns, name), obj, ChangeType::Added);
            drop(store);
            self.after_write(rt, &stored);
            return Ok(self.present(rt, stored));
        }
        let precondition = body["metadata"]["resourceVersion"]
            .as_str()
            .map(String::from);
        let kind_of_write = if matches!(kind, PatchKind::Apply { .. }) {
            WriteKind::Apply
        } else {
            WriteKind::Update
        };
        self.write(to, precondition, kind_of_write, |stored| {
            // An events.k8s.io patch applies to that API's form of the stored core event.
            let events_v1 = rt.group == "events.k8s.io";
            let converted;
            let current = if events_v1 {
                converted = events::to_events_v1(stored);
                &converted
            } else {
                stored
            };
            let mut next = current.clone();
            match kind {
                PatchKind::Merge => patch::merge(&mut next, &body),
                PatchKind::Json => patch::json(&mut next, &body).map_err(|e| ApiError {
                    code: 422,
                    reason: "Invalid",
                    message: e.to_string(),
                    details: json!({}),
                })?,
                PatchKind::Strategic => patch::strategic(&mut next, &body)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?,
                PatchKind::Apply { force } => {
                    next = ssa::apply(current, &body, manager, force, &now())
                        .map_err(|c| conflict(rt, name, &c))?;
                }
            }
            Ok(if events_v1 {
                events::from_events_v1(&next)
            } else {
                next
            })
        })
    }

    pub(super) fn write(
        &self,
        to: &WriteTo<'_>,
        precondition: Option<String>,
        kind_of_write: WriteKind,
        change: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let WriteTo {
            rt,
            ns,
            name,
            target,
            manager,
        } = *to;
        let mut store = self.lock();
        let key = Self::key(rt, ns, name);
        let current = store
            .get(&key)
            .cloned()
            .ok_or_else(|| not_found(rt, name))?;
        let current_rv = current["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(rv) = precondition.filter(|rv| !rv.is_empty())
            && rv != current_rv
        {
            return Err(ApiError {
                code: 409,
                reason: "Conflict",
                message: format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    qualified(rt)
                ),
                details: json!({"name": name, "group": rt.group, "kind": rt.plural}),
            });
        }
        let proposed = change(&current)?;
        if !proposed.is_object() {
            return Err(ApiError::bad_request(
                "the result of the request is not a JSON object",
            ));
        }
        let mut next = match target {
            Target::Status => {
                let mut n = current.clone();
                n["status"] = proposed.get("status").cloned().unwrap_or(Value::Null);
                n
            }
            Target::Main => {
                let mut n = proposed;
                if rt.status {
                    match current.get("status") {
                        Some(s) => n["status"] = s.clone(),
                        None => {
                            if let Some(m) = n.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                n
            }
        };
        one_controller(rt, name, &next)?;
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
            "namespace",
            "name",
        ] {
            match current["metadata"].get(field) {
                Some(v) => next["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = next["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        next["apiVersion"] = current["apiVersion"].clone();
        next["kind"] = current["kind"].clone();
        if current["metadata"]["deletionTimestamp"].is_string() {
            // A terminating object may only lose finalizers, not gain new ones.
            let old: Vec<Value> = current["metadata"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let new: Vec<Value> = next["metadata"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if new.iter().any(|f| !old.contains(f)) {
                return Err(ApiError {
                    code: 422,
                    reason: "Invalid",
                    message: format!(
                        "{} \"{name}\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
                        rt.kind
                    ),
                    details: json!({}),
                });
            }
        }
        if let Some(message) = crate::defaults::undecodable(rt, &next) {
            return Err(ApiError::bad_request(message));
        }
        crate::defaults::apply(rt, &mut next);
        if spec_changed(&current, &next) {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            next["metadata"]["generation"] = json!(generation);
        }
        let sets_managed = next["metadata"]["managedFields"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
            && next["metadata"]["managedFields"] != current["metadata"]["managedFields"];
        if sets_managed && !matches!(kind_of_write, WriteKind::Apply) {
            // A request that rewrites managedFields itself (as kubectl's upgrade from
            // client-side apply does) is taken as it is, as the API server takes it.
        } else if !matches!(kind_of_write, WriteKind::Apply) {
            // Ordinary writes keep the field ownership and record what they changed.
            match current["metadata"].get("managedFields") {
                Some(m) => next["metadata"]["managedFields"] = m.clone(),
                None => {
                    if let Some(meta) = next["metadata"].as_object_mut() {
                        meta.remove("managedFields");
                    }
                }
            }
            ssa::record_update(&current, &mut next, manager, &now());
        }
        next["metadata"]["resourceVersion"] = json!(current_rv);
        if next == current {
            return Ok(self.present(rt, current));
        }
        let finalized = next["metadata"]["deletionTimestamp"].is_string()
            && next["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty);
        if finalized {
            let removed = store.remove(&key).unwrap_or(next);
            drop(store);
            self.collect_garbage();
            return Ok(self.present(rt, removed));
        }
        let stored = store.put(key, next, ChangeType::Modified);
        drop(store);
        self.after_write(rt, &stored);
        Ok(self.present(rt, stored))
    }
}

pub(super) fn conflict(rt: &ResourceType, name: &str, conflicts: &[ssa::Conflict]) -> ApiError {
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| format!("conflict with \"{}\": {}", c.manager, c.field))
        .collect();
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\"", c.manager), "field": c.field}))
        .collect();
    let plural = if conflicts.len() == 1 { "" } else { "s" };
    ApiError {
        code: 409,
        reason: "Conflict",
        message: format!(
            "Apply failed with {} conflict{plural}: {}",
            conflicts.len(),
            lines.join("\n")
        ),
        details: json!({"name": name, "group": rt.group, "kind": rt.plural, "causes": causes}),
    }
}

/// The API server's rule that at most one owner reference is the controller.
pub(super) fn one_controller(rt: &ResourceType, name: &str, obj: &Value) -> Result<(), ApiError> {
    let controllers: Vec<String> = obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["controller"] == true)
        .map(|r| {
            format!(
                "{}/{}",
                r["kind"].as_str().unwrap_or_default(),
                r["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    if controllers.len() < 2 {
        return Ok(());
    }
    Err(ApiError {
        code: 422,
        reason: "Invalid",
        message: format!(
            "{} \"{name}\" is invalid: metadata.ownerReferences: Invalid value: []v1.OwnerReference{{...}}: Only one reference can have Controller set to true. Found \"true\" in references for {}",
            rt.kind,
            controllers.join(" and ")
        ),
        details: json!({"kind": rt.kind, "name": name}),
    })
}
