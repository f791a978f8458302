//! National public holidays of France, Germany, Spain, Italy, Poland, the Netherlands and
//! Belgium: fixed dates and feasts that follow Easter, none moved off a weekend.

use super::{Calendar, Holiday, in_order};

/// France: the eleven holidays of the Code du travail, art. L3133-1. Regional extra
/// days (Good Friday and 26 December in Alsace-Moselle, abolition of slavery in the
/// overseas departments) are not included.
pub fn french_public_holidays(year: i16) -> Vec<Holiday> {
    let c = Calendar::of(year);
    in_order([
        c.fixed(1, 1, "Jour de l'An"),
        c.after_easter(1, "Lundi de Pâques"),
        c.fixed(5, 1, "Fête du Travail"),
        c.fixed(5, 8, "Victoire 1945"),
        c.after_easter(39, "Ascension"),
        c.after_easter(50, "Lundi de Pentecôte"),
        c.fixed(7, 14, "Fête nationale"),
        c.fixed(8, 15, "Assomption"),
        c.fixed(11, 1, "Toussaint"),
        c.fixed(11, 11, "Armistice 1918"),
        c.fixed(12, 25, "Noël"),
    ])
}

/// Germany: the nine holidays every Land keeps. Public holidays are the Länder's law
/// (each Land's Feiertagsgesetz, e.g. Berlin's FeiertG §1); the Day of German Unity is
/// federal (Einigungsvertrag, Art. 2 Abs. 2, from 1990). Days kept by some Länder only
/// (Epiphany, Corpus Christi, Reformation Day, All Saints…) are left out.
pub fn german_public_holidays(year: i16) -> Vec<Holiday> {
    let c = Calendar::of(year);
    in_order([
        c.fixed(1, 1, "Neujahr"),
        c.after_easter(-2, "Karfreitag"),
        c.after_easter(1, "Ostermontag"),
        c.fixed(5, 1, "Tag der Arbeit"),
        c.after_easter(39, "Christi Himmelfahrt"),
        c.after_easter(50, "Pfingstmontag"),
        (year >= 1990)
            .then(|| c.fixed(10, 3, "Tag der Deutschen Einheit"))
            .flatten(),
        c.fixed(12, 25, "1. Weihnachtstag"),
        c.fixed(12, 26, "2. Weihnachtstag"),
    ])
}

/// Spain: the holidays common to the whole country (Estatuto de los Trabajadores,
/// art. 37.2; Real Decreto 2001/1983, art. 45; confirmed each year by a resolution in the
/// BOE). Holy Thursday and the days each autonomous community chooses, or moves from a
/// Sunday to the Monday, are left out.
pub fn spanish_public_holidays(year: i16) -> Vec<Holiday> {
    let c = Calendar::of(year);
    in_order([
        c.fixed(1, 1, "Año Nuevo"),
        c.fixed(1, 6, "Epifanía del Señor"),
        c.after_easter(-2, "Viernes Santo"),
        c.fixed(5, 1, "Fiesta del Trabajo"),
        c.fixed(8, 15, "Asunción de la Virgen"),
        c.fixed(10, 12, "Fiesta Nacional de España"),
        c.fixed(11, 1, "Todos los Santos"),
        c.fixed(12, 6, "Día de la Constitución Española"),
        c.fixed(12, 8, "Inmaculada Concepción"),
        c.fixed(12, 25, "Natividad del Señor"),
    ])
}

/// Italy: Legge 27 maggio 1949 n. 260 as amended (Legge 5 marzo 1977 n. 54, DPR 28
/// dicembre 1985 n. 792, Legge 20 novembre 2000 n. 336 for 2 June), and 4 October again a
/// national holiday from 2026 (Legge 1 ottobre 2025 n. 151). Each town's patron saint's
/// day is left out.
pub fn italian_public_holidays(year: i16) -> Vec<Holiday> {
    let c = Calendar::of(year);
    in_order([
        c.fixed(1, 1, "Capodanno"),
        c.fixed(1, 6, "Epifania"),
        c.after_easter(0, "Pasqua"),
        c.after_easter(1, "Lunedì dell'Angelo"),
        c.fixed(4, 25, "Festa della Liberazione"),
        c.fixed(5, 1, "Festa del Lavoro"),
        c.fixed(6, 2, "Festa della Repubblica"),
        c.fixed(8, 15, "Ferragosto"),
        (year >= 2026)
            .then(|| c.fixed(10, 4, "San Francesco d'Assisi e Santa Caterina da Siena"))
            .flatten(),
        c.fixed(11, 1, "Ognissanti"),
        c.fixed(12, 8, "Immacolata Concezione"),
        c.fixed(12, 25, "Natale"),
        c.fixed(12, 26, "Santo Stefano"),
    ])
}

