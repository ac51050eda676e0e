//! The API semantics over the store: create, read, update, patch, server-side apply and
//! delete, with resourceVersion preconditions, generation, the status subresource,
//! finalizers, garbage collection of owned objects, defaulting and CRD registration.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceType, from_crd};
use crate::ssa;
use crate::store::{ChangeType, Key, Store};
use crate::{events, patch};

/// An API error, answered as a `Status` object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP code.
    pub code: u16,
    /// `reason` of the Status (`NotFound`, `AlreadyExists`, `Conflict`...).
    pub reason: &'static str,
    /// Human-readable message, as the real API server words it.
    pub message: String,
    /// `details` of the Status.
    pub details: Value,
}

impl ApiError {
    /// A 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: json!({}),
        }
    }

    /// The `Status` body.
    pub fn status(&self) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "details": self.details, "code": self.code,
        })
    }
}

/// The kind of write, for `managedFields` and the status subresource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The object itself: status changes are ignored when the type has a status subresource.
    Main,
    /// The `/status` subresource: only status changes are kept.
    Status,
}

/// How a patch body is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json` (built-in kinds only).
    Strategic,
    /// `application/apply-patch+yaml`: server-side apply.
    Apply {
        /// Take fields owned by other managers.
        force: bool,
    },
}

/// Whether a write is a server-side apply (which computes field ownership itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteKind {
    Update,
    Apply,
}

/// The cluster: served types and objects.
pub struct Cluster {
    /// Served types.
    pub registry: RwLock<Registry>,
    /// Objects.
    pub store: Mutex<Store>,
    uids: AtomicU64,
}

/// Display name of a resource in messages: `deployments.apps`, `services`.
pub fn qualified(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.plural.clone()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    }
}

fn not_found(rt: &ResourceType, name: &str) -> ApiError {
    ApiError {
        code: 404,
        reason: "NotFound",
        message: format!("{} \"{name}\" not found", qualified(rt)),
        details: json!({"name": name, "group": rt.group, "kind": rt.plural}),
    }
}

/// The wall clock, as Kubernetes timestamps print it. kube-sim stands in for the API
/// server, which stamps objects with its own clock.
#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_clock() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

pub(crate) fn now() -> String {
    wall_clock().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// True when two objects differ outside `metadata` and `status`: the change bumps
/// `metadata.generation`.
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(old) != strip(new)
}

impl Cluster {
    /// A cluster with the built-in kinds, the `default` namespace and a history of
    /// `window` changes.
    pub fn new(window: usize) -> Self {
        let c = Cluster {
            registry: RwLock::new(Registry::new()),
            store: Mutex::new(Store::new(window)),
            uids: AtomicU64::new(1),
        };
        for ns in ["default", "kube-system"] {
            let rt = c
                .resource("", "v1", "namespaces")
                .expect("namespaces are built in");
            let _ = c.create(&rt, "", json!({"metadata": {"name": ns}}), "kube-sim");
        }
        c
    }

