//! The HTTP side every HTTP backend shares: Flagger's 5 s timeout, `insecureSkipVerify`, the
//! template's extra headers, and the classes of failure: unreachable, authentication refused
//! (401, 403), any other refusal, an unreadable answer.

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{Failure, Settings};

/// Flagger's timeout for its HTTP backends.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// The most of a response body flaggerd reads: a larger answer is an error.
pub(crate) const BODY_MAX: usize = 1 << 20;

/// An HTTP client for one backend.
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    headers: Vec<(String, String)>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The template's headers may carry credentials: their names only.
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Http")
            .field("headers", &names)
            .finish_non_exhaustive()
    }
}

impl Http {
    /// A client with the template's TLS option and headers.
    pub(crate) fn new(settings: &Settings) -> Result<Self, Failure> {
        Self::with_timeout(settings, TIMEOUT)
    }

    /// The same with another timeout (InfluxDB's client waits 15 s).
    pub(crate) fn with_timeout(settings: &Settings, timeout: Duration) -> Result<Self, Failure> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .danger_accept_invalid_certs(settings.insecure_skip_verify)
            .build()
            .map_err(|e| {
                Failure::Error(format!(
                    "cannot build the HTTP client: {}",
                    canary_core::error_chain(&e)
                ))
            })?;
        Ok(Http {
            client,
            headers: settings.headers.clone(),
        })
    }

    /// The underlying client, to start a request.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `req` (with the template's headers): the status and body of any answer.
    pub(crate) async fn execute(
        &self,
        mut req: reqwest::RequestBuilder,
    ) -> Result<(u16, String), Failure> {
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.build().map_err(|e| {
            Failure::Error(format!(
                "cannot build the request: {}",
                canary_core::error_chain(&e.without_url())
            ))
        })?;
        let address = origin(req.url());
        let unreachable = |e: reqwest::Error| {
            Failure::Error(format!(
                "unreachable: {address}: {}",
                canary_core::error_chain(&e.without_url())
            ))
        };
        let mut resp = self.client.execute(req).await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > BODY_MAX {
                return Err(Failure::Error(format!(
                    "the answer of {address} is larger than {BODY_MAX} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Sends `req` (with the template's headers) and returns the body of a 2xx answer.
    pub(crate) async fn send(&self, req: reqwest::RequestBuilder) -> Result<String, Failure> {
        match self.execute(req).await? {
            (200..=299, body) => Ok(body),
            (status, body) => Err(refusal(status, &body)),
        }
    }

    /// [`Http::send`], then the body decoded as JSON.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, Failure> {
        let body = self.send(req).await?;
        decode(&body)
    }
}

/// A non-2xx answer as a failure: 401 and 403 are authentication failures.
pub(crate) fn refusal(status: u16, body: &str) -> Failure {
    let body = one_line(body);
    Failure::Error(match status {
        401 | 403 => format!("authentication failed: HTTP {status}: {body}"),
        _ => format!("query refused: HTTP {status}: {body}"),
    })
}

/// `body` decoded as JSON, or an "unreadable answer" failure quoting its start.
pub(crate) fn decode<T: DeserializeOwned>(body: &str) -> Result<T, Failure> {
    serde_json::from_str(body)
        .map_err(|e| Failure::Error(format!("unreadable answer: {e}: {}", one_line(body))))
}

/// `text` on one line: runs of whitespace become one space. Messages are cut to
/// [`crate::backends::MESSAGE_LIMIT`] only after every Secret value is removed from them
/// (`Template::check`), so that no piece of a credential survives a cut.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `scheme://host:port` of a URL: no path, query or credentials.
pub(crate) fn origin(url: &reqwest::Url) -> String {
    let mut s = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(p) = url.port() {
        s.push_str(&format!(":{p}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_tell_authentication_apart() {
        assert_eq!(
            refusal(403, "{\"errors\": [\"Forbidden\"]}"),
            Failure::Error("authentication failed: HTTP 403: {\"errors\": [\"Forbidden\"]}".into())
        );
        assert_eq!(
            refusal(400, "bad\n query"),
            Failure::Error("query refused: HTTP 400: bad query".into())
        );
    }

    #[test]
    fn bodies_are_kept_on_one_line() {
        assert_eq!(one_line("a \n  b\tc "), "a b c");
    }

    #[test]
    fn origins_hold_no_credentials_or_path() {
        let url =
            reqwest::Url::parse("https://u:p@api.example.com:8443/v1/q?key=1").expect("a URL");
        assert_eq!(origin(&url), "https://api.example.com:8443");
    }
}
