//! CloudWatch's `GetMetricData` over the AWS JSON 1.0 protocol: `POST /` with
//! `Content-Type: application/x-amz-json-1.0` and
//! `X-Amz-Target: GraniteServiceVersion20100801.GetMetricData`, a body of `MetricDataQueries`,
//! `StartTime` and `EndTime` (epoch seconds), answering one `MetricDataResults` entry per query
//! (the source's value at `EndTime`, none when it has no data, NaN as the string `"NaN"`).
//! Errors are CloudWatch's `{"__type": "...#Name", "message": ...}`: 403 for a request
//! without or with a refused signature, 400 `ValidationException` for an empty query list.
//!
//! The signature check is the router's [`Verify`]: [`sigv4`] checks it as AWS does, re-signing
//! the request with aws-sigv4 from the secret key of the access key id it names, at its
//! `X-Amz-Date`, and comparing.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::Source;

/// The `X-Amz-Target` of GetMetricData.
pub const TARGET: &str = "GraniteServiceVersion20100801.GetMetricData";

/// A request as received, for a [`Verify`] to check its signature.
#[derive(Clone, Debug)]
pub struct Signed {
    /// The path and query, as sent (`/`).
    pub path: String,
    /// Every header, `Authorization` included.
    pub headers: HeaderMap,
    /// The body, as sent.
    pub body: Bytes,
}

/// Why a signature is refused, each with CloudWatch's 403 answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// The access key id is not known: `UnrecognizedClientException`.
    UnknownKey,
    /// The signature does not match: `InvalidSignatureException` with this message.
    BadSignature(String),
}

/// Checks a request's signature.
pub type Verify = Arc<dyn Fn(&Signed) -> Result<(), Refusal> + Send + Sync>;

/// The access key id of a SigV4 `Authorization` header (`Credential=<id>/<scope>`).
pub fn access_key_id(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let credential = auth.split("Credential=").nth(1)?;
    Some(credential.split('/').next()?.to_string())
}

/// The signing service name of CloudWatch.
const SERVICE: &str = "monitoring";

/// An `X-Amz-Date` (`20260101T120000Z`) as a time.
fn amz_date(s: &str) -> Option<SystemTime> {
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ").ok()?;
    let secs = u64::try_from(t.and_utc().timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// A [`Verify`] checking SigV4 as AWS does, for long-term keys (`access key id -> secret
/// access key`): see [`sigv4_with_tokens`].
pub fn sigv4(keys: &[(&str, &str)]) -> Verify {
    let keys: Vec<(&str, &str, Option<&str>)> = keys
        .iter()
        .map(|&(id, secret)| (id, secret, None))
        .collect();
    sigv4_with_tokens(&keys)
}

/// A [`Verify`] checking SigV4 as AWS does, for keys `(access key id, secret access key,
/// session token of a temporary credential)`: the key id is known (and sent with its
/// session token, if it has one), the scope is `<date>/<region>/monitoring/aws4_request`,
/// the `X-Amz-Date` is within 15 minutes of now, `host` and `x-amz-date` are signed, and
/// re-signing the signed headers and body with the secret key, in the scope's region, gives
/// the same signature.
pub fn sigv4_with_tokens(keys: &[(&str, &str, Option<&str>)]) -> Verify {
    let keys: Vec<(String, String, Option<String>)> = keys
        .iter()
        .map(|&(id, secret, token)| {
            (
                id.to_string(),
                secret.to_string(),
                token.map(str::to_string),
            )
        })
        .collect();
    Arc::new(move |req: &Signed| {
        let header = |k: &str| req.headers.get(k).and_then(|v| v.to_str().ok());
        let id = access_key_id(&req.headers).ok_or(Refusal::UnknownKey)?;
        let (_, secret, token) = keys
            .iter()
            .find(|(k, _, _)| *k == id)
            .ok_or(Refusal::UnknownKey)?;
        if token.is_some() && header("x-amz-security-token") != token.as_deref() {
            return Err(Refusal::UnknownKey);
        }
        let bad = |m: &str| Refusal::BadSignature(m.to_string());
        let auth = header("authorization").unwrap_or_default();
        let part = |name: &str| {
            auth.split([' ', ','])
                .find_map(|p| p.strip_prefix(name))
                .unwrap_or_default()
        };
        if !auth.starts_with("AWS4-HMAC-SHA256 ") {
            return Err(bad("Unsupported signature algorithm."));
        }
        let scope: Vec<&str> = part("Credential=").split('/').collect();
        let date = header("x-amz-date").unwrap_or_default();
        let [_, day, region, service, terminator] = scope[..] else {
            return Err(bad(
                "Credential should be scoped to a valid region and service.",
            ));
        };
        if region.is_empty()
            || service != SERVICE
            || terminator != "aws4_request"
            || !date.starts_with(day)
        {
            return Err(bad(
                "Credential should be scoped to a valid region and service.",
            ));
        }
        let time = amz_date(date).ok_or_else(|| bad("Invalid X-Amz-Date."))?;
        let skew = SystemTime::now()
            .duration_since(time)
            .unwrap_or_else(|e| e.duration());
        if skew > Duration::from_secs(15 * 60) {
            return Err(bad("Signature expired."));
        }
        let signed: Vec<&str> = part("SignedHeaders=").split(';').collect();
        if !signed.contains(&"host") || !signed.contains(&"x-amz-date") {
            return Err(bad("host and x-amz-date must be signed."));
        }
        let mut headers = Vec::new();
        for name in &signed {
            headers.push((
                *name,
                header(name).ok_or_else(|| bad("a signed header is missing"))?,
            ));
        }
        let uri = format!("http://{}{}", header("host").unwrap_or_default(), req.path);
        let identity: Identity =
            Credentials::new(id, secret.clone(), token.clone(), None, "stand-in").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(SERVICE)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|_| bad("unsignable request"))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            uri,
            headers.into_iter(),
            SignableBody::Bytes(&req.body),
        )
        .map_err(|_| bad("unsignable request"))?;
        let expected = sign(signable, &params)
            .map_err(|_| bad("unsignable request"))?
            .signature()
            .to_string();
        if part("Signature=") == expected {
            Ok(())
        } else {
            Err(bad(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
            ))
        }
    })
}

