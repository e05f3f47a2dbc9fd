//! Time on the wire: Kubernetes timestamps, Go duration strings, and the one place where
//! k8s-openapi's `jiff` times meet our `chrono` ones.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};

/// Converts a k8s-openapi (`jiff`) timestamp into ours.
pub fn from_jiff(ts: jiff::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(ts.as_second(), ts.subsec_nanosecond().unsigned_abs())
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Converts our timestamp into a k8s-openapi (`jiff`) one.
pub fn to_jiff(time: DateTime<Utc>) -> jiff::Timestamp {
    jiff::Timestamp::new(time.timestamp(), time.timestamp_subsec_nanos() as i32)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// Kubernetes `metav1.Time` has whole seconds; truncating before storing keeps what we
/// compute from a stored time identical to what we computed before storing it.
pub fn kube_now(now: DateTime<Utc>) -> DateTime<Utc> {
    now.trunc_subsecs(0)
}

/// Serde for `metav1.Time`: RFC 3339, whole seconds, `Z`.
pub mod kube_time {
    /// For `Option<DateTime<Utc>>` fields.
    pub mod option {
        use chrono::{DateTime, SecondsFormat, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes whole seconds, as the API server does.
        pub fn serialize<S: Serializer>(
            time: &Option<DateTime<Utc>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match time {
                Some(t) => serializer.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true)),
                None => serializer.serialize_none(),
            }
        }

        /// Reads any RFC 3339 time; `null` and `""` mean none.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            match Option::<String>::deserialize(deserializer)? {
                None => Ok(None),
                Some(s) if s.is_empty() => Ok(None),
                Some(s) => DateTime::parse_from_rfc3339(&s)
                    .map(|t| Some(t.with_timezone(&Utc)))
                    .map_err(serde::de::Error::custom),
            }
        }
    }
}

/// Why a Go duration string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration `{0}`: use a Go duration such as `30m`, `1h30m` or `24h` (`0s` for none)"
)]
pub struct InvalidDuration(pub String);

/// Parses a Go duration string (`1h0m0s`, `90m`, `1.5h`, `300ms`, `0`), as Tekton writes
/// `spec.timeout`. Negative durations are rejected: a deadline before the start means nothing.
pub fn parse_go_duration(input: &str) -> Result<Duration, InvalidDuration> {
    let invalid = || InvalidDuration(input.to_string());
    let s = input.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(invalid());
    }
    let mut total_nanos: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, tail) = rest.split_at(number_len);
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let nanos_per_unit = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        total_nanos += value * nanos_per_unit;
        rest = tail;
    }
    if !total_nanos.is_finite() || total_nanos > u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

/// Formats a duration as Go's `time.Duration.String()` does (`24h0m0s`, `1m30s`, `500ms`).
pub fn format_go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (value, unit) = match nanos {
            n if n < 1_000 => return format!("{n}ns"),
            n if n < 1_000_000 => (n as f64 / 1e3, "µs"),
            n => (n as f64 / 1e6, "ms"),
        };
        return format!("{}{unit}", trim_float(value));
    }
    let total_secs = duration.as_secs();
    let hours = total_secs / 3600;
    let minutes = (total_secs % 3600) / 60;
    let seconds = (total_secs % 60) as f64 + f64::from(duration.subsec_nanos()) / 1e9;
    let seconds = trim_float(seconds);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

fn trim_float(value: f64) -> String {
    let text = format!("{value:.9}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_as_go_reads_them() {
        let cases = [
            ("1h0m0s", 3600),
            ("24h", 86_400),
            ("90m", 5_400),
            ("1h30m", 5_400),
            ("1.5h", 5_400),
            ("45s", 45),
            ("0s", 0),
            ("0", 0),
        ];
        for (input, secs) in cases {
            assert_eq!(
                parse_go_duration(input),
                Ok(Duration::from_secs(secs)),
                "{input}"
            );
        }
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
    }

    #[test]
    fn malformed_or_negative_durations_are_rejected_with_a_hint() {
        for input in ["", "1d", "h", "-1h", "1h-", "abc", "1..5h"] {
            let err = parse_go_duration(input).unwrap_err();
            assert!(err.to_string().contains("use a Go duration"), "{input}");
        }
    }

    #[test]
    fn durations_format_like_go() {
        let cases = [
            (Duration::from_secs(86_400), "24h0m0s"),
            (Duration::from_secs(3_600), "1h0m0s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::ZERO, "0s"),
        ];
        for (duration, text) in cases {
            assert_eq!(format_go_duration(duration), text);
        }
    }

    #[test]
    fn jiff_and_chrono_times_convert_both_ways() {
        let time = DateTime::parse_from_rfc3339("2026-11-22T10:00:00.250Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(from_jiff(to_jiff(time)), time);
        assert_eq!(kube_now(time).to_rfc3339(), "2026-11-22T10:00:00+00:00");
    }
}
