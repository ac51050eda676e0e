//! `loadtester`: flagger-loadtester's flags (Go's forms), JSON logs, then the server.

use std::path::PathBuf;
use std::time::Duration;

use canary_controller::cli::{go_bool, go_duration, go_style, log_level};
use clap::{ArgAction, Parser};
use loadtester::Config;

/// flagger-loadtester's flags, then the loadtester's own.
#[derive(Debug, Parser)]
#[command(
    name = "loadtester",
    about = "Runs the webhook tasks of Flagger's analysis (load tests, gates, commands)"
)]
struct Flags {
    /// Log level: debug, info, warning (or warn), error.
    #[arg(long, default_value = "info", value_parser = log_level)]
    log_level: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 9090)]
    port: u16,
    /// Longest a command may run.
    #[arg(long, default_value = "1h", value_parser = go_duration)]
    timeout: Duration,
    /// Serve only canaries whose namespace matches this regular expression.
    #[arg(long, default_value = "")]
    namespace_regexp: String,
    /// Go's global logger; the loadtester has one logger, so this changes nothing.
    #[arg(long, default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set)]
    zap_replace_globals: bool,
    /// Log encoding: json or console.
    #[arg(long, default_value = "json", value_parser = ["json", "console"])]
    zap_encoding: String,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    listen_address: String,
    /// Background commands running at once; more wait.
    #[arg(long, default_value_t = 16)]
    max_background: usize,
    /// Refuse cmd, bash, kubectl, helm and helmv3 tasks (gates only).
    #[arg(long, default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set)]
    disable_commands: bool,
    /// File keeping the gates across restarts.
    #[arg(long)]
    gate_state: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse_from(go_style(std::env::args()));
    let config = Config {
        address: format!("{}:{}", flags.listen_address, flags.port),
        timeout: flags.timeout,
        namespace_pattern: Some(flags.namespace_regexp).filter(|v| !v.is_empty()),
        max_background: flags.max_background,
        commands_disabled: flags.disable_commands,
        gate_state: flags.gate_state,
        ..Config::default()
    };
    canary_controller::logging::init(&flags.log_level, &flags.zap_encoding);
    loadtester::run(config).await
}