/// CloudWatch's error answer.
fn fault(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"__type": kind, "message": message});
    (
        status,
        [("content-type", "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
}

/// A value as AWS JSON writes a double: a number, or a string for NaN and the infinities.
fn double(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(v)
    }
}

/// CloudWatch's GetMetricData answering from `source`, each query keyed by its `Expression`
/// or, without one, its `Id`.
pub fn router(verify: Verify, source: Source) -> axum::Router {
    let handler = move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let (verify, source) = (verify.clone(), source.clone());
        async move {
            if headers.get("authorization").is_none() {
                return fault(
                    StatusCode::FORBIDDEN,
                    "com.amazon.coral.service#MissingAuthenticationTokenException",
                    "Request is missing Authentication Token",
                );
            }
            let signed = Signed {
                path: uri
                    .path_and_query()
                    .map_or("/".to_string(), |p| p.to_string()),
                headers: headers.clone(),
                body: body.clone(),
            };
            match verify(&signed) {
                Ok(()) => {}
                Err(Refusal::UnknownKey) => {
                    return fault(
                        StatusCode::FORBIDDEN,
                        "com.amazon.coral.service#UnrecognizedClientException",
                        "The security token included in the request is invalid.",
                    );
                }
                Err(Refusal::BadSignature(m)) => {
                    return fault(
                        StatusCode::FORBIDDEN,
                        "com.amazon.coral.service#InvalidSignatureException",
                        &m,
                    );
                }
            }
            let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
            if header("x-amz-target") != TARGET {
                return fault(
                    StatusCode::BAD_REQUEST,
                    "com.amazon.coral.service#UnknownOperationException",
                    "",
                );
            }
            if !header("content-type").starts_with("application/x-amz-json-1.0") {
                return fault(
                    StatusCode::BAD_REQUEST,
                    "com.amazon.coral.service#SerializationException",
                    "Content-Type must be application/x-amz-json-1.0",
                );
            }
            let Ok(input) = serde_json::from_slice::<Value>(&body) else {
                return fault(
                    StatusCode::BAD_REQUEST,
                    "com.amazon.coral.service#SerializationException",
                    "Start of structure or map found where not expected.",
                );
            };
            let queries = input["MetricDataQueries"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if queries.is_empty() {
                return fault(
                    StatusCode::BAD_REQUEST,
                    "com.amazon.coral.validate#ValidationException",
                    "1 validation error detected: Value '[]' at 'metricDataQueries' failed to satisfy constraint: Member must have length greater than or equal to 1",
                );
            }
            let (Some(start), Some(end)) = (input["StartTime"].as_f64(), input["EndTime"].as_f64())
            else {
                return fault(
                    StatusCode::BAD_REQUEST,
                    "com.amazon.coral.validate#ValidationException",
                    "StartTime and EndTime are required",
                );
            };
            if start >= end {
                return fault(
                    StatusCode::BAD_REQUEST,
                    "com.amazon.coral.service#InvalidParameterValueException",
                    "The parameter StartTime must be less than the parameter EndTime.",
                );
            }
            let mut results = Vec::new();
            for q in &queries {
                let id = q["Id"].as_str().unwrap_or_default().to_string();
                let key = q["Expression"].as_str().unwrap_or(&id).to_string();
                let label = q["Label"].as_str().unwrap_or(&id).to_string();
                let (timestamps, values) = match super::at(&source, key, end).await {
                    Some(v) => (vec![json!(end.floor())], vec![double(v)]),
                    None => (vec![], vec![]),
                };
                results.push(json!({"Id": id, "Label": label, "Timestamps": timestamps,
                    "Values": values, "StatusCode": "Complete"}));
            }
            let body = json!({"MetricDataResults": results, "Messages": []});
            (
                StatusCode::OK,
                [("content-type", "application/x-amz-json-1.0")],
                body.to_string(),
            )
                .into_response()
        }
    };
    axum::Router::new().route("/", post(handler))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_are_read() {
        assert_eq!(
            amz_date("20240229T123456Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_210_096))
        );
        assert_eq!(amz_date("2024-02-29T12:34:56Z"), None);
        assert_eq!(amz_date("20240229 123456Z"), None);
    }

    #[test]
    fn unsigned_or_unknown_keys_are_refused() {
        let verify = sigv4(&[("AKIAKNOWN", "secret")]);
        let mut headers = HeaderMap::new();
        let signed = |headers: &HeaderMap| Signed {
            path: "/".to_string(),
            headers: headers.clone(),
            body: Bytes::new(),
        };
        assert_eq!(verify(&signed(&headers)), Err(Refusal::UnknownKey));
        headers.insert(
            "authorization",
            axum::http::HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIAOTHER/20240229/eu-west-1/monitoring/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
            ),
        );
        assert_eq!(verify(&signed(&headers)), Err(Refusal::UnknownKey));
    }
}
