//! Who a message says it comes from: an alphanumeric sender ID (`Relais`, `MyShop`), a
//! phone number or a short code. Carriers cap alphanumeric IDs at 11 characters and show
//! numeric ones as they are, so those are the rules enforced before anything is stored.

use std::fmt;

/// A validated sender: trimmed, 1 to 11 letters, digits, spaces and `.-_&` when it holds
/// a letter, or a number of 3 to 15 digits with an optional leading `+`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sender(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SenderError {
    #[error("the sender is empty")]
    Empty,
    #[error("an alphanumeric sender has at most 11 characters, `{0}` has {1}")]
    TooLong(String, usize),
    #[error("a numeric sender has 3 to 15 digits, `{0}` has {1}")]
    BadNumber(String, usize),
    #[error("`{0}` holds `{1}`: a sender uses letters, digits, spaces and `.-_&`, or is a number")]
    BadCharacter(String, char),
}

impl Sender {
    pub fn parse(raw: &str) -> Result<Sender, SenderError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(SenderError::Empty);
        }
        let digits = text.strip_prefix('+').unwrap_or(text);
        if digits.chars().all(|c| c.is_ascii_digit()) {
            let n = digits.chars().count();
            if !(3..=15).contains(&n) {
                return Err(SenderError::BadNumber(text.to_owned(), n));
            }
            return Ok(Sender(text.to_owned()));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_' | '&')))
        {
            return Err(SenderError::BadCharacter(text.to_owned(), bad));
        }
        let n = text.chars().count();
        if n > 11 {
            return Err(SenderError::TooLong(text.to_owned(), n));
        }
        Ok(Sender(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphanumeric_ids_up_to_eleven_characters() {
        assert_eq!(Sender::parse(" MyShop ").unwrap().as_str(), "MyShop");
        assert_eq!(
            Sender::parse("Relais & Co").unwrap().as_str(),
            "Relais & Co"
        );
        assert_eq!(
            Sender::parse("RelaisMessages"),
            Err(SenderError::TooLong("RelaisMessages".into(), 14))
        );
        assert_eq!(
            Sender::parse("Café"),
            Err(SenderError::BadCharacter("Café".into(), 'é'))
        );
    }

    #[test]
    fn numbers_and_short_codes() {
        assert_eq!(
            Sender::parse("+33612345678").unwrap().as_str(),
            "+33612345678"
        );
        assert_eq!(Sender::parse("38200").unwrap().as_str(), "38200");
        assert_eq!(
            Sender::parse("12"),
            Err(SenderError::BadNumber("12".into(), 2))
        );
        assert_eq!(
            Sender::parse("+1234567890123456"),
            Err(SenderError::BadNumber("+1234567890123456".into(), 16))
        );
        assert_eq!(Sender::parse("  "), Err(SenderError::Empty));
    }
}
