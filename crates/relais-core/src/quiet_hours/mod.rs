//! Quiet hours: when a message may reach a person, in that person's own time zone.
//!
//! Two sources of rules apply together:
//! - the tenant's windows, e.g. `{"start": "21:00", "end": "08:00", "days": ["sat", "sun"],
//!   "purposes": ["marketing"]}`;
//! - built-in country rules that follow the recipient's country (see [`CountryQuietRule`]):
//!   in France, no marketing between 22:00 and 08:00, on Sundays, nor on public holidays.
//!
//! A message that falls in quiet hours is delayed to [`next_allowed`], never dropped.
//! Windows are read on the local wall clock, so "08:00" is 08:00 on both sides of a
//! daylight-saving change; when 08:00 does not exist that day (the clock jumps over it),
//! the message goes out at the jump.

use crate::consent::Purpose;
use crate::holidays::{Holiday, french_public_holiday};
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

const MINUTES_PER_DAY: u16 = 24 * 60;

/// A wall-clock time of day to the minute, `00:00` to `24:00` (the end of the day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay {
    minutes: u16,
}

impl TimeOfDay {
    pub const MIDNIGHT: TimeOfDay = TimeOfDay { minutes: 0 };
    pub const END_OF_DAY: TimeOfDay = TimeOfDay {
        minutes: MINUTES_PER_DAY,
    };

    /// `None` unless `hour:minute` is a time of day (24:00 included).
    pub const fn new(hour: u8, minute: u8) -> Option<TimeOfDay> {
        let minutes = hour as u16 * 60 + minute as u16;
        if minute < 60 && minutes <= MINUTES_PER_DAY {
            Some(TimeOfDay { minutes })
        } else {
            None
        }
    }

    /// `hour:minute`, checked at compile time when used in a `const`.
    const fn at(hour: u8, minute: u8) -> TimeOfDay {
        match TimeOfDay::new(hour, minute) {
            Some(time) => time,
            None => panic!("invalid time of day"),
        }
    }

    pub fn minutes_since_midnight(self) -> u16 {
        self.minutes
    }

    fn seconds_since_midnight(self) -> i32 {
        i32::from(self.minutes) * 60
    }

    /// The wall-clock instant this time reaches on `date` (24:00 is the next midnight).
    fn on(self, date: Date) -> Option<DateTime> {
        if self.minutes == MINUTES_PER_DAY {
            return date
                .tomorrow()
                .ok()
                .map(|next| next.to_datetime(Time::midnight()));
        }
        let hour = i8::try_from(self.minutes / 60).ok()?;
        let minute = i8::try_from(self.minutes % 60).ok()?;
        Time::new(hour, minute, 0, 0)
            .ok()
            .map(|time| date.to_datetime(time))
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.minutes / 60, self.minutes % 60)
    }
}

impl FromStr for TimeOfDay {
    type Err = QuietHoursError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let bad = || QuietHoursError::TimeOfDay(raw.to_owned());
        let (hour, minute) = raw.split_once(':').ok_or_else(bad)?;
        let two_digits = |part: &str| part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(hour) || !two_digits(minute) {
            return Err(bad());
        }
        let hour: u8 = hour.parse().map_err(|_| bad())?;
        let minute: u8 = minute.parse().map_err(|_| bad())?;
        TimeOfDay::new(hour, minute).ok_or_else(bad)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of weekdays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Days([bool; 7]);

impl Days {
    pub const EVERY_DAY: Days = Days([true; 7]);

    pub fn of(days: impl IntoIterator<Item = Weekday>) -> Days {
        let mut set = [false; 7];
        for day in days {
            set[day_index(day)] = true;
        }
        Days(set)
    }

    pub fn contains(&self, day: Weekday) -> bool {
        self.0[day_index(day)]
    }

    fn iter(&self) -> impl Iterator<Item = Weekday> + '_ {
        ALL_DAYS.into_iter().filter(|day| self.contains(*day))
    }
}

const ALL_DAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

const DAY_NAMES: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

