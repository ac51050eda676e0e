//! Google Cloud Monitoring's `projects.timeSeries.query` (the REST mapping of
//! `QueryTimeSeries`): `POST /v3/projects/<project>/timeSeries:query` with `{"query": <MQL>}`
//! and `Authorization: Bearer <token>`, answering `timeSeriesData` with one point holding the
//! source's value as `doubleValue` (NaN as the string `"NaN"`), no `timeSeriesData` when it
//! has no data, 400 `INVALID_ARGUMENT` for an empty query, 401 `UNAUTHENTICATED` without a
//! token it issued. `POST /token` is Google's OAuth2 token endpoint for the service-account
//! JWT flow (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>`),
//! issuing a token for each assertion the router's [`Accept`] accepts: [`rs256`] checks it as
//! Google does (the RS256 signature with the service account's public key, the key id, issuer,
//! audience, scope and lifetime).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{self, KeyPair, RsaKeyPair, UnparsedPublicKey};
use serde_json::{Value, json};

use super::Source;

/// The grant type of the service-account JWT flow.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The OAuth scope the assertions must ask for: reading Cloud Monitoring.
pub const SCOPE: &str = "https://www.googleapis.com/auth/monitoring.read";

/// Checks a JWT assertion (signature and claims) given as `(assertion, audience)`, the
/// audience being the token endpoint's URL as it was requested (`http://<Host>/token`);
/// `Err` holds the `error_description`.
pub type Accept = Arc<dyn Fn(&str, &str) -> Result<(), String> + Send + Sync>;

/// The public key (DER `RSAPublicKey`, as [`rs256`] takes it) of a PKCS#8 PEM RSA private key,
/// as a service-account key file's `private_key` holds it.
pub fn public_key_of(pkcs8_pem: &str) -> Option<Vec<u8>> {
    let b64: String = pkcs8_pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(b64).ok()?;
    let pair = RsaKeyPair::from_pkcs8(&der).ok()?;
    Some(pair.public_key().as_ref().to_vec())
}

/// Google's check of a JWT-bearer assertion of the service account `client_email`, whose key
/// `key_id` has the public key `public_key` (DER `RSAPublicKey`, see [`public_key_of`]): the
/// header is RS256 with that `kid`, the signature verifies, `iss` is the account, `aud` the
/// token endpoint, `scope` is [`SCOPE`], and the token lives at most an hour, from now.
pub fn rs256(client_email: &str, key_id: &str, public_key: Vec<u8>) -> Accept {
    let (email, key_id) = (client_email.to_string(), key_id.to_string());
    Arc::new(move |jwt: &str, audience: &str| {
        let parts: Vec<&str> = jwt.split('.').collect();
        let [header, claims, sig] = parts[..] else {
            return Err("Invalid JWT: not a JWS compact serialization.".into());
        };
        let part = |p: &str| -> Result<Value, String> {
            let bytes = URL_SAFE_NO_PAD
                .decode(p)
                .map_err(|_| "Invalid JWT: not base64url.".to_string())?;
            serde_json::from_slice(&bytes).map_err(|_| "Invalid JWT: not JSON.".to_string())
        };
        let (h, c) = (part(header)?, part(claims)?);
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| "Invalid JWT Signature.".to_string())?;
        if h["alg"] != "RS256" || h["kid"] != key_id.as_str() {
            return Err("Invalid JWT Signature.".into());
        }
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &public_key)
            .verify(format!("{header}.{claims}").as_bytes(), &sig)
            .map_err(|_| "Invalid JWT Signature.".to_string())?;
        if c["iss"] != email.as_str() {
            return Err("Invalid grant: account not found".into());
        }
        if c["aud"] != audience {
            return Err("Invalid JWT: Failed audience check.".into());
        }
        if c["scope"] != SCOPE {
            return Err("Invalid OAuth scope or ID token audience provided.".into());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        match (c["iat"].as_i64(), c["exp"].as_i64()) {
            (Some(iat), Some(exp)) if exp > now && iat <= now + 60 && exp - iat <= 3600 => Ok(()),
            _ => Err(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
                    .into(),
            ),
        }
    })
}

