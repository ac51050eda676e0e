//! Logs as JSON lines with the message under `msg` (the seeds read them with `jq .msg`),
//! like Flagger's zap logs, or plain text with `-zap-encoding console`.

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global logger at `level` (`debug`, `info`, `warn`, `error`).
pub fn init(level: &str, encoding: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},kube=warn,hyper=warn,tower=warn"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if encoding == "console" {
        builder.try_init()
    } else {
        builder.event_format(JsonLines).try_init()
    };
    // A panic (caught per canary, a flaggerd bug) is one log line like any other, so
    // `kubectl logs deploy/flagger | jq .msg` keeps working.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = crate::run::panic_message(info.payload());
        tracing::error!(location = %location, "panic: {message}");
    }));
}

/// One JSON object per event: `level`, `ts`, `msg` and the event's fields.
pub struct JsonLines;

struct Fields(serde_json::Map<String, serde_json::Value>);

impl Fields {
    /// Records `value` under the field's name (`message` becomes Flagger's `msg`).
    fn put(&mut self, field: &Field, value: String) {
        let key = match field.name() {
            "message" => "msg",
            other => other,
        };
        self.0
            .insert(key.to_string(), serde_json::Value::String(value));
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields(serde_json::Map::new());
        fields.0.insert(
            "level".into(),
            event.metadata().level().as_str().to_lowercase().into(),
        );
        fields
            .0
            .insert("ts".into(), crate::wall_clock().to_rfc3339().into());
        event.record(&mut fields);
        let mut line = serde_json::Value::Object(fields.0).to_string();
        line.push('\n');
        writer.write_str(&line)
    }
}
