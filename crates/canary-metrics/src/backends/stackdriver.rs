//! Stackdriver (Google Cloud Monitoring): the template's MQL query, sent as `QueryTimeSeries`
//! over its REST mapping, `POST https://monitoring.googleapis.com/v3/projects/<project>/timeSeries:query`
//! with `{"query": ...}` (project from the Secret's `project`); the value is the first value of
//! the first point of the first time series, as Flagger reads it. Authorization: a bearer token
//! from the Secret's `serviceAccountKey` (the OAuth2 service-account JWT flow), else from
//! `GOOGLE_APPLICATION_CREDENTIALS`, else from the GKE metadata server. Online: an empty query,
//! where Google's `INVALID_ARGUMENT` means the credentials were accepted.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{one_line, origin, refusal};
use super::{Answer, Backend, Failure, Http, Settings};

/// Cloud Monitoring's API when the template gives no address.
pub(crate) const DEFAULT_ADDRESS: &str = "https://monitoring.googleapis.com";

/// The OAuth2 scope Flagger's client asks for.
const SCOPE: &str = "https://www.googleapis.com/auth/monitoring.read";

/// Google's token endpoint when a key file names none.
const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The GKE/GCE metadata server's host, unless `GCE_METADATA_HOST` names another.
const METADATA_HOST: &str = "metadata.google.internal";

/// How long before its expiry a token is replaced.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// The most result pages read to find the first time series.
const MAX_PAGES: usize = 10;

pub(crate) struct Stackdriver {
    http: Http,
    address: String,
    project: String,
    auth: Auth,
    token: Mutex<Option<(String, Instant)>>,
}

/// Where the access token comes from.
enum Auth {
    /// A service-account key: the JWT flow at its token URI.
    Key(Box<ServiceAccount>),
    /// The metadata server's token endpoint (this URL).
    Metadata(String),
}

/// A service-account key file's fields that matter.
struct ServiceAccount {
    email: String,
    key_id: String,
    token_uri: String,
    key: RsaKeyPair,
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    client_email: String,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    private_key_id: String,
    #[serde(default)]
    token_uri: Option<String>,
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default, rename = "timeSeriesData")]
    data: Vec<TimeSeriesData>,
    #[serde(default, rename = "nextPageToken")]
    next_page: String,
}

#[derive(Deserialize)]
struct TimeSeriesData {
    #[serde(default, rename = "pointData")]
    points: Vec<PointData>,
}

#[derive(Deserialize)]
struct PointData {
    #[serde(default)]
    values: Vec<serde_json::Map<String, Value>>,
}

impl ServiceAccount {
    /// A key file's JSON, read; `what` names where it came from in messages.
    fn parse(json: &str, what: &str) -> Result<Self, Failure> {
        let bad = |why: String| {
            Failure::Error(format!("{what} is not a usable service account key: {why}"))
        };
        let file: KeyFile =
            serde_json::from_str(json).map_err(|e| bad(format!("not a JSON key file: {e}")))?;
        if let Some(kind) = file.kind.as_deref().filter(|k| *k != "service_account") {
            return Err(bad(format!(
                "its type is {kind:?}; only \"service_account\" keys are supported"
            )));
        }
        if file.client_email.is_empty() {
            return Err(bad("client_email is missing".into()));
        }
        let key = private_key(&file.private_key).map_err(bad)?;
        Ok(ServiceAccount {
            email: file.client_email,
            key_id: file.private_key_id,
            token_uri: file.token_uri.unwrap_or_else(|| TOKEN_URI.to_string()),
            key,
        })
    }

    /// The signed JWT asserting this account for [`SCOPE`], issued `now` (epoch seconds).
    fn assertion(&self, now: u64) -> Result<String, Failure> {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.key_id});
        let claims = json!({"iss": self.email, "scope": SCOPE, "aud": self.token_uri,
            "iat": now, "exp": now + 3600});
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signed.as_bytes(),
                &mut signature,
            )
            .map_err(|_| Failure::Error("cannot sign the service account JWT".into()))?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// The RSA key of a PEM `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1) block. The
/// reasons never quote the key.
fn private_key(pem: &str) -> Result<RsaKeyPair, String> {
    let mut label = None;
    let mut b64 = String::new();
    for line in pem.lines().map(str::trim) {
        if let Some(l) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            label = Some(l.to_string());
        } else if line.starts_with("-----END ") {
            break;
        } else if label.is_some() {
            b64.push_str(line);
        }
    }
    let label = label.ok_or("private_key holds no PEM block")?;
    let der = STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| "private_key's PEM block is not base64".to_string())?;
    match label.as_str() {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        other => return Err(format!("private_key is a {other}, not an RSA PRIVATE KEY")),
    }
    .map_err(|e| format!("private_key is not an RSA key ring can use: {e}"))
}

