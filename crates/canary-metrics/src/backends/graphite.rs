//! Graphite: the render API, `GET <address>/render?<query>&format=json`, where the rendered
//! template (its whitespace runs collapsed to one space) is the URL's query string, e.g.
//! `target=...&from=-1min`; the address is required and may hold a path prefix. With a
//! secretRef, its `username` and `password` go as basic authentication. The value is the last
//! non-null datapoint over all targets, as Flagger reads it. Online: the query `target=test`
//! is answered, with or without values.

use async_trait::async_trait;
use serde::Deserialize;

use super::{Answer, Backend, Failure, Http, Settings};

/// The query `online` runs.
const ONLINE_QUERY: &str = "target=test";

/// A MetricTemplate of type `graphite`.
pub(crate) struct Graphite {
    http: Http,
    /// `<address>/render`.
    render: reqwest::Url,
    /// `username` and `password` of the Secret, when both are set and not empty.
    auth: Option<(String, String)>,
}

/// One target of a render answer.
#[derive(Deserialize)]
struct Target {
    #[serde(default)]
    datapoints: Vec<Point>,
}

/// `[value, timestamp]`; the value is null, a number or a number as a string.
#[derive(Deserialize)]
#[serde(try_from = "Vec<serde_json::Value>")]
struct Point(Option<f64>);

impl TryFrom<Vec<serde_json::Value>> for Point {
    type Error = String;

    fn try_from(pair: Vec<serde_json::Value>) -> Result<Self, Self::Error> {
        use serde_json::Value;
        let [value, _timestamp] = pair.as_slice() else {
            return Err(format!(
                "a datapoint holds {} elements, not [value, timestamp]",
                pair.len()
            ));
        };
        match value {
            Value::Null => Ok(Point(None)),
            Value::Number(n) => n
                .as_f64()
                .map(|v| Point(Some(v)))
                .ok_or_else(|| format!("the datapoint value {n} is not a number")),
            Value::String(s) => s
                .trim()
                .parse()
                .map(|v| Point(Some(v)))
                .map_err(|_| format!("the datapoint value {s:?} is not a number")),
            other => Err(format!("the datapoint value {other} is not a number")),
        }
    }
}

impl Graphite {
    pub(crate) fn new(settings: &Settings) -> Result<Self, Failure> {
        let address = settings.required_address()?;
        let render = Settings::url(&format!("{}/render", address.trim_end_matches('/')))?;
        let auth = match &settings.secret {
            None => None,
            Some(_) => {
                let username = settings.credential("username")?;
                let password = settings.credential("password")?;
                (!username.is_empty() && !password.is_empty()).then_some((username, password))
            }
        };
        Ok(Graphite {
            http: Http::new(settings)?,
            render,
            auth,
        })
    }
}

/// The parameters of the render request: the query's (decoded as a form, whitespace runs
/// collapsed first) with `format=json` in place of any `format`.
fn parameters(query: &str) -> Result<Vec<(String, String)>, Failure> {
    let collapsed = collapse(query);
    // Parsed as the query string of a URL: a `#` ends it, as in a browser's address bar.
    let url = reqwest::Url::parse(&format!("http://graphite.invalid/render?{collapsed}"))
        .map_err(|e| Failure::Error(format!("the query is not a URL query string: {e}")))?;
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "format")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.push(("format".into(), "json".into()));
    Ok(pairs)
}

/// `query` with each run of ASCII whitespace replaced by one space.
fn collapse(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    let mut in_space = false;
    for c in query.chars() {
        if c.is_ascii_whitespace() {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

/// The last non-null datapoint over all targets.
fn read(targets: &[Target]) -> Answer {
    let last = targets
        .iter()
        .flat_map(|t| t.datapoints.iter())
        .filter_map(|p| p.0)
        .next_back();
    match last {
        None => Err(Failure::no_values("no target holds a non-null datapoint")),
        Some(v) if v.is_nan() => Err(Failure::no_values("the last datapoint is NaN")),
        Some(v) => Ok(v),
    }
}

#[async_trait]
impl Backend for Graphite {
    async fn query(&self, query: &str) -> Answer {
        let mut req = self
            .http
            .client()
            .get(self.render.clone())
            .query(&parameters(query)?);
        if let Some((username, password)) = &self.auth {
            req = req.basic_auth(username, Some(password));
        }
        let targets: Vec<Target> = self.http.json(req).await?;
        read(&targets)
    }

    async fn online(&self) -> Result<(), Failure> {
        match self.query(ONLINE_QUERY).await {
            Ok(_) | Err(Failure::NoData(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Answer {
        read(&super::super::http::decode::<Vec<Target>>(body)?)
    }

    #[test]
    fn the_last_non_null_point_of_all_targets_counts() {
        let body = r#"[
            {"target":"a","tags":{"name":"a"},"datapoints":[[1.5,10],[null,20]]},
            {"target":"b","tags":{"name":"b"},"datapoints":[["2.5","10"],[null,20]]},
            {"target":"c","tags":{"name":"c"},"datapoints":[[null,10]]}]"#;
        assert_eq!(parse(body), Ok(2.5));
        assert_eq!(parse(r#"[{"datapoints":[[3,10],[4,20]]}]"#), Ok(4.0));
    }

    #[test]
    fn nothing_null_or_nan_is_no_data() {
        let no = |m: &str| Err(Failure::NoData(format!("no values found: {m}")));
        assert_eq!(parse("[]"), no("no target holds a non-null datapoint"));
        assert_eq!(
            parse(r#"[{"target":"a","datapoints":[[null,10],[null,20]]}]"#),
            no("no target holds a non-null datapoint")
        );
        assert_eq!(
            parse(r#"[{"target":"a","datapoints":[[1,10],["NaN",20]]}]"#),
            no("the last datapoint is NaN")
        );
    }

    #[test]
    fn malformed_points_are_errors() {
        assert!(matches!(
            parse(r#"[{"datapoints":[[1]]}]"#),
            Err(Failure::Error(_))
        ));
        assert!(matches!(
            parse(r#"[{"datapoints":[["x",1]]}]"#),
            Err(Failure::Error(_))
        ));
        assert!(matches!(parse(r#"{"error":1}"#), Err(Failure::Error(_))));
    }

    #[test]
    fn the_query_is_the_query_string() {
        let pairs = parameters(
            "target=sumSeries(\n    app.{a,b}.errors\n)\n&from=-1min&format=png&target=x+y%2Bz",
        )
        .expect("a query string");
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("target", "sumSeries( app.{a,b}.errors ) "),
                ("from", "-1min"),
                ("target", "x y+z"),
                ("format", "json"),
            ]
        );
    }

    #[test]
    fn collapse_keeps_single_spaces() {
        assert_eq!(collapse("a \t\r\n b c"), "a b c");
    }
}
