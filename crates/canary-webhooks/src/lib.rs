//! canary-webhooks: calls the canary's webhooks as Flagger does.
//!
//! The payload is Flagger's (`name`, `namespace`, `phase`, `checksum`, `metadata`), posted as
//! JSON with the hook's timeout; connection errors, 429 and 5xx are retried `retries` times
//! with backoff; only status codes up to 202 count as success, and the response body becomes
//! the error text. Each call carries an `Idempotency-Key` header that stays the same when
//! flaggerd repeats the call after a restart, so a receiver can act on it once. This crate
//! calls and reports; canary-core decides what a result means.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use canary_api::Canary;
use canary_core::Phase;
use canary_core::spec::Webhook;
use serde::Serialize;

/// The JSON body of every webhook call.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Payload {
    /// Canary name.
    pub name: String,
    /// Canary namespace.
    pub namespace: String,
    /// The phase the call is made in.
    pub phase: String,
    /// Fingerprint of the revision under analysis (last applied spec and tracked configs).
    pub checksum: String,
    /// The hook's metadata (for the loadtester: `type`, `cmd`...).
    pub metadata: BTreeMap<String, String>,
    /// Sent as the `Idempotency-Key` header, not in the body: the same for every attempt
    /// of one call, including a repeat after flaggerd restarted, so a receiver can act on
    /// the call once.
    #[serde(skip)]
    pub idempotency_key: Option<String>,
}

impl Payload {
    /// The payload of `hook` for `canary` in `phase`.
    pub fn new(canary: &Canary, phase: Phase, hook: &Webhook) -> Self {
        let status = canary.status.clone().unwrap_or_default();
        let checksum = canary_core::hash::spec_hash(&serde_json::json!({
            "lastAppliedSpec": status.last_applied_spec,
            "trackedConfigs": status.tracked_configs.unwrap_or_default(),
        }));
        Payload {
            name: canary.metadata.name.clone().unwrap_or_default(),
            namespace: canary.metadata.namespace.clone().unwrap_or_default(),
            phase: phase.as_str().to_string(),
            checksum,
            metadata: hook.metadata.clone().unwrap_or_default(),
            idempotency_key: None,
        }
    }

    /// The payload with its idempotency key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// Why a webhook call did not succeed. The text is what events and logs show (Flagger's:
/// the receiver's answer, or what kept the call from being made), never the address.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the webhook client")]
    Client(#[source] reqwest::Error),
    /// The payload could not be encoded as JSON.
    #[error("cannot encode the webhook payload")]
    Encode(#[source] serde_json::Error),
    /// No answer: the connection failed or timed out (its address left out).
    #[error("{}", describe(.0))]
    Transport(#[source] reqwest::Error),
    /// An answer that is not a success (above 202): the receiver's body, or its status when
    /// the body is empty.
    #[error("{message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The body, trimmed, or `status <code>`.
        message: String,
    },
}

/// The header that carries [`Payload::idempotency_key`].
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Calls webhooks.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait WebhookClient: Send + Sync {
    /// Posts `payload` to `hook`; `Err` carries why it did not succeed.
    async fn call(&self, hook: &Webhook, payload: &Payload) -> Result<(), Error>;
}

/// The HTTP client.
#[derive(Clone, Debug)]
pub struct HttpWebhooks {
    verified: reqwest::Client,
    insecure: reqwest::Client,
}

/// The longest backoff between retries, as Flagger's client.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl HttpWebhooks {
    /// A client; fails only when TLS cannot be set up.
    pub fn new() -> Result<Self, Error> {
        let build = |insecure: bool| {
            reqwest::Client::builder()
                .danger_accept_invalid_certs(insecure)
                .build()
                .map_err(Error::Client)
        };
        Ok(HttpWebhooks {
            verified: build(false)?,
            insecure: build(true)?,
        })
    }
}

#[async_trait]
impl WebhookClient for HttpWebhooks {
    async fn call(&self, hook: &Webhook, payload: &Payload) -> Result<(), Error> {
        let client = if hook.disable_tls {
            &self.insecure
        } else {
            &self.verified
        };
        let body = serde_json::to_vec(payload).map_err(Error::Encode)?;
        let attempts = hook.retries.unwrap_or(0).max(0) as u32 + 1;
        let mut last = None;
        for attempt in 0..attempts {
            if attempt > 0 {
                let backoff = Duration::from_secs(1u64 << (attempt - 1).min(5)).min(MAX_BACKOFF);
                tokio::time::sleep(backoff).await;
            }
            let mut request = client
                .post(&hook.url)
                .header("Content-Type", "application/json")
                .timeout(hook.timeout())
                .body(body.clone());
            if let Some(key) = &payload.idempotency_key {
                request = request.header(IDEMPOTENCY_KEY, key);
            }
            let sent = request.send().await;
            match sent {
                Err(e) => last = Some(Error::Transport(e.without_url())),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    if status <= 202 {
                        return Ok(());
                    }
                    let message = if text.trim().is_empty() {
                        format!("status {status}")
                    } else {
                        text.trim().to_string()
                    };
                    last = Some(Error::Refused { status, message });
                    if status != 429 && status < 500 {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or(Error::Refused {
            status: 0,
            message: "no attempt was made".into(),
        }))
    }
}

/// What went wrong, with its causes and without the address: the global event webhook's
/// often comes from a Secret (`EVENT_WEBHOOK_URL`), and a hook is named by the caller.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout: "
    } else if e.is_connect() {
        "connection failed: "
    } else {
        ""
    };
    format!("{kind}{}", canary_core::error_chain(e))
}
