//! Quiet hours: tenant windows, country rules and their names, across clocks and zones.

use super::*;
use crate::holidays::french_public_holiday;
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
        ..QuietHours::default()
    }
}

fn next(at_: Timestamp, country: Option<&str>, purpose: Purpose, rules: &QuietHours) -> Timestamp {
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
        vec![QuietReason::CountryRestDay {
            country: "FR",
            day: Weekday::Sunday
        }]
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
            Some("CH"),
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
    assert!(err(r#"{"start": "25:00", "end": "08:00"}"#).contains("`25:00` is not a time of day"));
    assert!(err(r#"{"start": "9:00", "end": "08:00"}"#).contains("`9:00` is not a time of day"));
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
    let json = r#"{"start":"21:00","end":"08:00","days":["mon","fri"],"purposes":["marketing"]}"#;
    let parsed: QuietWindow = serde_json::from_str(json).unwrap();
    assert_eq!(serde_json::to_string(&parsed).unwrap(), json);
    let full_names: QuietWindow = serde_json::from_str(
        r#"{"start":"21:00","end":"08:00","days":["Monday","friday"],"purposes":["marketing"]}"#,
    )
    .unwrap();
    assert_eq!(full_names, parsed);
    let list: QuietHours = serde_json::from_str(&format!("[{json}]")).unwrap();
    assert_eq!(list.windows, vec![parsed]);
}

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

fn hold_in(at_: &str, zone_name: &str, country: &str) -> Hold {
    hold(
        at(at_),
        &zone(zone_name),
        Some(country),
        &Purpose::Marketing,
        &QuietHours::default(),
    )
    .unwrap()
}

#[test]
fn germany_holds_marketing_over_unity_day_and_names_it() {
    // Saturday 3 October 2026 is the Day of German Unity; Sunday follows.
    let held = hold_in("2026-10-03T10:00:00+02:00", "Europe/Berlin", "DE");
    assert_eq!(held.until, at("2026-10-05T08:00:00+02:00"));
    assert_eq!(
        held.rule_names(),
        "DE: no marketing on a public holiday (Tag der Deutschen Einheit); \
         DE: no marketing at night (21:00–08:00); DE: no marketing on Sundays"
    );
}

#[test]
fn germany_easter_monday_holds_until_tuesday() {
    let held = hold_in("2026-04-06T12:00:00+02:00", "Europe/Berlin", "DE");
    assert_eq!(held.until, at("2026-04-07T08:00:00+02:00"));
    assert_eq!(
        held.reasons[0],
        QuietReason::CountryHoliday {
            country: "DE",
            holiday: "Ostermontag"
        }
    );
}

#[test]
fn spain_keeps_whole_weekends_and_mornings_until_nine() {
    // Saturday 21 November 2026, noon in Madrid.
    let held = hold_in("2026-11-21T12:00:00+01:00", "Europe/Madrid", "ES");
    assert_eq!(held.until, at("2026-11-23T09:00:00+01:00"));
    assert_eq!(held.reasons[0].to_string(), "ES: no marketing on Saturdays");
}

#[test]
fn italy_poland_netherlands_and_belgium_hold_their_national_days() {
    let cases = [
        (
            "2026-06-02T11:00:00+02:00",
            "Europe/Rome",
            "IT",
            "Festa della Repubblica",
        ),
        (
            "2026-11-11T11:00:00+01:00",
            "Europe/Warsaw",
            "PL",
            "Narodowe Święto Niepodległości",
        ),
        (
            "2026-04-27T11:00:00+02:00",
            "Europe/Amsterdam",
            "NL",
            "Koningsdag",
        ),
        (
            "2026-07-21T11:00:00+02:00",
            "Europe/Brussels",
            "BE",
            "Fête nationale / Nationale feestdag",
        ),
    ];
    for (instant, zone_name, country, holiday) in cases {
        let held = hold_in(instant, zone_name, country);
        assert!(held.until > at(instant), "{country}");
        assert!(
            held.rule_names().contains(holiday),
            "{country}: {}",
            held.rule_names()
        );
    }
}

#[test]
fn the_uk_holds_the_boxing_day_substitute_of_2026_but_not_sundays() {
    let held = hold_in("2026-12-28T10:00:00+00:00", "Europe/London", "GB");
    assert_eq!(held.until, at("2026-12-29T08:00:00+00:00"));
    assert_eq!(
        held.reasons[0].to_string(),
        "GB: no marketing on a public holiday (Boxing Day (substitute day))"
    );
    let sunday = at("2026-11-22T12:00:00+00:00");
    assert!(is_allowed(
        sunday,
        &zone("Europe/London"),
        Some("GB"),
        &Purpose::Marketing,
        &QuietHours::default()
    ));
}

#[test]
fn the_us_follows_the_tcpa_night_and_observed_juneteenth() {
    // 21:00 in New York is past the TCPA's hours; 08:00 the next morning is not.
    let held = hold_in("2026-11-18T21:00:00-05:00", "America/New_York", "US");
    assert_eq!(held.until, at("2026-11-19T08:00:00-05:00"));
    assert_eq!(held.rule_names(), "US: no marketing at night (21:00–08:00)");
    // Juneteenth 2027 is a Saturday, observed Friday 18 June; both are held.
    let held = hold_in("2027-06-18T12:00:00-04:00", "America/New_York", "US");
    assert_eq!(held.until, at("2027-06-20T08:00:00-04:00"));
    assert_eq!(
        held.rule_names(),
        "US: no marketing on a public holiday (Juneteenth National Independence Day (observed)); \
         US: no marketing at night (21:00–08:00); \
         US: no marketing on a public holiday (Juneteenth National Independence Day)"
    );
}

#[test]
fn a_country_rule_the_tenant_turned_off_holds_nothing() {
    let mut quiet = QuietHours::default();
    quiet.set_country_rule("us", false).unwrap();
    let night = at("2026-11-18T23:00:00-05:00");
    let held = hold(
        night,
        &zone("America/New_York"),
        Some("US"),
        &Purpose::Marketing,
        &quiet,
    )
    .unwrap();
    assert_eq!(held.until, night);
    assert!(held.reasons.is_empty());
    // Turning France's rule off covers its overseas departments too.
    quiet.set_country_rule("FR", false).unwrap();
    assert!(country_rule("RE").is_some_and(|rule| !quiet.country_rule_on(rule.key)));
    assert_eq!(
        quiet.set_country_rule("CH", false),
        Err(QuietHoursError::UnknownCountry("CH".into()))
    );
}

#[test]
fn quiet_hours_read_the_old_list_and_write_every_country() {
    let old: QuietHours = serde_json::from_str(NIGHT_LIST).unwrap();
    assert_eq!(old.windows.len(), 1);
    let written = serde_json::to_value(&old).unwrap();
    assert_eq!(written["countries"]["US"], true);
    assert_eq!(
        written["countries"].as_object().unwrap().len(),
        COUNTRY_RULES.len()
    );
    let turned_off: QuietHours =
        serde_json::from_str(r#"{"windows": [], "countries": {"GB": false}}"#).unwrap();
    assert!(!turned_off.country_rule_on("GB"));
    assert_eq!(
        serde_json::from_value::<QuietHours>(serde_json::to_value(&turned_off).unwrap()).unwrap(),
        turned_off
    );
    let err = serde_json::from_str::<QuietHours>(r#"{"countries": {"XX": false}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`XX` has no built-in quiet-hours rule"),
        "{err}"
    );
}

const NIGHT_LIST: &str = r#"[{"start": "21:00", "end": "08:00"}]"#;

#[test]
fn time_zones_name_the_country_of_their_rule() {
    assert_eq!(country_of_time_zone("Europe/Berlin"), Some("DE"));
    assert_eq!(
        country_of_time_zone("America/Indiana/Indianapolis"),
        Some("US")
    );
    assert_eq!(country_of_time_zone("Europe/Zurich"), None);
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
