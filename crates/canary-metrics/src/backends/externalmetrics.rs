//! The Kubernetes external metrics API: a query `[<namespace>/]<metric>[?labelSelector=<sel>]`
//! (namespace `default`) lists `GET /apis/external.metrics.k8s.io/v1beta1/namespaces/<ns>/<metric>`
//! with that label selector, through flaggerd's cluster client, or with `spec.provider.address`
//! straight at that server with the Secret's `token` as bearer; the value is the first item's
//! quantity. Online: listing `dummy-metric` in `kube-system` succeeds.

use async_trait::async_trait;
use kube::api::ListParams;
use serde::Deserialize;
use serde_json::Value;

use super::http::{TIMEOUT, decode, one_line};
use super::keptn::kube_cause;
use super::{Answer, Backend, Failure, Http, Settings};

/// The API's group and version.
const API: &str = "/apis/external.metrics.k8s.io/v1beta1";
/// The query's format, for the message of a query that does not follow it.
const FORMAT: &str = "[<namespace>/]<metricName>[?labelSelector=<urlencoded label selector>]";

/// An `externalmetrics` template's backend.
pub(crate) struct ExternalMetrics {
    via: Via,
}

/// Where the API is read.
enum Via {
    /// The cluster's API server, with flaggerd's client.
    Cluster(kube::Client),
    /// `spec.provider.address`, with the Secret's `token` when it has one.
    Direct {
        http: Http,
        address: String,
        token: Option<String>,
    },
}

/// A parsed query.
#[derive(Debug, PartialEq)]
struct Query {
    namespace: String,
    metric: String,
    /// The label selector, checked; `None` selects everything.
    selector: Option<String>,
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    value: Value,
}

impl ExternalMetrics {
    pub(crate) fn new(settings: &Settings) -> Result<Self, Failure> {
        let via = match &settings.address {
            Some(address) => {
                let address = address.trim().trim_end_matches('/');
                // A bare host, as a kubeconfig's server may be, is HTTPS.
                let address = if address.contains("://") {
                    address.to_string()
                } else {
                    format!("https://{address}")
                };
                reqwest::Url::parse(&address).map_err(|e| {
                    Failure::Error(format!(
                        "spec.provider.address {:?} is not a URL: {e}",
                        one_line(&address)
                    ))
                })?;
                // Flagger sends no spec.provider.headers to this API.
                let plain = Settings {
                    headers: Vec::new(),
                    ..settings.clone()
                };
                Via::Direct {
                    http: Http::new(&plain)?,
                    address,
                    token: settings
                        .secret
                        .as_ref()
                        .and_then(|s| s.get("token"))
                        .cloned(),
                }
            }
            None => Via::Cluster(settings.kube.clone().ok_or_else(|| {
                Failure::Error(
                    "externalmetrics without spec.provider.address needs the cluster, and flaggerd has no Kubernetes client"
                        .into(),
                )
            })?),
        };
        Ok(ExternalMetrics { via })
    }

    /// The metric's values in `namespace` matching `selector`.
    async fn list(
        &self,
        namespace: &str,
        metric: &str,
        selector: Option<&str>,
    ) -> Result<List, Failure> {
        let path = format!(
            "{API}/namespaces/{}/{}",
            encode_segment(namespace),
            encode_segment(metric)
        );
        match &self.via {
            Via::Cluster(client) => {
                let params = ListParams {
                    label_selector: selector.map(str::to_string),
                    ..ListParams::default()
                };
                let req = kube::api::Request::new(path)
                    .list(&params)
                    .map_err(|e| Failure::Error(canary_core::error_chain(&e)))?;
                let text = tokio::time::timeout(TIMEOUT, client.request_text(req))
                    .await
                    .map_err(|_| {
                        Failure::Error(format!(
                            "the API server gave no answer within {}s",
                            TIMEOUT.as_secs()
                        ))
                    })?
                    .map_err(|e| {
                        let hint = match &e {
                            kube::Error::Api(s) if s.code == 404 => {
                                " (is an external metrics adapter serving external.metrics.k8s.io/v1beta1 and this metric?)"
                            }
                            _ => "",
                        };
                        Failure::Error(format!(
                            "the external metrics API: {}{hint}",
                            kube_cause(&e)
                        ))
                    })?;
                decode(&text)
            }
            Via::Direct {
                http,
                address,
                token,
            } => {
                let mut req = http.client().get(format!("{address}{path}"));
                if let Some(selector) = selector {
                    req = req.query(&[("labelSelector", selector)]);
                }
                if let Some(token) = token {
                    req = req.bearer_auth(token);
                }
                http.json(req).await
            }
        }
    }
}

