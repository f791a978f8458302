//! The built-in country rules: each country's marketing night, whole days without
//! marketing and computed public holidays, with the law or practice each follows.

use super::TimeOfDay;
use crate::holidays::{
    Holiday, belgian_public_holiday, dutch_public_holiday, england_and_wales_bank_holiday,
    french_public_holiday, german_public_holiday, italian_public_holiday, polish_public_holiday,
    spanish_public_holiday, us_federal_holiday,
};
use jiff::civil::{Date, Weekday};

/// A country's legal or customary quiet hours for marketing, as data.
#[derive(Debug, Clone, Copy)]
pub struct CountryQuietRule {
    /// The code a tenant names the rule by (in reasons and settings).
    pub key: &'static str,
    /// ISO 3166-1 alpha-2 codes the rule follows.
    pub countries: &'static [&'static str],
    /// Marketing is not sent from `night_start` to `night_end` (crossing midnight).
    pub night_start: TimeOfDay,
    pub night_end: TimeOfDay,
    /// Whole days without marketing (Sundays; Saturdays too in Spain).
    pub rest_days: &'static [Weekday],
    /// The country's public holiday on a date, if any; no marketing on those days.
    pub public_holiday: Option<fn(Date) -> Option<Holiday>>,
}

// Where a rule names no law, no statute sets hours for marketing messages in that country
// (consent is what the law asks: the ePrivacy directive as transposed, PECR in the UK);
// the hours are then the conservative practice aggregators ask of senders there, and a
// tenant whose lawyers say otherwise turns the rule off (`PATCH /v1/settings`).

/// France: no marketing 22:00–08:00, on Sundays, nor on national public holidays (the
/// AF2M's code of practice for marketing SMS, which French operators enforce). Applied to
/// metropolitan France and the overseas departments and collectivities whose numbers carry
/// their own region code (their local extra holidays are not included).
pub const FRANCE: CountryQuietRule = CountryQuietRule {
    key: "FR",
    countries: &["FR", "GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF"],
    night_start: TimeOfDay::at(22, 0),
    night_end: TimeOfDay::at(8, 0),
    rest_days: &[Weekday::Sunday],
    public_holiday: Some(french_public_holiday),
};

/// Germany: Sundays and public holidays are protected days of rest (Grundgesetz Art. 140
/// with Weimar Constitution Art. 139, and the Länder's Sonn- und Feiertagsgesetze); no
/// marketing on them nor 21:00–08:00 (customary).
pub const GERMANY: CountryQuietRule = CountryQuietRule {
    key: "DE",
    countries: &["DE"],
    night_start: TimeOfDay::at(21, 0),
    night_end: TimeOfDay::at(8, 0),
    rest_days: &[Weekday::Sunday],
    public_holiday: Some(german_public_holiday),
};

/// Spain: commercial calls only from 09:00 to 21:00, never at weekends nor on holidays
/// (consumer law, RDL 1/2007 as amended by Ley 3/2014), which Spanish operators ask
/// marketing messages to follow too.
pub const SPAIN: CountryQuietRule = CountryQuietRule {
    key: "ES",
    countries: &["ES"],
    night_start: TimeOfDay::at(21, 0),
    night_end: TimeOfDay::at(9, 0),
    rest_days: &[Weekday::Saturday, Weekday::Sunday],
    public_holiday: Some(spanish_public_holiday),
};

/// Italy: no marketing 21:00–08:00, on Sundays nor on national holidays (customary).
pub const ITALY: CountryQuietRule = CountryQuietRule {
    key: "IT",
    countries: &["IT", "SM", "VA"],
    night_start: TimeOfDay::at(21, 0),
    night_end: TimeOfDay::at(8, 0),
    rest_days: &[Weekday::Sunday],
    public_holiday: Some(italian_public_holiday),
};

/// Poland: no marketing 21:00–08:00, on Sundays nor on public holidays (customary; most
/// Sundays are also closed to trade, Ustawa z 10 stycznia 2018 o ograniczeniu handlu w
/// niedziele).
pub const POLAND: CountryQuietRule = CountryQuietRule {
    key: "PL",
    countries: &["PL"],
    night_start: TimeOfDay::at(21, 0),
    night_end: TimeOfDay::at(8, 0),
    rest_days: &[Weekday::Sunday],
    public_holiday: Some(polish_public_holiday),
};