    /// The type at a group, version and plural.
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.registry
            .read()
            .ok()?
            .get(group, version, plural)
            .cloned()
    }

    fn key(rt: &ResourceType, ns: &str, name: &str) -> Key {
        (
            rt.storage.clone(),
            if rt.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name.to_string(),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads an object, converted to the requested version.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        let store = self.lock();
        let obj = store
            .get(&Self::key(rt, ns, name))
            .ok_or_else(|| not_found(rt, name))?;
        Ok(self.present(rt, obj.clone()))
    }

    /// Lists objects (all namespaces when `ns` is empty) and the list's resourceVersion.
    pub fn list(&self, rt: &ResourceType, ns: &str) -> (Vec<Value>, u64) {
        let store = self.lock();
        let ns = (rt.namespaced && !ns.is_empty()).then_some(ns);
        let items = store
            .list(&rt.storage, ns)
            .into_iter()
            .map(|o| self.present(rt, o))
            .collect();
        (items, store.rv())
    }

    /// The changes after `rv` (`None` when some are no longer kept) and the latest
    /// resourceVersion.
    pub fn changes_after(&self, rv: u64) -> (Option<Vec<crate::store::Change>>, u64) {
        let store = self.lock();
        (store.changes_after(rv), store.rv())
    }

    /// An object as the client asked for it: its `apiVersion`, and the events.k8s.io form
    /// for that API.
    pub fn present(&self, rt: &ResourceType, mut obj: Value) -> Value {
        if rt.group == "events.k8s.io" {
            return events::to_events_v1(&obj);
        }
        obj["apiVersion"] = Value::String(rt.api_version());
        obj["kind"] = Value::String(rt.kind.clone());
        obj
    }

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

    fn prepare_create(
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
        self.write(rt, ns, name, rv, target, manager, WriteKind::Update, |_| {
            Ok(body)
        })
    }

    /// Patches an object (or its status); server-side apply creates a missing one.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: Value,
        target: Target,
        manager: &str,
    ) -> Result<Value, ApiError> {
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
        self.write(
            rt,
            ns,
            name,
            precondition,
            target,
            manager,
            kind_of_write,
            |stored| {
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
            },
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        precondition: Option<String>,
        target: Target,
        manager: &str,
        kind_of_write: WriteKind,
        change: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
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

    /// Deletes an object: marks it when it has finalizers, else removes it and collects its
    /// dependents (`Orphan` leaves them, without the owner reference).
    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        orphan: bool,
    ) -> Result<Value, ApiError> {
        let mut store = self.lock();
        let key = Self::key(rt, ns, name);
        let mut obj = store
            .get(&key)
            .cloned()
            .ok_or_else(|| not_found(rt, name))?;
        let uid = obj["metadata"]["uid"].clone();
        if orphan {
            let owned: Vec<(Key, Value)> = store
                .iter()
                .filter(|(_, o)| {
                    o["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
                })
                .map(|(k, o)| (k.clone(), o.clone()))
                .collect();
            for (k, mut o) in owned {
                if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != uid);
                }
                store.put(k, o, ChangeType::Modified);
            }
        }
        let has_finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if !obj["metadata"]["deletionTimestamp"].is_string() {
                obj["metadata"]["deletionTimestamp"] = json!(now());
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                obj = store.put(key, obj, ChangeType::Modified);
            }
            return Ok(self.present(rt, obj));
        }
        if rt.kind == "Namespace" {
            let inside: Vec<Key> = store
                .iter()
                .filter(|((_, n, _), _)| n == name)
                .map(|(k, _)| k.clone())
                .collect();
            for k in inside {
                store.remove(&k);
            }
        }
        let removed = store.remove(&key).unwrap_or(obj);
        drop(store);
        if rt.kind == "CustomResourceDefinition" {
            let (group, plural) = (
                removed["spec"]["group"].as_str().unwrap_or_default(),
                removed["spec"]["names"]["plural"]
                    .as_str()
                    .unwrap_or_default(),
            );
            if let Ok(mut reg) = self.registry.write() {
                reg.remove_crd(group, plural);
            }
        }
        self.collect_garbage();
        Ok(self.present(rt, removed))
    }

    /// Background garbage collection: deletes every object whose owners are all gone.
    pub fn collect_garbage(&self) {
        loop {
            let mut store = self.lock();
            let uids: std::collections::BTreeSet<String> = store
                .iter()
                .filter_map(|(_, o)| o["metadata"]["uid"].as_str().map(String::from))
                .collect();
            let orphaned: Vec<(Key, Value)> = store
                .iter()
                .filter(|(_, o)| {
                    o["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|refs| {
                            !refs.is_empty()
                                && refs
                                    .iter()
                                    .all(|r| !uids.contains(r["uid"].as_str().unwrap_or_default()))
                        })
                        && !o["metadata"]["deletionTimestamp"].is_string()
                })
                .map(|(k, o)| (k.clone(), o.clone()))
                .collect();
            if orphaned.is_empty() {
                return;
            }
            for (key, mut obj) in orphaned {
                if obj["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty())
                {
                    obj["metadata"]["deletionTimestamp"] = json!(now());
                    store.put(key, obj, ChangeType::Modified);
                } else {
                    store.remove(&key);
                }
            }
        }
    }

    fn after_write(&self, rt: &ResourceType, obj: &Value) {
        if rt.kind == "CustomResourceDefinition"
            && let Ok(mut reg) = self.registry.write()
        {
            for t in from_crd(obj) {
                reg.add(t);
            }
        }
    }
}

fn conflict(rt: &ResourceType, name: &str, conflicts: &[ssa::Conflict]) -> ApiError {
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
fn one_controller(rt: &ResourceType, name: &str, obj: &Value) -> Result<(), ApiError> {
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
