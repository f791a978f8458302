//! Phone numbers: every phone address Relais stores is E.164 (`+33612345678`).

use phonenumber::country;
use std::str::FromStr;

/// Why a phone number was refused; the message is shown to API users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("`{input}` is not a phone number: {reason}")]
    Unparseable { input: String, reason: String },
    #[error("`{input}` is not a valid phone number for its country")]
    Invalid { input: String },
    #[error("unknown default country `{0}`; expected an ISO 3166-1 alpha-2 code such as FR")]
    UnknownCountry(String),
}

/// A validated E.164 phone number, with the region its numbering plan gives (read when it
/// was validated: parsing a number again costs more than the rest of a send's checks).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct E164 {
    number: String,
    region: Option<country::Id>,
}

impl E164 {
    pub fn as_str(&self) -> &str {
        &self.number
    }
    pub fn into_string(self) -> String {
        self.number
    }
    /// ISO 3166-1 alpha-2 region of the number (e.g. `FR`), when the numbering plan tells.
    pub fn region(&self) -> Option<String> {
        self.region.map(|id| format!("{id:?}"))
    }
}

impl std::fmt::Display for E164 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.number)
    }
}

/// Parses an ISO country code such as `FR` for use as the default country.
pub fn parse_country(code: &str) -> Result<country::Id, PhoneError> {
    country::Id::from_str(&code.trim().to_ascii_uppercase())
        .map_err(|_| PhoneError::UnknownCountry(code.to_owned()))
}

/// Normalises a phone number written by a person or a system into E.164.
///
/// Accepts national formats (`06 12 34 56 78` with default country FR), the `00`
/// international prefix, `+`, spaces, dots, dashes and parentheses.
pub fn normalize_phone(
    input: &str,
    default_country: Option<country::Id>,
) -> Result<E164, PhoneError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    let compact: String = trimmed
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')' | '/' | '\u{a0}'))
        .collect();
    if compact.chars().any(|c| c.is_alphabetic()) {
        return Err(PhoneError::Unparseable {
            input: input.to_owned(),
            reason: "it contains letters".into(),
        });
    }
    // `00` is the international prefix in most of the world, but the phonenumber
    // crate only honours the default country's own prefix; make it explicit.
    let candidate = match compact.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => compact,
    };
    let country = if candidate.starts_with('+') {
        None
    } else {
        default_country
    };
    if country.is_none() && !candidate.starts_with('+') {
        return Err(PhoneError::Unparseable {
            input: input.to_owned(),
            reason:
                "a national number needs a default country; write it with + and the country code"
                    .into(),
        });
    }
    let parsed = phonenumber::parse(country, &candidate).map_err(|e| PhoneError::Unparseable {
        input: input.to_owned(),
        reason: e.to_string(),
    })?;
    if !phonenumber::is_valid(&parsed) {
        return Err(PhoneError::Invalid {
            input: input.to_owned(),
        });
    }
    Ok(E164 {
        number: parsed.format().mode(phonenumber::Mode::E164).to_string(),
        region: parsed.country().id(),
    })
}

/// The region (ISO 3166-1 alpha-2) of a number already stored in E.164, read from its
/// country calling code when that code belongs to one region only (`+33` is FR); numbers
/// of shared codes (`+1`, `+7`, `+44`…) are parsed in full. A stored number was validated
/// when it came in, and a full parse costs tens of microseconds per message.
pub fn region_of_e164(number: &str) -> Option<String> {
    let digits = number.strip_prefix('+')?;
    // Country calling codes are prefix-free: the first length that names a code is it.
    for len in 1..=3 {
        let Some(code) = digits.get(..len).and_then(|c| c.parse::<u16>().ok()) else {
            break;
        };
        if let Some(regions) = phonenumber::metadata::DATABASE.region(&code) {
            return match regions.as_slice() {
                [only] => Some((*only).to_owned()),
                _ => normalize_phone(number, None).ok().and_then(|p| p.region()),
            };
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_of_a_stored_number_is_read_from_its_code_and_agrees_with_a_full_parse() {
        for number in [
            "+33612345678",
            "+4915123456789",
            "+34612345678",
            "+14155552671",
            "+16135550123",
            "+447911123456",
            "+441534123456",
            "+79161234567",
            "+77012345678",
            "+390612345678",
            "+5511912345678",
        ] {
            let parsed = normalize_phone(number, None)
                .unwrap_or_else(|e| panic!("{number}: {e}"))
                .region();
            assert_eq!(region_of_e164(number), parsed, "{number}");
        }
        assert_eq!(region_of_e164("+33612345678").as_deref(), Some("FR"));
        assert_eq!(region_of_e164("+16135550123").as_deref(), Some("CA"));
        assert_eq!(region_of_e164("0612345678"), None);
        assert_eq!(region_of_e164("+"), None);
        assert_eq!(region_of_e164("+x1"), None);
    }

    fn fr() -> Option<country::Id> {
        Some(country::Id::FR)
    }

    #[test]
    fn national_french_formats_become_e164() {
        for input in [
            "06 12 34 56 78",
            "0612345678",
            "06.12.34.56.78",
            "06-12-34-56-78",
            "(06) 12 34 56 78",
        ] {
            assert_eq!(
                normalize_phone(input, fr()).unwrap().as_str(),
                "+33612345678",
                "{input}"
            );
        }
    }

    #[test]
    fn international_prefixes_are_understood() {
        assert_eq!(
            normalize_phone("+33 6 12 34 56 78", fr()).unwrap().as_str(),
            "+33612345678"
        );
        assert_eq!(
            normalize_phone("0033612345678", fr()).unwrap().as_str(),
            "+33612345678"
        );
        // A German number written with 00 while the default country is the US.
        let us = Some(country::Id::US);
        assert_eq!(
            normalize_phone("0049 30 901820", us).unwrap().as_str(),
            "+4930901820"
        );
        assert_eq!(
            normalize_phone("+1 (415) 555-2671", None).unwrap().as_str(),
            "+14155552671"
        );
    }

    #[test]
    fn invalid_numbers_are_rejected_with_a_reason() {
        assert_eq!(normalize_phone("  ", fr()), Err(PhoneError::Empty));
        assert!(matches!(
            normalize_phone("call me", fr()),
            Err(PhoneError::Unparseable { .. })
        ));
        assert!(matches!(
            normalize_phone("+33 1", fr()),
            Err(PhoneError::Invalid { .. }) | Err(PhoneError::Unparseable { .. })
        ));
        assert!(matches!(
            normalize_phone("0612", fr()),
            Err(PhoneError::Invalid { .. }) | Err(PhoneError::Unparseable { .. })
        ));
        let err = normalize_phone("0612345678", None).unwrap_err();
        assert!(err.to_string().contains("default country"), "{err}");
    }

    #[test]
    fn region_is_known_for_valid_numbers() {
        assert_eq!(
            normalize_phone("+33612345678", None)
                .unwrap()
                .region()
                .as_deref(),
            Some("FR")
        );
    }

    #[test]
    fn country_codes_parse_case_insensitively() {
        assert!(parse_country("fr").is_ok());
        assert!(matches!(
            parse_country("XX"),
            Err(PhoneError::UnknownCountry(_))
        ));
    }
}
