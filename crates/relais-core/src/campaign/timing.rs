//! When a campaign's message to one recipient goes: inside the campaign's daily send window
//! in the recipient's own time zone, and, with send-time optimisation, at the hour that
//! recipient (or, failing that, the segment, then the tenant) usually reads, clicks or
//! replies. Quiet hours are applied after this, by the send path, as for any message.

use crate::quiet_hours::TimeOfDay;
use jiff::civil::{DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// The hours of the day, in each recipient's time zone, when a campaign may reach them:
/// `{"start": "09:00", "end": "20:00"}`. A window whose end comes before its start spans
/// midnight (`22:00`–`06:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyWindow {
    pub start: TimeOfDay,
    pub end: TimeOfDay,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the send window is empty: its start and end are both {0}")]
pub struct EmptyWindow(pub TimeOfDay);

impl DailyWindow {
    pub fn new(start: TimeOfDay, end: TimeOfDay) -> Result<DailyWindow, EmptyWindow> {
        if start == end {
            return Err(EmptyWindow(start));
        }
        Ok(DailyWindow { start, end })
    }

    /// Whether a wall-clock time of day falls inside.
    pub fn contains(&self, minutes: u16) -> bool {
        let (start, end) = (
            self.start.minutes_since_midnight(),
            self.end.minutes_since_midnight(),
        );
        if start < end {
            (start..end).contains(&minutes)
        } else {
            minutes >= start || minutes < end
        }
    }

    /// `at` when it is inside the window in `tz`, else the window's next opening.
    pub fn next_open(&self, at: Timestamp, tz: &TimeZone) -> Timestamp {
        let local = tz.to_datetime(at);
        if self.contains(minutes_of(local)) {
            return at;
        }
        let start = self.start.minutes_since_midnight();
        let today = local.date();
        let opening = |date: jiff::civil::Date| {
            let time = Time::new((start / 60) as i8, (start % 60) as i8, 0, 0).unwrap_or(Time::MIN);
            instant_of(tz, date.to_datetime(time))
        };
        match opening(today) {
            Some(instant) if instant > at => instant,
            _ => today.tomorrow().ok().and_then(opening).unwrap_or(at),
        }
    }
}

fn minutes_of(local: DateTime) -> u16 {
    (local.hour() as u16) * 60 + local.minute() as u16
}

/// The instant of a wall-clock time (the later one in a gap or a fold).
fn instant_of(tz: &TimeZone, wall: DateTime) -> Option<Timestamp> {
    tz.to_ambiguous_timestamp(wall).later().ok()
}

/// The first instant at or after `at` when the clock in `tz` shows `hour`:00.
pub fn next_at_hour(at: Timestamp, tz: &TimeZone, hour: u8) -> Timestamp {
    let local = tz.to_datetime(at);
    let time = Time::new(hour.min(23) as i8, 0, 0, 0).unwrap_or(Time::MIN);
    let today = local.date().to_datetime(time);
    match instant_of(tz, today) {
        Some(instant) if instant >= at => instant,
        _ => local
            .date()
            .tomorrow()
            .ok()
            .and_then(|d| instant_of(tz, d.to_datetime(time)))
            .unwrap_or(at),
    }
}

/// The hour (0–23, local to `tz`) at which most of `moments` fell; the earliest such hour
/// on a tie; `None` without any moment.
pub fn best_hour<'a>(moments: impl IntoIterator<Item = (&'a TimeZone, Timestamp)>) -> Option<u8> {
    let mut counts = [0u32; 24];
    let mut any = false;
    for (tz, moment) in moments {
        counts[tz.to_datetime(moment).hour() as usize] += 1;
        any = true;
    }
    if !any {
        return None;
    }
    let mut best = 0;
    for hour in 1..24 {
        if counts[hour] > counts[best] {
            best = hour;
        }
    }
    Some(best as u8)
}

