//! Reading and writing the state directory's TOML files: errors that name
//! `file:line`, strings and dates written so they read back exactly.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use toml::value::{Datetime, Offset};

use super::StateError;

pub(super) use onedoor_proto::config::line_of;

/// A problem with the value at byte offset `at`.
pub(super) fn invalid(path: &Path, text: &str, at: usize, what: String) -> StateError {
    StateError::Invalid {
        path: path.to_owned(),
        line: Some(line_of(text, at)),
        what,
    }
}

/// Parse `text` (the contents of `path`) into `T`, whose structs deny
/// unknown fields; errors name the line and say "key" for serde's "field".
pub(super) fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, StateError> {
    toml::from_str(text).map_err(|e| {
        let (at, what) = onedoor_proto::config::toml_error(text, &e);
        invalid(path, text, at, what)
    })
}

/// `s` as a TOML basic string.
pub(super) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `t` as a TOML offset date-time in UTC, whole seconds:
/// `2025-01-01T12:00:00Z`.
pub(super) fn datetime(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A TOML offset date-time as a point in time (the fraction of a second is
/// dropped, as [`datetime`] writes none).
pub(super) fn to_system_time(dt: &Datetime) -> Result<SystemTime, String> {
    const EXPECTED: &str = "expected a date and time with an offset, such as 2025-01-01T12:00:00Z";
    let (Some(date), Some(clock), Some(offset)) = (dt.date, dt.time, dt.offset) else {
        return Err(EXPECTED.into());
    };
    let month = time::Month::try_from(date.month).map_err(|_| EXPECTED.to_owned())?;
    let day = time::Date::from_calendar_date(i32::from(date.year), month, date.day)
        .map_err(|_| format!("{dt}: no such date"))?;
    let clock = time::Time::from_hms(clock.hour, clock.minute, clock.second.min(59))
        .map_err(|_| format!("{dt}: no such time"))?;
    let minutes = match offset {
        Offset::Z => 0,
        Offset::Custom { minutes } => i32::from(minutes),
    };
    let offset = time::UtcOffset::from_whole_seconds(minutes * 60)
        .map_err(|_| format!("{dt}: no such offset"))?;
    let unix = time::PrimitiveDateTime::new(day, clock)
        .assume_offset(offset)
        .unix_timestamp();
    u64::try_from(unix)
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
        .map_err(|_| format!("{dt}: before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> Datetime {
        s.parse().unwrap()
    }

    #[test]
    fn dates_roundtrip() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_732_800);
        assert_eq!(datetime(t), "2025-01-01T12:00:00Z");
        assert_eq!(to_system_time(&dt(&datetime(t))), Ok(t));
        assert_eq!(to_system_time(&dt("2025-01-01T14:00:00+02:00")), Ok(t));
        assert_eq!(to_system_time(&dt("2025-01-01T12:00:00.75Z")), Ok(t));
        for bad in ["2025-01-01", "2025-01-01T12:00:00", "12:00:00"] {
            assert!(to_system_time(&dt(bad)).is_err(), "{bad}");
        }
        assert!(to_system_time(&dt("1969-12-31T23:59:59Z")).is_err());
    }

    #[test]
    fn strings_read_back() {
        for s in [
            "plain",
            "quo\"te",
            "back\\slash",
            "new\nline",
            "\u{7f}\u{1}",
            "é",
        ] {
            let text = format!("v = {}\n", quote(s));
            let v: toml::Table = toml::from_str(&text).unwrap();
            assert_eq!(v["v"].as_str(), Some(s), "{text}");
        }
    }

    #[test]
    fn lines() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}
