//! Keptn, through flaggerd's cluster client. `keptnmetric/<ns>/<name>` reads the KeptnMetric's
//! `status.value`; `analysis/<ns>/<definition>[/<duration>[/<k=v;k=v>]]` creates an Analysis of
//! that AnalysisDefinition over the last `<duration>` (1m by default) with those arguments,
//! reads it each second until Keptn completes it (pass: 1, fail: 0; at most 10 s) and deletes
//! it. Online: the cluster serves KeptnMetrics in `metrics.keptn.sh/v1beta1`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GetParams, GroupVersionKind, PostParams,
};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::http::one_line;
use super::{Answer, Backend, Failure, Settings};

/// Keptn's metrics API group.
const GROUP: &str = "metrics.keptn.sh";
/// The version Flagger reads.
const VERSION: &str = "v1beta1";
/// How long an Analysis may take, from its creation to its completion (Flagger's).
const ANALYSIS_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a created Analysis is read.
const POLL: Duration = Duration::from_secs(1);
/// The longest wait for one answer of the API server outside an Analysis.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The query's format, for the message of a query that does not follow it.
const FORMAT: &str =
    "<keptnmetric|analysis>/<namespace>/<name>[/<duration>[/<key=value;key=value>]]";

/// A `keptn` template's backend: flaggerd's cluster client.
pub(crate) struct Keptn {
    client: kube::Client,
}

/// What a query names.
#[derive(Debug, PartialEq)]
enum Target {
    /// A KeptnMetric, whose current value is read.
    Metric { namespace: String, name: String },
    /// An AnalysisDefinition, run once by an Analysis created for the query.
    Analysis {
        namespace: String,
        definition: String,
        duration: String,
        args: BTreeMap<String, String>,
    },
}

impl Keptn {
    pub(crate) fn new(settings: &Settings) -> Result<Self, Failure> {
        let client = settings.kube.clone().ok_or_else(|| {
            Failure::Error("keptn needs the cluster, and flaggerd has no Kubernetes client".into())
        })?;
        Ok(Keptn { client })
    }

    async fn metric(&self, namespace: &str, name: &str) -> Answer {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource("KeptnMetric"));
        let what = format!("KeptnMetric {namespace}/{name}");
        let object = tokio::time::timeout(REQUEST_TIMEOUT, api.get(name))
            .await
            .map_err(|_| Failure::Error(format!("cannot read {what}: no answer within 10s")))?
            .map_err(|e| Failure::Error(format!("cannot read {what}: {}", kube_cause(&e))))?;
        metric_value(&what, &object.data)
    }

    async fn analysis(
        &self,
        namespace: &str,
        definition: &str,
        duration: &str,
        args: &BTreeMap<String, String>,
    ) -> Answer {
        let ar = resource("Analysis");
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &ar);
        let name = format!("{definition}-{}", suffix()?);
        let what = format!("Analysis {namespace}/{name}");
        let object = DynamicObject::new(&name, &ar)
            .within(namespace)
            .data(json!({"spec": {
                "analysisDefinition": {"name": definition},
                "timeframe": {"recent": duration},
                "args": args,
            }}));
        let deadline = Instant::now() + ANALYSIS_TIMEOUT;
        match tokio::time::timeout_at(deadline, api.create(&PostParams::default(), &object)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(Failure::Error(format!(
                    "cannot create {what}: {}",
                    kube_cause(&e)
                )));
            }
            Err(_) => {
                // It may still be created: remove it then.
                Cleanup::new(api, name).delete().await;
                return Err(Failure::Error(format!(
                    "cannot create {what}: no answer within 10s"
                )));
            }
        }
        // Deleted whatever happens, even when the check is dropped while it waits.
        let cleanup = Cleanup::new(api.clone(), name.clone());
        let result = wait(&api, &name, &what, deadline).await;
        cleanup.delete().await;
        result
    }
}

/// Reads the Analysis `name` each second until Keptn completes it or `deadline` passes.
async fn wait(api: &Api<DynamicObject>, name: &str, what: &str, deadline: Instant) -> Answer {
    let mut state = String::from("none");
    loop {
        tokio::time::sleep_until((Instant::now() + POLL).min(deadline)).await;
        if Instant::now() >= deadline {
            break;
        }
        let object = match tokio::time::timeout_at(deadline, api.get(name)).await {
            Err(_) => break,
            Ok(Err(e)) => {
                return Err(Failure::Error(format!(
                    "cannot read the status of {what}: {}",
                    kube_cause(&e)
                )));
            }
            Ok(Ok(o)) => o,
        };
        if let Some(s) = object.data.pointer("/status/state").and_then(Value::as_str) {
            state = s.to_string();
        }
        // As Flagger: a completed Analysis without `pass` is read again.
        if state == "Completed"
            && let Some(pass) = object.data.pointer("/status/pass").and_then(Value::as_bool)
        {
            return Ok(if pass { 1.0 } else { 0.0 });
        }
    }
    Err(Failure::Error(format!(
        "timed out after {}s waiting for Keptn to complete {what} (status.state: {state})",
        ANALYSIS_TIMEOUT.as_secs()
    )))
}

