//! Splunk Observability's SignalFlow: a WebSocket `/v2/signalflow/connect` speaking the
//! authenticate / execute protocol (a keep-alive first; a wrong token gets error 401 and the
//! socket closed; an execute gets STREAM_START, JOB_START, a resolution message, another
//! channel's data, then a metadata and a binary data message per point and END_OF_CHANNEL),
//! and the plain-HTTP `GET /v2/metric` on the same port, requiring the `X-SF-Token` header.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use super::Source;

/// The longest the stand-in serves one connection.
const LIMIT: Duration = Duration::from_secs(5);

/// A value the stand-in sends, typed as SignalFlow types it.
#[derive(Clone, Copy, Debug)]
pub enum Val {
    /// A double (value type 2).
    Double(f64),
    /// A long (value type 1).
    Long(i64),
}

/// What a program answers.
#[derive(Clone, Debug)]
pub enum Program {
    /// One binary data message per point, in order: time series id and value.
    Points(Vec<(u64, Val)>),
    /// An error message (code 400) on the channel, with this text.
    Fails(String),
}

/// The program of each SignalFlow text; `None`: the program publishes nothing.
pub type Programs = Arc<dyn Fn(String) -> BoxFuture<'static, Option<Program>> + Send + Sync>;

/// Programs answering from `source`: its value as one double point of time series 1; no
/// value publishes nothing.
pub fn from_source(source: Source) -> Programs {
    Arc::new(move |program: String| {
        let answer = source(program);
        Box::pin(async move {
            answer
                .await
                .map(|v| Program::Points(vec![(1, Val::Double(v))]))
        })
    })
}

/// The stand-in's state: its token, its programs and the execute requests it saw.
pub struct SignalFlow {
    /// The token SignalFlow and the API accept.
    pub token: String,
    /// What each program answers.
    pub programs: Programs,
    /// The execute requests received, in order.
    pub executes: Mutex<Vec<Value>>,
}

impl SignalFlow {
    /// A stand-in accepting `token`, answering from `programs`, having seen no execute.
    pub fn new(token: impl Into<String>, programs: Programs) -> Self {
        Self {
            token: token.into(),
            programs,
            executes: Mutex::default(),
        }
    }
}

/// Serves `state` on `listener` until accepting fails; each connection is served for at
/// most 5 s.
pub async fn serve(listener: TcpListener, state: Arc<SignalFlow>) {
    while let Ok((stream, _)) = listener.accept().await {
        let state = state.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(LIMIT, connection(state, stream)).await;
        });
    }
}

/// Serves `state` on a loopback port; answers `http://127.0.0.1:PORT`.
pub async fn start(state: Arc<SignalFlow>) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener, state));
    Ok(format!("http://{addr}"))
}

/// One connection: a WebSocket upgrade or a plain HTTP request, told apart by its head.
async fn connection(state: Arc<SignalFlow>, mut stream: TcpStream) -> Option<()> {
    let mut buf = vec![0u8; 16 * 1024];
    let head = loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&buf[..n]);
        if let Some(end) = text.find("\r\n\r\n") {
            break text[..end].to_string();
        }
        if n == buf.len() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    if head.to_ascii_lowercase().contains("upgrade: websocket") {
        let ws = tokio_tungstenite::accept_async(stream).await.ok()?;
        return signalflow(state, ws).await;
    }
    let mut consumed = vec![0u8; head.len() + 4];
    stream.read_exact(&mut consumed).await.ok()?;
    let path = head.split_whitespace().nth(1).unwrap_or_default();
    let token = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("x-sf-token")
            .then(|| v.trim().to_string())
    });
    let (status, body) = if !path.starts_with("/v2/metric") {
        (
            "404 Not Found",
            json!({"code": 404, "message": "Not Found"}),
        )
    } else if token.as_deref() != Some(state.token.as_str()) {
        (
            "401 Unauthorized",
            json!({"code": 401, "message": "Unauthorized"}),
        )
    } else {
        (
            "200 OK",
            json!({"count": 1, "results": [{"name": "demo.trans.count"}]}),
        )
    };
    let body = body.to_string();
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes()).await.ok()
}