fn day_index(day: Weekday) -> usize {
    usize::try_from(day.to_monday_zero_offset()).unwrap_or(0)
}

fn parse_day(raw: &str) -> Result<Weekday, QuietHoursError> {
    let lower = raw.trim().to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|(short, long)| lower == *short || lower == *long)
        .map(|index| ALL_DAYS[index])
        .ok_or_else(|| QuietHoursError::Day(raw.to_owned()))
}

/// One tenant quiet-hours window, read on the recipient's wall clock, from `start`
/// (included) to `end` (excluded).
///
/// A window whose `end` is earlier than its `start` crosses midnight; `days` names the
/// day on which the window *starts* (a Friday 21:00–08:00 window holds until Saturday
/// 08:00). Empty `days` means every day; empty `purposes` means every purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "QuietWindowWire", into = "QuietWindowWire")]
pub struct QuietWindow {
    start: TimeOfDay,
    end: TimeOfDay,
    days: Days,
    purposes: Vec<Purpose>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuietWindowWire {
    start: TimeOfDay,
    end: TimeOfDay,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    days: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    purposes: Vec<String>,
}

impl TryFrom<QuietWindowWire> for QuietWindow {
    type Error = QuietHoursError;
    fn try_from(wire: QuietWindowWire) -> Result<Self, Self::Error> {
        let days = if wire.days.is_empty() {
            Days::EVERY_DAY
        } else {
            Days::of(
                wire.days
                    .iter()
                    .map(|raw| parse_day(raw))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        let purposes = wire
            .purposes
            .iter()
            .map(|raw| Purpose::parse(raw).map_err(|_| QuietHoursError::Purpose(raw.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        QuietWindow::new(wire.start, wire.end, days, purposes)
    }
}

impl From<QuietWindow> for QuietWindowWire {
    fn from(window: QuietWindow) -> Self {
        let days = if window.days == Days::EVERY_DAY {
            Vec::new()
        } else {
            window
                .days
                .iter()
                .map(|day| DAY_NAMES[day_index(day)].0.to_owned())
                .collect()
        };
        QuietWindowWire {
            start: window.start,
            end: window.end,
            days,
            purposes: window
                .purposes
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
        }
    }
}

impl QuietWindow {
    pub fn new(
        start: TimeOfDay,
        end: TimeOfDay,
        days: Days,
        purposes: Vec<Purpose>,
    ) -> Result<Self, QuietHoursError> {
        if start == TimeOfDay::END_OF_DAY {
            return Err(QuietHoursError::StartAtEndOfDay);
        }
        if start == end {
            return Err(QuietHoursError::EmptyWindow {
                at: start.to_string(),
            });
        }
        if days == Days([false; 7]) {
            return Err(QuietHoursError::NoDays);
        }
        Ok(QuietWindow {
            start,
            end,
            days,
            purposes,
        })
    }

    pub fn start(&self) -> TimeOfDay {
        self.start
    }

    pub fn end(&self) -> TimeOfDay {
        self.end
    }

    pub fn days(&self) -> Days {
        self.days
    }

    /// Empty means every purpose.
    pub fn purposes(&self) -> &[Purpose] {
        &self.purposes
    }

    fn applies_to(&self, purpose: &Purpose) -> bool {
        self.purposes.is_empty()
            || self
                .purposes
                .iter()
                .any(|listed| purpose_matches(listed, purpose))
    }

    /// When the window holds at the wall-clock instant `local`, the wall-clock instant at
    /// which it ends.
    fn blocks_until(&self, local: DateTime) -> Option<DateTime> {
        let date = local.date();
        let now = seconds_since_midnight(local.time());
        let (start, end) = (
            self.start.seconds_since_midnight(),
            self.end.seconds_since_midnight(),
        );
        if start < end {
            (self.days.contains(date.weekday()) && (start..end).contains(&now))
                .then(|| self.end.on(date))
                .flatten()
        } else if self.days.contains(date.weekday()) && now >= start {
            date.tomorrow().ok().and_then(|next| self.end.on(next))
        } else if self.days.contains(date.weekday().previous()) && now < end {
            self.end.on(date)
        } else {
            None
        }
    }
}

/// A message with purpose `purpose` is covered by a window listing `listed`.
fn purpose_matches(listed: &Purpose, purpose: &Purpose) -> bool {
    listed == purpose
        || *listed == Purpose::All
        || (*listed == Purpose::Marketing && is_marketing(purpose))
}

/// Everything but transactional messages is treated as marketing: topics are marketing
/// sub-lists, and a message sent "for all purposes" gets the strictest treatment.
fn is_marketing(purpose: &Purpose) -> bool {
    !matches!(purpose, Purpose::Transactional)
}

fn seconds_since_midnight(time: Time) -> i32 {
    i32::from(time.hour()) * 3600 + i32::from(time.minute()) * 60 + i32::from(time.second())
}

/// A tenant's quiet-hours windows. Serialised as a plain JSON list of windows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuietHours {
    pub windows: Vec<QuietWindow>,
}

/// A country's legal or customary quiet hours for marketing, as data.
#[derive(Debug, Clone, Copy)]
pub struct CountryQuietRule {
    /// ISO 3166-1 alpha-2 codes the rule follows.
    pub countries: &'static [&'static str],
    /// Marketing is not sent from `night_start` to `night_end` (crossing midnight).
    pub night_start: TimeOfDay,
    pub night_end: TimeOfDay,
    pub no_sundays: bool,
    /// The country's public holiday on a date, if any; no marketing on those days.
    pub public_holiday: Option<fn(Date) -> Option<Holiday>>,
}

/// France: no marketing 22:00–08:00, on Sundays, nor on national public holidays.
/// Applied to metropolitan France and the overseas departments and collectivities whose
/// numbers carry their own region code (their local extra holidays are not included).
pub const FRANCE: CountryQuietRule = CountryQuietRule {
    countries: &["FR", "GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF"],
    night_start: TimeOfDay::at(22, 0),
    night_end: TimeOfDay::at(8, 0),
    no_sundays: true,
    public_holiday: Some(french_public_holiday),
};

pub const COUNTRY_RULES: &[CountryQuietRule] = &[FRANCE];

/// The built-in rule for an ISO 3166-1 alpha-2 country code (any case), if any.
pub fn country_rule(country: &str) -> Option<&'static CountryQuietRule> {
    let code = country.trim().to_ascii_uppercase();
    COUNTRY_RULES
        .iter()
        .find(|rule| rule.countries.contains(&code.as_str()))
}

/// Why a message is held at a given instant, for the message's event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuietReason {
    /// The tenant's window number `index` (0-based, in configuration order).
    TenantWindow {
        index: usize,
    },
    CountryNight {
        country: &'static str,
    },
    CountrySunday {
        country: &'static str,
    },
    CountryHoliday {
        country: &'static str,
        holiday: &'static str,
    },
}

impl fmt::Display for QuietReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuietReason::TenantWindow { index } => {
                write!(f, "tenant quiet hours (window {})", index + 1)
            }
            QuietReason::CountryNight { country } => write!(f, "{country}: no marketing at night"),
            QuietReason::CountrySunday { country } => {
                write!(f, "{country}: no marketing on Sundays")
            }
            QuietReason::CountryHoliday { country, holiday } => {
                write!(f, "{country}: no marketing on a public holiday ({holiday})")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuietHoursError {
    #[error("`{0}` is not a time of day; write it HH:MM, from 00:00 to 24:00")]
    TimeOfDay(String),
    #[error("`{0}` is not a day; use mon, tue, wed, thu, fri, sat, sun (or the full names)")]
    Day(String),
    #[error("`{0}` is not a purpose; use transactional, marketing or a topic name")]
    Purpose(String),
    #[error("a quiet-hours window cannot start at 24:00; start it at 00:00")]
    StartAtEndOfDay,
    #[error(
        "a quiet-hours window from {at} to {at} is empty; for a whole day write 00:00 to 24:00"
    )]
    EmptyWindow { at: String },
    #[error("a quiet-hours window needs at least one day (omit `days` for every day)")]
    NoDays,
    #[error("the quiet-hours rules leave no time to send a {purpose} message within a year")]
    NeverAllowed { purpose: String },
}

/// The wall-clock context of a decision: where the recipient is and what the message is for.
struct Rules<'a> {
    country: Option<(&'static CountryQuietRule, &'static str)>,
    purpose: &'a Purpose,
    tenant: &'a QuietHours,
}

