//! Approval windows: when an approval takes effect. A policy may allow approvals only on
//! some weekdays, between some hours, in a time zone, outside blackout dates (a release
//! freeze). An approval given while the window is closed is recorded at once and takes
//! effect when it next opens; a rejection is never held back (see [`super::outcome`]).
//!
//! Time zones come from the tz database bundled with `jiff`, so a window means the same in
//! every container image, with or without `/usr/share/zoneinfo`.

use std::fmt;

use chrono::{DateTime, Utc};
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::api::time::{from_jiff, to_jiff};

/// How far ahead a window is searched for its next opening: a window closed for longer
/// (a blackout of years) holds approvals until the gate's deadline, as if it never opened.
const HORIZON_DAYS: usize = 731;

const MINUTES_PER_DAY: u16 = 24 * 60;

/// When approvals take effect, as frozen into a gate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WindowSpec", into = "WindowSpec")]
pub struct Window {
    time_zone: TimeZone,
    time_zone_name: String,
    /// Weekdays in the time zone, Monday first.
    days: [bool; 7],
    /// Minutes after local midnight; `start > end` is a window across midnight, which
    /// belongs to the day it starts on.
    start: u16,
    end: u16,
    blackouts: Vec<Blackout>,
}

/// Dates (inclusive, in the window's time zone) when no approval takes effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Blackout {
    /// The first date, `YYYY-MM-DD`.
    pub from: Date,
    /// The last date; the same as `from` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Date>,
    /// Why, for the message approvers see (`year-end freeze`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl Blackout {
    fn contains(&self, date: Date) -> bool {
        self.from <= date && date <= self.to.unwrap_or(self.from)
    }
}

/// The window as written in a policy (and frozen): `{timeZone, days, hours, blackouts}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowSpec {
    /// An IANA time zone name (`Europe/Berlin`, `UTC`).
    pub time_zone: String,
    /// `Mon`..`Sun` (or full names), or ranges such as `Mon-Fri`; every day when absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
    /// `HH:MM-HH:MM` in the time zone (`09:00-17:00`, `22:00-06:00`); all day when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<String>,
    /// Dates on which no approval takes effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blackouts: Vec<Blackout>,
}

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const FULL_DAY_NAMES: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn day_index(name: &str) -> Result<usize, String> {
    let name = name.trim();
    DAY_NAMES
        .iter()
        .zip(FULL_DAY_NAMES)
        .position(|(short, full)| {
            short.eq_ignore_ascii_case(name) || full.eq_ignore_ascii_case(name)
        })
        .ok_or_else(|| {
            format!("`{name}` is not a weekday: write Mon, Tue, Wed, Thu, Fri, Sat or Sun")
        })
}

fn weekday_index(day: Weekday) -> usize {
    day.to_monday_zero_offset() as usize
}

fn parse_minute(text: &str) -> Option<u16> {
    let (hours, minutes) = text.trim().split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let (hours, minutes): (u16, u16) = (hours.parse().ok()?, minutes.parse().ok()?);
    let minute = hours * 60 + minutes;
    (minutes < 60 && minute <= MINUTES_PER_DAY).then_some(minute)
}

