//! The backends a MetricTemplate's `spec.provider.type` names, each read as Flagger reads it:
//! one [`Backend`] per type, built by [`build`] from the template's provider, its Secret's data
//! and the metric's interval.
//!
//! A backend answers a value, "no data" ([`Failure::NoData`]) or an error
//! ([`Failure::Error`]); the caller prefixes the backend's type and the template's name. A
//! backend never turns a failure into a value, and its messages never hold a credential:
//! response bodies are cut short and the caller also removes every Secret value from them.

mod cloudwatch;
mod datadog;
mod dynatrace;
mod externalmetrics;
mod graphite;
mod http;
mod influxdb;
mod keptn;
mod newrelic;
mod splunk;
mod stackdriver;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

pub(crate) use http::Http;

/// Why a backend gave no value.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// The backend answered, with nothing to judge: an empty result, a null or NaN.
    NoData(String),
    /// Anything else: unreachable, authentication refused, a refused query, an unreadable
    /// answer, a template that cannot be used.
    Error(String),
}

impl Failure {
    /// The message, without its class.
    pub fn message(&self) -> &str {
        match self {
            Failure::NoData(m) | Failure::Error(m) => m,
        }
    }

    /// "no values found" with what the backend answered.
    pub(crate) fn no_values(detail: impl std::fmt::Display) -> Self {
        Failure::NoData(format!("no values found: {detail}"))
    }

    /// The same failure with `f` applied to its message.
    pub fn map(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Failure::NoData(m) => Failure::NoData(f(m)),
            Failure::Error(m) => Failure::Error(f(m)),
        }
    }
}

/// A value, or why there is none.
pub type Answer = Result<f64, Failure>;

/// One metrics backend, configured for one MetricTemplate.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The value of `query` (the rendered template) now.
    async fn query(&self, query: &str) -> Answer;
    /// Flagger's `IsOnline`: whether the backend answers with these credentials.
    async fn online(&self) -> Result<(), Failure>;
}

/// What a backend is built from: the template's `spec.provider`, its Secret and the metric.
#[derive(Clone, Default)]
pub struct Settings {
    /// `spec.provider.type`.
    pub kind: String,
    /// `spec.provider.address`, if set and not empty.
    pub address: Option<String>,
    /// `spec.provider.headers`, one pair per value.
    pub headers: Vec<(String, String)>,
    /// `spec.provider.region`, if set and not empty.
    pub region: Option<String>,
    /// `spec.provider.insecureSkipVerify`.
    pub insecure_skip_verify: bool,
    /// The data of `spec.provider.secretRef`'s Secret; `None` without a secretRef.
    pub secret: Option<BTreeMap<String, String>>,
    /// The metric's interval (`1m` by default), from which backends compute their windows.
    pub interval: Duration,
    /// The cluster, for `keptn` and `externalmetrics`.
    pub kube: Option<kube::Client>,
    /// flaggerd's `-metrics-server`, for a `prometheus` template without an address.
    pub default_prometheus: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The Secret's values never reach a log, even through Debug.
        f.debug_struct("Settings")
            .field("kind", &self.kind)
            .field("address", &self.address)
            .field("region", &self.region)
            .field(
                "secret",
                &self.secret.as_ref().map(|s| s.keys().collect::<Vec<_>>()),
            )
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// The value of `key` in the Secret, or an error naming the key (never a value).
    pub(crate) fn credential(&self, key: &str) -> Result<String, Failure> {
        self.secret
            .as_ref()
            .and_then(|s| s.get(key))
            .cloned()
            .ok_or_else(|| {
                Failure::Error(match &self.secret {
                    None => format!("credentials are required: spec.provider.secretRef must name a Secret holding {key}"),
                    Some(_) => format!("the Secret of spec.provider.secretRef does not contain the key {key}"),
                })
            })
    }

    /// The address, or an error naming the field.
    pub(crate) fn required_address(&self) -> Result<String, Failure> {
        self.address.clone().ok_or_else(|| {
            Failure::Error("spec.provider.address is required for this provider type".into())
        })
    }