/// Deletes a created Analysis: awaited by [`Cleanup::delete`], or in the background when the
/// check is dropped before.
struct Cleanup {
    target: Option<(Api<DynamicObject>, String)>,
}

impl Cleanup {
    fn new(api: Api<DynamicObject>, name: String) -> Self {
        Cleanup {
            target: Some((api, name)),
        }
    }

    async fn delete(mut self) {
        if let Some((api, name)) = self.target.take() {
            remove(api, name).await;
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let (Some((api, name)), Ok(runtime)) =
            (self.target.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(remove(api, name));
        }
    }
}

/// Deletes the Analysis `name`; a failure is logged, as Flagger does (the value stands).
async fn remove(api: Api<DynamicObject>, name: String) {
    match tokio::time::timeout(REQUEST_TIMEOUT, api.delete(&name, &DeleteParams::default())).await {
        Ok(Ok(_)) => {}
        Ok(Err(kube::Error::Api(s))) if s.code == 404 => {}
        Ok(Err(e)) => {
            tracing::warn!(analysis = %name, "cannot delete the Keptn Analysis: {}", kube_cause(&e));
        }
        Err(_) => {
            tracing::warn!(analysis = %name, "cannot delete the Keptn Analysis: no answer within 10s");
        }
    }
}

/// `status.value` of a KeptnMetric as a number; none yet is no data.
fn metric_value(what: &str, object: &Value) -> Answer {
    match object.pointer("/status/value") {
        None | Some(Value::Null) => Err(Failure::no_values(format!(
            "{what} has no status.value (Keptn has not fetched it yet)"
        ))),
        Some(Value::String(s)) if s.is_empty() => Err(Failure::no_values(format!(
            "{what} has an empty status.value"
        ))),
        Some(Value::String(s)) => s.parse::<f64>().map_err(|_| {
            Failure::Error(format!(
                "the status.value {:?} of {what} is not a number",
                one_line(s)
            ))
        }),
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| Failure::Error(format!("the status.value of {what} is not a number"))),
        Some(other) => Err(Failure::Error(format!(
            "the status.value of {what} is not a number: {}",
            one_line(&other.to_string())
        ))),
    }
}

/// A type of `metrics.keptn.sh/v1beta1`.
fn resource(kind: &str) -> ApiResource {
    let plural = if kind == "Analysis" {
        "analyses"
    } else {
        "keptnmetrics"
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, kind), plural)
}

/// Six random hexadecimal digits, to name an Analysis.
fn suffix() -> Result<String, Failure> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 3];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Failure::Error("cannot draw a random name for the Analysis".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads a query as Flagger does: lower-cased and trimmed, split on `/`.
fn parse(query: &str) -> Result<Target, Failure> {
    let query = query.to_lowercase();
    let parts: Vec<&str> = query.trim().split('/').collect();
    if parts.len() < 3 {
        return Err(Failure::Error(format!(
            "unexpected query format {:?}: expected {FORMAT}",
            one_line(query.trim())
        )));
    }
    let (namespace, name) = (parts[1].trim(), parts[2].trim());
    if namespace.is_empty() || name.is_empty() {
        return Err(Failure::Error(format!(
            "the query {:?} has an empty namespace or name: expected {FORMAT}",
            one_line(query.trim())
        )));
    }
    match parts[0].trim() {
        "keptnmetric" | "keptnmetrics" => Ok(Target::Metric {
            namespace: namespace.into(),
            name: name.into(),
        }),
        "analysis" | "analyses" => {
            let duration = parts
                .get(3)
                .map(|d| d.trim())
                .filter(|d| !d.is_empty())
                .unwrap_or("1m");
            let mut args = BTreeMap::new();
            for arg in parts.get(4).map_or("", |a| a.trim()).split(';') {
                let arg = arg.trim();
                if arg.is_empty() {
                    continue;
                }
                match arg.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() && !v.contains('=') => {
                        args.insert(k.trim().to_string(), v.trim().to_string());
                    }
                    _ => {
                        return Err(Failure::Error(format!(
                            "the Analysis argument {:?} is not key=value: expected {FORMAT}",
                            one_line(arg)
                        )));
                    }
                }
            }
            Ok(Target::Analysis {
                namespace: namespace.into(),
                definition: name.into(),
                duration: duration.into(),
                args,
            })
        }
        kind => Err(Failure::Error(format!(
            "unexpected kind {:?} in the query: expected keptnmetric or analysis ({FORMAT})",
            one_line(kind)
        ))),
    }
}

