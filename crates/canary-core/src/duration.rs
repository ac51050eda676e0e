//! Durations as Flagger writes them (`30s`, `1m`, `1m30s`, `500ms`), parsed and printed.
//!
//! Flagger parses these with Go's `time.ParseDuration`; we accept the same units that matter
//! for canaries (`ms`, `s`, `m`, `h`) in any sequence, and print them back the way Go does
//! for whole numbers, so an event reads like Flagger's.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Why a duration string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The string was empty.
    #[error("empty duration; expected a number with a unit such as 30s or 1m")]
    Empty,
    /// A number was not followed by a known unit.
    #[error(
        "invalid duration {0:?}; expected numbers with units ms, s, m or h such as 30s or 1m30s"
    )]
    Invalid(String),
    /// Longer than Go's `time.Duration` holds, which Flagger's parser refuses too.
    #[error("duration {0:?} is too long; the longest is 2562047h47m16s")]
    TooLong(String),
}

/// The longest duration Go's `time.ParseDuration` (and so Flagger) accepts: `i64::MAX`
/// nanoseconds, about 292 years. Keeping under it also keeps every deadline flaggerd computes
/// within the calendar's range.
pub const MAX: Duration = Duration::from_nanos(i64::MAX as u64);

/// Parses a duration such as `10s`, `1m`, `1m30s`, `250ms` or `1.5s`.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let invalid = || DurationError::Invalid(text.to_string());
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total_ms: f64 = 0.0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if start == i {
            return Err(invalid());
        }
        let number: f64 = s[start..i].parse().map_err(|_| invalid())?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let factor_ms = match &s[unit_start..i] {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            _ => return Err(invalid()),
        };
        total_ms += number * factor_ms;
    }
    if !total_ms.is_finite() || total_ms < 0.0 {
        return Err(invalid());
    }
    if total_ms > MAX.as_millis() as f64 {
        return Err(DurationError::TooLong(text.to_string()));
    }
    Ok(Duration::from_micros((total_ms * 1_000.0).round() as u64).min(MAX))
}

/// `time + duration`, or `None` past the end of the calendar: a deadline that never comes.
pub fn after(time: DateTime<Utc>, duration: Duration) -> Option<DateTime<Utc>> {
    chrono::TimeDelta::from_std(duration)
        .ok()
        .and_then(|d| time.checked_add_signed(d))
}

/// Prints a duration the way Go's `time.Duration.String` does: `1m30s`, `10s`, `500ms`, `1.5s`.
pub fn format(d: Duration) -> String {
    let micros = d.as_micros();
    if micros == 0 {
        return "0s".to_string();
    }
    if micros < 1_000_000 {
        return format!("{}ms", trim_float(micros as f64 / 1_000.0));
    }
    let total_secs = d.as_secs();
    let hours = total_secs / 3_600;
    let minutes = (total_secs % 3_600) / 60;
    let secs = (micros % 60_000_000) as f64 / 1_000_000.0;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{}s", trim_float(secs)));
    out
}

/// Prints a float with at most six decimals and no trailing zeros (`0.5`, `99`, `1.25`).
pub fn trim_float(value: f64) -> String {
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_units_flagger_users_write() {
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
    }

    #[test]
    fn rejects_numbers_without_units_and_unknown_units() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert!(parse("10").is_err());
        assert!(parse("10d").is_err());
        assert!(parse("s").is_err());
        assert!(parse("1m30").is_err());
    }

    #[test]
    fn rejects_what_go_cannot_hold_as_flagger_does() {
        assert_eq!(
            parse("180000000000m"),
            Err(DurationError::TooLong("180000000000m".into()))
        );
        assert!(parse("2562047h").is_ok());
        assert!(parse("2562048h").is_err());
    }

    #[test]
    fn prints_like_go() {
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(10)), "10s");
        assert_eq!(format(Duration::from_millis(500)), "500ms");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
