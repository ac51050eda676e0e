//! What a router reads through: a cache of routing objects kept by the controller's watches,
//! so a steady step reads nothing from the API server and writes only what changed.

use kube::core::ApiResource;
use serde_json::Value;

/// A cache of objects in front of the API server.
pub trait ObjectCache: Send + Sync {
    /// What the cache knows of an object: `Some(None)` when it is known not to exist, `None`
    /// when it must be read from the API server (and then given to [`ObjectCache::fill`]).
    fn lookup(&self, resource: &ApiResource, ns: &str, name: &str) -> Option<Option<Value>>;
    /// Keeps what a read returned.
    fn fill(&self, resource: &ApiResource, ns: &str, name: &str, obj: Option<&Value>);
    /// Keeps what a write returned.
    fn written(&self, resource: &ApiResource, ns: &str, name: &str, obj: &Value);
}

/// True when writing `desired` (a server-side apply or a merge patch) onto `current` would
/// change nothing the writer sets: every field of `desired` holds the same value in
/// `current` (fields others set are ignored). A `null` asks for the field to be absent.
/// Arrays compare item by item and must have the same length.
pub fn holds(current: &Value, desired: &Value) -> bool {
    match (desired, current) {
        (Value::Object(d), _) => d.iter().all(|(k, dv)| match current.get(k) {
            Some(cv) => holds(cv, dv),
            None => is_empty(dv),
        }),
        (Value::Array(d), Value::Array(c)) => {
            d.len() == c.len() && d.iter().zip(c).all(|(dv, cv)| holds(cv, dv))
        }
        (Value::Array(d), Value::Null) => d.is_empty(),
        (Value::Number(d), Value::Number(c)) => d.as_f64() == c.as_f64(),
        (Value::Null, c) => c.is_null(),
        (d, c) => d == c,
    }
}

/// A desired value that an absent field already satisfies.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.values().all(is_empty),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn holds_compares_only_the_desired_fields() {
        let current = json!({
            "metadata": {"name": "s", "labels": {"app": "x", "other": "y"}, "uid": "1"},
            "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": "http"}], "clusterIP": "10.0.0.1"},
        });
        assert!(holds(
            &current,
            &json!({"metadata": {"name": "s", "labels": {"app": "x"}}, "spec": {"ports": [{"port": 80.0, "targetPort": "http"}]}})
        ));
        assert!(holds(
            &current,
            &json!({"metadata": {"annotations": {}}, "spec": {"selector": null}})
        ));
        assert!(!holds(
            &current,
            &json!({"spec": {"ports": [{"port": 81}]}})
        ));
        assert!(!holds(&current, &json!({"spec": {"ports": []}})));
        assert!(!holds(
            &current,
            &json!({"metadata": {"labels": {"other": null}}})
        ));
        assert!(!holds(&current, &json!({"spec": {"replicas": 0}})));
    }
}