impl Rules<'_> {
    fn new<'a>(country: Option<&str>, purpose: &'a Purpose, tenant: &'a QuietHours) -> Rules<'a> {
        let country = country.and_then(|code| {
            let rule = country_rule(code)?;
            let upper = code.trim().to_ascii_uppercase();
            let code = rule
                .countries
                .iter()
                .copied()
                .find(|listed| *listed == upper)?;
            Some((rule, code))
        });
        Rules {
            country,
            purpose,
            tenant,
        }
    }

    /// Every rule holding at `local`, each with the wall-clock instant it ends.
    fn holding(&self, local: DateTime) -> Vec<(QuietReason, DateTime)> {
        let mut holding: Vec<(QuietReason, DateTime)> = self
            .tenant
            .windows
            .iter()
            .enumerate()
            .filter(|(_, window)| window.applies_to(self.purpose))
            .filter_map(|(index, window)| {
                window
                    .blocks_until(local)
                    .map(|end| (QuietReason::TenantWindow { index }, end))
            })
            .collect();
        if let Some((rule, country)) = self.country.filter(|_| is_marketing(self.purpose)) {
            let date = local.date();
            let next_midnight = date
                .tomorrow()
                .ok()
                .map(|next| next.to_datetime(Time::midnight()));
            let night = QuietWindow {
                start: rule.night_start,
                end: rule.night_end,
                days: Days::EVERY_DAY,
                purposes: Vec::new(),
            };
            if let Some(end) = night.blocks_until(local) {
                holding.push((QuietReason::CountryNight { country }, end));
            }
            if rule.no_sundays && date.weekday() == Weekday::Sunday {
                holding
                    .extend(next_midnight.map(|end| (QuietReason::CountrySunday { country }, end)));
            }
            if let Some(holiday) = rule.public_holiday.and_then(|lookup| lookup(date)) {
                holding.extend(next_midnight.map(|end| {
                    (
                        QuietReason::CountryHoliday {
                            country,
                            holiday: holiday.name,
                        },
                        end,
                    )
                }));
            }
        }
        holding
    }
}