/// The Netherlands: no marketing 21:00–08:00, on Sundays nor on public holidays
/// (customary; the DDMA telemarketing code keeps calls to working hours).
pub const NETHERLANDS: CountryQuietRule = CountryQuietRule {
    key: "NL",
    countries: &["NL"],
    night_start: TimeOfDay::at(21, 0),
    night_end: TimeOfDay::at(8, 0),
    rest_days: &[Weekday::Sunday],
    public_holiday: Some(dutch_public_holiday),
};

/// Belgium: no marketing 21:00–08:00, on Sundays nor on public holidays (customary).
pub const BELGIUM: CountryQuietRule = CountryQuietRule {
    key: "BE",
    countries: &["BE"],
    night_start: TimeOfDay::at(21, 0),
    night_end: TimeOfDay::at(8, 0),
    rest_days: &[Weekday::Sunday],
    public_holiday: Some(belgian_public_holiday),
};

/// The United Kingdom: no marketing 21:00–08:00 nor on England and Wales bank holidays
/// (customary; PECR reg. 22 asks for consent, not hours). Sundays are ordinary trading
/// days there. Scotland's and Northern Ireland's own bank holidays are not told apart: a
/// number does not say where in the UK its owner lives.
pub const UNITED_KINGDOM: CountryQuietRule = CountryQuietRule {
    key: "GB",
    countries: &["GB"],
    night_start: TimeOfDay::at(21, 0),
    night_end: TimeOfDay::at(8, 0),
    rest_days: &[],
    public_holiday: Some(england_and_wales_bank_holiday),
};

/// The United States: no telephone solicitation before 08:00 or after 21:00 at the
/// called party's location (TCPA, 47 CFR § 64.1200(c)(1), which covers text messages);
/// no marketing on federal holidays nor the weekdays they are observed on (customary).
/// Stricter state laws (Florida's 08:00–20:00) are not modelled.
pub const UNITED_STATES: CountryQuietRule = CountryQuietRule {
    key: "US",
    countries: &["US"],
    night_start: TimeOfDay::at(21, 0),
    night_end: TimeOfDay::at(8, 0),
    rest_days: &[],
    public_holiday: Some(us_federal_holiday),
};

pub const COUNTRY_RULES: &[CountryQuietRule] = &[
    FRANCE,
    GERMANY,
    SPAIN,
    ITALY,
    POLAND,
    NETHERLANDS,
    BELGIUM,
    UNITED_KINGDOM,
    UNITED_STATES,
];

/// The built-in rule for an ISO 3166-1 alpha-2 country code (any case), if any.
pub fn country_rule(country: &str) -> Option<&'static CountryQuietRule> {
    let code = country.trim().to_ascii_uppercase();
    COUNTRY_RULES
        .iter()
        .find(|rule| rule.countries.contains(&code.as_str()))
}

/// The country (ISO 3166-1 alpha-2) of an IANA time zone that belongs to one of the
/// countries with a built-in rule, for recipients whose country their address does not
/// tell (an e-mail address, a chat id). Zones shared by several countries give `None`.
pub fn country_of_time_zone(zone: &str) -> Option<&'static str> {
    const US_ZONE_PREFIXES: &[&str] = &[
        "America/Indiana/",
        "America/Kentucky/",
        "America/North_Dakota/",
    ];
    const US_ZONES: &[&str] = &[
        "America/New_York",
        "America/Chicago",
        "America/Denver",
        "America/Los_Angeles",
        "America/Phoenix",
        "America/Anchorage",
        "America/Adak",
        "America/Boise",
        "America/Detroit",
        "America/Juneau",
        "America/Menominee",
        "America/Metlakatla",
        "America/Nome",
        "America/Sitka",
        "America/Yakutat",
        "Pacific/Honolulu",
        "US/Eastern",
        "US/Central",
        "US/Mountain",
        "US/Pacific",
    ];
    let country = match zone {
        "Europe/Paris" => "FR",
        "Europe/Berlin" | "Europe/Busingen" => "DE",
        "Europe/Madrid" | "Atlantic/Canary" | "Africa/Ceuta" => "ES",
        "Europe/Rome" => "IT",
        "Europe/Warsaw" => "PL",
        "Europe/Amsterdam" => "NL",
        "Europe/Brussels" => "BE",
        "Europe/London" => "GB",
        "Indian/Reunion" => "RE",
        "America/Martinique" => "MQ",
        "America/Cayenne" => "GF",
        "Indian/Mayotte" => "YT",
        "America/Miquelon" => "PM",
        _ if US_ZONES.contains(&zone) || US_ZONE_PREFIXES.iter().any(|p| zone.starts_with(p)) => {
            "US"
        }
        _ => return None,
    };
    Some(country)
}
