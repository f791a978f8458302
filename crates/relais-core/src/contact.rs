//! Contacts and their channel identities.

use crate::channel::ChannelKind;
use crate::phone::{PhoneError, normalize_phone};
use serde::{Deserialize, Serialize};

pub type Attributes = serde_json::Map<String, serde_json::Value>;

/// One way to reach a contact: a channel kind and the address on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Identity {
    pub channel: ChannelKind,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Phone(#[from] PhoneError),
    #[error("`{0}` is not an email address")]
    Email(String),
    #[error("`{0}` is not a Telegram chat id (an integer)")]
    TelegramChatId(String),
    #[error("{channel} address must not be empty")]
    Empty { channel: ChannelKind },
    #[error("{channel} address is longer than {max} characters")]
    TooLong { channel: ChannelKind, max: usize },
    #[error("{channel} address `{address}` must not contain spaces or control characters")]
    Whitespace {
        channel: ChannelKind,
        address: String,
    },
    #[error("{channel} address `{address}` must be the numeric id the platform gives")]
    NotNumeric {
        channel: ChannelKind,
        address: String,
    },
}

/// Settings that shape how addresses are read.
#[derive(Debug, Clone, Copy)]
pub struct AddressRules {
    /// Country assumed for phone numbers written without an international prefix.
    pub default_country: Option<phonenumber::country::Id>,
}

impl Identity {
    /// Builds an identity with its address in canonical form, or says why it cannot be one.
    pub fn parse(
        channel: ChannelKind,
        raw: &str,
        rules: AddressRules,
    ) -> Result<Identity, IdentityError> {
        let address = normalize_address(channel, raw, rules)?;
        Ok(Identity { channel, address })
    }
}

pub fn normalize_address(
    channel: ChannelKind,
    raw: &str,
    rules: AddressRules,
) -> Result<String, IdentityError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(IdentityError::Empty { channel });
    }
    match channel {
        ChannelKind::Whatsapp
            if raw.chars().all(|c| c.is_ascii_digit()) && !raw.starts_with('0') =>
        {
            // WhatsApp ids (`wa_id`) are international numbers without the `+`.
            Ok(normalize_phone(&format!("+{raw}"), None)?.into_string())
        }
        c if c.is_phone_addressed() => {
            Ok(normalize_phone(raw, rules.default_country)?.into_string())
        }
        ChannelKind::Email => normalize_email(raw),
        ChannelKind::Telegram => raw
            .parse::<i64>()
            .map(|id| id.to_string())
            .map_err(|_| IdentityError::TelegramChatId(raw.to_owned())),
        ChannelKind::Messenger | ChannelKind::Instagram => {
            if raw.chars().all(|c| c.is_ascii_digit()) && raw.len() <= 32 {
                Ok(raw.to_owned())
            } else {
                Err(IdentityError::NotNumeric {
                    channel,
                    address: raw.to_owned(),
                })
            }
        }
        _ => opaque_token(channel, raw, 4096),
    }
}

fn opaque_token(channel: ChannelKind, raw: &str, max: usize) -> Result<String, IdentityError> {
    if raw.chars().count() > max {
        return Err(IdentityError::TooLong { channel, max });
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(IdentityError::Whitespace {
            channel,
            address: raw.to_owned(),
        });
    }
    Ok(raw.to_owned())
}

fn normalize_email(raw: &str) -> Result<String, IdentityError> {
    let bad = || IdentityError::Email(raw.to_owned());
    let (local, domain) = raw.rsplit_once('@').ok_or_else(bad)?;
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.chars().any(|c| c.is_whitespace() || c == '@');
    if !domain_ok || !local_ok || raw.len() > 254 {
        return Err(bad());
    }
    // The domain is case-insensitive by RFC 5321; the local part may be case-sensitive in
    // theory, but no mail provider in use treats `Ana@` and `ana@` as two mailboxes, and
    // people write them both: one person, one identity.
    Ok(format!(
        "{}@{}",
        local.to_lowercase(),
        domain.to_lowercase()
    ))
}

