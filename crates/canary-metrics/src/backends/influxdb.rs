//! InfluxDB 2 (Flux): `POST <address>/api/v2/query?org=<org>` with `Authorization: Token
//! <token>` (Secret keys `token` and `org`, both required with a secretRef; none without) and a
//! JSON body holding the Flux query and the annotated-CSV dialect. The value is the `_value` of
//! the first record of the first table; an answer without records is no data (Flagger reads 0).
//! Online: a 2xx answer to `from(bucket: "default") |> range(start: -2h)`.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::{Answer, Backend, Failure, Http, Settings, http};

/// The InfluxDB client's timeout, as Flagger sets it.
const TIMEOUT: Duration = Duration::from_secs(15);

/// The query Flagger's online check runs.
const ONLINE_QUERY: &str = r#"from(bucket: "default") |> range(start: -2h)"#;

/// An InfluxDB 2 server, read with Flux queries.
pub(crate) struct Influxdb {
    http: Http,
    address: String,
    token: Option<String>,
    org: String,
}

impl Influxdb {
    /// The server of `settings.address`, with the Secret's `token` and `org` if it names one.
    pub(crate) fn new(settings: &Settings) -> Result<Self, Failure> {
        let address = settings.required_address()?;
        Settings::url(&address)?;
        let (token, org) = match settings.secret {
            Some(_) => (
                Some(settings.credential("token")?),
                settings.credential("org")?,
            ),
            None => (None, String::new()),
        };
        Ok(Influxdb {
            http: Http::with_timeout(settings, TIMEOUT)?,
            address: address.trim_end_matches('/').to_string(),
            token,
            org,
        })
    }

    /// The body of `query`'s answer: annotated CSV.
    async fn run(&self, query: &str) -> Result<String, Failure> {
        let body = json!({
            "query": query,
            "type": "flux",
            "dialect": {
                "header": true,
                "delimiter": ",",
                "annotations": ["datatype", "group", "default"],
                "commentPrefix": "#",
                "dateTimeFormat": "RFC3339",
            },
        });
        let mut req = self
            .http
            .client()
            .post(format!("{}/api/v2/query", self.address))
            .query(&[("org", self.org.as_str())])
            .header("Content-Type", "application/json")
            .header("Accept", "text/csv")
            .body(body.to_string());
        if let Some(token) = &self.token {
            req = req.header("Authorization", format!("Token {token}"));
        }
        self.http.send(req).await
    }
}

#[async_trait]
impl Backend for Influxdb {
    async fn query(&self, query: &str) -> Answer {
        let body = self.run(query).await?;
        first_value(&body)
    }

    async fn online(&self) -> Result<(), Failure> {
        self.run(ONLINE_QUERY).await.map(drop)
    }
}

/// The `_value` of the first record of an annotated-CSV answer.
///
/// `double`, `long` and `unsignedLong` values are numbers (Flagger accepts `double` only); an
/// empty cell takes the column's `#default`; an empty or `NaN` value, or no record at all, is
/// no data; an error table (`error,reference` columns) is an error.
fn first_value(body: &str) -> Answer {
    let mut datatypes: Vec<String> = Vec::new();
    let mut defaults: Vec<String> = Vec::new();
    let mut header: Option<Vec<String>> = None;
    for row in records(body) {
        if row.iter().all(|c| c.is_empty()) {
            // A blank line ends a table; the next one brings its annotations and header.
            header = None;
            continue;
        }
        if row[0].starts_with('#') {
            match row[0].as_str() {
                "#datatype" => datatypes = row,
                "#default" => defaults = row,
                _ => {}
            }
            header = None;
            continue;
        }
        let Some(columns) = &header else {
            header = Some(row);
            continue;
        };
        let column = |name: &str| columns.iter().position(|c| c == name);
        if let (Some(e), Some(_)) = (column("error"), column("reference")) {
            let message = row.get(e).map(String::as_str).unwrap_or_default();
            return Err(Failure::Error(format!(
                "query error: {}",
                http::one_line(message)
            )));
        }
        let Some(i) = column("_value") else {
            return Err(Failure::no_values("the first record has no _value column"));
        };
        let mut cell = row.get(i).map(String::as_str).unwrap_or_default();
        if cell.is_empty() {
            cell = defaults.get(i).map(String::as_str).unwrap_or_default();
        }
        if cell.is_empty() {
            return Err(Failure::no_values("the _value of the first record is null"));
        }
        let datatype = datatypes.get(i).map(String::as_str).unwrap_or("double");
        let value = match datatype {
            "double" => cell.parse::<f64>().ok(),
            "long" => cell.parse::<i64>().ok().map(|v| v as f64),
            "unsignedLong" => cell.parse::<u64>().ok().map(|v| v as f64),
            other => {
                return Err(Failure::Error(format!(
                    "invalid response: the _value of the first record is a {other}, not a number: {}",
                    http::one_line(cell)
                )));
            }
        };
        return match value {
            Some(v) if v.is_nan() => {
                Err(Failure::no_values("the _value of the first record is NaN"))
            }
            Some(v) => Ok(v),
            None => Err(Failure::Error(format!(
                "invalid response: the _value of the first record is not a {datatype}: {}",
                http::one_line(cell)
            ))),
        };
    }
    Err(Failure::no_values("the answer holds no records"))
}

