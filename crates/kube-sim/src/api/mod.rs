//! The API semantics over the store: create, read, update, patch, server-side apply and
//! delete, with resourceVersion preconditions, generation, the status subresource,
//! finalizers, garbage collection of owned objects, defaulting and CRD registration.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use serde_json::{Value, json};

mod create;
mod delete;
mod write;

use write::one_controller;

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

/// Where a write goes and who makes it: the object's resource, namespace and name, the part
/// written (the object or its status) and the field manager.
#[derive(Clone, Copy, Debug)]
pub struct WriteTo<'a> {
    /// The resource.
    pub rt: &'a ResourceType,
    /// The namespace (empty for cluster-scoped objects).
    pub ns: &'a str,
    /// The object's name.
    pub name: &'a str,
    /// The object or its status.
    pub target: Target,
    /// The field manager.
    pub manager: &'a str,
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
