//! Quiet hours: when a message may reach a person, in that person's own time zone.
//!
//! Two sources of rules apply together:
//! - the tenant's windows, e.g. `{"start": "21:00", "end": "08:00", "days": ["sat", "sun"],
//!   "purposes": ["marketing"]}`;
//! - built-in country rules that follow the recipient's country (see [`COUNTRY_RULES`]):
//!   in France, no marketing between 22:00 and 08:00, on Sundays, nor on public holidays;
//!   likewise, each with its own hours, days and computed holidays, in Germany, Spain,
//!   Italy, Poland, the Netherlands, Belgium, the United Kingdom and the United States. A
//!   tenant may turn a country's rule off.
//!
//! Every rule that holds a message has a name ([`QuietReason`]'s `Display`, e.g. `FR: no
//! marketing on Sundays`), which [`hold`] returns for the message's event log.
//!
//! A message that falls in quiet hours is delayed to [`next_allowed`], never dropped.
//! Windows are read on the local wall clock, so "08:00" is 08:00 on both sides of a
//! daylight-saving change; when 08:00 does not exist that day (the clock jumps over it),
//! the message goes out at the jump.

use crate::consent::Purpose;
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

mod countries;
#[cfg(test)]
mod tests;

pub use countries::*;

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

/// A tenant's quiet hours: its own windows, and which countries' built-in rules it turned
/// off (all apply unless turned off).
///
/// Written as `{"windows": [...], "countries": {"US": false}}`; a plain JSON list of
/// windows (how tenants stored it before country rules could be turned off) still reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuietHours {
    pub windows: Vec<QuietWindow>,
    /// Keys ([`CountryQuietRule::key`]) of the built-in rules the tenant turned off.
    countries_off: BTreeSet<&'static str>,
}

impl QuietHours {
    /// Turns the built-in rule of `country` (its key or any code it covers) on or off.
    pub fn set_country_rule(&mut self, country: &str, on: bool) -> Result<(), QuietHoursError> {
        let rule = country_rule(country)
            .ok_or_else(|| QuietHoursError::UnknownCountry(country.to_owned()))?;
        if on {
            self.countries_off.remove(rule.key);
        } else {
            self.countries_off.insert(rule.key);
        }
        Ok(())
    }

    /// Whether the built-in rule with key `key` applies for this tenant.
    pub fn country_rule_on(&self, key: &str) -> bool {
        !self.countries_off.contains(key)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum QuietHoursWire {
    Windows(Vec<QuietWindow>),
    Sections(QuietHoursSections),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuietHoursSections {
    #[serde(default)]
    windows: Vec<QuietWindow>,
    /// Every built-in rule by key, `true` when it applies.
    #[serde(default)]
    countries: BTreeMap<String, bool>,
}

impl Serialize for QuietHours {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        QuietHoursSections {
            windows: self.windows.clone(),
            countries: COUNTRY_RULES
                .iter()
                .map(|rule| (rule.key.to_owned(), self.country_rule_on(rule.key)))
                .collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for QuietHours {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read through a `Value` first: an untagged enum hides why each shape failed, and
        // a person needs to be told which window or country is wrong.
        let value = serde_json::Value::deserialize(deserializer)?;
        let wire = if value.is_array() {
            QuietHoursWire::Windows(
                serde_json::from_value(value).map_err(serde::de::Error::custom)?,
            )
        } else {
            QuietHoursWire::Sections(
                serde_json::from_value(value).map_err(serde::de::Error::custom)?,
            )
        };
        match wire {
            QuietHoursWire::Windows(windows) => Ok(QuietHours {
                windows,
                ..QuietHours::default()
            }),
            QuietHoursWire::Sections(sections) => {
                let mut quiet = QuietHours {
                    windows: sections.windows,
                    ..QuietHours::default()
                };
                for (country, on) in sections.countries {
                    quiet
                        .set_country_rule(&country, on)
                        .map_err(serde::de::Error::custom)?;
                }
                Ok(quiet)
            }
        }
    }
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
        start: TimeOfDay,
        end: TimeOfDay,
    },
    CountryRestDay {
        country: &'static str,
        day: Weekday,
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
            QuietReason::CountryNight {
                country,
                start,
                end,
            } => write!(f, "{country}: no marketing at night ({start}–{end})"),
            QuietReason::CountryRestDay { country, day } => {
                write!(
                    f,
                    "{country}: no marketing on {}s",
                    DAY_NAMES_EN[day_index(*day)]
                )
            }
            QuietReason::CountryHoliday { country, holiday } => {
                write!(f, "{country}: no marketing on a public holiday ({holiday})")
            }
        }
    }
}

const DAY_NAMES_EN: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
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
    #[error(
        "`{0}` has no built-in quiet-hours rule; the built-in countries are FR, DE, ES, IT, PL, NL, BE, GB and US"
    )]
    UnknownCountry(String),
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
            tenant.country_rule_on(rule.key).then_some((rule, code))
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
                holding.push((
                    QuietReason::CountryNight {
                        country,
                        start: rule.night_start,
                        end: rule.night_end,
                    },
                    end,
                ));
            }
            let day = date.weekday();
            if rule.rest_days.contains(&day) {
                holding.extend(
                    next_midnight.map(|end| (QuietReason::CountryRestDay { country, day }, end)),
                );
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
    hold(at, tz, country, purpose, rules).map(|hold| hold.until)
}

/// When a message may go out, and every rule that held it until then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// `at` itself when nothing held the message.
    pub until: Timestamp,
    /// The rules met on the way, each once, in the order they were met (a Saturday
    /// 23:00 marketing message in France: the night, then Sunday, then Monday's early
    /// hours, which is the night again).
    pub reasons: Vec<QuietReason>,
}

impl Hold {
    /// The rules' names, for a person: `FR: no marketing at night (22:00–08:00); FR: no
    /// marketing on Sundays`.
    pub fn rule_names(&self) -> String {
        self.reasons
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// [`next_allowed`], with the rules that held the message on the way.
pub fn hold(
    at: Timestamp,
    tz: &TimeZone,
    country: Option<&str>,
    purpose: &Purpose,
    rules: &QuietHours,
) -> Result<Hold, QuietHoursError> {
    let rules = Rules::new(country, purpose, rules);
    let horizon = at.checked_add(SEARCH_HORIZON).unwrap_or(Timestamp::MAX);
    let mut instant = at;
    let mut reasons: Vec<QuietReason> = Vec::new();
    while instant <= horizon {
        let local = tz.to_datetime(instant);
        let holding = rules.holding(local);
        let Some(end) = holding.iter().map(|(_, end)| *end).max() else {
            return Ok(Hold {
                until: instant,
                reasons,
            });
        };
        for (reason, _) in holding {
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
        }
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
