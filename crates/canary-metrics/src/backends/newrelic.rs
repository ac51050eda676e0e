//! New Relic: the Insights query API, `GET <address>/v1/accounts/<account>/query?nrql=` with
//! the `X-Query-Key` header (Secret keys `newrelic_account_id`, `newrelic_query_key`); the NRQL
//! is the query followed by `SINCE <interval in seconds> seconds ago`. The answer must hold
//! exactly one result, whose `result` field is the value (null is no data), as Flagger reads
//! it. Online: the query `SELECT * FROM Metric` is accepted.

use async_trait::async_trait;
use serde::Deserialize;

use super::{Answer, Backend, Failure, Http, Settings};

/// New Relic's Insights API when the template gives no address.
pub(crate) const DEFAULT_ADDRESS: &str = "https://insights-api.newrelic.com";

/// The query `online` runs.
const ONLINE_QUERY: &str = "SELECT * FROM Metric";

/// A MetricTemplate of type `newrelic`.
pub(crate) struct NewRelic {
    http: Http,
    /// `<address>/v1/accounts/<account>/query`: holds the account id, so it is never shown.
    endpoint: reqwest::Url,
    query_key: String,
    /// The metric's interval in whole seconds.
    since: u64,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    results: Vec<Row>,
}

#[derive(Deserialize)]
struct Row {
    #[serde(default)]
    result: Option<f64>,
}

impl NewRelic {
    pub(crate) fn new(settings: &Settings) -> Result<Self, Failure> {
        let address = settings.address_or(DEFAULT_ADDRESS);
        let account = settings.credential("newrelic_account_id")?;
        let query_key = settings.credential("newrelic_query_key")?;
        Ok(NewRelic {
            http: Http::new(settings)?,
            endpoint: endpoint(&address, &account)?,
            query_key,
            since: settings.interval.as_secs(),
        })
    }

    /// The request of the NRQL `query` over the metric's interval.
    fn request(&self, query: &str) -> reqwest::RequestBuilder {
        self.http
            .client()
            .get(self.endpoint.clone())
            .header("X-Query-Key", &self.query_key)
            .query(&[("nrql", nrql(query, self.since))])
    }
}

/// `<address>/v1/accounts/<account>/query`, the account id escaped as one path segment.
fn endpoint(address: &str, account: &str) -> Result<reqwest::Url, Failure> {
    let mut url = Settings::url(address)?;
    url.path_segments_mut()
        .map_err(|()| Failure::Error("spec.provider.address is not a valid base URL".into()))?
        .pop_if_empty()
        .extend(["v1", "accounts", account, "query"]);
    Ok(url)
}

/// The NRQL sent: the query over the last `since` seconds.
fn nrql(query: &str, since: u64) -> String {
    format!("{query} SINCE {since} seconds ago")
}

/// The value of an Insights answer: its only result's `result`.
fn read(resp: &Response) -> Answer {
    match resp.results.as_slice() {
        [row] => match row.result {
            Some(v) if v.is_nan() => Err(Failure::no_values("the result is NaN")),
            Some(v) => Ok(v),
            None => Err(Failure::no_values("the result is null")),
        },
        rows => Err(Failure::no_values(format!(
            "the answer holds {} results, not one",
            rows.len()
        ))),
    }
}

#[async_trait]
impl Backend for NewRelic {
    async fn query(&self, query: &str) -> Answer {
        let resp: Response = self.http.json(self.request(query)).await?;
        read(&resp)
    }

    async fn online(&self) -> Result<(), Failure> {
        self.http.send(self.request(ONLINE_QUERY)).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Answer {
        read(&super::super::http::decode(body)?)
    }

    #[test]
    fn the_only_result_counts() {
        assert_eq!(parse(r#"{"results":[{"result":0.25}]}"#), Ok(0.25));
        assert_eq!(
            parse(r#"{"results":[{"result":null}]}"#),
            Err(Failure::NoData(
                "no values found: the result is null".into()
            ))
        );
        assert_eq!(
            parse(r#"{"results":[{"count":3}]}"#),
            Err(Failure::NoData(
                "no values found: the result is null".into()
            ))
        );
        assert_eq!(
            parse(r#"{"results":[]}"#),
            Err(Failure::NoData(
                "no values found: the answer holds 0 results, not one".into()
            ))
        );
        assert_eq!(
            parse(r#"{"results":[{"result":1},{"result":2}]}"#),
            Err(Failure::NoData(
                "no values found: the answer holds 2 results, not one".into()
            ))
        );
        assert!(matches!(parse("<html>"), Err(Failure::Error(_))));
    }

    #[test]
    fn the_endpoint_and_nrql() {
        assert_eq!(
            endpoint("https://insights-api.newrelic.com", "12345")
                .expect("a valid address")
                .as_str(),
            "https://insights-api.newrelic.com/v1/accounts/12345/query"
        );
        assert_eq!(
            endpoint("http://nr.local/prefix", "1/2")
                .expect("a valid address")
                .as_str(),
            "http://nr.local/prefix/v1/accounts/1%2F2/query"
        );
        assert_eq!(
            nrql("SELECT count(*) FROM Transaction", 60),
            "SELECT count(*) FROM Transaction SINCE 60 seconds ago"
        );
    }
}
