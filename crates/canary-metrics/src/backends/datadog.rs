//! Datadog: `GET <address>/api/v1/query?query=&from=&to=` with the `DD-API-KEY` and
//! `DD-APPLICATION-KEY` headers (Secret keys `datadog_api_key`, `datadog_application_key`),
//! over the last ten intervals; the value is the first (oldest) point of the first series, as
//! Flagger reads it. Online: `GET /api/v1/validate`.

use async_trait::async_trait;
use serde::Deserialize;

use super::{Answer, Backend, Failure, Http, Settings};

/// Datadog's API when the template gives no address.
pub(crate) const DEFAULT_ADDRESS: &str = "https://api.datadoghq.com";

pub(crate) struct Datadog {
    http: Http,
    address: String,
    api_key: String,
    application_key: String,
    settings: Settings,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    series: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    pointlist: Vec<Vec<Option<f64>>>,
}

impl Datadog {
    pub(crate) fn new(settings: &Settings) -> Result<Self, Failure> {
        Ok(Datadog {
            http: Http::new(settings)?,
            address: settings.address_or(DEFAULT_ADDRESS),
            api_key: settings.credential("datadog_api_key")?,
            application_key: settings.credential("datadog_application_key")?,
            settings: settings.clone(),
        })
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .client()
            .get(format!("{}{path}", self.address))
            .header("DD-API-KEY", &self.api_key)
            .header("DD-APPLICATION-KEY", &self.application_key)
    }
}

#[async_trait]
impl Backend for Datadog {
    async fn query(&self, query: &str) -> Answer {
        let (from, to) = self.settings.window();
        let req = self.get("/api/v1/query").query(&[
            ("query", query.to_string()),
            ("from", (from as i64).to_string()),
            ("to", (to as i64).to_string()),
        ]);
        let resp: Response = self.http.json(req).await?;
        let point = resp
            .series
            .first()
            .ok_or_else(|| Failure::no_values("the answer holds no series"))?
            .pointlist
            .first()
            .ok_or_else(|| Failure::no_values("the first series holds no points"))?;
        match point.get(1).copied().flatten() {
            Some(v) if v.is_nan() => Err(Failure::no_values("the first point is NaN")),
            Some(v) => Ok(v),
            None => Err(Failure::no_values("the first point has no value")),
        }
    }

    async fn online(&self) -> Result<(), Failure> {
        self.http.send(self.get("/api/v1/validate")).await.map(drop)
    }
}
