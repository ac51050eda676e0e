//! CloudWatch: the template's query is a JSON array of `MetricDataQuery`, sent as
//! `GetMetricData` (AWS JSON 1.0, `POST https://monitoring.<region>.amazonaws.com/`, SigV4
//! signed for `monitoring` in `spec.provider.region`) over the last ten intervals with at most
//! 20 points; the value is the first value of the first result, as Flagger reads it.
//! Credentials: the Secret's `aws_access_key_id`, `aws_secret_access_key` and optional
//! `aws_session_token`, else the `AWS_*` environment variables. Online: GetMetricData with no
//! queries, where CloudWatch's 400 means the credentials were accepted.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{one_line, refusal};
use super::{Answer, Backend, Failure, Http, Settings};

/// Flagger's `MaxDatapoints`.
const MAX_DATAPOINTS: u32 = 20;

/// The `X-Amz-Target` of GetMetricData.
const TARGET: &str = "GraniteServiceVersion20100801.GetMetricData";

/// AWS JSON 1.0's content type.
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// The SigV4 service name of CloudWatch.
const SERVICE: &str = "monitoring";

pub(crate) struct CloudWatch {
    http: Http,
    address: String,
    region: String,
    identity: Identity,
    settings: Settings,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default, rename = "MetricDataResults")]
    results: Vec<MetricDataResult>,
}

#[derive(Deserialize)]
struct MetricDataResult {
    #[serde(default, rename = "Values")]
    values: Vec<Value>,
}

impl CloudWatch {
    pub(crate) fn new(settings: &Settings) -> Result<Self, Failure> {
        let region = settings.region.clone().ok_or_else(|| {
            Failure::Error("spec.provider.region is required for cloudwatch".into())
        })?;
        Ok(CloudWatch {
            http: Http::new(settings)?,
            address: settings.address_or(&format!("https://monitoring.{region}.amazonaws.com")),
            region,
            identity: credentials(settings)?.into(),
            settings: settings.clone(),
        })
    }

    /// Sends a signed GetMetricData with `input`; answers the status and body of any answer.
    async fn get_metric_data(&self, input: &Value) -> Result<(u16, String), Failure> {
        let url = format!("{}/", self.address);
        let body = input.to_string();
        let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", TARGET)];
        let cannot_sign =
            |e: &dyn std::fmt::Display| Failure::Error(format!("cannot sign the request: {e}"));
        let params: aws_sigv4::http_request::SigningParams<'_> = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| cannot_sign(&e))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| cannot_sign(&e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| cannot_sign(&e))?
            .into_parts();
        let mut req = self.http.client().post(&url).body(body.clone());
        for (k, v) in headers.iter().copied().chain(instructions.headers()) {
            req = req.header(k, v);
        }
        self.http.execute(req).await
    }
}

/// The Secret's keys when a secretRef is set, else the environment's.
fn credentials(settings: &Settings) -> Result<Credentials, Failure> {
    let (id, secret, token) = if settings.secret.is_some() {
        let token = settings
            .credential("aws_session_token")
            .ok()
            .filter(|t| !t.is_empty());
        (
            settings.credential("aws_access_key_id")?,
            settings.credential("aws_secret_access_key")?,
            token,
        )
    } else {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => (id, secret, env("AWS_SESSION_TOKEN")),
            _ => {
                return Err(Failure::Error(
                    "no AWS credentials: spec.provider.secretRef must name a Secret holding aws_access_key_id and aws_secret_access_key, or flaggerd's environment must set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
                ));
            }
        }
    };
    // A Secret written with `echo` ends its values with a newline, which would break the
    // signature.
    let (id, secret) = (id.trim().to_string(), secret.trim().to_string());
    let token = token.map(|t| t.trim().to_string());
    Ok(Credentials::new(id, secret, token, None, "flaggerd"))
}

/// A non-2xx answer as a failure, naming CloudWatch's error type and message.
fn fault(status: u16, body: &str) -> Failure {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let detail = parsed
        .as_ref()
        .and_then(|v| {
            let kind = v["__type"].as_str()?;
            let kind = kind.rsplit('#').next().unwrap_or(kind);
            let message = v["message"]
                .as_str()
                .or_else(|| v["Message"].as_str())
                .unwrap_or_default();
            Some(format!("{kind}: {message}"))
        })
        .unwrap_or_else(|| one_line(body));
    refusal(status, &detail)
}