/// The longest a search for an allowed instant looks ahead before it calls the rules
/// contradictory.
const SEARCH_HORIZON: SignedDuration = SignedDuration::from_hours(24 * 366);

/// `at` itself when a message with `purpose` may reach a recipient in time zone `tz`
/// (country `country`, ISO 3166-1 alpha-2, from the contact's phone number or an explicit
/// field) under the tenant's `rules`; otherwise the first instant after `at` when it may.
///
/// Errors only when the rules together leave no allowed instant within a year, which is a
/// configuration mistake to report rather than a reason to send anyway.
pub fn next_allowed(
    at: Timestamp,
    tz: &TimeZone,
    country: Option<&str>,
    purpose: &Purpose,
    rules: &QuietHours,
) -> Result<Timestamp, QuietHoursError> {
    let rules = Rules::new(country, purpose, rules);
    let horizon = at.checked_add(SEARCH_HORIZON).unwrap_or(Timestamp::MAX);
    let mut instant = at;
    while instant <= horizon {
        let local = tz.to_datetime(instant);
        let Some(end) = rules.holding(local).into_iter().map(|(_, end)| end).max() else {
            return Ok(instant);
        };
        instant = first_instant_at_or_after(tz, end, instant);
    }
    Err(QuietHoursError::NeverAllowed {
        purpose: purpose.as_str().to_owned(),
    })
}