/// Google's JSON error answer.
fn fault(status: StatusCode, message: &str, kind: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": kind}});
    (
        status,
        [("content-type", "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

/// A JSON 200 answer.
fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

/// The pairs of a form-encoded body.
fn form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    reqwest::Url::parse(&format!("http://form.invalid/?{text}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// Seconds since the epoch as RFC 3339 (UTC).
fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A value as proto3 JSON writes a double: a number, or a string for NaN and the infinities.
fn double(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(v)
    }
}

/// Cloud Monitoring for `project` and its token endpoint, answering from `source` (the key is
/// the query).
pub fn router(project: &str, accept: Accept, source: Source) -> axum::Router {
    let issued: Arc<Mutex<HashSet<String>>> = Arc::default();
    let counter = Arc::new(AtomicU64::new(1));
    let tokens = issued.clone();
    let token = move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let (accept, tokens, counter) = (accept.clone(), tokens.clone(), counter.clone());
        async move {
            let host = headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .or_else(|| uri.authority().map(|a| a.to_string()))
                .unwrap_or_default();
            let audience = format!("http://{host}/token");
            let pairs = form(&body);
            let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            let oauth = |e: &str, d: &str| {
                (
                    StatusCode::BAD_REQUEST,
                    [("content-type", "application/json; charset=utf-8")],
                    json!({"error": e, "error_description": d}).to_string(),
                )
                    .into_response()
            };
            if get("grant_type") != Some(JWT_BEARER) {
                return oauth("unsupported_grant_type", "Invalid grant_type");
            }
            let Some(assertion) = get("assertion") else {
                return oauth("invalid_request", "Missing required parameter: assertion");
            };
            if let Err(d) = accept(assertion, &audience) {
                return oauth("invalid_grant", &d);
            }
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let token = format!("ya29.stand-in-token-{n}");
            tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(token.clone());
            ok(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))
        }
    };
    let project = project.to_string();
    let query = move |Path(name): Path<String>, headers: HeaderMap, body: Bytes| {
        let (issued, source, project) = (issued.clone(), source.clone(), project.clone());
        async move {
            let bearer = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string);
            let known = bearer.is_some_and(|t| {
                issued
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(&t)
            });
            if !known {
                return fault(
                    StatusCode::UNAUTHORIZED,
                    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                    "UNAUTHENTICATED",
                );
            }
            if name != project {
                return fault(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "Permission monitoring.timeSeries.list denied (or the resource may not exist) on projects/{name}."
                    ),
                    "PERMISSION_DENIED",
                );
            }
            let Ok(input) = serde_json::from_slice::<Value>(&body) else {
                return fault(
                    StatusCode::BAD_REQUEST,
                    "Invalid JSON payload received.",
                    "INVALID_ARGUMENT",
                );
            };
            let q = input["query"].as_str().unwrap_or_default().to_string();
            if q.trim().is_empty() {
                return fault(
                    StatusCode::BAD_REQUEST,
                    "Field query had an invalid value: the query is empty.",
                    "INVALID_ARGUMENT",
                );
            }
            let descriptor = json!({"pointDescriptors": [
                {"key": "value", "valueType": "DOUBLE", "metricKind": "GAUGE"}]});
            match source(q).await {
                Some(v) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs();
                    let interval = json!({"startTime": rfc3339(now - 60), "endTime": rfc3339(now)});
                    ok(
                        json!({"timeSeriesDescriptor": descriptor, "timeSeriesData": [{
                        "labelValues": [],
                        "pointData": [{"values": [{"doubleValue": double(v)}],
                                       "timeInterval": interval}]}]}),
                    )
                }
                None => ok(json!({"timeSeriesDescriptor": descriptor})),
            }
        }
    };
    axum::Router::new()
        .route("/token", post(token))
        .route("/v3/projects/{project}/timeSeries:query", post(query))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn malformed_assertions_and_keys_are_refused() {
        let accept = rs256("a@b.iam.gserviceaccount.com", "k1", vec![]);
        assert!(accept("not-a-jwt", "http://h/token").is_err());
        assert!(accept("e30.e30.AAAA", "http://h/token").is_err());
        assert_eq!(public_key_of("-----BEGIN PRIVATE KEY-----\nAAAA\n"), None);
    }

    #[test]
    fn forms_are_decoded() {
        assert_eq!(
            form(b"grant_type=urn%3Aietf%3Aparams&assertion=a.b.c"),
            vec![
                ("grant_type".to_string(), "urn:ietf:params".to_string()),
                ("assertion".to_string(), "a.b.c".to_string())
            ]
        );
    }
}
