//! flaggerd's Kubernetes client: kube's, with every request it sends counted by verb in
//! `flaggerd_api_requests_total`, at most [`MAX_IN_FLIGHT`] requests waiting for their
//! answer at once, and the rate of requests bounded by `-kubeconfig-qps` and
//! `-kubeconfig-burst` ([`Throttle`]). Each canary's task writes on its own, so a thousand
//! canaries stepping together would otherwise open a thousand connections, each with its
//! buffers.

use std::sync::Arc;

use crate::Stats;

/// The most requests flaggerd waits on at once (a watch counts until its answer starts).
pub const MAX_IN_FLIGHT: usize = 16;

/// Client-side rate limit of requests to the API server, as client-go's `QPS` and `Burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// Requests per second on average; client-go's 5 when 0.
    pub qps: u32,
    /// Requests sent at once before the rate applies; client-go's 10 when 0.
    pub burst: u32,
}

impl Throttle {
    /// tower's fixed-window rate limit: at most `burst` requests in each window of
    /// `burst / qps` seconds, so `qps` a second on average and `burst` at once.
    fn layer(self) -> tower::limit::RateLimitLayer {
        let qps = if self.qps == 0 { 5 } else { self.qps };
        let burst = if self.burst == 0 { 10 } else { self.burst };
        let window = std::time::Duration::from_secs_f64(f64::from(burst) / f64::from(qps));
        tower::limit::RateLimitLayer::new(u64::from(burst), window)
    }
}

/// A client for `config` that counts its requests in `stats` and keeps to `throttle`.
pub fn counted(
    config: kube::Config,
    stats: Arc<Stats>,
    throttle: Throttle,
) -> Result<kube::Client, kube::Error> {
    let layer = tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
        stats.api_request(verb(req.method(), req.uri()));
        req
    });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&tower::limit::ConcurrencyLimitLayer::new(MAX_IN_FLIGHT))
        .with_layer(&throttle.layer())
        .with_layer(&layer)
        .build())
}

/// The Kubernetes verb of a request, as kube-apiserver's `apiserver_request_total` names
/// it: a GET is a `watch`, a `list` (of a collection) or a `get` (of one object).
pub fn verb(method: &http::Method, uri: &http::Uri) -> &'static str {
    match *method {
        http::Method::GET => {
            let query = uri.query().unwrap_or_default();
            if query
                .split('&')
                .any(|p| p == "watch=true" || p == "watch=1")
            {
                "watch"
            } else if is_collection(uri.path()) {
                "list"
            } else {
                "get"
            }
        }
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "other",
    }
}

/// True for the path of a collection: `/api/v1/pods`, `/apis/apps/v1/namespaces/x/deployments`.
fn is_collection(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.first() {
        Some(&"api") => parts.get(2..),
        Some(&"apis") => parts.get(3..),
        _ => None,
    };
    match rest.unwrap_or_default() {
        ["namespaces", _, _resource] => true,
        ["namespaces", _] => false,
        [_resource] => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_are_named_as_the_api_server_names_them() {
        let get = http::Method::GET;
        let cases = [
            (
                &get,
                "/apis/flagger.app/v1beta1/namespaces/test/canaries?limit=500",
                "list",
            ),
            (
                &get,
                "/apis/flagger.app/v1beta1/canaries?watch=true&resourceVersion=1",
                "watch",
            ),
            (
                &get,
                "/apis/apps/v1/namespaces/test/deployments/podinfo",
                "get",
            ),
            (&get, "/api/v1/namespaces/test", "get"),
            (&get, "/api/v1/namespaces", "list"),
            (
                &http::Method::PATCH,
                "/api/v1/namespaces/test/services/podinfo",
                "patch",
            ),
            (
                &http::Method::PUT,
                "/apis/flagger.app/v1beta1/namespaces/test/canaries/podinfo/status",
                "update",
            ),
            (
                &http::Method::POST,
                "/api/v1/namespaces/test/events",
                "create",
            ),
        ];
        for (method, path, want) in cases {
            let uri: http::Uri = path.parse().unwrap();
            assert_eq!(verb(method, &uri), want, "{method} {path}");
        }
    }
}