/// The rows of a CSV text (RFC 4180 quoting, `\n` or `\r\n` line ends); a blank line is a row
/// of one empty cell.
fn records(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut cell) = (Vec::new(), String::new());
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANNOTATIONS: &str = "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string\r\n\
        #group,false,false,true,true,false,false,true,true\r\n\
        #default,_result,,,,,,,\r\n\
        ,result,table,_start,_stop,_time,_value,_field,_measurement\r\n";

    fn table(values: &[&str]) -> String {
        let mut s = ANNOTATIONS.to_string();
        for v in values {
            s.push_str(&format!(
                ",,0,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,2026-01-01T00:30:00Z,{v},errors,http\r\n"
            ));
        }
        s
    }

    #[test]
    fn the_first_record_counts() {
        assert_eq!(first_value(&table(&["0.25", "7"])), Ok(0.25));
        let two = format!("{}\r\n{}\r\n", table(&["1.5"]), table(&["9"]));
        assert_eq!(first_value(&two), Ok(1.5));
    }

    #[test]
    fn integers_are_numbers() {
        let long = table(&["42"]).replacen(",double,", ",long,", 1);
        assert_eq!(first_value(&long), Ok(42.0));
        let unsigned = table(&["7"]).replacen(",double,", ",unsignedLong,", 1);
        assert_eq!(first_value(&unsigned), Ok(7.0));
    }

    #[test]
    fn other_types_are_errors() {
        let s = table(&["yes"]).replacen(",double,", ",string,", 1);
        let Err(Failure::Error(m)) = first_value(&s) else {
            panic!("expected an error");
        };
        assert!(m.contains("is a string, not a number"), "{m}");
        let Err(Failure::Error(m)) = first_value(&table(&["abc"])) else {
            panic!("expected an error");
        };
        assert!(m.contains("not a double"), "{m}");
    }

    #[test]
    fn empty_answers_nulls_and_nan_are_no_data() {
        for body in ["", "\r\n", &table(&[]), &table(&[""]), &table(&["NaN"])] {
            assert!(
                matches!(first_value(body), Err(Failure::NoData(_))),
                "{body:?}: {:?}",
                first_value(body)
            );
        }
    }

    #[test]
    fn an_empty_cell_takes_the_default() {
        let s = table(&[""]).replacen("#default,_result,,,,,,,", "#default,_result,,,,,3.5,,", 1);
        assert_eq!(first_value(&s), Ok(3.5));
    }

    #[test]
    fn error_tables_are_errors() {
        let body = "#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n,error,reference\r\n,\"type error 1:1-1:5: undefined identifier \"\"frm\"\"\",\r\n\r\n";
        assert_eq!(
            first_value(body),
            Err(Failure::Error(
                "query error: type error 1:1-1:5: undefined identifier \"frm\"".into()
            ))
        );
    }

    #[test]
    fn quoted_cells_keep_commas_and_newlines() {
        assert_eq!(
            records("a,\"b,c\",\"d\ne\"\r\n\r\nx\n"),
            vec![
                vec!["a".to_string(), "b,c".into(), "d\ne".into()],
                vec![String::new()],
                vec!["x".to_string()],
            ]
        );
    }
}