/// A contact as stored and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Contact {
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: Attributes,
    pub timezone: Option<String>,
    pub locale: Option<String>,
    pub identities: Vec<Identity>,
    pub created_at: jiff::Timestamp,
    pub updated_at: jiff::Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactFieldError {
    #[error("unknown time zone `{0}`; use an IANA name such as Europe/Paris")]
    TimeZone(String),
    #[error("`{0}` is not a locale; use a BCP 47 tag such as fr-FR")]
    Locale(String),
}

pub fn validate_timezone(tz: &str) -> Result<(), ContactFieldError> {
    jiff::tz::TimeZone::get(tz)
        .map(|_| ())
        .map_err(|_| ContactFieldError::TimeZone(tz.to_owned()))
}

pub fn validate_locale(locale: &str) -> Result<(), ContactFieldError> {
    let ok = (2..=35).contains(&locale.len())
        && locale.split(['-', '_']).all(|part| {
            !part.is_empty() && part.len() <= 8 && part.chars().all(|c| c.is_ascii_alphanumeric())
        })
        && locale
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic());
    if ok {
        Ok(())
    } else {
        Err(ContactFieldError::Locale(locale.to_owned()))
    }
}

/// Attributes after a merge: the survivor's values win, the merged contact fills gaps.
pub fn merge_attributes(survivor: &Attributes, merged: &Attributes) -> Attributes {
    let mut out = merged.clone();
    for (k, v) in survivor {
        out.insert(k.clone(), v.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FR: AddressRules = AddressRules {
        default_country: Some(phonenumber::country::Id::FR),
    };

    #[test]
    fn addresses_are_canonical_per_channel() {
        let id = |c, a| normalize_address(c, a, FR);
        assert_eq!(
            id(ChannelKind::Sms, "06 12 34 56 78").unwrap(),
            "+33612345678"
        );
        assert_eq!(
            id(ChannelKind::Whatsapp, "33612345678").unwrap(),
            "+33612345678"
        );
        assert_eq!(
            id(ChannelKind::Email, " Jane.Doe@Example.COM ").unwrap(),
            "jane.doe@example.com"
        );
        assert_eq!(id(ChannelKind::Telegram, "-100123").unwrap(), "-100123");
        assert_eq!(
            id(ChannelKind::Webchat, "visitor-42").unwrap(),
            "visitor-42"
        );
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        let id = |c, a| normalize_address(c, a, FR);
        assert!(matches!(
            id(ChannelKind::Email, "jane.example.com"),
            Err(IdentityError::Email(_))
        ));
        assert!(matches!(
            id(ChannelKind::Email, "jane@localhost"),
            Err(IdentityError::Email(_))
        ));
        assert!(matches!(
            id(ChannelKind::Telegram, "@jane"),
            Err(IdentityError::TelegramChatId(_))
        ));
        assert!(matches!(
            id(ChannelKind::Sms, "12"),
            Err(IdentityError::Phone(_))
        ));
        assert!(matches!(
            id(ChannelKind::Webchat, "a b"),
            Err(IdentityError::Whitespace { .. })
        ));
        assert!(matches!(
            id(ChannelKind::Webpush, ""),
            Err(IdentityError::Empty { .. })
        ));
    }

    #[test]
    fn time_zones_and_locales_are_validated() {
        assert!(validate_timezone("Europe/Paris").is_ok());
        assert!(validate_timezone("Mars/Olympus").is_err());
        assert!(validate_locale("fr-FR").is_ok());
        assert!(validate_locale("en").is_ok());
        assert!(validate_locale("f").is_err());
        assert!(validate_locale("fr FR").is_err());
    }

    #[test]
    fn merge_keeps_survivor_values_and_fills_gaps() {
        let s: Attributes = serde_json::from_str(r#"{"first_name":"Ana","tier":"gold"}"#).unwrap();
        let m: Attributes = serde_json::from_str(r#"{"first_name":"Anna","city":"Lyon"}"#).unwrap();
        let out = merge_attributes(&s, &m);
        assert_eq!(out["first_name"], "Ana");
        assert_eq!(out["city"], "Lyon");
        assert_eq!(out["tier"], "gold");
    }
}