fn format_minute(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

impl TryFrom<WindowSpec> for Window {
    type Error = String;

    fn try_from(spec: WindowSpec) -> Result<Self, String> {
        let time_zone = TimeZone::get(spec.time_zone.trim()).map_err(|_| {
            format!(
                "`timeZone` `{}` is not in the tz database: write an IANA name such as \
                 Europe/Berlin, America/New_York or UTC",
                spec.time_zone
            )
        })?;
        let mut days = [spec.days.is_empty(); 7];
        for entry in &spec.days {
            match entry.split_once('-') {
                Some((first, last)) => {
                    let (first, last) = (day_index(first)?, day_index(last)?);
                    // `Fri-Mon` wraps over the weekend.
                    let mut day = first;
                    loop {
                        days[day] = true;
                        if day == last {
                            break;
                        }
                        day = (day + 1) % 7;
                    }
                }
                None => days[day_index(entry)?] = true,
            }
        }
        let (start, end) = match spec.hours.as_deref() {
            None => (0, MINUTES_PER_DAY),
            Some(hours) => {
                let parsed = hours
                    .split_once('-')
                    .and_then(|(a, b)| Some((parse_minute(a)?, parse_minute(b)?)));
                match parsed {
                    Some((start, end)) if start != end && start < MINUTES_PER_DAY => (start, end),
                    _ => {
                        return Err(format!(
                            "`hours` `{hours}` must be HH:MM-HH:MM with two different times, \
                             e.g. 09:00-17:00 (or 22:00-06:00 across midnight)"
                        ));
                    }
                }
            }
        };
        for blackout in &spec.blackouts {
            if blackout.to.is_some_and(|to| to < blackout.from) {
                return Err(format!(
                    "blackout from {} to {} ends before it starts: swap the dates",
                    blackout.from,
                    blackout.to.unwrap_or(blackout.from)
                ));
            }
        }
        Ok(Window {
            time_zone,
            time_zone_name: spec.time_zone.trim().to_string(),
            days,
            start,
            end,
            blackouts: spec.blackouts,
        })
    }
}

impl From<Window> for WindowSpec {
    fn from(window: Window) -> Self {
        let hours = (window.start, window.end) != (0, MINUTES_PER_DAY);
        WindowSpec {
            days: if window.days == [true; 7] {
                Vec::new()
            } else {
                day_ranges(&window.days)
            },
            hours: hours.then(|| {
                format!(
                    "{}-{}",
                    format_minute(window.start),
                    format_minute(window.end)
                )
            }),
            time_zone: window.time_zone_name,
            blackouts: window.blackouts,
        }
    }
}

/// `[Mon-Fri, Sun]`: runs of three or more days as ranges.
fn day_ranges(days: &[bool; 7]) -> Vec<String> {
    let mut ranges = Vec::new();
    let mut day = 0;
    while day < 7 {
        if !days[day] {
            day += 1;
            continue;
        }
        let first = day;
        while day + 1 < 7 && days[day + 1] {
            day += 1;
        }
        match day - first {
            0 => ranges.push(DAY_NAMES[first].to_string()),
            1 => ranges.extend([DAY_NAMES[first].to_string(), DAY_NAMES[day].to_string()]),
            _ => ranges.push(format!("{}-{}", DAY_NAMES[first], DAY_NAMES[day])),
        }
        day += 1;
    }
    ranges
}

impl fmt::Display for Window {
    /// `Mon-Fri 09:00-17:00 Europe/Berlin, except 2026-12-21..2027-01-03 (year-end freeze)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spec = WindowSpec::from(self.clone());
        let mut parts = Vec::new();
        if !spec.days.is_empty() {
            parts.push(spec.days.join(","));
        }
        if let Some(hours) = &spec.hours {
            parts.push(hours.clone());
        }
        parts.push(spec.time_zone.clone());
        write!(f, "{}", parts.join(" "))?;
        for (i, blackout) in self.blackouts.iter().enumerate() {
            f.write_str(if i == 0 { ", except " } else { ", " })?;
            match blackout.to.filter(|to| *to != blackout.from) {
                Some(to) => write!(f, "{}..{to}", blackout.from)?,
                None => write!(f, "{}", blackout.from)?,
            }
            if !blackout.reason.is_empty() {
                write!(f, " ({})", blackout.reason)?;
            }
        }
        Ok(())
    }
}

impl Window {
    /// Whether an approval given at `time` takes effect at once.
    pub fn is_open(&self, time: DateTime<Utc>) -> bool {
        let local = to_jiff(time).to_zoned(self.time_zone.clone());
        let date = local.date();
        if self.blackouts.iter().any(|b| b.contains(date)) {
            return false;
        }
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        let today = self.days[weekday_index(date.weekday())];
        if self.start < self.end {
            return today && self.start <= minute && minute < self.end;
        }
        let yesterday = self.days[weekday_index(date.weekday().wrapping_sub(1))];
        (today && minute >= self.start) || (yesterday && minute < self.end)
    }

