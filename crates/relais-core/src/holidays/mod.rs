//! Public holidays, computed rather than listed, so they are right for any year.
//!
//! Each country's national public holidays are built from three kinds of rule: a fixed
//! date, an offset from Easter Sunday (found with the Gregorian computus), and the n-th
//! weekday of a month; the United Kingdom and the United States also move a holiday that
//! falls on a weekend to a weekday ([`england`], [`united_states`]). Regional days
//! (Alsace-Moselle, German Länder, Spanish communities, Scotland) are left out: the
//! quiet-hours rules that use these lists are national. The law each list follows is
//! named in its module.

mod england;
mod europe;
mod united_states;

pub use england::england_and_wales_bank_holidays;
pub use europe::{
    belgian_public_holidays, dutch_public_holidays, french_public_holidays, german_public_holidays,
    italian_public_holidays, polish_public_holidays, spanish_public_holidays,
};
pub use united_states::us_federal_holidays;

use jiff::civil::{Date, Weekday};
use jiff::{Span, ToSpan};

/// A named public holiday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holiday {
    pub date: Date,
    pub name: &'static str,
}

/// Easter Sunday of a Gregorian year (1583 onward), by the anonymous Gregorian algorithm
/// (Meeus/Jones/Butcher). `None` for years before the Gregorian calendar or past 9999.
pub fn easter_sunday(year: i16) -> Option<Date> {
    if !(1583..=9999).contains(&year) {
        return None;
    }
    let y = i32::from(year);
    let golden = y % 19;
    let century = y / 100;
    let year_of_century = y % 100;
    let leap_centuries = century / 4;
    let century_remainder = century % 4;
    let lunar_correction = (century + 8) / 25;
    let solar_correction = (century - lunar_correction + 1) / 3;
    let epact = (19 * golden + century - leap_centuries - solar_correction + 15) % 30;
    let leap_years = year_of_century / 4;
    let year_remainder = year_of_century % 4;
    let weekday_offset = (32 + 2 * century_remainder + 2 * leap_years - epact - year_remainder) % 7;
    let correction = (golden + 11 * epact + 22 * weekday_offset) / 451;
    let month = (epact + weekday_offset - 7 * correction + 114) / 31;
    let day = (epact + weekday_offset - 7 * correction + 114) % 31 + 1;
    Date::new(year, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok()
}

/// The rules a country's list is written with, for one year. Each returns `None` for a
/// date the calendar cannot hold (a year out of range), so a list is never wrong, only
/// shorter at the ends of time.
struct Calendar {
    year: i16,
    easter: Option<Date>,
}

impl Calendar {
    fn of(year: i16) -> Calendar {
        Calendar {
            year,
            easter: easter_sunday(year),
        }
    }

    fn fixed(&self, month: i8, day: i8, name: &'static str) -> Option<Holiday> {
        Date::new(self.year, month, day)
            .ok()
            .map(|date| Holiday { date, name })
    }

    /// `days` after Easter Sunday (negative: before).
    fn after_easter(&self, days: i32, name: &'static str) -> Option<Holiday> {
        let offset: Span = days.days();
        self.easter
            .and_then(|easter| easter.checked_add(offset).ok())
            .map(|date| Holiday { date, name })
    }

    /// The `nth` `weekday` of `month` (negative counts from the end: -1 is the last).
    fn nth_weekday(
        &self,
        month: i8,
        nth: i8,
        weekday: Weekday,
        name: &'static str,
    ) -> Option<Holiday> {
        Date::new(self.year, month, 1)
            .ok()?
            .nth_weekday_of_month(nth, weekday)
            .ok()
            .map(|date| Holiday { date, name })
    }
}

/// The holidays that were computed, in calendar order (movable feasts can overtake
/// fixed ones: Ascension falls on 1 or 8 May in some years).
fn in_order(holidays: impl IntoIterator<Item = Option<Holiday>>) -> Vec<Holiday> {
    let mut holidays: Vec<Holiday> = holidays.into_iter().flatten().collect();
    holidays.sort_by_key(|holiday| holiday.date);
    holidays
}

/// The holiday of `list` on `date`, if there is one.
fn on(date: Date, list: Vec<Holiday>) -> Option<Holiday> {
    list.into_iter().find(|holiday| holiday.date == date)
}

/// The French national public holiday on `date`, if there is one.
pub fn french_public_holiday(date: Date) -> Option<Holiday> {
    on(date, french_public_holidays(date.year()))
}

/// The German nationwide public holiday on `date`, if there is one.
pub fn german_public_holiday(date: Date) -> Option<Holiday> {
    on(date, german_public_holidays(date.year()))
}

/// The Spanish national public holiday on `date`, if there is one.
pub fn spanish_public_holiday(date: Date) -> Option<Holiday> {
    on(date, spanish_public_holidays(date.year()))
}

/// The Italian national public holiday on `date`, if there is one.
pub fn italian_public_holiday(date: Date) -> Option<Holiday> {
    on(date, italian_public_holidays(date.year()))
}

/// The Polish public holiday on `date`, if there is one.
pub fn polish_public_holiday(date: Date) -> Option<Holiday> {
    on(date, polish_public_holidays(date.year()))
}

/// The Dutch public holiday on `date`, if there is one.
pub fn dutch_public_holiday(date: Date) -> Option<Holiday> {
    on(date, dutch_public_holidays(date.year()))
}

/// The Belgian public holiday on `date`, if there is one.
pub fn belgian_public_holiday(date: Date) -> Option<Holiday> {
    on(date, belgian_public_holidays(date.year()))
}

/// The England and Wales bank (or common-law) holiday on `date`, if there is one.
pub fn england_and_wales_bank_holiday(date: Date) -> Option<Holiday> {
    on(date, england_and_wales_bank_holidays(date.year()))
}

/// The US federal holiday on `date`, or the weekday it is observed on, if there is one.
/// New Year's Day of the next year can be observed on 31 December.
pub fn us_federal_holiday(date: Date) -> Option<Holiday> {
    let mut list = us_federal_holidays(date.year());
    if date.month() == 12
        && let Some(next) = date.year().checked_add(1)
    {
        list.extend(us_federal_holidays(next));
    }
    on(date, list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{Weekday, date};
    use proptest::prelude::*;

    #[test]
    fn easter_matches_the_published_dates() {
        let known = [
            (2000, date(2000, 4, 23)),
            (2008, date(2008, 3, 23)),
            (2011, date(2011, 4, 24)),
            (2019, date(2019, 4, 21)),
            (2024, date(2024, 3, 31)),
            (2025, date(2025, 4, 20)),
            (2026, date(2026, 4, 5)),
            (2027, date(2027, 3, 28)),
            (2038, date(2038, 4, 25)),
        ];
        for (year, expected) in known {
            assert_eq!(easter_sunday(year), Some(expected), "{year}");
        }
        assert_eq!(easter_sunday(1500), None, "before the Gregorian calendar");
    }

    #[test]
    fn lookup_by_date() {
        assert_eq!(
            french_public_holiday(date(2026, 7, 14)).map(|h| h.name),
            Some("Fête nationale")
        );
        assert_eq!(
            french_public_holiday(date(2027, 3, 29)).map(|h| h.name),
            Some("Lundi de Pâques")
        );
        assert_eq!(french_public_holiday(date(2027, 3, 30)), None);
    }

    #[test]
    fn a_year_out_of_range_gives_a_shorter_list_not_a_panic() {
        assert!(
            german_public_holidays(1500)
                .iter()
                .all(|h| h.date.year() == 1500)
        );
        assert!(us_federal_holiday(date(9999, 12, 31)).is_none());
        assert!(!england_and_wales_bank_holidays(9999).is_empty());
    }

    proptest! {
        #[test]
        fn easter_is_a_sunday_between_22_march_and_25_april(year in 1583i16..=9999) {
            let easter = easter_sunday(year).unwrap();
            prop_assert_eq!(easter.weekday(), Weekday::Sunday);
            prop_assert!(easter >= date(year, 3, 22) && easter <= date(year, 4, 25));
        }

        #[test]
        fn every_list_is_in_calendar_order_within_its_year(year in 1900i16..=2200) {
            let lists = [
                french_public_holidays(year),
                german_public_holidays(year),
                spanish_public_holidays(year),
                italian_public_holidays(year),
                polish_public_holidays(year),
                dutch_public_holidays(year),
                belgian_public_holidays(year),
                england_and_wales_bank_holidays(year),
            ];
            for list in lists {
                prop_assert!(list.windows(2).all(|pair| pair[0].date <= pair[1].date));
                prop_assert!(list.iter().all(|h| h.date.year() == year));
            }
        }
    }
}
