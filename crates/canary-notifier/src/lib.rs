//! canary-notifier: alerts to chat (Slack, MS Teams, Discord, Rocket, Google Chat).
//!
//! [`Notifier`] receives the engine's alerts. [`AlertProviders`] sends each to the canary's
//! `analysis.alerts` whose severity takes it, through the AlertProvider they name (address and
//! token from its Secret, optional proxy); a canary without alerts goes to the [`Global`]
//! notifier of `-slack-url` or `-msteams-url` when one is set. A failed alert is returned as
//! an error for the caller to log; it never blocks or changes the analysis. Errors never
//! carry an address, a token or a proxy: they often come from Secrets.

pub mod payload;

use std::time::Duration;

use async_trait::async_trait;
use canary_api::{AlertProvider, Canary, SecretError};
use canary_core::{Alert, Level};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

/// Why an alert was not delivered. Never names an address, a token or a proxy (they often
/// come from Secrets); the causes are kept as sources.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The AlertProvider could not be read.
    #[error("alert provider {name}.{namespace} error")]
    Provider {
        /// Its name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The AlertProvider's Secret could not be read.
    #[error(transparent)]
    Secret(#[from] canary_api::SecretError),
    /// Neither `spec.address` nor the Secret's `address` is set.
    #[error(
        "alert provider {name}.{namespace} has no address (spec.address or the secret's address)"
    )]
    NoAddress {
        /// The AlertProvider's name.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// `spec.proxy` is not a valid address.
    #[error("the {kind} proxy address is not valid")]
    Proxy {
        /// The provider type.
        kind: String,
        /// Why (without the address).
        #[source]
        source: reqwest::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the {kind} client")]
    Client {
        /// The provider type.
        kind: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The message could not be encoded.
    #[error("cannot encode the {kind} message")]
    Encode {
        /// The provider type.
        kind: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// No answer (connection, timeout).
    #[error("posting to {kind} failed")]
    Post {
        /// The provider type.
        kind: String,
        /// Why (without the address).
        #[source]
        source: reqwest::Error,
    },
    /// An answer that is not a success.
    #[error("{kind} answered {status}: {body}")]
    Refused {
        /// The provider type.
        kind: String,
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// The answer, at most 200 characters, the address and token blanked.
        body: String,
    },
    /// The global notifier (`-slack-url`, `-msteams-url`) failed.
    #[error("global {kind} notifier")]
    Global {
        /// `slack` or `msteams`.
        kind: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// Some of the canary's alerts failed: each with its alert and provider.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Alerts(Vec<AlertFailure>),
}

/// One of a canary's `analysis.alerts` that failed.
#[derive(Debug, thiserror::Error)]
#[error("alert {alert} ({provider}.{namespace}): {}", canary_core::error_chain(.error))]
pub struct AlertFailure {
    /// The alert's name.
    pub alert: String,
    /// The AlertProvider it names.
    pub provider: String,
    /// The AlertProvider's namespace.
    pub namespace: String,
    /// Why.
    pub error: Error,
}

/// Flagger's notifier timeout.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Sends alerts.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends `alert` about `canary` to the providers that take its severity.
    async fn send(&self, canary: &Canary, alert: &Alert) -> Result<(), Error>;
}

/// No alerting configured: alerts are dropped.
#[derive(Clone, Copy, Debug, Default)]
pub struct NopNotifier;

#[async_trait]
impl Notifier for NopNotifier {
    async fn send(&self, _: &Canary, _: &Alert) -> Result<(), Error> {
        Ok(())
    }
}

/// Alerts through the AlertProviders a canary's `analysis.alerts` name, or the global
/// notifier for a canary without alerts.
pub struct AlertProviders {
    client: kube::Client,
    cluster: String,
    global: Option<Global>,
}

/// The notifier of Flagger's `-slack-*` or `-msteams-*` flags.
#[derive(Clone, PartialEq, Eq)]
pub struct Global {
    /// `slack` or `msteams`.
    pub kind: String,
    /// The incoming webhook address.
    pub url: String,
    /// Bearer token (`-slack-token`).
    pub token: Option<String>,
    /// Proxy for the post.
    pub proxy: Option<String>,
    /// Slack user name (`-slack-user`, `flagger` by default).
    pub username: String,
    /// Slack channel (`-slack-channel`).
    pub channel: String,
}

impl std::fmt::Debug for Global {
    /// Names the kind only: the address and token are secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Global")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl AlertProviders {
    /// Reads AlertProviders and their Secrets with `client`; `cluster` (`-cluster-name`) is
    /// added to every alert when set.
    pub fn new(client: kube::Client, cluster: &str) -> Self {
        AlertProviders {
            client,
            cluster: cluster.into(),
            global: None,
        }
    }

    /// Sends the alerts of canaries without `analysis.alerts` to `global`.
    pub fn with_global(mut self, global: Option<Global>) -> Self {
        self.global = global;
        self
    }
}

/// Where and how one alert is posted.
struct Destination {
    kind: String,
    url: String,
    token: Option<String>,
    proxy: Option<String>,
    channel: String,
    username: String,
}

/// True when an alert of `severity` (`info`, `warn`, `error`; empty means info, where
/// Flagger sends nothing) takes a message of `level`.
pub fn takes(severity: &str, level: Level) -> bool {
    match severity {
        "" | "info" => true,
        "warn" => level >= Level::Warn,
        "error" => level == Level::Error,
        _ => false,
    }
}

#[async_trait]
impl Notifier for AlertProviders {
    async fn send(&self, canary: &Canary, alert: &Alert) -> Result<(), Error> {
        let ns = canary.metadata.namespace.clone().unwrap_or_default();
        let alerts = canary
            .spec
            .analysis()
            .map(|a| a.alerts.clone())
            .unwrap_or_default();
        if alerts.is_empty() {
            return match &self.global {
                Some(g) => {
                    let to = Destination {
                        kind: g.kind.clone(),
                        url: g.url.clone(),
                        token: g.token.clone(),
                        proxy: g.proxy.clone(),
                        channel: g.channel.clone(),
                        username: g.username.clone(),
                    };
                    self.deliver(canary, alert, &to)
                        .await
                        .map_err(|e| Error::Global {
                            kind: g.kind.clone(),
                            source: Box::new(e),
                        })
                }
                None => Ok(()),
            };
        }
        let mut failures = Vec::new();
        for a in alerts
            .iter()
            .filter(|a| takes(a.severity.as_deref().unwrap_or(""), alert.level))
        {
            let provider_ns = a
                .provider_ref
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| ns.clone());
            if let Err(e) = self
                .post(canary, alert, &a.provider_ref.name, &provider_ns)
                .await
            {
                failures.push(AlertFailure {
                    alert: a.name.clone(),
                    provider: a.provider_ref.name.clone(),
                    namespace: provider_ns,
                    error: e,
                });
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::Alerts(failures))
        }
    }
}

impl AlertProviders {
    async fn post(
        &self,
        canary: &Canary,
        alert: &Alert,
        name: &str,
        ns: &str,
    ) -> Result<(), Error> {
        let providers: Api<AlertProvider> = Api::namespaced(self.client.clone(), ns);
        let provider = providers
            .get(name)
            .await
            .map_err(|source| Error::Provider {
                name: name.into(),
                namespace: ns.into(),
                source: Box::new(source),
            })?;
        let spec = &provider.spec;
        let (mut url, mut token) = (spec.address.clone().unwrap_or_default(), None);
        if let Some(s) = &spec.secret_ref {
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
            let secret = secrets.get(&s.name).await.map_err(|source| SecretError {
                kind: "alert provider",
                name: name.into(),
                namespace: ns.into(),
                secret: s.name.clone(),
                source: Box::new(source),
            })?;
            let data = secret.data.unwrap_or_default();
            if let Some(a) = data.get("address") {
                url = String::from_utf8_lossy(&a.0).trim().to_string();
            }
            token = data
                .get("token")
                .map(|t| String::from_utf8_lossy(&t.0).trim().to_string());
        }
        if url.is_empty() {
            return Err(Error::NoAddress {
                name: name.into(),
                namespace: ns.into(),
            });
        }
        let to = Destination {
            kind: spec.r#type.clone(),
            url,
            token,
            proxy: spec.proxy.clone(),
            channel: spec.channel.clone().unwrap_or_else(|| "general".into()),
            username: spec.username.clone().unwrap_or_else(|| "flagger".into()),
        };
        self.deliver(canary, alert, &to).await
    }

    /// Posts `alert` to `to`; the error names the provider type and the cause, never the
    /// address, token or proxy.
    async fn deliver(&self, canary: &Canary, alert: &Alert, to: &Destination) -> Result<(), Error> {
        let mut fields = Vec::new();
        if !self.cluster.is_empty() {
            fields.push(("Cluster".to_string(), self.cluster.clone()));
        }
        fields.extend(alert.fields.iter().cloned());
        let message = payload::Message {
            workload: format!(
                "{}.{}",
                canary.metadata.name.as_deref().unwrap_or_default(),
                canary.metadata.namespace.as_deref().unwrap_or_default()
            ),
            text: alert.message.clone(),
            fields,
            error: alert.level == Level::Error,
            channel: to.channel.clone(),
            username: to.username.clone(),
        };
        let mut builder = reqwest::Client::builder().timeout(TIMEOUT);
        let kind = &to.kind;
        if let Some(proxy) = to.proxy.as_deref().filter(|p| !p.is_empty()) {
            let proxy = reqwest::Proxy::all(proxy).map_err(|e| Error::Proxy {
                kind: kind.clone(),
                source: e.without_url(),
            })?;
            builder = builder.proxy(proxy);
        }
        let client = builder.build().map_err(|e| Error::Client {
            kind: kind.clone(),
            source: e.without_url(),
        })?;
        let body =
            serde_json::to_vec(&payload::body(kind, &message)).map_err(|source| Error::Encode {
                kind: kind.clone(),
                source,
            })?;
        let mut req = client
            .post(payload::address(kind, &to.url))
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(t) = &to.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| Error::Post {
            kind: kind.clone(),
            source: e.without_url(),
        })?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            return Err(Error::Refused {
                kind: kind.clone(),
                status,
                body: canary_core::validate::truncate(&redact(&text, to), 200),
            });
        }
        Ok(())
    }
}

/// `text` with the destination's address and token blanked, should an answer echo them.
fn redact(text: &str, to: &Destination) -> String {
    let mut out = text.to_string();
    for secret in [Some(&to.url), to.token.as_ref(), to.proxy.as_ref()]
        .into_iter()
        .flatten()
        .filter(|s| s.len() >= 4)
    {
        out = out.replace(secret.as_str(), "[redacted]");
    }
    out
}
