//! Splunk Observability (SignalFx) SignalFlow: a WebSocket to `<stream>/v2/signalflow/connect`
//! (the address with `http` -> `ws` and `api` -> `stream`, as Flagger derives it), an
//! `authenticate` message with the Secret's `sf_token_key`, then one `execute` of the query over
//! the last ten intervals (`immediate`); the value is the last non-null data point, with an
//! error when the points come from more than one time series. Online: `GET
//! <api>/v2/metric?limit=1` with `X-SF-Token`.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

use super::{Answer, Backend, Failure, Http, Settings, http};

/// The longest wait for one step: connecting, or the next message.
const STEP: Duration = Duration::from_secs(5);

/// The longest a whole computation may take.
const TOTAL: Duration = Duration::from_secs(30);

/// The channel of the one computation a connection runs.
const CHANNEL: &str = "ch-1";

/// A SignalFlow WebSocket.
type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One data point: its time series and its value (`None` when null or of an unknown type).
type Point = (u64, Option<f64>);

/// A Splunk Observability realm, read with SignalFlow.
pub(crate) struct Splunk {
    http: Http,
    stream: String,
    validation: String,
    token: String,
    window: Duration,
}

impl Splunk {
    /// The realm of `settings.address` with the Secret's `sf_token_key`.
    pub(crate) fn new(settings: &Settings) -> Result<Self, Failure> {
        let address = settings.required_address()?;
        let address = address.trim_end_matches('/');
        Ok(Splunk {
            http: Http::new(settings)?,
            stream: format!("{address}/v2/signalflow")
                .replacen("http", "ws", 1)
                .replacen("api", "stream", 1),
            validation: format!("{address}/v2/metric?limit=1")
                .replacen("ws", "http", 1)
                .replacen("stream", "api", 1),
            token: settings.credential("sf_token_key")?,
            window: settings.span(),
        })
    }

    /// The data points of `program` over the window.
    async fn points(&self, program: &str) -> Result<Vec<Point>, Failure> {
        let url = format!("{}/connect", self.stream);
        let origin = http::origin(&Settings::url(&url)?);
        let (mut ws, _) = step(tokio_tungstenite::connect_async(url.as_str()))
            .await?
            .map_err(|e| match e {
                tungstenite::Error::Http(resp) => {
                    let body = resp.body().as_deref().unwrap_or_default();
                    http::refusal(resp.status().as_u16(), &String::from_utf8_lossy(body))
                }
                e => Failure::Error(format!("unreachable: {origin}: {e}")),
            })?;
        let result = self.exchange(&mut ws, program).await;
        let _ = tokio::time::timeout(STEP, ws.close(None)).await;
        result
    }

