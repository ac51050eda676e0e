//! Dynatrace: the metrics API v2, `GET <address>/api/v2/metrics/query?metricSelector=
//! &resolution=Inf&from=&to=` (milliseconds, over the last ten intervals) with the header
//! `Authorization: Api-Token <dynatrace_token>`; the address is required. The value is the
//! first value of the last data series of the first result, as Flagger reads it; a null value
//! is no data. Online: `GET /api/v2/metrics?pageSize=1`.

use async_trait::async_trait;
use serde::Deserialize;

use super::{Answer, Backend, Failure, Http, Settings};

/// A MetricTemplate of type `dynatrace`.
pub(crate) struct Dynatrace {
    http: Http,
    address: String,
    token: String,
    settings: Settings,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    data: Vec<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    values: Vec<Option<f64>>,
}

impl Dynatrace {
    pub(crate) fn new(settings: &Settings) -> Result<Self, Failure> {
        let address = settings
            .required_address()?
            .trim_end_matches('/')
            .to_string();
        Ok(Dynatrace {
            http: Http::new(settings)?,
            address,
            token: settings.credential("dynatrace_token")?,
            settings: settings.clone(),
        })
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .client()
            .get(format!("{}{path}", self.address))
            .header("Authorization", format!("Api-Token {}", self.token))
    }

    /// `from` and `to` in milliseconds: now (whole seconds) and ten intervals before.
    fn window(&self) -> (i64, i64) {
        let (_, now) = self.settings.window();
        let to = now as i64 * 1000;
        let span = self.settings.span().as_millis() as i64;
        (to - span, to)
    }
}

/// The value of a metrics v2 answer: the first value of the last data of the first result.
fn read(resp: &Response) -> Answer {
    let data = resp
        .result
        .first()
        .ok_or_else(|| Failure::no_values("the answer holds no result"))?
        .data
        .last()
        .ok_or_else(|| Failure::no_values("the first result holds no data"))?;
    match data.values.first() {
        None => Err(Failure::no_values("the last data holds no values")),
        Some(None) => Err(Failure::no_values("the value is null")),
        Some(Some(v)) if v.is_nan() => Err(Failure::no_values("the value is NaN")),
        Some(Some(v)) => Ok(*v),
    }
}

#[async_trait]
impl Backend for Dynatrace {
    async fn query(&self, query: &str) -> Answer {
        let (from, to) = self.window();
        let req = self.get("/api/v2/metrics/query").query(&[
            ("metricSelector", query.to_string()),
            ("resolution", "Inf".to_string()),
            ("from", from.to_string()),
            ("to", to.to_string()),
        ]);
        let resp: Response = self.http.json(req).await?;
        read(&resp)
    }

    async fn online(&self) -> Result<(), Failure> {
        self.http
            .send(self.get("/api/v2/metrics?pageSize=1"))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Answer {
        read(&super::super::http::decode(body)?)
    }

    #[test]
    fn the_first_value_of_the_last_data_counts() {
        let body = r#"{"totalCount":1,"nextPageKey":null,"resolution":"Inf","result":[
            {"metricId":"m","data":[
                {"dimensions":["a"],"dimensionMap":{},"timestamps":[1],"values":[7.0]},
                {"dimensions":["b"],"dimensionMap":{},"timestamps":[1],"values":[0.5, 9.0]}]},
            {"metricId":"n","data":[{"timestamps":[1],"values":[3.0]}]}]}"#;
        assert_eq!(parse(body), Ok(0.5));
    }

    #[test]
    fn empty_and_null_answers_are_no_data() {
        let no = |m: &str| Err(Failure::NoData(format!("no values found: {m}")));
        assert_eq!(parse(r#"{"result":[]}"#), no("the answer holds no result"));
        assert_eq!(
            parse(r#"{"result":[{"metricId":"m","data":[]}]}"#),
            no("the first result holds no data")
        );
        assert_eq!(
            parse(r#"{"result":[{"data":[{"values":[]}]}]}"#),
            no("the last data holds no values")
        );
        assert_eq!(
            parse(r#"{"result":[{"data":[{"values":[null]}]}]}"#),
            no("the value is null")
        );
        assert!(matches!(
            parse(r#"{"result":[{"data":[{"values":["x"]}]}]}"#),
            Err(Failure::Error(_))
        ));
    }
}
