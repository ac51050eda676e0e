//! The object store: every object as JSON, one resourceVersion counter for the cluster, and
//! a bounded history of changes that watches replay from.

use std::collections::{BTreeMap, VecDeque};

use serde_json::Value;
use tokio::sync::broadcast;

/// Where an object lives: its storage (group/plural), namespace ("" if cluster-scoped) and
/// name.
pub type Key = (String, String, String);

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeType {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Deleted.
    Deleted,
}

impl ChangeType {
    /// The watch event type.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Clone, Debug)]
pub struct Change {
    /// The resourceVersion of the change.
    pub rv: u64,
    /// Storage of the object.
    pub storage: String,
    /// Namespace of the object.
    pub namespace: String,
    /// Type of change.
    pub kind: ChangeType,
    /// The object after the change (before it, for a deletion).
    pub object: Value,
}

/// The objects and their history.
pub struct Store {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: VecDeque<Change>,
    /// How many changes are kept for watches to resume from; older versions answer 410.
    pub window: usize,
    tx: broadcast::Sender<Change>,
}

impl Store {
    /// An empty store keeping `window` changes.
    pub fn new(window: usize) -> Self {
        // Watchers that fall this far behind are sent 410 Gone and relist.
        let (tx, _) = broadcast::channel(window.clamp(4096, 65_536));
        Store {
            objects: BTreeMap::new(),
            rv: 1,
            history: VecDeque::new(),
            window,
            tx,
        }
    }

    /// The latest resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch can resume from.
    pub fn oldest(&self) -> u64 {
        self.history
            .front()
            .map_or(self.rv, |c| c.rv.saturating_sub(1))
    }

    /// An object.
    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// The objects of a storage, in one namespace or all. Reads only that storage's range
    /// of the ordered map, so other kinds' objects cost nothing.
    pub fn list(&self, storage: &str, namespace: Option<&str>) -> Vec<Value> {
        let start = (
            storage.to_string(),
            namespace.unwrap_or_default().to_string(),
            String::new(),
        );
        self.objects
            .range(start..)
            .take_while(|((s, ns, _), _)| s == storage && namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The changes after `rv` kept in the history; `None` when some of them are no longer
    /// kept.
    pub fn changes_after(&self, rv: u64) -> Option<Vec<Change>> {
        if rv < self.oldest() {
            return None;
        }
        Some(
            self.history
                .iter()
                .skip_while(|c| c.rv <= rv)
                .cloned()
                .collect(),
        )
    }

    /// Every object, with its key.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects.iter()
    }

    /// Writes an object, stamping a new resourceVersion; returns the stored object.
    pub fn put(&mut self, key: Key, mut object: Value, kind: ChangeType) -> Value {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        self.objects.insert(key.clone(), object.clone());
        self.record(key, kind, object.clone());
        object
    }

    /// Removes an object; returns it as last stored.
    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        self.rv += 1;
        object["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        self.record(key.clone(), ChangeType::Deleted, object.clone());
        Some(object)
    }

    fn record(&mut self, key: Key, kind: ChangeType, object: Value) {
        let change = Change {
            rv: self.rv,
            storage: key.0,
            namespace: key.1,
            kind,
            object,
        };
        self.history.push_back(change.clone());
        while self.history.len() > self.window {
            self.history.pop_front();
        }
        let _ = self.tx.send(change);
    }

    /// Changes after `rv`, and a receiver for the ones to come; `None` when `rv` is older than
    /// the history kept (the watch must relist: 410 Gone).
    pub fn watch_from(&self, rv: u64) -> Option<(Vec<Change>, broadcast::Receiver<Change>)> {
        if rv < self.oldest() {
            return None;
        }
        let past = self.history.iter().filter(|c| c.rv > rv).cloned().collect();
        Some((past, self.tx.subscribe()))
    }

    /// Forgets the history (tests of 410 Gone).
    pub fn compact(&mut self) {
        self.history.clear();
    }
}
