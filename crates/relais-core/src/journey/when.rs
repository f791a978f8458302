//! Calendar rules of journeys: "until 09:00 in the contact's time zone", a yearly date
//! (a birthday) and a date with an offset (30 days before a contract's renewal). Time comes
//! in as an argument, so the rules are tested without a clock.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// How long after its moment a date trigger still fires: a server that was down at
/// 09:00 still wishes the birthday at 11:00, but not the day after.
pub const DATE_TRIGGER_GRACE: SignedDuration = SignedDuration::from_hours(24);

/// A time of day, `HH:MM`, read in the contact's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay(Time);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhenError {
    #[error("`{0}` is not a time of day; write it as \"HH:MM\", e.g. \"09:00\"")]
    TimeOfDay(String),
    #[error("`{0}` is not a date; write it as \"YYYY-MM-DD\" (or \"MM-DD\" for a yearly date)")]
    Date(String),
}

impl TimeOfDay {
    pub fn parse(raw: &str) -> Result<TimeOfDay, WhenError> {
        let bad = || WhenError::TimeOfDay(raw.to_owned());
        let (h, m) = raw.trim().split_once(':').ok_or_else(bad)?;
        let h: i8 = h.parse().map_err(|_| bad())?;
        let m: i8 = m.parse().map_err(|_| bad())?;
        Time::new(h, m, 0, 0).map(TimeOfDay).map_err(|_| bad())
    }

    pub fn time(self) -> Time {
        self.0
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0.hour(), self.0.minute())
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        TimeOfDay::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The instant `date` at `at` in `tz` (a time skipped by a daylight-saving change moves
/// forward, as clocks do).
fn instant(date: Date, at: TimeOfDay, tz: &TimeZone) -> Option<Timestamp> {
    date.to_datetime(at.0)
        .to_zoned(tz.clone())
        .ok()
        .map(|z| z.timestamp())
}

/// The first instant at or after `now` when the clock in `tz` shows `at`.
pub fn next_time_of_day(now: Timestamp, at: TimeOfDay, tz: &TimeZone) -> Timestamp {
    let today = now.to_zoned(tz.clone()).date();
    [Some(today), today.tomorrow().ok()]
        .into_iter()
        .flatten()
        .filter_map(|day| instant(day, at, tz))
        .find(|t| *t >= now)
        // Only at the end of jiff's calendar (year 9999) is there no tomorrow.
        .unwrap_or(now)
}

/// A date attribute as a contact holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateValue {
    /// `1990-12-07`.
    Full(Date),
    /// `12-07`: a day of the year without a year (a birthday given without the year).
    Yearly { month: i8, day: i8 },
}

impl DateValue {
    /// Reads `YYYY-MM-DD`, `MM-DD`, or the date part of an RFC 3339 timestamp.
    pub fn parse(raw: &str) -> Result<DateValue, WhenError> {
        let bad = || WhenError::Date(raw.to_owned());
        let raw = raw.trim();
        let date_part = raw.get(..10).unwrap_or(raw);
        if let Ok(date) = date_part.parse::<Date>() {
            return Ok(DateValue::Full(date));
        }
        let (m, d) = raw.split_once('-').ok_or_else(bad)?;
        let (month, day): (i8, i8) = (m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
        // 2024 is a leap year: 02-29 is a valid yearly date.
        Date::new(2024, month, day).map_err(|_| bad())?;
        Ok(DateValue::Yearly { month, day })
    }

    fn month_day(self) -> (i8, i8) {
        match self {
            DateValue::Full(d) => (d.month(), d.day()),
            DateValue::Yearly { month, day } => (month, day),
        }
    }
}

/// The date's anniversary in `year`; 29 February is kept on 28 February in other years.
fn anniversary_in(value: DateValue, year: i16) -> Option<Date> {
    let (month, day) = value.month_day();
    Date::new(year, month, day)
        .or_else(|_| Date::new(year, month, day - 1))
        .ok()
}

/// The yearly occurrence of `value` at `at` in `tz` that is due at `now` (its moment passed
/// less than [`DATE_TRIGGER_GRACE`] ago), with its year: the key of that occurrence, so that
/// it fires once whatever the number of scans.
pub fn due_anniversary(
    value: DateValue,
    at: TimeOfDay,
    tz: &TimeZone,
    now: Timestamp,
) -> Option<(i16, Timestamp)> {
    let year = now.to_zoned(tz.clone()).year();
    // Last year's too: a 31 December occurrence is still due on 1 January.
    [year, year - 1].into_iter().find_map(|y| {
        let moment = instant(anniversary_in(value, y)?, at, tz)?;
        is_due(moment, now).then_some((y, moment))
    })
}

/// The occurrence of a full date shifted by `offset_days` (negative: before) at `at` in
/// `tz`, if due at `now` (its moment passed less than [`DATE_TRIGGER_GRACE`] ago).
pub fn due_date(
    value: DateValue,
    offset_days: i32,
    at: TimeOfDay,
    tz: &TimeZone,
    now: Timestamp,
) -> Option<Timestamp> {
    let DateValue::Full(date) = value else {
        return None;
    };
    let shifted = date.checked_add(i64::from(offset_days).days()).ok()?;
    let moment = instant(shifted, at, tz)?;
    is_due(moment, now).then_some(moment)
}

fn is_due(moment: Timestamp, now: Timestamp) -> bool {
    moment <= now && now.duration_since(moment) < DATE_TRIGGER_GRACE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }
    fn paris() -> TimeZone {
        TimeZone::get("Europe/Paris").unwrap()
    }
    fn nine() -> TimeOfDay {
        TimeOfDay::parse("09:00").unwrap()
    }

