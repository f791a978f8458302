//! Public holidays, computed rather than listed, so they are right for any year.
//!
//! France has eleven national public holidays (Code du travail, art. L3133-1): eight on
//! fixed dates and three that follow Easter (Easter Monday, Ascension Thursday, Whit
//! Monday). Easter is found with the Gregorian computus. Regional extra days (Good Friday
//! and 26 December in Alsace-Moselle, abolition of slavery in the overseas departments)
//! are not included: the quiet-hours rule that uses this list is national.

use jiff::civil::Date;
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

/// The national public holidays of France in `year`, in calendar order.
pub fn french_public_holidays(year: i16) -> Vec<Holiday> {
    let fixed = |month: i8, day: i8, name: &'static str| {
        Date::new(year, month, day)
            .ok()
            .map(|date| Holiday { date, name })
    };
    let after_easter = |days: Span, name: &'static str| {
        easter_sunday(year)
            .and_then(|easter| easter.checked_add(days).ok())
            .map(|date| Holiday { date, name })
    };
    let mut holidays: Vec<Holiday> = [
        fixed(1, 1, "Jour de l'An"),
        after_easter(1.day(), "Lundi de Pâques"),
        fixed(5, 1, "Fête du Travail"),
        fixed(5, 8, "Victoire 1945"),
        after_easter(39.days(), "Ascension"),
        after_easter(50.days(), "Lundi de Pentecôte"),
        fixed(7, 14, "Fête nationale"),
        fixed(8, 15, "Assomption"),
        fixed(11, 1, "Toussaint"),
        fixed(11, 11, "Armistice 1918"),
        fixed(12, 25, "Noël"),
    ]
    .into_iter()
    .flatten()
    .collect();
    // Ascension can fall on 1 or 8 May; keep calendar order for whoever lists them.
    holidays.sort_by_key(|holiday| holiday.date);
    holidays
}

/// The French national public holiday on `date`, if there is one.
pub fn french_public_holiday(date: Date) -> Option<Holiday> {
    french_public_holidays(date.year())
        .into_iter()
        .find(|holiday| holiday.date == date)
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
    fn french_holidays_of_2027() {
        let names_and_dates: Vec<(Date, &str)> = french_public_holidays(2027)
            .into_iter()
            .map(|h| (h.date, h.name))
            .collect();
        assert_eq!(
            names_and_dates,
            vec![
                (date(2027, 1, 1), "Jour de l'An"),
                (date(2027, 3, 29), "Lundi de Pâques"),
                (date(2027, 5, 1), "Fête du Travail"),
                (date(2027, 5, 6), "Ascension"),
                (date(2027, 5, 8), "Victoire 1945"),
                (date(2027, 5, 17), "Lundi de Pentecôte"),
                (date(2027, 7, 14), "Fête nationale"),
                (date(2027, 8, 15), "Assomption"),
                (date(2027, 11, 1), "Toussaint"),
                (date(2027, 11, 11), "Armistice 1918"),
                (date(2027, 12, 25), "Noël"),
            ]
        );
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

    proptest! {
        #[test]
        fn easter_is_a_sunday_between_22_march_and_25_april(year in 1583i16..=9999) {
            let easter = easter_sunday(year).unwrap();
            prop_assert_eq!(easter.weekday(), Weekday::Sunday);
            prop_assert!(easter >= date(year, 3, 22) && easter <= date(year, 4, 25));
        }

        #[test]
        fn movable_french_holidays_fall_on_their_weekday(year in 1583i16..=9998) {
            let holidays = french_public_holidays(year);
            prop_assert_eq!(holidays.len(), 11);
            for holiday in holidays {
                match holiday.name {
                    "Lundi de Pâques" | "Lundi de Pentecôte" => prop_assert_eq!(holiday.date.weekday(), Weekday::Monday),
                    "Ascension" => prop_assert_eq!(holiday.date.weekday(), Weekday::Thursday),
                    _ => {}
                }
            }
        }
    }
}