/// Seconds since the epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The first value of the first point of the first series; `None` when there is no series.
fn first_value(resp: &Response) -> Option<Answer> {
    let series = resp.data.first()?;
    let Some(point) = series.points.first() else {
        return Some(Err(Failure::no_values(
            "the first time series holds no points",
        )));
    };
    let Some(value) = point.values.first() else {
        return Some(Err(Failure::no_values("the first point holds no values")));
    };
    let number = |v: &Value| match v {
        // proto3 JSON writes an int64 and NaN or the infinities of a double as strings.
        Value::String(s) => s.parse::<f64>().ok(),
        v => v.as_f64(),
    };
    let answer = if let Some(v) = value.get("doubleValue") {
        match number(v) {
            Some(v) if v.is_nan() => Err(Failure::no_values("the first value is NaN")),
            Some(v) => Ok(v),
            None => Err(Failure::Error(format!(
                "unreadable answer: doubleValue {} is not a number",
                one_line(&v.to_string())
            ))),
        }
    } else if let Some(v) = value.get("int64Value") {
        number(v).ok_or_else(|| {
            Failure::Error(format!(
                "unreadable answer: int64Value {} is not a number",
                one_line(&v.to_string())
            ))
        })
    } else {
        let kind = value.keys().next().map_or("empty", String::as_str);
        Err(Failure::Error(format!(
            "the first value is a {kind}, not a doubleValue or int64Value"
        )))
    };
    Some(answer)
}

/// Google's error answer as a failure: `STATUS: message`.
fn fault(status: u16, body: &str) -> Failure {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let detail = parsed
        .as_ref()
        .and_then(|v| {
            let e = &v["error"];
            Some(format!(
                "{}: {}",
                e["status"].as_str()?,
                e["message"].as_str().unwrap_or_default()
            ))
        })
        .unwrap_or_else(|| body.to_string());
    refusal(status, &detail)
}

impl Stackdriver {
    pub(crate) fn new(settings: &Settings) -> Result<Self, Failure> {
        let project = settings.credential("project")?.trim().to_string();
        let auth = match settings
            .secret
            .as_ref()
            .and_then(|s| s.get("serviceAccountKey"))
        {
            Some(json) => Auth::Key(Box::new(ServiceAccount::parse(
                json,
                "the Secret's serviceAccountKey",
            )?)),
            None => match std::env::var("GOOGLE_APPLICATION_CREDENTIALS") {
                Ok(path) if !path.is_empty() => {
                    let what = format!("GOOGLE_APPLICATION_CREDENTIALS {path}");
                    let json = std::fs::read_to_string(&path)
                        .map_err(|e| Failure::Error(format!("cannot read {what}: {e}")))?;
                    Auth::Key(Box::new(ServiceAccount::parse(&json, &what)?))
                }
                _ => {
                    let host = std::env::var("GCE_METADATA_HOST")
                        .ok()
                        .filter(|h| !h.is_empty())
                        .unwrap_or_else(|| METADATA_HOST.to_string());
                    Auth::Metadata(format!(
                        "http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
                    ))
                }
            },
        };
        Ok(Stackdriver {
            http: Http::new(settings)?,
            address: settings.address_or(DEFAULT_ADDRESS),
            project,
            auth,
            token: Mutex::new(None),
        })
    }