    #[test]
    fn waiting_until_nine_means_nine_in_the_contacts_zone() {
        // 07:30 UTC is 08:30 in Paris in December: 09:00 Paris is 08:00 UTC.
        assert_eq!(
            next_time_of_day(ts("2026-12-05T07:30:00Z"), nine(), &paris()),
            ts("2026-12-05T08:00:00Z")
        );
        // Past nine in Paris: tomorrow's.
        assert_eq!(
            next_time_of_day(ts("2026-12-05T08:00:01Z"), nine(), &paris()),
            ts("2026-12-06T08:00:00Z")
        );
    }

    #[test]
    fn times_of_day_are_read_strictly() {
        assert_eq!(TimeOfDay::parse("9:05").unwrap().to_string(), "09:05");
        for bad in ["", "24:00", "9h", "09:60", "-1:00"] {
            assert!(TimeOfDay::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_birthday_is_due_from_its_hour_for_a_day() {
        let born = DateValue::parse("1990-12-07").unwrap();
        let at = |now| due_anniversary(born, nine(), &paris(), ts(now));
        assert_eq!(at("2026-12-07T07:59:59Z"), None);
        assert_eq!(
            at("2026-12-07T08:00:00Z"),
            Some((2026, ts("2026-12-07T08:00:00Z")))
        );
        assert_eq!(at("2026-12-08T07:59:00Z").map(|(y, _)| y), Some(2026));
        assert_eq!(at("2026-12-08T08:00:00Z"), None);
    }

    #[test]
    fn a_29_february_birthday_is_wished_on_28_february_in_other_years() {
        let born = DateValue::parse("02-29").unwrap();
        assert_eq!(
            due_anniversary(born, nine(), &TimeZone::UTC, ts("2027-02-28T10:00:00Z")),
            Some((2027, ts("2027-02-28T09:00:00Z")))
        );
    }

    #[test]
    fn a_new_years_eve_date_is_still_due_after_midnight() {
        let d = DateValue::parse("12-31").unwrap();
        let late = TimeOfDay::parse("23:00").unwrap();
        assert_eq!(
            due_anniversary(d, late, &TimeZone::UTC, ts("2027-01-01T01:00:00Z")),
            Some((2026, ts("2026-12-31T23:00:00Z")))
        );
    }

    #[test]
    fn a_renewal_thirty_days_ahead_is_due_thirty_days_before() {
        let renewal = DateValue::parse("2027-03-31").unwrap();
        let due = |now| due_date(renewal, -30, nine(), &paris(), ts(now));
        // 1 March 2027, 09:00 in Paris (UTC+1).
        assert_eq!(
            due("2027-03-01T08:30:00Z"),
            Some(ts("2027-03-01T08:00:00Z"))
        );
        assert_eq!(due("2027-02-28T12:00:00Z"), None);
        // A yearly date has no year to count from.
        assert_eq!(
            due_date(
                DateValue::parse("03-31").unwrap(),
                -30,
                nine(),
                &paris(),
                ts("2027-03-01T08:30:00Z")
            ),
            None
        );
    }

    #[test]
    fn dates_are_read_strictly() {
        assert!(DateValue::parse("1990-02-30").is_err());
        assert!(DateValue::parse("13-01").is_err());
        assert!(DateValue::parse("yesterday").is_err());
        assert_eq!(
            DateValue::parse("2027-03-31T00:00:00Z").unwrap(),
            DateValue::Full(jiff::civil::date(2027, 3, 31))
        );
    }
}
