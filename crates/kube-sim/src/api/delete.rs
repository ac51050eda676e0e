//! Deleting objects: finalizers, graceful termination and the garbage collector.

use serde_json::{Value, json};

use super::*;

impl Cluster {
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
}
