//! Bank holidays of England and Wales, with their substitute days.
//!
//! Source: Banking and Financial Dealings Act 1971, Schedule 1 (Easter Monday, the last
//! Mondays of May and August, 26 December when it is not a Sunday, with a substitute day
//! when a holiday falls on a weekend), royal proclamations each year for New Year's Day
//! and the early May bank holiday (first Monday of May since 1978), and Good Friday and
//! Christmas Day as common-law holidays. The dates match the list the government
//! publishes (https://www.gov.uk/bank-holidays). Scotland and Northern Ireland keep other
//! days; one-off proclamations (a jubilee, a coronation, the 2020 VE Day move) are not
//! computed.

use super::{Calendar, Holiday, in_order};
use jiff::civil::{Date, Weekday};

/// A weekend day, on which a bank holiday moves to the next free weekday.
fn is_weekend(date: Date) -> bool {
    matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
}

/// The first weekday after `date`.
fn next_weekday(date: Date) -> Option<Date> {
    let mut next = date.tomorrow().ok()?;
    while is_weekend(next) {
        next = next.tomorrow().ok()?;
    }
    Some(next)
}

/// England and Wales: the bank holidays of `year`, in calendar order; a holiday on a
/// weekend gives its substitute day, named "(substitute day)". Christmas Day itself stays
/// a holiday on a weekend (it is a common-law holiday); 26 December and 1 January on a
/// weekend do not, their substitutes do.
pub fn england_and_wales_bank_holidays(year: i16) -> Vec<Holiday> {
    let c = Calendar::of(year);
    let new_year = c.fixed(1, 1, "New Year's Day").map(|holiday| {
        if is_weekend(holiday.date) {
            // 1 January on a Saturday is a Monday 3 January off, on a Sunday Monday 2.
            next_weekday(holiday.date)
                .map(|date| Holiday {
                    date,
                    name: "New Year's Day (substitute day)",
                })
                .unwrap_or(holiday)
        } else {
            holiday
        }
    });
    let christmas = c.fixed(12, 25, "Christmas Day");
    let boxing_day = c.fixed(12, 26, "Boxing Day");
    // Substitutes take the weekdays after 26 December in turn: Christmas on a Saturday
    // gives Monday 27 (Christmas) and Tuesday 28 (Boxing Day); on a Sunday, Boxing Day
    // keeps Monday 26 and Christmas takes Tuesday 27; on a Friday, Boxing Day (Saturday)
    // takes Monday 28.
    let mut free = boxing_day.and_then(|day| next_weekday(day.date));
    let mut substitute = |name: &'static str| {
        let date = free?;
        free = next_weekday(date);
        Some(Holiday { date, name })
    };
    let christmas_substitute = christmas
        .filter(|day| is_weekend(day.date))
        .and_then(|_| substitute("Christmas Day (substitute day)"));
    let boxing_day_substitute = boxing_day
        .filter(|day| is_weekend(day.date))
        .and_then(|_| substitute("Boxing Day (substitute day)"));
    in_order([
        new_year,
        c.after_easter(-2, "Good Friday"),
        c.after_easter(1, "Easter Monday"),
        c.nth_weekday(5, 1, Weekday::Monday, "Early May bank holiday"),
        c.nth_weekday(5, -1, Weekday::Monday, "Spring bank holiday"),
        c.nth_weekday(8, -1, Weekday::Monday, "Summer bank holiday"),
        christmas,
        boxing_day.filter(|day| !is_weekend(day.date)),
        christmas_substitute,
        boxing_day_substitute,
    ])
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use jiff::civil::{Date, date};

    fn listed(list: Vec<Holiday>) -> Vec<(Date, &'static str)> {
        list.into_iter().map(|h| (h.date, h.name)).collect()
    }

    #[test]
    fn the_2026_list_matches_gov_uk_with_boxing_day_on_monday_28() {
        // 26 December 2026 is a Saturday.
        assert_eq!(
            listed(england_and_wales_bank_holidays(2026)),
            vec![
                (date(2026, 1, 1), "New Year's Day"),
                (date(2026, 4, 3), "Good Friday"),
                (date(2026, 4, 6), "Easter Monday"),
                (date(2026, 5, 4), "Early May bank holiday"),
                (date(2026, 5, 25), "Spring bank holiday"),
                (date(2026, 8, 31), "Summer bank holiday"),
                (date(2026, 12, 25), "Christmas Day"),
                (date(2026, 12, 28), "Boxing Day (substitute day)"),
            ]
        );
        assert_eq!(england_and_wales_bank_holiday(date(2026, 12, 26)), None);
    }

    #[test]
    fn christmas_on_a_saturday_gives_monday_and_tuesday() {
        // 25 December 2027 is a Saturday.
        let days = england_and_wales_bank_holidays(2027);
        assert!(days.contains(&Holiday {
            date: date(2027, 12, 27),
            name: "Christmas Day (substitute day)"
        }));
        assert!(days.contains(&Holiday {
            date: date(2027, 12, 28),
            name: "Boxing Day (substitute day)"
        }));
    }

    #[test]
    fn christmas_on_a_sunday_gives_tuesday_27_and_boxing_day_keeps_monday() {
        // 25 December 2022 was a Sunday (gov.uk: 26 Boxing Day, 27 Christmas Day
        // substitute).
        let days = listed(england_and_wales_bank_holidays(2022));
        assert!(days.contains(&(date(2022, 12, 26), "Boxing Day")));
        assert!(days.contains(&(date(2022, 12, 27), "Christmas Day (substitute day)")));
    }

    #[test]
    fn new_years_day_on_a_weekend_moves_to_monday() {
        // 1 January 2028 is a Saturday; 2023's was a Sunday.
        assert_eq!(
            england_and_wales_bank_holiday(date(2028, 1, 3)).map(|h| h.name),
            Some("New Year's Day (substitute day)")
        );
        assert_eq!(
            england_and_wales_bank_holiday(date(2023, 1, 2)).map(|h| h.name),
            Some("New Year's Day (substitute day)")
        );
        assert_eq!(england_and_wales_bank_holiday(date(2028, 1, 1)), None);
    }
}
