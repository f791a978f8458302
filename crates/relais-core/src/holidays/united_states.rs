//! US federal holidays and the weekdays they are observed on.
//!
//! Source: 5 U.S.C. § 6103(a) (the eleven holidays; Juneteenth added in 2021 by Pub. L.
//! 117-17, the Birthday of Martin Luther King, Jr. kept from 1986) and § 6103(b) with
//! Executive Order 11582: a holiday on a Saturday is observed the Friday before, on a
//! Sunday the Monday after. The Monday holidays follow the Uniform Monday Holiday Act
//! (in force 1971); earlier years are not modelled. State holidays are left out.

use super::{Calendar, Holiday, in_order};
use jiff::civil::Weekday;

/// The holiday and, when it falls on a weekend, the weekday it is observed on (named
/// "(observed)"). Marketing is held on both: people keep the day itself, offices close
/// on the other.
fn with_observed(holiday: Option<Holiday>, observed_name: &'static str) -> [Option<Holiday>; 2] {
    let observed = holiday.and_then(|holiday| {
        let date = match holiday.date.weekday() {
            Weekday::Saturday => holiday.date.yesterday().ok()?,
            Weekday::Sunday => holiday.date.tomorrow().ok()?,
            _ => return None,
        };
        Some(Holiday {
            date,
            name: observed_name,
        })
    });
    [holiday, observed]
}

/// The federal holidays of `year` with their observed weekdays, in calendar order. New
/// Year's Day on a Saturday is observed on 31 December of the year before, which this list
/// (of `year`'s holidays) then holds.
pub fn us_federal_holidays(year: i16) -> Vec<Holiday> {
    let c = Calendar::of(year);
    let fixed_days = [
        with_observed(c.fixed(1, 1, "New Year's Day"), "New Year's Day (observed)"),
        with_observed(
            (year >= 2021)
                .then(|| c.fixed(6, 19, "Juneteenth National Independence Day"))
                .flatten(),
            "Juneteenth National Independence Day (observed)",
        ),
        with_observed(
            c.fixed(7, 4, "Independence Day"),
            "Independence Day (observed)",
        ),
        with_observed(c.fixed(11, 11, "Veterans Day"), "Veterans Day (observed)"),
        with_observed(c.fixed(12, 25, "Christmas Day"), "Christmas Day (observed)"),
    ];
    let weekday_rules = [
        (year >= 1986)
            .then(|| c.nth_weekday(1, 3, Weekday::Monday, "Birthday of Martin Luther King, Jr."))
            .flatten(),
        c.nth_weekday(2, 3, Weekday::Monday, "Washington's Birthday"),
        c.nth_weekday(5, -1, Weekday::Monday, "Memorial Day"),
        c.nth_weekday(9, 1, Weekday::Monday, "Labor Day"),
        c.nth_weekday(10, 2, Weekday::Monday, "Columbus Day"),
        c.nth_weekday(11, 4, Weekday::Thursday, "Thanksgiving Day"),
    ];
    in_order(fixed_days.into_iter().flatten().chain(weekday_rules))
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use jiff::civil::date;

    #[test]
    fn juneteenth_2027_on_a_saturday_is_observed_friday_18_june() {
        assert_eq!(
            us_federal_holiday(date(2027, 6, 18)).map(|h| h.name),
            Some("Juneteenth National Independence Day (observed)")
        );
        assert_eq!(
            us_federal_holiday(date(2027, 6, 19)).map(|h| h.name),
            Some("Juneteenth National Independence Day")
        );
        assert_eq!(us_federal_holiday(date(2020, 6, 19)), None, "before 2021");
    }

    #[test]
    fn independence_day_2027_on_a_sunday_is_observed_monday_5_july() {
        assert_eq!(
            us_federal_holiday(date(2027, 7, 5)).map(|h| h.name),
            Some("Independence Day (observed)")
        );
    }

    #[test]
    fn new_years_day_2028_on_a_saturday_is_observed_on_31_december_2027() {
        assert_eq!(
            us_federal_holiday(date(2027, 12, 31)).map(|h| h.name),
            Some("New Year's Day (observed)")
        );
    }

    #[test]
    fn the_monday_and_thursday_holidays_of_2026() {
        let named = |d| us_federal_holiday(d).map(|h| h.name);
        assert_eq!(
            named(date(2026, 1, 19)),
            Some("Birthday of Martin Luther King, Jr.")
        );
        assert_eq!(named(date(2026, 2, 16)), Some("Washington's Birthday"));
        assert_eq!(named(date(2026, 5, 25)), Some("Memorial Day"));
        assert_eq!(named(date(2026, 9, 7)), Some("Labor Day"));
        assert_eq!(named(date(2026, 10, 12)), Some("Columbus Day"));
        assert_eq!(named(date(2026, 11, 26)), Some("Thanksgiving Day"));
        assert_eq!(named(date(2026, 11, 27)), None);
        assert_eq!(
            us_federal_holidays(2026).len(),
            11 + 1,
            "Independence Day 2026 is a Saturday"
        );
    }
}