    /// `address` with `default` when not set, without a trailing slash.
    pub(crate) fn address_or(&self, default: &str) -> String {
        self.address
            .as_deref()
            .unwrap_or(default)
            .trim_end_matches('/')
            .to_string()
    }

    /// The span the time-window backends read: ten intervals, as Flagger's Datadog,
    /// Dynatrace, CloudWatch and Splunk providers do.
    pub(crate) fn span(&self) -> Duration {
        self.interval * 10
    }

    /// [`Settings::span`] before now and now, as seconds since the epoch.
    pub(crate) fn window(&self) -> (f64, f64) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        (now - self.span().as_secs_f64(), now)
    }

    /// `text` (the address or a URL built on it) parsed, or an error naming the field
    /// without echoing it.
    pub(crate) fn url(text: &str) -> Result<reqwest::Url, Failure> {
        reqwest::Url::parse(text)
            .map_err(|e| Failure::Error(format!("spec.provider.address is not a valid URL: {e}")))
    }

    /// Every Secret value long enough to recognise, for [`redact`]: each value (trimmed, and
    /// on one line), each long line of a value that spans lines (a private key), and the
    /// string fields of a value that is a JSON object (a key file). Values shorter than 4
    /// characters are left: removing them would garble messages ("HTTP 401"), and so short a
    /// credential is no secret.
    pub fn secret_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        for value in self.secret.iter().flat_map(|s| s.values()) {
            let mut add = |v: &str| {
                for candidate in [v.trim().to_string(), http::one_line(v)] {
                    if candidate.len() >= 4 && !out.contains(&candidate) {
                        out.push(candidate);
                    }
                }
                for line in v.lines().map(str::trim).filter(|l| l.len() >= 16) {
                    if !out.iter().any(|o| o == line) {
                        out.push(line.to_string());
                    }
                }
            };
            add(value);
            if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(value) {
                for field in fields.values().filter_map(serde_json::Value::as_str) {
                    add(field);
                }
            }
        }
        // Longest first, so that a value holding another is removed whole.
        out.sort_by_key(|v| std::cmp::Reverse(v.len()));
        out
    }
}

/// The types Flagger's MetricTemplate CRD allows, in its order.
pub const TYPES: [&str; 11] = [
    "prometheus",
    "influxdb",
    "datadog",
    "externalmetrics",
    "stackdriver",
    "cloudwatch",
    "newrelic",
    "graphite",
    "dynatrace",
    "keptn",
    "splunk",
];

/// The backend `settings.kind` names. An unknown type is read as `prometheus`, with a warning,
/// as Flagger does (its CRD's enum keeps such templates out of a cluster).
pub fn build(settings: &Settings) -> Result<Box<dyn Backend>, Failure> {
    Ok(match settings.kind.as_str() {
        "datadog" => Box::new(datadog::Datadog::new(settings)?),
        "newrelic" => Box::new(newrelic::NewRelic::new(settings)?),
        "dynatrace" => Box::new(dynatrace::Dynatrace::new(settings)?),
        "graphite" => Box::new(graphite::Graphite::new(settings)?),
        "influxdb" => Box::new(influxdb::Influxdb::new(settings)?),
        "cloudwatch" => Box::new(cloudwatch::CloudWatch::new(settings)?),
        "stackdriver" => Box::new(stackdriver::Stackdriver::new(settings)?),
        "splunk" => Box::new(splunk::Splunk::new(settings)?),
        "keptn" => Box::new(keptn::Keptn::new(settings)?),
        "externalmetrics" => Box::new(externalmetrics::ExternalMetrics::new(settings)?),
        kind => {
            if kind != "prometheus" {
                tracing::warn!(provider = %kind, "unknown metrics provider type {kind:?}, using prometheus");
            }
            Box::new(prometheus(settings)?)
        }
    })
}