    /// The first time at or after `time` when the window is open; `None` if it stays shut
    /// for the next two years.
    pub fn next_open(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_open(time) {
            return Some(time);
        }
        // An open stretch begins at a day's start time, or at a midnight (a blackout ends,
        // or a window across midnight goes on into a day that is not blacked out).
        let mut date = to_jiff(time).to_zoned(self.time_zone.clone()).date();
        for _ in 0..HORIZON_DAYS {
            for minute in [0, self.start] {
                let candidate = self.instant(date, minute);
                if candidate > time && self.is_open(candidate) {
                    return Some(candidate);
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// `date` at `minute` in the time zone; a time skipped by a clock change means the
    /// instant the clocks jumped (the first instant whose local time is later).
    fn instant(&self, date: Date, minute: u16) -> DateTime<Utc> {
        let local = date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
        let zoned = self
            .time_zone
            .to_ambiguous_zoned(local)
            .compatible()
            .expect("a civil time within the horizon has an instant");
        if zoned.datetime() == local {
            return from_jiff(zoned.timestamp());
        }
        let jump = self
            .time_zone
            .preceding(zoned.timestamp())
            .next()
            .map_or(zoned.timestamp(), |t| t.timestamp());
        from_jiff(jump)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn window(spec: serde_json::Value) -> Window {
        serde_json::from_value(spec).unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn office_hours() -> Window {
        window(
            json!({"timeZone": "Europe/Berlin", "days": ["Mon-Fri"], "hours": "09:00-17:00",
                      "blackouts": [{"from": "2026-12-21", "to": "2027-01-03", "reason": "year-end freeze"}]}),
        )
    }

    #[test]
    fn an_office_hours_window_is_open_only_on_weekdays_between_its_hours() {
        let w = office_hours();
        // 2026-12-01 is a Tuesday; Berlin is UTC+1 in winter.
        let rows = [
            ("2026-12-01T07:59:59Z", false),
            ("2026-12-01T08:00:00Z", true),
            ("2026-12-01T15:59:59Z", true),
            ("2026-12-01T16:00:00Z", false),
            ("2026-12-05T10:00:00Z", false), // Saturday
            ("2026-12-07T10:00:00Z", true),  // Monday
            ("2026-12-22T10:00:00Z", false), // the freeze
            ("2027-01-04T10:00:00Z", true),  // after it
        ];
        for (time, open) in rows {
            assert_eq!(w.is_open(utc(time)), open, "{time}");
        }
    }

    #[test]
    fn the_next_opening_is_the_next_start_on_a_listed_day_outside_blackouts() {
        let w = office_hours();
        let rows = [
            ("2026-12-01T10:00:00Z", "2026-12-01T10:00:00Z"), // open now
            ("2026-12-01T06:30:00Z", "2026-12-01T08:00:00Z"), // later today
            ("2026-12-01T17:00:00Z", "2026-12-02T08:00:00Z"), // tomorrow
            ("2026-12-04T17:00:00Z", "2026-12-07T08:00:00Z"), // Friday evening -> Monday
            ("2026-12-18T17:00:00Z", "2027-01-04T08:00:00Z"), // over the freeze
        ];
        for (time, opens) in rows {
            assert_eq!(w.next_open(utc(time)), Some(utc(opens)), "{time}");
        }
    }

    #[test]
    fn hours_follow_the_zones_clock_changes() {
        let w = window(json!({"timeZone": "Europe/Berlin", "hours": "09:00-17:00"}));
        // Summer time (UTC+2) ends on 2026-10-25.
        assert_eq!(
            w.next_open(utc("2026-10-24T18:00:00Z")),
            Some(utc("2026-10-25T08:00:00Z"))
        );
        assert_eq!(
            w.next_open(utc("2026-10-23T18:00:00Z")),
            Some(utc("2026-10-24T07:00:00Z"))
        );
        // A start inside the spring gap (02:30 does not exist on 2026-03-29) opens when the
        // clocks jump.
        let night = window(json!({"timeZone": "Europe/Berlin", "hours": "02:30-04:00"}));
        assert_eq!(
            night.next_open(utc("2026-03-28T23:00:00Z")),
            Some(utc("2026-03-29T01:00:00Z"))
        );
    }

    #[test]
    fn a_window_across_midnight_belongs_to_the_day_it_starts() {
        let w = window(json!({"timeZone": "UTC", "days": ["Fri"], "hours": "22:00-06:00"}));
        let rows = [
            ("2026-12-04T21:59:00Z", false), // Friday before
            ("2026-12-04T23:00:00Z", true),  // Friday night
            ("2026-12-05T05:59:00Z", true),  // Saturday morning, still Friday's window
            ("2026-12-05T06:00:00Z", false),
            ("2026-12-05T23:00:00Z", false), // Saturday night is not listed
        ];
        for (time, open) in rows {
            assert_eq!(w.is_open(utc(time)), open, "{time}");
        }
        assert_eq!(
            w.next_open(utc("2026-12-05T07:00:00Z")),
            Some(utc("2026-12-11T22:00:00Z"))
        );
    }

    #[test]
    fn a_blackout_ending_in_the_middle_of_an_overnight_window_opens_at_midnight() {
        let w = window(json!({"timeZone": "UTC", "hours": "20:00-06:00",
                              "blackouts": [{"from": "2026-12-04"}]}));
        assert_eq!(
            w.next_open(utc("2026-12-04T21:00:00Z")),
            Some(utc("2026-12-05T00:00:00Z"))
        );
    }

    #[test]
    fn a_window_shut_beyond_the_horizon_never_opens() {
        let w = window(json!({"timeZone": "UTC",
                              "blackouts": [{"from": "2026-01-01", "to": "2030-01-01"}]}));
        assert_eq!(w.next_open(utc("2026-12-01T00:00:00Z")), None);
    }

    #[test]
    fn a_window_freezes_to_what_was_written_and_reads_back() {
        let w = office_hours();
        let frozen = serde_json::to_value(&w).unwrap();
        assert_eq!(
            frozen,
            json!({"timeZone": "Europe/Berlin", "days": ["Mon-Fri"], "hours": "09:00-17:00",
                   "blackouts": [{"from": "2026-12-21", "to": "2027-01-03", "reason": "year-end freeze"}]})
        );
        assert_eq!(serde_json::from_value::<Window>(frozen).unwrap(), w);
        assert_eq!(
            w.to_string(),
            "Mon-Fri 09:00-17:00 Europe/Berlin, except 2026-12-21..2027-01-03 (year-end freeze)"
        );
        let weekend = window(json!({"timeZone": "UTC", "days": ["sat", "Sunday", "Wed"]}));
        assert_eq!(weekend.to_string(), "Wed,Sat,Sun UTC");
        let wrapping = window(json!({"timeZone": "UTC", "days": ["Fri-Mon"]}));
        assert_eq!(wrapping.to_string(), "Mon,Fri-Sun UTC");
    }

    #[test]
    fn mistakes_in_a_window_say_what_to_write() {
        let rows = [
            (
                json!({"timeZone": "Mars/Olympus"}),
                "`timeZone` `Mars/Olympus` is not in the tz database",
            ),
            (
                json!({"timeZone": "UTC", "days": ["Funday"]}),
                "`Funday` is not a weekday",
            ),
            (
                json!({"timeZone": "UTC", "hours": "9-17"}),
                "`hours` `9-17` must be HH:MM-HH:MM",
            ),
            (
                json!({"timeZone": "UTC", "hours": "09:00-09:00"}),
                "with two different times",
            ),
            (
                json!({"timeZone": "UTC", "hours": "24:00-06:00"}),
                "must be HH:MM-HH:MM",
            ),
            (
                json!({"timeZone": "UTC", "blackouts": [{"from": "2026-12-10", "to": "2026-12-01"}]}),
                "ends before it starts",
            ),
            (
                json!({"timeZone": "UTC", "hour": "09:00-17:00"}),
                "unknown field `hour`",
            ),
            (json!({"days": ["Mon"]}), "missing field `timeZone`"),
        ];
        for (spec, expected) in rows {
            let err = serde_json::from_value::<Window>(spec.clone()).unwrap_err();
            assert!(err.to_string().contains(expected), "{spec}: {err}");
        }
    }
}