/// The first value of the first result.
fn first_value(resp: &Response) -> Answer {
    let result = resp
        .results
        .first()
        .ok_or_else(|| Failure::no_values("the answer holds no MetricDataResults"))?;
    let value = result
        .values
        .first()
        .ok_or_else(|| Failure::no_values("the first MetricDataResult holds no values"))?;
    // AWS JSON writes NaN and the infinities of a double as strings.
    let v = match value {
        Value::String(s) => s.parse::<f64>().ok(),
        v => v.as_f64(),
    };
    match v {
        Some(v) if v.is_nan() => Err(Failure::no_values("the first value is NaN")),
        Some(v) => Ok(v),
        None => Err(Failure::Error(format!(
            "unreadable answer: the first value is not a number: {}",
            one_line(&value.to_string())
        ))),
    }
}

#[async_trait]
impl Backend for CloudWatch {
    async fn query(&self, query: &str) -> Answer {
        let queries: Vec<Value> = serde_json::from_str(query).map_err(|e| {
            Failure::Error(format!(
                "the query is not a JSON array of MetricDataQuery: {e}"
            ))
        })?;
        let (start, end) = self.settings.window();
        let input = json!({
            "MetricDataQueries": queries,
            "StartTime": start as i64,
            "EndTime": end as i64,
            "MaxDatapoints": MAX_DATAPOINTS,
        });
        let (status, body) = self.get_metric_data(&input).await?;
        if !(200..300).contains(&status) {
            return Err(fault(status, &body));
        }
        let resp: Response = super::http::decode(&body)?;
        first_value(&resp)
    }

    async fn online(&self) -> Result<(), Failure> {
        let input = json!({"MetricDataQueries": [], "StartTime": 0, "EndTime": 0});
        match self.get_metric_data(&input).await? {
            // A refused (empty) query: the credentials were accepted.
            (status, _) if (200..300).contains(&status) || status == 400 => Ok(()),
            (status, body) => Err(fault(status, &body)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str) -> Answer {
        let resp: Response = serde_json::from_str(body).expect("json");
        first_value(&resp)
    }

    #[test]
    fn the_first_value_of_the_first_result_counts() {
        assert_eq!(
            answer(r#"{"MetricDataResults":[{"Values":[0.5,3]},{"Values":[9]}]}"#),
            Ok(0.5)
        );
        assert!(matches!(
            answer(r#"{"MetricDataResults":[{"Values":[]}]}"#),
            Err(Failure::NoData(_))
        ));
        assert!(matches!(
            answer(r#"{"MetricDataResults":[]}"#),
            Err(Failure::NoData(_))
        ));
        assert!(matches!(
            answer(r#"{"MetricDataResults":[{"Values":["NaN"]}]}"#),
            Err(Failure::NoData(_))
        ));
        assert_eq!(
            answer(r#"{"MetricDataResults":[{"Values":["Infinity"]}]}"#),
            Ok(f64::INFINITY)
        );
    }

    #[test]
    fn the_region_names_the_endpoint() {
        let mut settings = Settings {
            kind: "cloudwatch".into(),
            secret: Some(
                [
                    ("aws_access_key_id", "id"),
                    ("aws_secret_access_key", "key"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ),
            ..Settings::default()
        };
        assert_eq!(
            CloudWatch::new(&settings).err(),
            Some(Failure::Error(
                "spec.provider.region is required for cloudwatch".into()
            ))
        );
        settings.region = Some("eu-west-1".into());
        let cw = CloudWatch::new(&settings).expect("backend");
        assert_eq!(cw.address, "https://monitoring.eu-west-1.amazonaws.com");
    }

    #[test]
    fn faults_name_the_error_type() {
        assert_eq!(
            fault(
                403,
                r#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"The security token included in the request is invalid."}"#
            ),
            Failure::Error(
                "authentication failed: HTTP 403: UnrecognizedClientException: The security token included in the request is invalid."
                    .into()
            )
        );
        assert_eq!(
            fault(400, "<html>bad</html>"),
            Failure::Error("query refused: HTTP 400: <html>bad</html>".into())
        );
    }
}