    /// A valid access token: the cached one, or a new one.
    async fn access_token(&self) -> Result<String, Failure> {
        {
            let cached = self.token.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((token, until)) = cached.as_ref()
                && Instant::now() < *until
            {
                return Ok(token.clone());
            }
        }
        let failed = |cause: String| {
            Failure::Error(format!(
                "authentication failed: cannot get an access token: {cause}"
            ))
        };
        let (endpoint, req) = match &self.auth {
            Auth::Key(sa) => {
                let form = [
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &sa.assertion(now())?),
                ];
                // Only the origin: a token_uri may hold credentials.
                let shown = reqwest::Url::parse(&sa.token_uri)
                    .map(|u| origin(&u))
                    .unwrap_or_else(|_| "the key file's token_uri".into());
                (shown, self.http.client().post(&sa.token_uri).form(&form))
            }
            Auth::Metadata(url) => (
                format!(
                    "the GKE metadata server {url} (no serviceAccountKey in the Secret and no GOOGLE_APPLICATION_CREDENTIALS)"
                ),
                self.http
                    .client()
                    .get(url)
                    .query(&[("scopes", SCOPE)])
                    .header("Metadata-Flavor", "Google"),
            ),
        };
        let (status, body) = self
            .http
            .execute(req)
            .await
            .map_err(|f| failed(format!("{endpoint}: {}", f.message())))?;
        if !(200..300).contains(&status) {
            return Err(failed(format!(
                "{endpoint}: HTTP {status}: {}",
                one_line(&body)
            )));
        }
        let token: Token = serde_json::from_str(&body)
            .map_err(|e| failed(format!("{endpoint}: unreadable answer: {e}")))?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3600));
        let until = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN);
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((token.access_token.clone(), until));
        Ok(token.access_token)
    }

    /// `timeSeries:query` with `body`; answers the status and body of any answer.
    async fn query_time_series(&self, body: &Value) -> Result<(u16, String), Failure> {
        let token = self.access_token().await?;
        let url = format!(
            "{}/v3/projects/{}/timeSeries:query",
            self.address, self.project
        );
        let req = self
            .http
            .client()
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string());
        self.http.execute(req).await
    }
}

#[async_trait]
impl Backend for Stackdriver {
    async fn query(&self, query: &str) -> Answer {
        let mut body = json!({"query": query});
        for _ in 0..MAX_PAGES {
            let (status, text) = self.query_time_series(&body).await?;
            if !(200..300).contains(&status) {
                return Err(fault(status, &text));
            }
            let resp: Response = super::http::decode(&text)?;
            if let Some(answer) = first_value(&resp) {
                return answer;
            }
            if resp.next_page.is_empty() {
                break;
            }
            body["pageToken"] = json!(resp.next_page);
        }
        Err(Failure::no_values("the answer holds no time series"))
    }

    async fn online(&self) -> Result<(), Failure> {
        let (status, body) = self.query_time_series(&json!({"query": ""})).await?;
        let invalid_argument = || {
            serde_json::from_str::<Value>(&body)
                .is_ok_and(|v| v["error"]["status"] == "INVALID_ARGUMENT")
        };
        if (200..300).contains(&status) || (status == 400 && invalid_argument()) {
            Ok(())
        } else {
            Err(fault(status, &body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str) -> Option<Answer> {
        let resp: Response = serde_json::from_str(body).expect("json");
        first_value(&resp)
    }

    fn point(value: &str) -> String {
        format!(r#"{{"timeSeriesData":[{{"pointData":[{{"values":[{value}]}}]}}]}}"#)
    }

    #[test]
    fn the_first_value_of_the_first_point_counts() {
        assert_eq!(answer(&point(r#"{"doubleValue": 0.25}"#)), Some(Ok(0.25)));
        assert_eq!(answer(&point(r#"{"int64Value": "42"}"#)), Some(Ok(42.0)));
        assert!(matches!(
            answer(&point(r#"{"doubleValue": "NaN"}"#)),
            Some(Err(Failure::NoData(_)))
        ));
        assert!(matches!(
            answer(&point(r#"{"boolValue": true}"#)),
            Some(Err(Failure::Error(m))) if m.contains("boolValue")
        ));
        assert!(matches!(answer(&point("")), Some(Err(Failure::NoData(_)))));
        assert_eq!(answer(r#"{"timeSeriesDescriptor": {}}"#), None);
    }

    #[test]
    fn google_errors_name_their_status() {
        assert_eq!(
            fault(
                401,
                r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#
            ),
            Failure::Error(
                "authentication failed: HTTP 401: UNAUTHENTICATED: Request had invalid authentication credentials."
                    .into()
            )
        );
    }

    #[test]
    fn unusable_keys_are_named_without_their_content() {
        let Err(Failure::Error(m)) = ServiceAccount::parse(
            r#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n"}"#,
            "the key",
        ) else {
            panic!("a bad key was accepted");
        };
        assert!(
            m.starts_with(
                "the key is not a usable service account key: private_key is not an RSA key"
            ),
            "{m}"
        );
        assert!(!m.contains("c2VjcmV0"), "{m}");
        let Err(Failure::Error(m)) =
            ServiceAccount::parse(r#"{"type":"authorized_user"}"#, "the key")
        else {
            panic!("a user key was accepted");
        };
        assert!(m.contains("only \"service_account\" keys"), "{m}");
    }
}