/// A `prometheus` template's server: `token` (bearer) or `username` and `password` from the
/// Secret, the template's headers.
fn prometheus(settings: &Settings) -> Result<crate::prometheus::Prometheus, Failure> {
    use crate::prometheus::{Auth, Prometheus};
    let address = settings.address_or(&settings.default_prometheus);
    let auth = settings.secret.as_ref().and_then(|data| {
        match (
            data.get("token"),
            data.get("username"),
            data.get("password"),
        ) {
            (Some(t), _, _) => Some(Auth::Bearer(t.clone())),
            (None, Some(u), Some(p)) => Some(Auth::Basic(u.clone(), p.clone())),
            _ => None,
        }
    });
    Prometheus::new(&address, settings.insecure_skip_verify)
        .map(|p| p.with(auth, settings.headers.clone()))
        .map_err(|e| Failure::Error(canary_core::error_chain(&e)))
}

#[async_trait]
impl Backend for crate::prometheus::Prometheus {
    async fn query(&self, query: &str) -> Answer {
        use crate::prometheus::QueryError;
        self.instant(query).await.map_err(|e| match e {
            QueryError::NoValues | QueryError::NaN => Failure::NoData(e.to_string()),
            e => Failure::Error(canary_core::error_chain(&e)),
        })
    }

    async fn online(&self) -> Result<(), Failure> {
        self.is_online()
            .await
            .map_err(|e| Failure::Error(canary_core::error_chain(&e)))
    }
}

/// The longest message a check reports; the rest is cut (after [`redact`]).
pub const MESSAGE_LIMIT: usize = 400;

/// `text` with every Secret value replaced, so no credential reaches a log, event or status
/// even if a backend echoes it.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "<redacted>");
        }
    }
    out
}

/// A failure's message as a check reports it: [`redact`]ed, then cut to [`MESSAGE_LIMIT`]
/// characters, so that no piece of a credential is left by the cut.
pub fn shown(message: &str, secrets: &[String]) -> String {
    let out = redact(message, secrets);
    match out.char_indices().nth(MESSAGE_LIMIT) {
        Some((i, _)) => format!("{}...", &out[..i]),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_removes_every_secret_value() {
        let secrets = vec!["s3cr3t-key".to_string(), "other".to_string()];
        assert_eq!(
            redact("bad key s3cr3t-key and other", &secrets),
            "bad key <redacted> and <redacted>"
        );
    }

    #[test]
    fn secrets_are_removed_before_the_cut_and_from_key_files() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n";
        let key_file = serde_json::json!({"private_key": pem, "client_email": "sa@p.iam"});
        let settings = Settings {
            secret: Some(BTreeMap::from([
                ("serviceAccountKey".to_string(), key_file.to_string()),
                ("token".to_string(), "tok  with   spaces".to_string()),
            ])),
            ..Settings::default()
        };
        let secrets = settings.secret_values();
        let echoed = format!("{} {} tok with spaces", "x".repeat(395), pem);
        let cut = shown(&echoed, &secrets);
        assert!(!cut.contains("MIIEvQ"), "{cut}");
        let echoed = format!("bad key {} and tok with spaces", http::one_line(pem));
        let clean = shown(&echoed, &secrets);
        assert!(
            !clean.contains("MIIEvQ") && !clean.contains("BKcwgg"),
            "{clean}"
        );
        assert!(!clean.contains("tok with"), "{clean}");
        assert!(shown(&"x".repeat(1000), &secrets).len() <= MESSAGE_LIMIT + 3);
    }

    #[test]
    fn settings_debug_shows_keys_not_values() {
        let settings = Settings {
            kind: "datadog".into(),
            secret: Some(BTreeMap::from([(
                "datadog_api_key".to_string(),
                "v3ry-s3cret".to_string(),
            )])),
            ..Settings::default()
        };
        let shown = format!("{settings:?}");
        assert!(shown.contains("datadog_api_key"), "{shown}");
        assert!(!shown.contains("v3ry-s3cret"), "{shown}");
    }

    #[test]
    fn a_missing_credential_names_its_key() {
        let settings = Settings {
            secret: Some(BTreeMap::new()),
            ..Settings::default()
        };
        assert_eq!(
            settings.credential("newrelic_query_key"),
            Err(Failure::Error(
                "the Secret of spec.provider.secretRef does not contain the key newrelic_query_key"
                    .into()
            ))
        );
    }
}
