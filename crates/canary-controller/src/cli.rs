//! What the two binaries taking Go's flags (flaggerd and the loadtester) share: Go's
//! `flag` package forms on top of clap.
//!
//! Go takes `-name value`, `-name=value`, `--name value` and `--name=value`, and a boolean
//! only as `-name` or `-name=false`. [`go_style`] rewrites the single-dash forms to clap's
//! `--name`; booleans are declared with an optional `=value` parsed by [`go_bool`].

use std::time::Duration;

/// Go's single-dash long flags (`-mesh-provider`) as clap's `--mesh-provider`; `-h` and
/// everything after `--` are left alone.
pub fn go_style(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut rest = false;
    args.into_iter()
        .map(|a| {
            rest |= a == "--";
            let single = a.starts_with('-') && !a.starts_with("--") && a.len() > 2;
            if !rest && single { format!("-{a}") } else { a }
        })
        .collect()
}

/// Go's `strconv.ParseBool`.
pub fn go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{text:?} is not a boolean; expected true or false")),
    }
}

/// A Go duration (`10s`, `1m30s`, `1h`).
pub fn go_duration(text: &str) -> Result<Duration, String> {
    canary_core::duration::parse(text).map_err(|e| e.to_string())
}

/// zap's log levels as flaggerd's logger names them: `warning` is `warn`, and `fatal` and
/// `panic` log errors.
pub fn log_level(text: &str) -> Result<String, String> {
    match text {
        "debug" | "info" | "error" => Ok(text.into()),
        "warn" | "warning" => Ok("warn".into()),
        "fatal" | "panic" => Ok("error".into()),
        _ => Err(format!(
            "{text:?} is not a log level; expected debug, info, warning or error"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        let args = [
            "prog",
            "-port",
            "8080",
            "-h",
            "--namespace=x",
            "-a=b",
            "--",
            "-keep",
        ];
        assert_eq!(
            go_style(args.map(String::from)),
            [
                "prog",
                "--port",
                "8080",
                "-h",
                "--namespace=x",
                "--a=b",
                "--",
                "-keep"
            ]
        );
    }
}
