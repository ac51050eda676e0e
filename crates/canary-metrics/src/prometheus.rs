//! The Prometheus HTTP API: instant and range queries, with auth, headers and TLS options,
//! and errors that tell "unreachable", "query error", "no values" and "NaN" apart.

use std::time::Duration;

use serde_json::Value;

/// Flagger's Prometheus client timeout.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a query gave no value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// No answer from Prometheus.
    #[error("Prometheus unreachable: {address}")]
    Unreachable {
        /// The server, without credentials.
        address: String,
        /// The client's error, without the URL (it may hold credentials).
        #[source]
        source: reqwest::Error,
    },
    /// Prometheus answered something that is not JSON.
    #[error("query error from Prometheus: status {status}: unreadable answer")]
    Unreadable {
        /// The HTTP status.
        status: u16,
        /// Why it does not decode.
        #[source]
        source: serde_json::Error,
    },
    /// Prometheus refused the query.
    #[error("query error from Prometheus: {message} ({kind})")]
    Refused {
        /// Its `error`.
        message: String,
        /// Its `errorType`, e.g. `bad_data`.
        kind: String,
    },
    /// The result is a matrix or a string, not one number.
    #[error("query error from Prometheus: expected a vector, got a {0}")]
    NotAVector(String),
    /// The value is not a number.
    #[error("query error from Prometheus: not a number: {0}")]
    NotANumber(String),
    /// The result was empty.
    #[error("no values found")]
    NoValues,
    /// The result was NaN (e.g. 0/0 when nothing was served).
    #[error("no values found (NaN)")]
    NaN,
}

/// An address as logs may show it: without a user name or password.
fn without_credentials(address: &str) -> String {
    match reqwest::Url::parse(address) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => "the Prometheus address".into(),
    }
}

/// Credentials of a MetricTemplate's `secretRef` (Debug shows which kind, never a value).
#[derive(Clone, PartialEq)]
pub enum Auth {
    /// `token`: `Authorization: Bearer`.
    Bearer(String),
    /// `username` and `password`: basic auth.
    Basic(String, String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::Bearer(_) => "Bearer(..)",
            Auth::Basic(..) => "Basic(..)",
        })
    }
}

/// A Prometheus server (Debug shows its address, the kind of credentials and the header
/// names, never a credential).
#[derive(Clone)]
pub struct Prometheus {
    address: String,
    http: reqwest::Client,
    auth: Option<Auth>,
    headers: Vec<(String, String)>,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Prometheus")
            .field("address", &without_credentials(&self.address))
            .field("auth", &self.auth)
            .field("headers", &headers)
            .finish_non_exhaustive()
    }
}

impl Prometheus {
    /// A client for `address` (`http://prometheus:9090`).
    pub fn new(address: &str, insecure_skip_verify: bool) -> Result<Self, crate::Error> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .danger_accept_invalid_certs(insecure_skip_verify)
            .build()
            .map_err(crate::Error::Client)?;
        Ok(Prometheus {
            address: address.trim_end_matches('/').to_string(),
            http,
            auth: None,
            headers: Vec::new(),
        })
    }

    /// With credentials and extra headers.
    pub fn with(mut self, auth: Option<Auth>, headers: Vec<(String, String)>) -> Self {
        self.auth = auth;
        self.headers = headers;
        self
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Value, QueryError> {
        let mut req = self
            .http
            .get(format!("{}{path}", self.address))
            .query(params);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        req = match &self.auth {
            Some(Auth::Bearer(t)) => req.bearer_auth(t),
            Some(Auth::Basic(u, p)) => req.basic_auth(u, Some(p)),
            None => req,
        };
        let unreachable = |e: reqwest::Error| QueryError::Unreachable {
            address: without_credentials(&self.address),
            source: e.without_url(),
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(unreachable)?;
        let body: Value = serde_json::from_str(&text)
            .map_err(|source| QueryError::Unreadable { status, source })?;
        if body["status"] != "success" {
            return Err(QueryError::Refused {
                message: body["error"].as_str().unwrap_or("unknown error").into(),
                kind: body["errorType"].as_str().unwrap_or("error").into(),
            });
        }
        Ok(body["data"].clone())
    }

    /// An instant query: the last value of the result vector (or the scalar).
    pub async fn instant(&self, query: &str) -> Result<f64, QueryError> {
        let data = self
            .get("/api/v1/query", &[("query", query.to_string())])
            .await?;
        let value = match data["resultType"].as_str() {
            Some("scalar") => data["result"][1].clone(),
            Some("vector") => data["result"]
                .as_array()
                .and_then(|r| r.last())
                .map(|s| s["value"][1].clone())
                .unwrap_or(Value::Null),
            Some(other) => return Err(QueryError::NotAVector(other.into())),
            None => Value::Null,
        };
        let Some(text) = value.as_str() else {
            return Err(QueryError::NoValues);
        };
        let v: f64 = text
            .parse()
            .map_err(|_| QueryError::NotANumber(text.into()))?;
        if v.is_nan() {
            Err(QueryError::NaN)
        } else {
            Ok(v)
        }
    }

    /// A range query: `(timestamp, value)` pairs of the first series.
    pub async fn range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: Duration,
    ) -> Result<Vec<(f64, f64)>, QueryError> {
        let params = [
            ("query", query.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", format!("{}s", step.as_secs().max(1))),
        ];
        let data = self.get("/api/v1/query_range", &params).await?;
        let series = data["result"]
            .as_array()
            .and_then(|r| r.first())
            .ok_or(QueryError::NoValues)?;
        Ok(series["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p[0].as_f64()?, p[1].as_str()?.parse().ok()?)))
            .collect())
    }

    /// Flagger's availability check: `vector(1)` answers 1.
    pub async fn is_online(&self) -> Result<(), crate::Error> {
        match self.instant("vector(1)").await {
            Ok(1.0) => Ok(()),
            Ok(value) => Err(crate::Error::NotOne {
                address: self.address.clone(),
                value,
            }),
            Err(source) => Err(crate::Error::Offline {
                address: self.address.clone(),
                source,
            }),
        }
    }
}
