//! The campaign a message belongs to, as its sender labels it (`black-friday-2026`,
//! `rappel_rdv.v2`): a label to find and count messages by, not a campaign object. It
//! travels in query strings (`GET /v1/messages?campaign=…`) and metrics, so it is kept to
//! characters that need no escaping there.

use std::fmt;

/// Most characters a label holds.
pub const MAX_CAMPAIGN_CHARS: usize = 64;

/// A validated campaign label: 1 to 64 ASCII letters, digits, `-`, `_` and `.`, as given
/// (case is kept, nothing is trimmed: `Promo` and `promo` are two campaigns).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CampaignLabel(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CampaignLabelError {
    #[error("the campaign label is empty")]
    Empty,
    #[error("a campaign label has at most {MAX_CAMPAIGN_CHARS} characters, this one has {0}")]
    TooLong(usize),
    #[error("the campaign label holds `{0}`: a label uses ASCII letters, digits, `-`, `_` and `.`")]
    BadCharacter(char),
}

impl CampaignLabel {
    pub fn parse(raw: &str) -> Result<CampaignLabel, CampaignLabelError> {
        if raw.is_empty() {
            return Err(CampaignLabelError::Empty);
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(CampaignLabelError::BadCharacter(bad));
        }
        // Only ASCII is left: bytes are characters.
        if raw.len() > MAX_CAMPAIGN_CHARS {
            return Err(CampaignLabelError::TooLong(raw.len()));
        }
        Ok(CampaignLabel(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for CampaignLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_digits_dashes_underscores_and_dots_up_to_64() {
        for ok in [
            "a",
            "black-friday-2026",
            "rappel_rdv.v2",
            "Promo",
            &"x".repeat(64),
        ] {
            assert_eq!(
                CampaignLabel::parse(ok).map(|c| c.into_string()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn empty_long_spaced_or_accented_labels_are_refused() {
        assert_eq!(CampaignLabel::parse(""), Err(CampaignLabelError::Empty));
        assert_eq!(
            CampaignLabel::parse(&"x".repeat(65)),
            Err(CampaignLabelError::TooLong(65))
        );
        assert_eq!(
            CampaignLabel::parse(" promo"),
            Err(CampaignLabelError::BadCharacter(' '))
        );
        assert_eq!(
            CampaignLabel::parse("été"),
            Err(CampaignLabelError::BadCharacter('é'))
        );
        assert_eq!(
            CampaignLabel::parse("a/b"),
            Err(CampaignLabelError::BadCharacter('/'))
        );
    }
}
