//! Stop points for the crash test: places where flaggerd has just done or recorded
//! something, at which the test kills it (SIGKILL) to check that a restart neither repeats
//! nor loses an effect.
//!
//! Inert unless `FLAGGERD_TEST_STOP_FILE` names a file. Then, at the first point of the
//! chosen class (`FLAGGERD_TEST_STOP_AT`: `durable`, the default, or `window`) that the file
//! does not list yet, flaggerd appends the point to the file, logs
//! `"msg":"test stop point reached"` and stops working on that canary, waiting to be killed.
//! The file outlives the process, so each restart stops one point further and a whole
//! release is swept point by point.
//!
//! - `durable` points follow a write that records progress: a step's decision, an effect
//!   carried out, a webhook or alert call recorded. A kill there must change nothing.
//! - `window` points fall between an outside call (webhook, alert) and its record: the one
//!   window where a kill repeats the call (docs/ARCHITECTURE.md, "Exactly once").

use std::io::Write;
use std::sync::OnceLock;

/// The classes of stop points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Just after something was recorded.
    Durable,
    /// Between an outside call and its record.
    Window,
}

struct Config {
    file: std::path::PathBuf,
    class: Class,
}

fn config() -> Option<&'static Config> {
    static CONFIG: OnceLock<Option<Config>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let file = std::env::var_os("FLAGGERD_TEST_STOP_FILE")?;
            let class = match std::env::var("FLAGGERD_TEST_STOP_AT").as_deref() {
                Ok("window") => Class::Window,
                _ => Class::Durable,
            };
            Some(Config {
                file: file.into(),
                class,
            })
        })
        .as_ref()
}

/// Marks point `id` of `class` reached; when the crash test is on and the point is new, never
/// returns.
pub async fn reached(class: Class, id: &str) {
    let Some(config) = config() else { return };
    if config.class != class {
        return;
    }
    let seen = std::fs::read_to_string(&config.file).unwrap_or_default();
    if seen.lines().any(|line| line == id) {
        return;
    }
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&config.file)
        .and_then(|mut f| writeln!(f, "{id}"));
    if let Err(e) = appended {
        tracing::error!("cannot write the test stop file: {e}");
        return;
    }
    tracing::warn!(point = id, "test stop point reached");
    std::future::pending::<()>().await;
}
