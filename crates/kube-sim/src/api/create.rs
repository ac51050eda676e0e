//! Creating objects: names, namespaces, uids, defaults and the CRD status.

use serde_json::{Value, json};

use super::*;

impl Cluster {
    /// Creates an object.
    pub fn create(
        &self,
        rt: &ResourceType,
        ns: &str,
        body: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let mut store = self.lock();
        let obj = self.prepare_create(&store, rt, ns, body, manager)?;
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let stored = store.put(Self::key(rt, ns, &name), obj, ChangeType::Added);
        drop(store);
        self.after_write(rt, &stored);
        Ok(self.present(rt, stored))
    }

    pub(super) fn prepare_create(
        &self,
        store: &Store,
        rt: &ResourceType,
        ns: &str,
        body: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let mut obj = if rt.group == "events.k8s.io" {
            events::from_events_v1(&body)
        } else {
            body
        };
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request was not a JSON object",
            ));
        }
        if let Some(kind) = obj.get("kind").and_then(Value::as_str)
            && kind != rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind {kind:?} does not match the resource {}",
                qualified(rt)
            )));
        }
        let mut name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            let Some(prefix) = obj["metadata"]["generateName"].as_str() else {
                return Err(ApiError {
                    code: 422,
                    reason: "Invalid",
                    message: format!(
                        "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                        rt.kind
                    ),
                    details: json!({"kind": rt.kind}),
                });
            };
            name = format!(
                "{prefix}{:05x}",
                self.uids.fetch_add(1, Ordering::Relaxed) * 7919 % 0xfffff
            );
        }
        if rt.namespaced {
            if let Some(body_ns) = obj["metadata"]["namespace"].as_str()
                && !body_ns.is_empty()
                && body_ns != ns
            {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            let ns_key = ("/namespaces".to_string(), String::new(), ns.to_string());
            match store.get(&ns_key) {
                None => {
                    return Err(ApiError {
                        code: 404,
                        reason: "NotFound",
                        message: format!("namespaces \"{ns}\" not found"),
                        details: json!({"name": ns, "kind": "namespaces"}),
                    });
                }
                Some(n) if n["metadata"]["deletionTimestamp"].is_string() => {
                    return Err(ApiError {
                        code: 403,
                        reason: "Forbidden",
                        message: format!(
                            "unable to create new content in namespace {ns} because it is being terminated"
                        ),
                        details: json!({}),
                    });
                }
                _ => {}
            }
        }
        if store.get(&Self::key(rt, ns, &name)).is_some() {
            return Err(ApiError {
                code: 409,
                reason: "AlreadyExists",
                message: format!("{} \"{name}\" already exists", qualified(rt)),
                details: json!({"name": name, "group": rt.group, "kind": rt.plural}),
            });
        }
        let uid = self.uids.fetch_add(1, Ordering::Relaxed);
        let meta = obj["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        meta.insert("name".into(), json!(name));
        if rt.namespaced {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        meta.insert(
            "uid".into(),
            json!(format!("6b1c0000-0000-4000-8000-{uid:012x}")),
        );
        meta.insert("creationTimestamp".into(), json!(now()));
        meta.insert("generation".into(), json!(1));
        meta.remove("deletionTimestamp");
        meta.remove("managedFields");
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        if rt.status
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        if let Some(message) = crate::defaults::undecodable(rt, &obj) {
            return Err(ApiError::bad_request(message));
        }
        crate::defaults::apply(rt, &mut obj);
        one_controller(rt, &name, &obj)?;
        let before = json!({});
        ssa::record_update(&before, &mut obj, manager, &now());
        if rt.kind == "CustomResourceDefinition" {
            let accepted = obj["spec"]["names"].clone();
            obj["status"] = json!({"acceptedNames": accepted, "storedVersions": [obj["spec"]["versions"][0]["name"]],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now()},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now()}
            ]});
        }
        Ok(obj)
    }
}
