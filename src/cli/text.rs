//! Text helpers shared by the table and describe output: kubectl's human durations, aligned
//! columns, timestamps, and making untrusted text safe for a terminal. Pure.

use chrono::{DateTime, SecondsFormat, Utc};

/// A duration as kubectl prints ages (`45s`, `5m30s`, `3h`, `2d4h`, `1y20d`); this is a port
/// of apimachinery's `duration.HumanDuration`, so that our AGE column reads like kubectl's.
pub fn human_duration(duration: chrono::Duration) -> String {
    let seconds = duration.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `2026-11-22T10:00:00Z`, as the API server writes times.
pub fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `2026-11-22T10:00:00Z (5m ago)` or `2026-11-23T10:00:00Z (in 22h)`.
pub fn timestamp_relative(time: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if time <= now {
        format!("{} ({} ago)", timestamp(time), human_duration(now - time))
    } else {
        format!("{} (in {})", timestamp(time), human_duration(time - now))
    }
}

/// Text from the cluster made safe to print: comments and messages are written by approvers
/// and pipeline authors, and an escape sequence in them must not drive the reader's terminal;
/// a newline must not break a table row.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Rows as aligned columns, three spaces apart, without trailing spaces (kubectl's layout).
pub fn columns(rows: &[Vec<String>]) -> String {
    let width = |i: usize| {
        rows.iter()
            .filter_map(|row| row.get(i))
            .map(|cell| cell.chars().count())
            .max()
            .unwrap_or(0)
    };
    let count = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..count).map(width).collect();
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            } else {
                line.push_str(cell);
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn durations_read_like_kubectl_ages() {
        let cases = [
            (Duration::seconds(-5), "<invalid>"),
            (Duration::milliseconds(-500), "0s"),
            (Duration::seconds(0), "0s"),
            (Duration::seconds(119), "119s"),
            (Duration::seconds(120), "2m"),
            (Duration::seconds(330), "5m30s"),
            (Duration::minutes(10), "10m"),
            (Duration::minutes(179), "179m"),
            (Duration::minutes(180), "3h"),
            (Duration::minutes(7 * 60 + 59), "7h59m"),
            (Duration::hours(8), "8h"),
            (Duration::hours(47), "47h"),
            (Duration::hours(48), "2d"),
            (Duration::hours(52), "2d4h"),
            (Duration::days(8), "8d"),
            (Duration::days(730), "2y"),
            (Duration::days(750), "2y20d"),
            (Duration::days(365 * 9), "9y"),
        ];
        for (duration, text) in cases {
            assert_eq!(human_duration(duration), text, "{duration:?}");
        }
    }

    #[test]
    fn times_are_shown_with_how_long_ago_or_ahead() {
        let now: DateTime<Utc> = "2026-11-22T12:00:00Z".parse().unwrap();
        let past = "2026-11-22T11:55:00Z".parse().unwrap();
        let future = "2026-11-23T10:00:00Z".parse().unwrap();
        assert_eq!(
            timestamp_relative(past, now),
            "2026-11-22T11:55:00Z (5m ago)"
        );
        assert_eq!(
            timestamp_relative(future, now),
            "2026-11-23T10:00:00Z (in 22h)"
        );
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(clean("ship\u{1b}[2Jit\nnow\t!"), "ship [2Jit now !");
    }

    #[test]
    fn columns_align_without_trailing_spaces() {
        let rows = vec![
            vec!["NAME".to_string(), "STATUS".into(), "X".into()],
            vec!["a-long-name".to_string(), "ok".into(), "".into()],
        ];
        assert_eq!(
            columns(&rows),
            "NAME          STATUS   X\na-long-name   ok\n"
        );
    }
}