/// A binary data message on `channel` (at most 16 bytes) with one point.
fn data_message(channel: &str, timestamp: u64, tsid: u64, value: Val) -> Vec<u8> {
    let mut m = vec![1, 5, 0, 0];
    let mut name = [0u8; 16];
    let len = channel.len().min(name.len());
    name[..len].copy_from_slice(&channel.as_bytes()[..len]);
    m.extend(name);
    m.extend(timestamp.to_be_bytes());
    m.extend(1u32.to_be_bytes());
    let (kind, bytes) = match value {
        Val::Double(v) => (2, v.to_be_bytes()),
        Val::Long(v) => (1, v.to_be_bytes()),
    };
    m.push(kind);
    m.extend(tsid.to_be_bytes());
    m.extend(bytes);
    m
}

/// The SignalFlow protocol on one WebSocket.
async fn signalflow(
    state: Arc<SignalFlow>,
    mut ws: tokio_tungstenite::WebSocketStream<TcpStream>,
) -> Option<()> {
    let text = |v: Value| Message::text(v.to_string());
    // A keep-alive, on no channel, before anything else.
    ws.send(text(
        json!({"type": "control-message", "event": "KEEP_ALIVE", "timestampMs": 1}),
    ))
    .await
    .ok()?;
    let mut authenticated = false;
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(t) = msg else { continue };
        let m: Value = serde_json::from_str(t.as_str()).ok()?;
        match m["type"].as_str()? {
            "authenticate" if m["token"].as_str() == Some(state.token.as_str()) => {
                authenticated = true;
                let ok = json!({"type": "authenticated", "orgId": "org-1", "userId": "user-1"});
                ws.send(text(ok)).await.ok()?;
            }
            "authenticate" => {
                let e = json!({"type": "error", "error": 401, "message": "Invalid auth token"});
                ws.send(text(e)).await.ok()?;
                let _ = ws.close(None).await;
                return None;
            }
            "execute" if authenticated => {
                if let Ok(mut executes) = state.executes.lock() {
                    executes.push(m.clone());
                }
                let channel = m["channel"].as_str()?.to_string();
                let stop = m["stop"].as_u64().unwrap_or_default();
                let control = |event: &str| {
                    text(json!({"type": "control-message", "channel": channel,
                        "event": event, "handle": "handle-1", "timestampMs": stop}))
                };
                ws.send(control("STREAM_START")).await.ok()?;
                ws.send(control("JOB_START")).await.ok()?;
                let info = json!({"type": "message", "channel": channel,
                    "logicalTimestampMs": stop, "message": {"messageCode": "JOB_RUNNING_RESOLUTION",
                    "contents": {"resolutionMs": 60000}, "timestampMs": stop}});
                ws.send(text(info)).await.ok()?;
                let program = m["program"].as_str()?.to_string();
                match (state.programs)(program).await {
                    Some(Program::Fails(message)) => {
                        let e = json!({"type": "error", "channel": channel, "error": 400,
                            "message": message});
                        ws.send(text(e)).await.ok()?;
                        continue;
                    }
                    Some(Program::Points(points)) => {
                        // Another channel's data first: not this computation's.
                        let other = data_message("ch-other", stop, 99, Val::Double(1e9));
                        ws.send(Message::binary(other)).await.ok()?;
                        let count = points.len() as u64;
                        for (i, (tsid, v)) in (0u64..).zip(points) {
                            let meta = json!({"type": "metadata", "channel": channel,
                                "tsId": format!("tsid-{tsid}"), "properties": {"sf_metric": "m"}});
                            ws.send(text(meta)).await.ok()?;
                            let at = stop.saturating_sub(60_000 * (count - i));
                            let msg = data_message(&channel, at, tsid, v);
                            ws.send(Message::binary(msg)).await.ok()?;
                        }
                    }
                    None => {}
                }
                ws.send(control("END_OF_CHANNEL")).await.ok()?;
            }
            _ => {}
        }
    }
    None
}