#[async_trait]
impl Backend for ExternalMetrics {
    async fn query(&self, query: &str) -> Answer {
        let q = parse(query)?;
        let list = self
            .list(&q.namespace, &q.metric, q.selector.as_deref())
            .await?;
        let Some(item) = list.items.first() else {
            return Err(Failure::no_values(format!(
                "no external metric {} in {}{}",
                q.metric,
                q.namespace,
                q.selector
                    .as_deref()
                    .map(|s| format!(" matching {s}"))
                    .unwrap_or_default()
            )));
        };
        match &item.value {
            Value::String(s) => quantity(s).ok_or_else(|| {
                Failure::Error(format!(
                    "the value {:?} of {} is not a quantity",
                    one_line(s),
                    q.metric
                ))
            }),
            Value::Number(n) => n.as_f64().ok_or_else(|| {
                Failure::Error(format!("the value of {} is not a number", q.metric))
            }),
            Value::Null => Err(Failure::no_values(format!(
                "the first item of {} has no value",
                q.metric
            ))),
            other => Err(Failure::Error(format!(
                "the value of {} is not a quantity: {}",
                q.metric,
                one_line(&other.to_string())
            ))),
        }
    }

    async fn online(&self) -> Result<(), Failure> {
        // As Flagger: only a successful list counts, even an unknown metric's 404 does not.
        self.list("kube-system", "dummy-metric", None)
            .await
            .map(drop)
            .map_err(|f| f.map(|m| format!("external metrics service unavailable: {m}")))
    }
}

/// Reads `[<namespace>/]<metric>[?labelSelector=<sel>]` as Flagger does (a URL path and query).
fn parse(query: &str) -> Result<Query, Failure> {
    let query = query.trim();
    let bad = |why: &str| {
        Failure::Error(format!(
            "malformed query {:?}: {why}: expected {FORMAT}",
            one_line(query)
        ))
    };
    let query_part = query.split_once('#').map_or(query, |(q, _)| q);
    let (path, params) = query_part.split_once('?').unwrap_or((query_part, ""));
    let path = percent_decode(path, false).ok_or_else(|| bad("bad %-escape in the path"))?;
    let parts: Vec<&str> = path.strip_prefix('/').unwrap_or(&path).split('/').collect();
    let (namespace, metric) = match parts.as_slice() {
        [metric] => ("", *metric),
        [namespace, metric] => (*namespace, *metric),
        _ => return Err(bad("too many slashes")),
    };
    if metric.is_empty() {
        return Err(bad("the metric name is empty"));
    }
    let mut selector = None;
    for pair in params.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k, true).ok_or_else(|| bad("bad %-escape in the parameters"))?;
        if k == "labelSelector" {
            let v =
                percent_decode(v, true).ok_or_else(|| bad("bad %-escape in the label selector"))?;
            selector = Some(v);
            break;
        }
    }
    let selector = match selector.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(label_selector(s).map_err(|why| {
            Failure::Error(format!("invalid label selector {:?}: {why}", one_line(s)))
        })?),
    };
    Ok(Query {
        namespace: if namespace.is_empty() {
            "default".into()
        } else {
            namespace.into()
        },
        metric: metric.into(),
        selector,
    })
}