    /// Authenticates on `ws`, executes `program` and gathers its points until the end of its
    /// channel.
    async fn exchange(&self, ws: &mut Socket, program: &str) -> Result<Vec<Point>, Failure> {
        send(ws, json!({"type": "authenticate", "token": self.token})).await?;
        loop {
            match receive(ws).await? {
                Incoming::Json(m) => match m["type"].as_str() {
                    Some("authenticated") => break,
                    Some("error") => {
                        return Err(Failure::Error(format!(
                            "authentication failed: {}",
                            computation_error(&m)
                        )));
                    }
                    _ => {}
                },
                Incoming::Binary(_) => {}
                Incoming::Closed(why) => {
                    return Err(Failure::Error(format!(
                        "authentication failed: the connection closed before authentication{why}"
                    )));
                }
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let (start, stop) = (
            (now.saturating_sub(self.window)).as_millis() as u64,
            now.as_millis() as u64,
        );
        send(
            ws,
            json!({"type": "execute", "channel": CHANNEL, "program": program,
                "start": start, "stop": stop, "immediate": true, "compress": false}),
        )
        .await?;
        let mut points = Vec::new();
        loop {
            match receive(ws).await? {
                Incoming::Json(m) => {
                    if m["channel"].as_str().is_some_and(|c| c != CHANNEL) {
                        continue;
                    }
                    match (m["type"].as_str(), m["event"].as_str()) {
                        (Some("control-message"), Some("END_OF_CHANNEL")) => return Ok(points),
                        (Some("control-message"), Some("CHANNEL_ABORT")) => {
                            return Err(Failure::Error(format!(
                                "the computation was aborted: {}",
                                http::one_line(&m["abortInfo"].to_string())
                            )));
                        }
                        (Some("error"), _) => {
                            return Err(Failure::Error(format!(
                                "query refused: {}",
                                computation_error(&m)
                            )));
                        }
                        (Some("data"), _) => points.extend(json_points(&m)?),
                        _ => {}
                    }
                }
                Incoming::Binary(b) => {
                    if let Some((channel, p)) = binary_points(&b)?
                        && channel == CHANNEL
                    {
                        points.extend(p);
                    }
                }
                Incoming::Closed(why) => {
                    return Err(Failure::Error(format!(
                        "the connection closed before the end of the computation{why}"
                    )));
                }
            }
            if points.len() > MAX_POINTS {
                return Err(Failure::Error(format!(
                    "the computation sent more than {MAX_POINTS} points"
                )));
            }
        }
    }
}

/// The most points one check keeps (a program publishing one series over ten intervals sends
/// a few dozen).
const MAX_POINTS: usize = 100_000;

#[async_trait]
impl Backend for Splunk {
    async fn query(&self, query: &str) -> Answer {
        let points = tokio::time::timeout(TOTAL, self.points(query))
            .await
            .map_err(|_| {
                Failure::Error(format!(
                    "the computation did not end within {} s",
                    TOTAL.as_secs()
                ))
            })??;
        last_value(&points)
    }

    async fn online(&self) -> Result<(), Failure> {
        let req = self
            .http
            .client()
            .get(&self.validation)
            .header("X-SF-Token", &self.token);
        self.http.send(req).await.map(drop)
    }
}

/// `f`, or an error when it takes longer than [`STEP`].
async fn step<T>(f: impl Future<Output = T>) -> Result<T, Failure> {
    tokio::time::timeout(STEP, f)
        .await
        .map_err(|_| Failure::Error(format!("no answer within {} s", STEP.as_secs())))
}

/// Sends `message` as a text message.
async fn send(ws: &mut Socket, message: Value) -> Result<(), Failure> {
    step(ws.send(Message::text(message.to_string())))
        .await?
        .map_err(|e| Failure::Error(format!("cannot send to the SignalFlow stream: {e}")))
}

/// A message of the stream.
enum Incoming {
    /// A text message.
    Json(Value),
    /// A binary message.
    Binary(Vec<u8>),
    /// The end of the connection, with the reason to append to a message.
    Closed(String),
}

/// The next text or binary message, or the end of the connection.
async fn receive(ws: &mut Socket) -> Result<Incoming, Failure> {
    loop {
        return Ok(match step(ws.next()).await? {
            None => Incoming::Closed(String::new()),
            Some(Err(e)) => Incoming::Closed(format!(": {e}")),
            Some(Ok(Message::Text(t))) => Incoming::Json(http::decode(t.as_str())?),
            Some(Ok(Message::Binary(b))) => Incoming::Binary(b.to_vec()),
            Some(Ok(Message::Close(frame))) => Incoming::Closed(match frame {
                Some(f) if !f.reason.is_empty() => {
                    format!(": {} {}", u16::from(f.code), http::one_line(&f.reason))
                }
                Some(f) => format!(": {}", u16::from(f.code)),
                None => String::new(),
            }),
            Some(Ok(_)) => continue,
        });
    }
}

/// An error message's code, type and message, as `401 (TYPE): message`.
fn computation_error(m: &Value) -> String {
    let mut s = match &m["error"] {
        Value::Null => "error".to_string(),
        code => code.to_string(),
    };
    if let Some(t) = m["errorType"].as_str() {
        s.push_str(&format!(" ({t})"));
    }
    if let Some(msg) = m["message"].as_str() {
        s.push_str(&format!(": {}", http::one_line(msg)));
    }
    s
}

/// The points of a JSON data message: `data: [{tsId, value}]`, `tsId` the base64url of the
/// time series' 8-byte id.
fn json_points(m: &Value) -> Result<Vec<Point>, Failure> {
    let unreadable = |what: &str| Failure::Error(format!("unreadable data message: {what}"));
    let Some(data) = m["data"].as_array() else {
        return Err(unreadable("no data array"));
    };
    data.iter()
        .map(|p| {
            let id = p["tsId"].as_str().ok_or_else(|| unreadable("no tsId"))?;
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(id.trim_end_matches('='))
                .map_err(|_| unreadable("a tsId is not base64"))?;
            let id: [u8; 8] = bytes
                .try_into()
                .map_err(|_| unreadable("a tsId is not 8 bytes long"))?;
            Ok((u64::from_be_bytes(id), p["value"].as_f64()))
        })
        .collect()
}

/// The channel and points of a binary message: a 20-byte header (version, type, flags,
/// reserved, 16-byte channel name), then for a data message (type 5) an 8-byte timestamp, a
/// 4-byte count and per point a value type (1 long, 2 double, 3 int), an 8-byte time series
/// id and an 8-byte value, big-endian. `None` for a message that is not data.
fn binary_points(msg: &[u8]) -> Result<Option<(String, Vec<Point>)>, Failure> {
    let unreadable = |what: String| Failure::Error(format!("unreadable data message: {what}"));
    if msg.len() <= 20 {
        return Err(unreadable(format!("{} bytes", msg.len())));
    }
    let (kind, flags) = (msg[1], msg[2]);
    let name = &msg[4..20];
    let channel = String::from_utf8_lossy(&name[..name.iter().position(|b| *b == 0).unwrap_or(16)])
        .into_owned();
    let rest = &msg[20..];
    if flags & 1 != 0 {
        return Err(unreadable("compressed messages are not supported".into()));
    }
    if flags & 2 != 0 {
        let m: Value = http::decode(&String::from_utf8_lossy(rest))?;
        return Ok(Some((channel, json_points(&m)?)));
    }
    if kind != 5 {
        return Ok(None);
    }
    if rest.len() < 12 {
        return Err(unreadable(format!("a data header of {} bytes", rest.len())));
    }
    let count = u32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
    let body = &rest[12..];
    if body.len() < count.saturating_mul(17) {
        return Err(unreadable(format!(
            "{count} points announced in {} bytes",
            body.len()
        )));
    }
    let points = body
        .chunks_exact(17)
        .take(count)
        .map(|p| {
            let tsid = u64::from_be_bytes(p[1..9].try_into().unwrap_or_default());
            let val: [u8; 8] = p[9..17].try_into().unwrap_or_default();
            let value = match p[0] {
                1 => Some(i64::from_be_bytes(val) as f64),
                2 => Some(f64::from_be_bytes(val)),
                3 => Some(f64::from(i32::from_be_bytes([
                    val[0], val[1], val[2], val[3],
                ]))),
                _ => None,
            };
            (tsid, value)
        })
        .collect();
    Ok(Some((channel, points)))
}

/// The last non-null value, when all points come from one time series.
fn last_value(points: &[Point]) -> Answer {
    let values: Vec<(u64, f64)> = points
        .iter()
        .filter_map(|(id, v)| v.map(|v| (*id, v)))
        .collect();
    let Some((first, _)) = values.first() else {
        return Err(Failure::no_values("the computation sent no data points"));
    };
    if values.iter().any(|(id, _)| id != first) {
        return Err(Failure::Error("query returned multiple values".into()));
    }
    match values.last() {
        Some((_, v)) if v.is_nan() => Err(Failure::no_values("the last data point is NaN")),
        Some((_, v)) => Ok(*v),
        None => Err(Failure::no_values("the computation sent no data points")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(channel: &str, flags: u8, points: &[(u8, u64, [u8; 8])]) -> Vec<u8> {
        let mut m = vec![1, 5, flags, 0];
        let mut name = [0u8; 16];
        name[..channel.len()].copy_from_slice(channel.as_bytes());
        m.extend(name);
        m.extend(1_700_000_000_000u64.to_be_bytes());
        m.extend((points.len() as u32).to_be_bytes());
        for (t, id, v) in points {
            m.push(*t);
            m.extend(id.to_be_bytes());
            m.extend(v);
        }
        m
    }

    #[test]
    fn binary_data_messages_are_read() {
        let mut int = [0u8; 8];
        int[..4].copy_from_slice(&(-3i32).to_be_bytes());
        let msg = data(
            "ch-1",
            0,
            &[
                (2, 7, 0.25f64.to_be_bytes()),
                (1, 7, 12i64.to_be_bytes()),
                (3, 7, int),
                (9, 7, [0; 8]),
            ],
        );
        assert_eq!(
            binary_points(&msg),
            Ok(Some((
                "ch-1".to_string(),
                vec![(7, Some(0.25)), (7, Some(12.0)), (7, Some(-3.0)), (7, None)]
            )))
        );
    }

    #[test]
    fn short_compressed_and_other_binary_messages() {
        assert!(binary_points(&[1, 5, 0]).is_err());
        let msg = data("ch-1", 0, &[(2, 7, 1f64.to_be_bytes())]);
        assert!(binary_points(&msg[..msg.len() - 1]).is_err(), "a cut point");
        assert!(binary_points(&data("ch-1", 1, &[])).is_err(), "compressed");
        let mut other = data("ch-1", 0, &[]);
        other[1] = 6;
        assert_eq!(binary_points(&other), Ok(None));
    }

    #[test]
    fn json_data_messages_are_read() {
        let mut msg = data("ch-2", 2, &[]);
        msg.truncate(20);
        msg.extend(br#"{"type":"data","channel":"ch-2","data":[{"tsId":"AAAAAAAAAAc","value":1.5},{"tsId":"AAAAAAAAAAc","value":null}]}"#);
        assert_eq!(
            binary_points(&msg),
            Ok(Some(("ch-2".to_string(), vec![(7, Some(1.5)), (7, None)])))
        );
    }

    #[test]
    fn the_last_non_null_point_of_one_series_counts() {
        assert_eq!(
            last_value(&[(7, Some(1.0)), (7, Some(2.0)), (7, None)]),
            Ok(2.0)
        );
        assert!(matches!(last_value(&[]), Err(Failure::NoData(_))));
        assert!(matches!(last_value(&[(7, None)]), Err(Failure::NoData(_))));
        assert!(matches!(
            last_value(&[(7, Some(1.0)), (7, Some(f64::NAN))]),
            Err(Failure::NoData(_))
        ));
        assert_eq!(
            last_value(&[(7, Some(1.0)), (8, Some(2.0))]),
            Err(Failure::Error("query returned multiple values".into()))
        );
    }

    #[test]
    fn addresses_are_derived_as_flagger_does() {
        let settings = |a: &str| Settings {
            address: Some(a.into()),
            secret: Some([("sf_token_key".to_string(), "t".to_string())].into()),
            interval: Duration::from_secs(60),
            ..Settings::default()
        };
        let s = Splunk::new(&settings("https://api.us1.signalfx.com/")).expect("splunk");
        assert_eq!(s.stream, "wss://stream.us1.signalfx.com/v2/signalflow");
        assert_eq!(
            s.validation,
            "https://api.us1.signalfx.com/v2/metric?limit=1"
        );
        assert_eq!(s.window, Duration::from_secs(600));
        let s = Splunk::new(&settings("wss://stream.eu0.signalfx.com")).expect("splunk");
        assert_eq!(s.stream, "wss://stream.eu0.signalfx.com/v2/signalflow");
        assert_eq!(
            s.validation,
            "https://api.eu0.signalfx.com/v2/metric?limit=1"
        );
    }

    #[test]
    fn errors_show_code_type_and_message() {
        let m = json!({"type": "error", "error": 400, "errorType": "ANALYTICS_PROGRAM_ERROR",
            "message": "bad program"});
        assert_eq!(
            computation_error(&m),
            "400 (ANALYTICS_PROGRAM_ERROR): bad program"
        );
    }
}
