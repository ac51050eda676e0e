//! Watch caches of the objects canaries use: targets, primaries, tracked configs, Services
//! and autoscalers. A steady step reads them here, never from the API server.
//!
//! Each kind is watched in full (the initial list paginated), but a cache keeps only the
//! objects a canary has asked for (its *wanted* keys): the first read of an object is a GET,
//! after which its watch events keep it current. Thousands of unrelated Deployments or
//! ConfigMaps pass through the watch and are dropped, so memory grows with the canaries, not
//! with the cluster. A known absence is kept too (a missing target is not read again until
//! the watch says it exists). After a relist, wanted objects the list did not hold are
//! known absent.
//!
//! A cache answers only while its watch runs; a reconcile outside [`crate::run`] (tests
//! calling it directly) reads from the API server.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kube::Resource;
use kube::core::ApiResource;
use kube::runtime::watcher;
use serde::Serialize;
use serde_json::Value;

/// `(namespace, name)`.
pub type Key = (String, String);

/// How a watch event changed a wanted object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing flaggerd looks at changed.
    None,
    /// Only its status (a rollout's progress).
    Status,
    /// Its spec, metadata or data, its creation or deletion, or an object not cached.
    Spec,
}

/// The cache of one kind.
pub struct Cache {
    kind: String,
    /// The watch has listed everything at least once.
    active: AtomicBool,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Wanted objects as last seen, kept as compact JSON text (a parsed `Value` takes
    /// ten times the memory); `None`: known not to exist.
    known: HashMap<Key, Option<Box<str>>>,
    /// Keys canaries asked for: their watch events are kept.
    wanted: HashSet<Key>,
    /// During a relist, the keys listed so far.
    relist: Option<HashSet<Key>>,
}

impl Cache {
    /// An empty cache of `kind`, answering once its watch has listed.
    pub fn new(kind: &str) -> Self {
        Cache {
            kind: kind.to_string(),
            active: AtomicBool::new(false),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kind cached.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// What the cache knows of an object, and marks it wanted: `Some(None)` when it is known
    /// not to exist, `None` when it must be read from the API server (then [`Cache::fill`]).
    pub fn lookup(&self, ns: &str, name: &str) -> Option<Option<Value>> {
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        let key = (ns.to_string(), name.to_string());
        let mut inner = self.lock();
        let known = inner
            .known
            .get(&key)
            .map(|text| text.as_deref().and_then(parse));
        inner.wanted.insert(key);
        known
    }

    /// Keeps what a GET returned, unless a watch event came meanwhile (it is newer).
    pub fn fill(&self, ns: &str, name: &str, obj: Option<&Value>) {
        if !self.active.load(Ordering::Acquire) {
            return;
        }
        let key = (ns.to_string(), name.to_string());
        let mut inner = self.lock();
        if inner.wanted.contains(&key) && !inner.known.contains_key(&key) {
            inner
                .known
                .insert(key, obj.map(|o| compact(strip(o.clone()))));
        }
    }

    /// Keeps what a write returned: the newest version flaggerd knows.
    pub fn written(&self, ns: &str, name: &str, obj: &Value) {
        if !self.active.load(Ordering::Acquire) {
            return;
        }
        let key = (ns.to_string(), name.to_string());
        let mut inner = self.lock();
        if inner.wanted.contains(&key) {
            inner.known.insert(key, Some(compact(strip(obj.clone()))));
        }
    }

    /// Applies one watch event; returns the objects it touched and how.
    pub fn apply<K>(&self, event: &watcher::Event<K>) -> Vec<(Key, Change)>
    where
        K: Resource + Serialize,
    {
        let mut inner = self.lock();
        match event {
            watcher::Event::Init => {
                inner.relist = Some(HashSet::new());
                Vec::new()
            }
            watcher::Event::InitApply(obj) => {
                let key = key_of(obj);
                if let Some(seen) = inner.relist.as_mut() {
                    seen.insert(key.clone());
                }
                let change = inner.put(key.clone(), obj);
                vec![(key, change)]
            }
            watcher::Event::InitDone => {
                let seen = inner.relist.take().unwrap_or_default();
                let gone: Vec<Key> = inner
                    .known
                    .iter()
                    .filter(|(k, v)| v.is_some() && !seen.contains(*k))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in &gone {
                    inner.known.insert(k.clone(), None);
                }
                drop(inner);
                self.active.store(true, Ordering::Release);
                gone.into_iter().map(|k| (k, Change::Spec)).collect()
            }
            watcher::Event::Apply(obj) => {
                let key = key_of(obj);
                let change = inner.put(key.clone(), obj);
                vec![(key, change)]
            }
            watcher::Event::Delete(obj) => {
                let key = key_of(obj);
                if inner.wanted.contains(&key) {
                    inner.known.insert(key.clone(), None);
                }
                vec![(key, Change::Spec)]
            }
        }
    }

    /// How many objects the cache holds (for tests and the benchmark's reading of memory).
    pub fn len(&self) -> usize {
        self.lock().known.values().filter(|v| v.is_some()).count()
    }

    /// True when the cache holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn put<K: Resource + Serialize>(&mut self, key: Key, obj: &K) -> Change {
        if !self.wanted.contains(&key) {
            return Change::Spec;
        }
        let Ok(value) = serde_json::to_value(obj) else {
            return Change::Spec;
        };
        let value = strip(value);
        let change = match self
            .known
            .get(&key)
            .and_then(|t| t.as_deref())
            .and_then(parse)
        {
            Some(old) => classify(&old, &value),
            None => Change::Spec,
        };
        self.known.insert(key, Some(compact(value)));
        change
    }
}

fn key_of<K: Resource>(obj: &K) -> Key {
    let meta = obj.meta();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn compact(v: Value) -> Box<str> {
    v.to_string().into_boxed_str()
}

fn parse(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok()
}

/// Drops what flaggerd never reads and what makes objects large: managed fields.
fn strip(mut obj: Value) -> Value {
    if let Some(meta) = obj["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }
    obj
}

/// How `new` differs from `old` for flaggerd: only the status, or more.
fn classify(old: &Value, new: &Value) -> Change {
    let outside_status = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("status");
            if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
            }
        }
        v
    };
    if outside_status(old) != outside_status(new) {
        Change::Spec
    } else if old["status"] != new["status"] {
        Change::Status
    } else {
        Change::None
    }
}

pub use canary_router::cached::holds;

/// Starts the watch that feeds a routing object's cache.
pub type WatchStarter = Box<dyn Fn(ApiResource, Arc<Cache>) + Send + Sync>;

/// The caches of every kind flaggerd reads around a canary: the workload, config, Service
/// and autoscaler kinds, watched from the start, and the routing objects' kinds, each
/// watched from the first time a router reads one (a mesh whose CRDs are not installed is
/// then read from the API server, which answers that they are missing).
pub struct Caches {
    caches: Vec<Arc<Cache>>,
    routing: Mutex<HashMap<String, Arc<Cache>>>,
    starter: std::sync::OnceLock<WatchStarter>,
}

/// The kinds cached from the start.
pub const KINDS: [&str; 6] = [
    "Deployment",
    "DaemonSet",
    "ConfigMap",
    "Secret",
    "Service",
    "HorizontalPodAutoscaler",
];

impl Default for Caches {
    fn default() -> Self {
        Caches {
            caches: KINDS.iter().map(|k| Arc::new(Cache::new(k))).collect(),
            routing: Mutex::default(),
            starter: std::sync::OnceLock::new(),
        }
    }
}

impl Caches {
    /// The cache of `kind`, if it is cached.
    pub fn of(&self, kind: &str) -> Option<&Arc<Cache>> {
        self.caches.iter().find(|c| c.kind == kind)
    }