/// Whether a message may go out at `at` (see [`next_allowed`]).
pub fn is_allowed(
    at: Timestamp,
    tz: &TimeZone,
    country: Option<&str>,
    purpose: &Purpose,
    rules: &QuietHours,
) -> bool {
    quiet_reasons(at, tz, country, purpose, rules).is_empty()
}

/// Every reason a message is held at `at`; empty when it may go out.
pub fn quiet_reasons(
    at: Timestamp,
    tz: &TimeZone,
    country: Option<&str>,
    purpose: &Purpose,
    rules: &QuietHours,
) -> Vec<QuietReason> {
    Rules::new(country, purpose, rules)
        .holding(tz.to_datetime(at))
        .into_iter()
        .map(|(reason, _)| reason)
        .collect()
}

/// The first instant, strictly after `after`, whose wall-clock time in `tz` is at or past
/// `wall`. Wall-clock times skipped by a daylight-saving jump are reached at the jump;
/// wall-clock times that happen twice are reached at their first occurrence after `after`.
fn first_instant_at_or_after(tz: &TimeZone, wall: DateTime, after: Timestamp) -> Timestamp {
    let ambiguous = tz.to_ambiguous_timestamp(wall);
    let candidate = match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { .. } => ambiguous.compatible().ok(),
        AmbiguousOffset::Gap { .. } => ambiguous.later().ok().and_then(|past_the_jump| {
            tz.preceding(past_the_jump)
                .next()
                .map(|jump| jump.timestamp())
        }),
        AmbiguousOffset::Fold { .. } => ambiguous
            .earlier()
            .ok()
            .filter(|first| *first > after)
            .or_else(|| ambiguous.later().ok()),
    };
    // Progress is guaranteed even on a time zone database we do not expect.
    candidate
        .filter(|instant| *instant > after)
        .unwrap_or_else(|| {
            after
                .checked_add(SignedDuration::from_secs(1))
                .unwrap_or(Timestamp::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn paris() -> TimeZone {
        TimeZone::get("Europe/Paris").unwrap()
    }

    /// An instant written with its Paris wall-clock time and offset.
    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn window(json: &str) -> QuietWindow {
        serde_json::from_str(json).unwrap()
    }

    fn tenant(windows: &[&str]) -> QuietHours {
        QuietHours {
            windows: windows.iter().map(|w| window(w)).collect(),
        }
    }

    fn next(
        at_: Timestamp,
        country: Option<&str>,
        purpose: Purpose,
        rules: &QuietHours,
    ) -> Timestamp {
        next_allowed(at_, &paris(), country, &purpose, rules).unwrap()
    }

    const NIGHT: &str = r#"{"start": "21:00", "end": "08:00"}"#;

    #[test]
    fn an_allowed_instant_is_returned_unchanged() {
        let noon = at("2026-11-18T12:00:00+01:00");
        assert_eq!(
            next(noon, None, Purpose::Marketing, &tenant(&[NIGHT])),
            noon
        );
    }

    #[test]
    fn a_window_across_midnight_holds_until_its_end_the_next_morning() {
        let rules = tenant(&[NIGHT]);
        assert_eq!(
            next(
                at("2026-11-18T23:00:00+01:00"),
                None,
                Purpose::Transactional,
                &rules
            ),
            at("2026-11-19T08:00:00+01:00")
        );
        assert_eq!(
            next(
                at("2026-11-19T07:59:59+01:00"),
                None,
                Purpose::Transactional,
                &rules
            ),
            at("2026-11-19T08:00:00+01:00")
        );
        assert_eq!(
            next(
                at("2026-11-19T21:00:00+01:00"),
                None,
                Purpose::Transactional,
                &rules
            ),
            at("2026-11-20T08:00:00+01:00"),
            "the start is included"
        );
        let eight = at("2026-11-19T08:00:00+01:00");
        assert_eq!(
            next(eight, None, Purpose::Transactional, &rules),
            eight,
            "the end is excluded"
        );
    }

    #[test]
    fn days_name_the_day_a_window_starts() {
        let rules = tenant(&[r#"{"start": "21:00", "end": "08:00", "days": ["fri"]}"#]);
        // 2026-11-20 is a Friday.
        assert_eq!(
            next(
                at("2026-11-21T07:00:00+01:00"),
                None,
                Purpose::Marketing,
                &rules
            ),
            at("2026-11-21T08:00:00+01:00"),
            "Friday's window holds Saturday morning"
        );
        let saturday_night = at("2026-11-21T22:00:00+01:00");
        assert_eq!(
            next(saturday_night, None, Purpose::Marketing, &rules),
            saturday_night
        );
    }

    #[test]
    fn windows_follow_their_purposes() {
        let rules = tenant(&[r#"{"start": "12:00", "end": "14:00", "purposes": ["marketing"]}"#]);
        let lunch = at("2026-11-18T12:30:00+01:00");
        assert_eq!(next(lunch, None, Purpose::Transactional, &rules), lunch);
        assert_eq!(
            next(lunch, None, Purpose::Marketing, &rules),
            at("2026-11-18T14:00:00+01:00")
        );
        assert_eq!(
            next(lunch, None, Purpose::Topic("newsletter".into()), &rules),
            at("2026-11-18T14:00:00+01:00"),
            "a marketing topic is marketing"
        );
    }

    #[test]
    fn overlapping_windows_chain() {
        let rules = tenant(&[
            r#"{"start": "10:00", "end": "12:00"}"#,
            r#"{"start": "11:00", "end": "13:00"}"#,
        ]);
        assert_eq!(
            next(
                at("2026-11-18T10:30:00+01:00"),
                None,
                Purpose::Marketing,
                &rules
            ),
            at("2026-11-18T13:00:00+01:00")
        );
    }

    #[test]
    fn france_no_marketing_at_night() {
        let none = QuietHours::default();
        let evening = at("2026-11-18T21:59:00+01:00");
        assert_eq!(
            next(evening, Some("FR"), Purpose::Marketing, &none),
            evening
        );
        assert_eq!(
            next(
                at("2026-11-18T22:00:00+01:00"),
                Some("fr"),
                Purpose::Marketing,
                &none
            ),
            at("2026-11-19T08:00:00+01:00")
        );
    }

    #[test]
    fn france_no_marketing_on_sunday() {
        let none = QuietHours::default();
        // Saturday 22:30 → the night, then Sunday, then Monday's early hours.
        assert_eq!(
            next(
                at("2026-11-21T22:30:00+01:00"),
                Some("FR"),
                Purpose::Marketing,
                &none
            ),
            at("2026-11-23T08:00:00+01:00")
        );
        let sunday_noon = at("2026-11-22T12:00:00+01:00");
        assert_eq!(
            quiet_reasons(
                sunday_noon,
                &paris(),
                Some("FR"),
                &Purpose::Marketing,
                &none
            ),
            vec![QuietReason::CountrySunday { country: "FR" }]
        );
    }

    #[test]
    fn france_transactional_messages_are_not_held() {
        let none = QuietHours::default();
        let sunday_night = at("2026-11-22T23:30:00+01:00");
        assert_eq!(
            next(sunday_night, Some("FR"), Purpose::Transactional, &none),
            sunday_night
        );
    }

    #[test]
    fn france_no_marketing_on_bastille_day() {
        // 14 July 2026 is a Tuesday.
        let none = QuietHours::default();
        assert_eq!(
            next(
                at("2026-07-14T10:00:00+02:00"),
                Some("FR"),
                Purpose::Marketing,
                &none
            ),
            at("2026-07-15T08:00:00+02:00")
        );
        assert_eq!(
            quiet_reasons(
                at("2026-07-14T10:00:00+02:00"),
                &paris(),
                Some("FR"),
                &Purpose::Marketing,
                &none
            ),
            vec![QuietReason::CountryHoliday {
                country: "FR",
                holiday: "Fête nationale"
            }]
        );
    }

    #[test]
    fn france_easter_weekend_2027_across_the_spring_forward() {
        // Saturday 27 March 2027 23:00 CET: night, Easter Sunday (also the night clocks go
        // forward), Easter Monday 29 March, then Tuesday 08:00 CEST.
        let none = QuietHours::default();
        assert_eq!(
            next(
                at("2027-03-27T23:00:00+01:00"),
                Some("FR"),
                Purpose::Marketing,
                &none
            ),
            at("2027-03-30T08:00:00+02:00")
        );
    }

    #[test]
    fn france_autumn_fall_back_keeps_eight_on_the_wall_clock() {
        // Clocks go back on Sunday 25 October 2026; Monday 08:00 is in CET.
        let none = QuietHours::default();
        assert_eq!(
            next(
                at("2026-10-24T23:00:00+02:00"),
                Some("FR"),
                Purpose::Marketing,
                &none
            ),
            at("2026-10-26T08:00:00+01:00")
        );
    }

    #[test]
    fn a_window_ending_in_the_spring_gap_ends_at_the_jump() {
        // On 29 March 2026 Paris jumps from 02:00 CET to 03:00 CEST; 02:30 never happens.
        let rules = tenant(&[r#"{"start": "00:30", "end": "02:30"}"#]);
        assert_eq!(
            next(
                at("2026-03-29T01:00:00+01:00"),
                None,
                Purpose::Transactional,
                &rules
            ),
            at("2026-03-29T03:00:00+02:00")
        );
    }

    #[test]
    fn a_window_in_the_autumn_fold_holds_on_both_passes() {
        // On 25 October 2026 Paris lives 02:00–03:00 twice (CEST, then CET).
        let rules = tenant(&[r#"{"start": "02:00", "end": "02:30"}"#]);
        assert_eq!(
            next(
                at("2026-10-25T02:10:00+02:00"),
                None,
                Purpose::Transactional,
                &rules
            ),
            at("2026-10-25T02:30:00+02:00")
        );
        assert_eq!(
            next(
                at("2026-10-25T02:10:00+01:00"),
                None,
                Purpose::Transactional,
                &rules
            ),
            at("2026-10-25T02:30:00+01:00")
        );
    }

    #[test]
    fn contradictory_rules_are_reported_not_looped_on() {
        let rules = tenant(&[r#"{"start": "00:00", "end": "24:00"}"#]);
        let err = next_allowed(
            at("2026-11-18T12:00:00+01:00"),
            &paris(),
            None,
            &Purpose::Marketing,
            &rules,
        )
        .unwrap_err();
        assert_eq!(
            err,
            QuietHoursError::NeverAllowed {
                purpose: "marketing".into()
            }
        );
    }

    #[test]
    fn unknown_countries_have_no_built_in_rule() {
        let sunday = at("2026-11-22T12:00:00+01:00");
        assert_eq!(
            next(
                sunday,
                Some("DE"),
                Purpose::Marketing,
                &QuietHours::default()
            ),
            sunday
        );
        assert_eq!(
            next(sunday, None, Purpose::Marketing, &QuietHours::default()),
            sunday
        );
        assert!(
            country_rule("re").is_some(),
            "overseas departments follow French law"
        );
    }

    #[test]
    fn windows_parse_strictly_with_clear_errors() {
        let err = |json: &str| {
            serde_json::from_str::<QuietWindow>(json)
                .unwrap_err()
                .to_string()
        };
        assert!(
            err(r#"{"start": "25:00", "end": "08:00"}"#).contains("`25:00` is not a time of day")
        );
        assert!(
            err(r#"{"start": "9:00", "end": "08:00"}"#).contains("`9:00` is not a time of day")
        );
        assert!(err(r#"{"start": "08:00", "end": "08:00"}"#).contains("is empty"));
        assert!(err(r#"{"start": "24:00", "end": "08:00"}"#).contains("cannot start at 24:00"));
        assert!(
            err(r#"{"start": "21:00", "end": "08:00", "days": ["funday"]}"#)
                .contains("`funday` is not a day")
        );
        assert!(
            err(r#"{"start": "21:00", "end": "08:00", "until": "x"}"#)
                .contains("unknown field `until`")
        );
    }

    #[test]
    fn windows_round_trip_through_json() {
        let json =
            r#"{"start":"21:00","end":"08:00","days":["mon","fri"],"purposes":["marketing"]}"#;
        let parsed: QuietWindow = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), json);
        let full_names: QuietWindow =
            serde_json::from_str(r#"{"start":"21:00","end":"08:00","days":["Monday","friday"],"purposes":["marketing"]}"#)
                .unwrap();
        assert_eq!(full_names, parsed);
        let list: QuietHours = serde_json::from_str(&format!("[{json}]")).unwrap();
        assert_eq!(list.windows, vec![parsed]);
    }

    proptest! {
        #[test]
        fn france_marketing_always_lands_on_a_working_day_daytime(secs in 1_700_000_000i64..2_100_000_000) {
            let start = Timestamp::from_second(secs).unwrap();
            let none = QuietHours::default();
            let allowed = next(start, Some("FR"), Purpose::Marketing, &none);
            prop_assert!(allowed >= start);
            let local = paris().to_datetime(allowed);
            prop_assert!(local.weekday() != Weekday::Sunday);
            prop_assert!(french_public_holiday(local.date()).is_none());
            prop_assert!(local.hour() >= 8 && local.hour() < 22);
            prop_assert!(is_allowed(allowed, &paris(), Some("FR"), &Purpose::Marketing, &none));
            // Asking again at the answer gives the answer: the delay is not compounded.
            prop_assert_eq!(next(allowed, Some("FR"), Purpose::Marketing, &none), allowed);
        }

        #[test]
        fn nothing_allowed_is_skipped(secs in 1_700_000_000i64..2_100_000_000, fraction in 0.0f64..1.0) {
            let rules = tenant(&[NIGHT, r#"{"start": "12:00", "end": "13:30", "days": ["wed"]}"#]);
            let start = Timestamp::from_second(secs).unwrap();
            let allowed = next(start, Some("FR"), Purpose::Marketing, &rules);
            let waited = allowed.duration_since(start).as_secs();
            // Truncation is intended: any whole second inside the wait.
            #[allow(clippy::cast_possible_truncation)]
            let probe_offset = (waited as f64 * fraction) as i64;
            let probe = start + SignedDuration::from_secs(probe_offset);
            if probe < allowed {
                prop_assert!(!is_allowed(probe, &paris(), Some("FR"), &Purpose::Marketing, &rules));
            }
        }

        #[test]
        fn windows_hold_exactly_across_time_zones_and_clock_changes(
            secs in 1_700_000_000i64..2_100_000_000,
            zone in proptest::sample::select(vec![
                "Europe/Paris", "America/New_York", "Australia/Sydney", "Asia/Kolkata",
                "Pacific/Chatham", "America/Santiago", "UTC",
            ]),
            fraction in 0.0f64..1.0,
        ) {
            // Boundaries placed where clocks jump or repeat in several of these zones.
            let rules = tenant(&[
                r#"{"start": "01:30", "end": "02:30"}"#,
                r#"{"start": "23:00", "end": "00:15", "days": ["sat"]}"#,
                r#"{"start": "02:45", "end": "03:10", "purposes": ["marketing"]}"#,
            ]);
            let tz = TimeZone::get(zone).unwrap();
            let start = Timestamp::from_second(secs).unwrap();
            let allowed = next_allowed(start, &tz, None, &Purpose::Marketing, &rules).unwrap();
            prop_assert!(allowed >= start);
            prop_assert!(is_allowed(allowed, &tz, None, &Purpose::Marketing, &rules));
            // No window lasts more than about two hours, even with a clock change.
            prop_assert!(allowed.duration_since(start) <= SignedDuration::from_hours(3));
            let waited = allowed.duration_since(start).as_secs();
            // Truncation is intended: any whole second inside the wait.
            #[allow(clippy::cast_possible_truncation)]
            let probe = start + SignedDuration::from_secs((waited as f64 * fraction) as i64);
            if probe < allowed {
                prop_assert!(!is_allowed(probe, &tz, None, &Purpose::Marketing, &rules));
            }
        }
    }
}