/// `s` with its `%XX` escapes decoded (and `+` as a space in a query), or `None` if an escape
/// is malformed or the result is not UTF-8.
fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `s` escaped for one path segment.
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A Kubernetes label selector checked (`k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (v,...)`,
/// `k notin (v,...)`, `k>n`, `k<n`, joined by commas), in a canonical spelling.
fn label_selector(s: &str) -> Result<String, String> {
    let mut out = Vec::new();
    for requirement in split_top_level(s)? {
        out.push(requirement_of(requirement.trim())?);
    }
    Ok(out.join(","))
}

/// `s` split on the commas outside parentheses.
fn split_top_level(s: &str) -> Result<Vec<&str>, String> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced parentheses".into());
                }
            }
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".into());
    }
    parts.push(&s[start..]);
    Ok(parts)
}

/// One requirement of a label selector.
fn requirement_of(r: &str) -> Result<String, String> {
    if r.is_empty() {
        return Err("an empty requirement".into());
    }
    if let Some(key) = r.strip_prefix('!') {
        let key = key.trim();
        check_key(key)?;
        return Ok(format!("!{key}"));
    }
    let end = r
        .find(|c: char| c.is_whitespace() || "=!<>(),".contains(c))
        .unwrap_or(r.len());
    let (key, rest) = (&r[..end], r[end..].trim());
    check_key(key)?;
    if rest.is_empty() {
        return Ok(key.to_string());
    }
    for op in ["==", "!=", "=", ">", "<"] {
        if let Some(value) = rest.strip_prefix(op) {
            let value = value.trim();
            check_value(value)?;
            if (op == ">" || op == "<") && value.parse::<i64>().is_err() {
                return Err(format!("{op} needs an integer, not {value:?}"));
            }
            return Ok(format!("{key}{op}{value}"));
        }
    }
    for op in ["notin", "in"] {
        if let Some(set) = rest.strip_prefix(op)
            && (set.starts_with('(') || set.starts_with(char::is_whitespace))
        {
            let set = set.trim();
            let inner = set
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(|| format!("{op} needs a (value,...) set"))?;
            let values: Vec<&str> = inner.split(',').map(str::trim).collect();
            if values.iter().all(|v| v.is_empty()) {
                return Err(format!("{op} needs at least one value"));
            }
            for v in &values {
                check_value(v)?;
            }
            return Ok(format!("{key} {op} ({})", values.join(",")));
        }
    }
    Err(format!(
        "unexpected {:?} after the key {key:?}",
        one_line(rest)
    ))
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name.
fn check_key(key: &str) -> Result<(), String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            let ok = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|l| {
                    !l.is_empty()
                        && l.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            if !ok {
                return Err(format!("the key prefix {prefix:?} is not a DNS subdomain"));
            }
            name
        }
        None => key,
    };
    if name.is_empty() || !is_label_name(name) {
        return Err(format!("{key:?} is not a valid label key"));
    }
    Ok(())
}

/// A label value: empty, or a name.
fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(format!("{value:?} is not a valid label value"))
    }
}

