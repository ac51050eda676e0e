//! `loadtester`: flagger-loadtester's flags, JSON logs, then the server.

use std::time::Duration;

use loadtester::Config;

const USAGE: &str = "usage: loadtester [-port 9090] [-timeout 1h] [-namespace-regexp RE] [-log-level info]
                  [-max-background 16] [-disable-commands] [-gate-state FILE] [-listen-address 0.0.0.0]";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = Config::default();
    let (mut host, mut port, mut level, mut encoding) = (
        "0.0.0.0".to_string(),
        "9090".to_string(),
        "info".to_string(),
        "json".to_string(),
    );
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let flag = arg.trim_start_matches('-');
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        if name == "disable-commands" {
            config.commands_disabled = inline.as_deref() != Some("false");
            continue;
        }
        if name == "h" || name == "help" {
            println!("{USAGE}");
            return Ok(());
        }
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .ok_or_else(|| anyhow::anyhow!("flag -{name} needs a value\n{USAGE}"))?,
        };
        match name.as_str() {
            "port" => port = value,
            "listen-address" => host = value,
            "timeout" => config.timeout = parse_duration(&value)?,
            "namespace-regexp" => config.namespace_pattern = Some(value).filter(|v| !v.is_empty()),
            "log-level" => level = value,
            "zap-encoding" => encoding = value,
            "max-background" => config.max_background = value.parse()?,
            "gate-state" => config.gate_state = Some(value.into()),
            other => anyhow::bail!("unknown flag -{other}\n{USAGE}"),
        }
    }
    config.address = format!("{host}:{port}");
    canary_controller::logging::init(&level, &encoding);
    loadtester::run(config).await
}

fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let (n, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = n.parse()?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        other => anyhow::bail!("-timeout {text}: unknown unit {other:?}; expected ms, s, m or h"),
    })
}