/// What a failed request to the API server says, without the request's headers: 401 is an
/// authentication failure, 403 a refusal by RBAC, 404 a missing object or API.
pub(super) fn kube_cause(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let message = if s.message.is_empty() {
                s.reason.clone()
            } else {
                one_line(&s.message)
            };
            match s.code {
                401 => format!("authentication failed: HTTP 401: {message}"),
                403 => format!("forbidden: HTTP 403: {message}"),
                404 => format!("not found: HTTP 404: {message}"),
                code => format!("HTTP {code}: {message}"),
            }
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            format!("unreachable: {}", canary_core::error_chain(e))
        }
        kube::Error::SerdeError(_) => {
            format!("unreadable answer: {}", canary_core::error_chain(e))
        }
        e => canary_core::error_chain(e),
    }
}

#[async_trait]
impl Backend for Keptn {
    async fn query(&self, query: &str) -> Answer {
        match parse(query)? {
            Target::Metric { namespace, name } => self.metric(&namespace, &name).await,
            Target::Analysis {
                namespace,
                definition,
                duration,
                args,
            } => {
                self.analysis(&namespace, &definition, &duration, &args)
                    .await
            }
        }
    }

    async fn online(&self) -> Result<(), Failure> {
        let gv = format!("{GROUP}/{VERSION}");
        let req = kube::api::Request::new(format!("/apis/{GROUP}"))
            .get(VERSION, &GetParams::default())
            .map_err(|e| Failure::Error(canary_core::error_chain(&e)))?;
        let text = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request_text(req))
            .await
            .map_err(|_| Failure::Error(format!("no answer about {gv} within 10s")))?
            .map_err(|e| match &e {
                kube::Error::Api(s) if s.code == 404 => Failure::Error(format!(
                    "the cluster does not serve {gv} (is Keptn installed?): {}",
                    kube_cause(&e)
                )),
                _ => Failure::Error(format!("cannot read the API {gv}: {}", kube_cause(&e))),
            })?;
        let list: Value = super::http::decode(&text)?;
        let served = list["resources"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(|r| r["name"] == "keptnmetrics"));
        if served {
            Ok(())
        } else {
            Err(Failure::Error(format!(
                "the cluster does not serve keptnmetrics in {gv} (is Keptn installed?)"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_read_as_flagger_reads_them() {
        assert_eq!(
            parse(" KeptnMetric/Test/Errors\n"),
            Ok(Target::Metric {
                namespace: "test".into(),
                name: "errors".into()
            })
        );
        assert_eq!(
            parse("keptnmetrics/test/errors/5m/a=b"),
            Ok(Target::Metric {
                namespace: "test".into(),
                name: "errors".into()
            })
        );
        assert_eq!(
            parse("analysis/test/slo"),
            Ok(Target::Analysis {
                namespace: "test".into(),
                definition: "slo".into(),
                duration: "1m".into(),
                args: BTreeMap::new(),
            })
        );
        assert_eq!(
            parse("analyses/test/slo/5m/Service=Podinfo;env=prod;"),
            Ok(Target::Analysis {
                namespace: "test".into(),
                definition: "slo".into(),
                duration: "5m".into(),
                args: BTreeMap::from([
                    ("service".to_string(), "podinfo".to_string()),
                    ("env".to_string(), "prod".to_string()),
                ]),
            })
        );
    }

    #[test]
    fn bad_queries_say_the_format() {
        for q in ["keptnmetric/test", "", "analysis//slo"] {
            let Err(Failure::Error(m)) = parse(q) else {
                panic!("{q:?} should fail");
            };
            assert!(m.contains(FORMAT), "{m}");
        }
        let Err(Failure::Error(m)) = parse("deployment/test/podinfo") else {
            panic!("an unknown kind should fail");
        };
        assert!(m.contains("\"deployment\""), "{m}");
        let Err(Failure::Error(m)) = parse("analysis/test/slo/1m/a=b;c") else {
            panic!("a bad argument should fail");
        };
        assert!(m.contains("\"c\""), "{m}");
    }

    #[test]
    fn metric_values() {
        let v = |s: Value| metric_value("KeptnMetric test/m", &json!({"status": s}));
        assert_eq!(v(json!({"value": "0.5"})), Ok(0.5));
        assert_eq!(v(json!({"value": "42"})), Ok(42.0));
        assert_eq!(v(json!({"value": 3})), Ok(3.0));
        assert!(matches!(v(json!({})), Err(Failure::NoData(_))));
        assert!(matches!(v(json!({"value": ""})), Err(Failure::NoData(_))));
        assert!(matches!(v(json!({"value": "abc"})), Err(Failure::Error(_))));
        assert!(matches!(
            metric_value("KeptnMetric test/m", &json!({})),
            Err(Failure::NoData(_))
        ));
    }

    #[test]
    fn suffixes_are_six_hex_digits() {
        let s = suffix().expect("random");
        assert_eq!(s.len(), 6);
        assert!(s.chars().all(|c| c.is_ascii_hexdigit()), "{s}");
    }
}