/// Poland: Ustawa z dnia 18 stycznia 1951 r. o dniach wolnych od pracy, art. 1, with
/// Epiphany from 2011 and Christmas Eve from 2025 (the amendments of 2010 and 2024).
pub fn polish_public_holidays(year: i16) -> Vec<Holiday> {
    let c = Calendar::of(year);
    in_order([
        c.fixed(1, 1, "Nowy Rok"),
        (year >= 2011)
            .then(|| c.fixed(1, 6, "Święto Trzech Króli"))
            .flatten(),
        c.after_easter(0, "Wielkanoc"),
        c.after_easter(1, "Poniedziałek Wielkanocny"),
        c.fixed(5, 1, "Święto Pracy"),
        c.fixed(5, 3, "Święto Konstytucji 3 Maja"),
        c.after_easter(49, "Zielone Świątki"),
        c.after_easter(60, "Boże Ciało"),
        c.fixed(8, 15, "Wniebowzięcie Najświętszej Maryi Panny"),
        c.fixed(11, 1, "Wszystkich Świętych"),
        c.fixed(11, 11, "Narodowe Święto Niepodległości"),
        (year >= 2025)
            .then(|| c.fixed(12, 24, "Wigilia Bożego Narodzenia"))
            .flatten(),
        c.fixed(12, 25, "Boże Narodzenie"),
        c.fixed(12, 26, "Drugi dzień Bożego Narodzenia"),
    ])
}

/// The Netherlands: the holidays of the Algemene termijnenwet, art. 3. King's Day is 27
/// April, or the 26th when the 27th is a Sunday (from 2014; Queen's Day was 30 April, or
/// the 29th, before). Good Friday is not in that list and is left out.
pub fn dutch_public_holidays(year: i16) -> Vec<Holiday> {
    let c = Calendar::of(year);
    let (day, fallback, name) = if year >= 2014 {
        (27, 26, "Koningsdag")
    } else {
        (30, 29, "Koninginnedag")
    };
    let royal = c.fixed(4, day, name).map(|holiday| {
        if holiday.date.weekday() == jiff::civil::Weekday::Sunday {
            c.fixed(4, fallback, name).unwrap_or(holiday)
        } else {
            holiday
        }
    });
    in_order([
        c.fixed(1, 1, "Nieuwjaarsdag"),
        c.after_easter(0, "Eerste Paasdag"),
        c.after_easter(1, "Tweede Paasdag"),
        royal,
        c.fixed(5, 5, "Bevrijdingsdag"),
        c.after_easter(39, "Hemelvaartsdag"),
        c.after_easter(49, "Eerste Pinksterdag"),
        c.after_easter(50, "Tweede Pinksterdag"),
        c.fixed(12, 25, "Eerste Kerstdag"),
        c.fixed(12, 26, "Tweede Kerstdag"),
    ])
}