    /// Lets routing objects be cached: `start` starts the watch of a kind's cache.
    pub fn start_watches_with(&self, start: WatchStarter) {
        let _ = self.starter.set(start);
    }

    /// The cache of a routing kind, its watch started on first use; `None` until the
    /// controller runs.
    pub(crate) fn routing(&self, resource: &ApiResource) -> Option<Arc<Cache>> {
        let start = self.starter.get()?;
        // A core kind cached from the start (the Services Gloo's upstreams read).
        if resource.group.is_empty()
            && let Some(c) = self.of(&resource.kind)
        {
            return Some(c.clone());
        }
        let key = format!(
            "{}/{}/{}",
            resource.group, resource.version, resource.plural
        );
        let mut routing = self.routing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = routing.get(&key) {
            return Some(c.clone());
        }
        let cache = Arc::new(Cache::new(&resource.kind));
        routing.insert(key, cache.clone());
        start(resource.clone(), cache.clone());
        Some(cache)
    }
}

impl canary_router::cached::ObjectCache for Caches {
    fn lookup(&self, resource: &ApiResource, ns: &str, name: &str) -> Option<Option<Value>> {
        self.routing(resource)?.lookup(ns, name)
    }

    fn fill(&self, resource: &ApiResource, ns: &str, name: &str, obj: Option<&Value>) {
        if let Some(c) = self.routing(resource) {
            c.fill(ns, name, obj);
        }
    }

