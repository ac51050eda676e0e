//! `apiserver_request_total`, counted as kube-apiserver counts it, so a benchmark can read
//! a client's API requests by verb and resource from `/metrics` on kube-sim or on a real
//! API server alike.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// The labels of one series: verb, group, version, resource, subresource, scope, code.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestKey {
    /// `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `APPLY`, `DELETE`,
    /// `DELETECOLLECTION`, as kube-apiserver names them.
    pub verb: &'static str,
    /// The API group (`""` for core).
    pub group: String,
    /// The API version.
    pub version: String,
    /// The resource's plural name.
    pub resource: String,
    /// `status`, or empty.
    pub subresource: String,
    /// `resource` (one object), `namespace` or `cluster` (a collection).
    pub scope: &'static str,
    /// The HTTP status code answered.
    pub code: u16,
}

/// The counters, by series.
#[derive(Default)]
pub struct Requests {
    counts: Mutex<BTreeMap<RequestKey, u64>>,
}

impl Requests {
    /// Counts one request.
    pub fn count(&self, key: RequestKey) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(key).or_default();
        *n = n.saturating_add(1);
    }

    /// Every series and its count.
    pub fn snapshot(&self) -> BTreeMap<RequestKey, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The Prometheus text exposition of the counters.
    pub fn exposition(&self) -> String {
        let mut out = String::from(
            "# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n# TYPE apiserver_request_total counter\n",
        );
        for (k, n) in self.snapshot() {
            let _ = writeln!(
                out,
                "apiserver_request_total{{code=\"{}\",component=\"apiserver\",dry_run=\"\",group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"}} {n}",
                k.code, k.group, k.resource, k.scope, k.subresource, k.verb, k.version
            );
        }
        out
    }
}

/// kube-apiserver's verb for a request: the HTTP method, refined by whether it names one
/// object, watches, or applies.
pub fn verb(method: &str, named: bool, watch: bool, apply: bool) -> &'static str {
    match (method, named) {
        ("GET", _) if watch => "WATCH",
        ("GET", true) => "GET",
        ("GET", false) => "LIST",
        ("POST", _) => "POST",
        ("PUT", _) => "PUT",
        ("PATCH", _) if apply => "APPLY",
        ("PATCH", _) => "PATCH",
        ("DELETE", true) => "DELETE",
        ("DELETE", false) => "DELETECOLLECTION",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_follow_kube_apiserver() {
        assert_eq!(verb("GET", false, true, false), "WATCH");
        assert_eq!(verb("GET", true, false, false), "GET");
        assert_eq!(verb("GET", false, false, false), "LIST");
        assert_eq!(verb("PATCH", true, false, true), "APPLY");
        assert_eq!(verb("PATCH", true, false, false), "PATCH");
        assert_eq!(verb("DELETE", false, false, false), "DELETECOLLECTION");
    }

    #[test]
    fn the_exposition_names_every_label() {
        let r = Requests::default();
        let key = RequestKey {
            verb: "LIST",
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
            subresource: String::new(),
            scope: "namespace",
            code: 200,
        };
        r.count(key.clone());
        r.count(key);
        assert!(r.exposition().contains(
            "apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"apps\",resource=\"deployments\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 2"
        ));
    }
}