/// Belgium: the ten holidays of the Arrêté royal / Koninklijk besluit of 18 April 1974,
/// named in French and Dutch. Community days (27 September, 11 July, 15 November) are
/// left out.
pub fn belgian_public_holidays(year: i16) -> Vec<Holiday> {
    let c = Calendar::of(year);
    in_order([
        c.fixed(1, 1, "Nouvel An / Nieuwjaar"),
        c.after_easter(1, "Lundi de Pâques / Paasmaandag"),
        c.fixed(5, 1, "Fête du Travail / Feest van de Arbeid"),
        c.after_easter(39, "Ascension / Onze-Lieve-Heer-Hemelvaart"),
        c.after_easter(50, "Lundi de Pentecôte / Pinkstermaandag"),
        c.fixed(7, 21, "Fête nationale / Nationale feestdag"),
        c.fixed(8, 15, "Assomption / Onze-Lieve-Vrouw-Hemelvaart"),
        c.fixed(11, 1, "Toussaint / Allerheiligen"),
        c.fixed(11, 11, "Armistice / Wapenstilstand"),
        c.fixed(12, 25, "Noël / Kerstmis"),
    ])
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use jiff::civil::{Date, Weekday, date};
    use proptest::prelude::*;

    fn listed(list: Vec<Holiday>) -> Vec<(Date, &'static str)> {
        list.into_iter().map(|h| (h.date, h.name)).collect()
    }

    #[test]
    fn french_holidays_of_2027() {
        assert_eq!(
            listed(french_public_holidays(2027)),
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
    fn german_easter_monday_and_unity_day() {
        // Easter 2026 is 5 April.
        assert_eq!(
            german_public_holiday(date(2026, 4, 6)).map(|h| h.name),
            Some("Ostermontag")
        );
        assert_eq!(
            german_public_holiday(date(2026, 4, 3)).map(|h| h.name),
            Some("Karfreitag")
        );
        assert_eq!(
            german_public_holiday(date(2026, 10, 3)).map(|h| h.name),
            Some("Tag der Deutschen Einheit")
        );
        assert_eq!(
            german_public_holiday(date(1989, 10, 3)),
            None,
            "before 1990"
        );
        assert_eq!(german_public_holidays(2026).len(), 9);
    }

    #[test]
    fn spanish_holidays_of_2026() {
        assert_eq!(
            listed(spanish_public_holidays(2026)),
            vec![
                (date(2026, 1, 1), "Año Nuevo"),
                (date(2026, 1, 6), "Epifanía del Señor"),
                (date(2026, 4, 3), "Viernes Santo"),
                (date(2026, 5, 1), "Fiesta del Trabajo"),
                (date(2026, 8, 15), "Asunción de la Virgen"),
                (date(2026, 10, 12), "Fiesta Nacional de España"),
                (date(2026, 11, 1), "Todos los Santos"),
                (date(2026, 12, 6), "Día de la Constitución Española"),
                (date(2026, 12, 8), "Inmaculada Concepción"),
                (date(2026, 12, 25), "Natividad del Señor"),
            ]
        );
    }

    #[test]
    fn italian_liberation_day_easter_monday_and_4_october_from_2026() {
        assert_eq!(
            italian_public_holiday(date(2027, 3, 29)).map(|h| h.name),
            Some("Lunedì dell'Angelo")
        );
        assert_eq!(
            italian_public_holiday(date(2026, 4, 25)).map(|h| h.name),
            Some("Festa della Liberazione")
        );
        assert!(italian_public_holiday(date(2026, 10, 4)).is_some());
        assert_eq!(italian_public_holiday(date(2025, 10, 4)), None);
    }

    #[test]
    fn polish_corpus_christi_and_christmas_eve_from_2025() {
        // Easter 2026 is 5 April: Corpus Christi is Thursday 4 June.
        let corpus_christi = polish_public_holiday(date(2026, 6, 4)).unwrap();
        assert_eq!(corpus_christi.name, "Boże Ciało");
        assert_eq!(corpus_christi.date.weekday(), Weekday::Thursday);
        assert_eq!(
            polish_public_holiday(date(2026, 5, 3)).map(|h| h.name),
            Some("Święto Konstytucji 3 Maja")
        );
        assert!(polish_public_holiday(date(2025, 12, 24)).is_some());
        assert_eq!(polish_public_holiday(date(2024, 12, 24)), None);
    }

    #[test]
    fn dutch_kings_day_moves_to_saturday_when_27_april_is_a_sunday() {
        // 27 April 2025 was a Sunday; 2026's is a Monday.
        assert_eq!(
            dutch_public_holiday(date(2025, 4, 26)).map(|h| h.name),
            Some("Koningsdag")
        );
        assert_eq!(dutch_public_holiday(date(2025, 4, 27)), None);
        assert_eq!(
            dutch_public_holiday(date(2026, 4, 27)).map(|h| h.name),
            Some("Koningsdag")
        );
        assert_eq!(
            dutch_public_holiday(date(2026, 5, 14)).map(|h| h.name),
            Some("Hemelvaartsdag")
        );
    }

    #[test]
    fn belgian_national_day_and_whit_monday() {
        assert_eq!(
            belgian_public_holiday(date(2026, 7, 21)).map(|h| h.name),
            Some("Fête nationale / Nationale feestdag")
        );
        assert_eq!(
            belgian_public_holiday(date(2026, 5, 25)).map(|h| h.name),
            Some("Lundi de Pentecôte / Pinkstermaandag")
        );
        assert_eq!(belgian_public_holidays(2026).len(), 10);
    }

    proptest! {
        #[test]
        fn movable_feasts_fall_on_their_weekday(year in 1583i16..=9998) {
            let holidays = french_public_holidays(year);
            prop_assert_eq!(holidays.len(), 11);
            let every = holidays
                .into_iter()
                .chain(german_public_holidays(year))
                .chain(polish_public_holidays(year))
                .chain(belgian_public_holidays(year));
            for holiday in every {
                match holiday.name {
                    "Lundi de Pâques" | "Lundi de Pentecôte" | "Ostermontag" | "Pfingstmontag"
                    | "Poniedziałek Wielkanocny" => prop_assert_eq!(holiday.date.weekday(), Weekday::Monday),
                    "Ascension" | "Christi Himmelfahrt" | "Boże Ciało" => prop_assert_eq!(holiday.date.weekday(), Weekday::Thursday),
                    "Karfreitag" => prop_assert_eq!(holiday.date.weekday(), Weekday::Friday),
                    _ => {}
                }
            }
        }
    }
}