/// When a recipient's message goes: its slot (the campaign's start, spread by its
/// throughput), moved to their hour when the campaign optimises send times (the next
/// time their clock shows it, within a day of the slot), then into the window.
pub fn send_time(
    slot: Timestamp,
    tz: &TimeZone,
    hour: Option<u8>,
    window: Option<&DailyWindow>,
) -> Timestamp {
    let at = match hour {
        Some(hour) => next_at_hour(slot, tz, hour),
        None => slot,
    };
    match window {
        Some(window) => window.next_open(at, tz),
        None => at,
    }
}

/// The slot of the `index`-th recipient (from 0) of a campaign started at `start` that
/// sends `rate` messages a second; every slot is `start` without a rate.
pub fn slot(start: Timestamp, index: u64, rate: Option<f64>) -> Timestamp {
    match rate {
        Some(rate) if rate > 0.0 => {
            let micros = (index as f64 / rate * 1_000_000.0) as i64;
            start
                .checked_add(SignedDuration::from_micros(micros))
                .unwrap_or(start)
        }
        _ => start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paris() -> TimeZone {
        TimeZone::get("Europe/Paris").unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn window(start: &str, end: &str) -> DailyWindow {
        DailyWindow::new(start.parse().unwrap(), end.parse().unwrap()).unwrap()
    }

    #[test]
    fn a_message_inside_the_window_goes_now_and_one_outside_waits_for_its_opening() {
        let w = window("09:00", "20:00");
        // 10:00 in Paris (UTC+1 in December).
        assert_eq!(
            w.next_open(at("2026-12-07T09:00:00Z"), &paris()),
            at("2026-12-07T09:00:00Z")
        );
        // 21:30 in Paris: tomorrow 09:00.
        assert_eq!(
            w.next_open(at("2026-12-07T20:30:00Z"), &paris()),
            at("2026-12-08T08:00:00Z")
        );
        // 07:00 in Paris: today 09:00.
        assert_eq!(
            w.next_open(at("2026-12-07T06:00:00Z"), &paris()),
            at("2026-12-07T08:00:00Z")
        );
        let night = window("22:00", "06:00");
        assert!(night.contains(23 * 60));
        assert!(night.contains(60));
        assert!(!night.contains(12 * 60));
        assert!(DailyWindow::new("09:00".parse().unwrap(), "09:00".parse().unwrap()).is_err());
    }

    #[test]
    fn the_learned_hour_is_the_most_frequent_local_hour_and_the_next_one_is_chosen() {
        let tz = paris();
        let moments = [
            at("2026-11-02T18:10:00Z"), // 19:10 Paris
            at("2026-11-03T18:40:00Z"), // 19:40
            at("2026-11-04T07:00:00Z"), // 08:00
        ];
        assert_eq!(best_hour(moments.iter().map(|m| (&tz, *m))), Some(19));
        assert_eq!(best_hour(std::iter::empty()), None);
        // At 10:00 Paris, 19:00 is tonight; at 20:00, tomorrow.
        assert_eq!(
            next_at_hour(at("2026-12-07T09:00:00Z"), &tz, 19),
            at("2026-12-07T18:00:00Z")
        );
        assert_eq!(
            next_at_hour(at("2026-12-07T19:00:00Z"), &tz, 19),
            at("2026-12-08T18:00:00Z")
        );
        // The hour wins over the slot; the window still applies after it.
        let w = window("09:00", "18:00");
        assert_eq!(
            send_time(at("2026-12-07T09:00:00Z"), &tz, Some(19), Some(&w)),
            at("2026-12-08T08:00:00Z")
        );
    }

    #[test]
    fn a_rate_spreads_the_recipients_over_time() {
        let start = at("2026-12-07T09:00:00Z");
        assert_eq!(slot(start, 0, Some(10.0)), start);
        assert_eq!(slot(start, 25, Some(10.0)), at("2026-12-07T09:00:02.5Z"));
        assert_eq!(slot(start, 25, None), start);
    }
}