/// At most 63 characters, alphanumeric at both ends, `-`, `_` and `.` inside.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A Kubernetes quantity (`500m`, `1`, `2k`, `1Mi`, `1.5e3`) as a number.
fn quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => (-1.0, r),
        None => (1.0, s.strip_prefix('+').unwrap_or(s)),
    };
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let n: f64 = number.parse().ok()?;
    let binary = |p: i32| Some(n * 2f64.powi(p));
    // Dividing by 10^|e| keeps small quantities exact (`1m` is 0.001); `unsigned_abs` cannot
    // overflow, and an exponent past f64's range gives 0 or infinity (no data, not a panic).
    let decimal = |e: i32| {
        let scale = 10f64.powi(i32::try_from(e.unsigned_abs()).unwrap_or(i32::MAX));
        Some(if e < 0 { n / scale } else { n * scale })
    };
    let v = match suffix {
        "" => Some(n),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        e if e.starts_with(['e', 'E']) => {
            let exp = &e[1..];
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            decimal(exp.parse().ok()?)
        }
        _ => None,
    }?;
    Some(sign * v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_exponents_do_not_panic() {
        assert_eq!(quantity("1e-2147483648"), Some(0.0));
        assert_eq!(quantity("1e2147483647"), Some(f64::INFINITY));
    }

    #[test]
    fn quantities() {
        for (s, v) in [
            ("500m", 0.5),
            ("1", 1.0),
            ("2k", 2000.0),
            ("1Mi", 1_048_576.0),
            ("1.5Gi", 1.5 * 1_073_741_824.0),
            ("-250m", -0.25),
            ("+3", 3.0),
            ("1.1111", 1.1111),
            ("1.5e3", 1500.0),
            ("25E-2", 0.25),
            ("2E", 2e18),
            ("100u", 0.0001),
            ("7n", 7e-9),
            (".5", 0.5),
            ("3M", 3e6),
        ] {
            assert_eq!(quantity(s), Some(v), "{s}");
        }
        for s in ["", "m", "1x", "1.2.3", "1e", "1KiB", "one", "--1", "1 k"] {
            assert_eq!(quantity(s), None, "{s}");
        }
    }

    #[test]
    fn queries_are_read_as_flagger_reads_them() {
        let q = |ns: &str, m: &str, s: Option<&str>| Query {
            namespace: ns.into(),
            metric: m.into(),
            selector: s.map(str::to_string),
        };
        assert_eq!(
            parse("test/errors?labelSelector=app%3Dpodinfo"),
            Ok(q("test", "errors", Some("app=podinfo")))
        );
        assert_eq!(parse("errors"), Ok(q("default", "errors", None)));
        assert_eq!(parse("/errors\n"), Ok(q("default", "errors", None)));
        assert_eq!(
            parse("test/errors?labelSelector="),
            Ok(q("test", "errors", None))
        );
        assert_eq!(
            parse("test/errors?x=1&labelSelector=app+in+(a,+b),!canary"),
            Ok(q("test", "errors", Some("app in (a,b),!canary")))
        );
        for (bad, why) in [
            ("a/b/c", "too many slashes"),
            ("test/", "metric name is empty"),
            ("/", "metric name is empty"),
            ("", "metric name is empty"),
            ("test/errors?labelSelector=%3D%3D", "invalid label selector"),
            ("test/e%zz", "bad %-escape"),
        ] {
            let Err(Failure::Error(m)) = parse(bad) else {
                panic!("{bad:?} should fail");
            };
            assert!(m.contains(why), "{bad:?}: {m}");
        }
    }

    #[test]
    fn label_selectors() {
        for (s, canonical) in [
            ("app=podinfo", "app=podinfo"),
            ("app == podinfo, tier != web", "app==podinfo,tier!=web"),
            ("example.com/app", "example.com/app"),
            ("! canary", "!canary"),
            (
                "env notin (dev, test),x in (a)",
                "env notin (dev,test),x in (a)",
            ),
            ("replicas>3", "replicas>3"),
            ("app=", "app="),
        ] {
            assert_eq!(label_selector(s).as_deref(), Ok(canonical), "{s}");
        }
        for s in [
            "=x",
            "app=po dinfo",
            "app in ()",
            "app in (a",
            "replicas>three",
            "a,,b",
            "-app=x",
            "Example.com/app=x",
            "app=-x",
            "app ~ x",
        ] {
            assert!(label_selector(s).is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(encode_segment("my-metric_1.x"), "my-metric_1.x");
        assert_eq!(encode_segment("a b/c?"), "a%20b%2Fc%3F");
    }
}