    fn written(&self, resource: &ApiResource, ns: &str, name: &str, obj: &Value) {
        if let Some(c) = self.routing(resource) {
            c.written(ns, name, obj);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    fn cm(name: &str, data: &str, rv: &str) -> ConfigMap {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "test", "resourceVersion": rv,
                "managedFields": [{"manager": "kubectl"}]},
            "data": {"k": data},
        }))
        .unwrap()
    }

    fn listed(cache: &Cache, objs: &[ConfigMap]) {
        cache.apply::<ConfigMap>(&watcher::Event::Init);
        for o in objs {
            cache.apply(&watcher::Event::InitApply(o.clone()));
        }
        cache.apply::<ConfigMap>(&watcher::Event::InitDone);
    }

    #[test]
    fn answers_only_once_its_watch_has_listed() {
        let cache = Cache::new("ConfigMap");
        assert_eq!(cache.lookup("test", "a"), None);
        cache.fill("test", "a", Some(&json!({"data": {}})));
        listed(&cache, &[cm("a", "1", "1")]);
        // Listed before anyone wanted it: not kept, read once.
        assert_eq!(cache.lookup("test", "a"), None);
        cache.fill(
            "test",
            "a",
            Some(&serde_json::to_value(cm("a", "1", "1")).unwrap()),
        );
        let got = cache.lookup("test", "a").unwrap().unwrap();
        assert_eq!(got["data"]["k"], "1");
        assert!(got["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn keeps_wanted_objects_current_and_drops_the_rest() {
        let cache = Cache::new("ConfigMap");
        listed(&cache, &[]);
        assert_eq!(cache.lookup("test", "a"), None);
        cache.fill("test", "a", None);
        assert_eq!(cache.lookup("test", "a"), Some(None));
        let changes = cache.apply(&watcher::Event::Apply(cm("a", "1", "2")));
        assert_eq!(changes, vec![(("test".into(), "a".into()), Change::Spec)]);
        let changes = cache.apply(&watcher::Event::Apply(cm("a", "1", "3")));
        assert_eq!(changes[0].1, Change::None);
        cache.apply(&watcher::Event::Apply(cm("other", "1", "4")));
        assert_eq!(cache.len(), 1);
        cache.apply(&watcher::Event::Delete(cm("a", "1", "5")));
        assert_eq!(cache.lookup("test", "a"), Some(None));
    }

    #[test]
    fn a_relist_forgets_objects_it_does_not_hold() {
        let cache = Cache::new("ConfigMap");
        listed(&cache, &[]);
        cache.lookup("test", "a");
        cache.apply(&watcher::Event::Apply(cm("a", "1", "2")));
        listed(&cache, &[cm("b", "1", "3")]);
        assert_eq!(cache.lookup("test", "a"), Some(None));
    }

    #[test]
    fn a_get_never_overwrites_a_watch_event() {
        let cache = Cache::new("ConfigMap");
        listed(&cache, &[]);
        cache.lookup("test", "a");
        cache.apply(&watcher::Event::Apply(cm("a", "new", "9")));
        cache.fill(
            "test",
            "a",
            Some(&serde_json::to_value(cm("a", "old", "8")).unwrap()),
        );
        assert_eq!(
            cache.lookup("test", "a").unwrap().unwrap()["data"]["k"],
            "new"
        );
    }

    #[test]
    fn status_only_changes_are_told_apart() {
        let old = json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 1}, "status": {"readyReplicas": 0}});
        let status = json!({"metadata": {"resourceVersion": "2"}, "spec": {"replicas": 1}, "status": {"readyReplicas": 1}});
        let spec = json!({"metadata": {"resourceVersion": "3"}, "spec": {"replicas": 2}, "status": {"readyReplicas": 1}});
        assert_eq!(classify(&old, &status), Change::Status);
        assert_eq!(classify(&status, &spec), Change::Spec);
        assert_eq!(classify(&spec, &spec), Change::None);
    }
}
