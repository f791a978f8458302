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
    #[error("`{0}` is not an APNs device token (64 to 200 hexadecimal characters)")]
    ApnsDeviceToken(String),
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
        // A device token, written in hex by the app; lowercased so that one device is
        // one identity whatever case it was written in.
        ChannelKind::Apns => {
            if (64..=200).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(raw.to_ascii_lowercase())
            } else {
                Err(IdentityError::ApnsDeviceToken(raw.to_owned()))
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

impl Contact {
    /// The address a message to this contact takes on `kind`: the identity kept under
    /// that channel, else (on a phone channel) their phone number, else any number of
    /// theirs; `None` when nothing of theirs reaches them there (a fallback step to SMS
    /// for a contact known only by a push subscription).
    pub fn address_on(&self, kind: ChannelKind) -> Option<&str> {
        let on = |channel: ChannelKind| self.identities.iter().find(|i| i.channel == channel);
        on(kind)
            .or_else(|| {
                kind.is_phone_addressed()
                    .then(|| on(ChannelKind::PHONE_NUMBER))
                    .flatten()
            })
            .or_else(|| self.identities.iter().find(|i| i.reaches_on(kind)))
            .map(|i| i.address.as_str())
    }
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

/// Why two contacts were merged, kept with the merge for whoever reads it later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MergeCause {
    /// Someone of the tenant asked for it (`POST /v1/contacts/{id}/merge`); every merge
    /// made before causes were kept was one.
    Api,
    /// The merged contact answered a flow's question with an address the survivor holds:
    /// the customer's claim, typed in a chat, not a proof that the address is theirs.
    FlowAnswer {
        identity: Identity,
        flow: String,
        node: String,
        /// The inbound message that carried the answer.
        message_id: String,
        conversation_id: String,
    },
}

impl Identity {
    /// Whether `self` and `other` reach the same person the way inbound messages find
    /// contacts: one phone number on any phone channel, otherwise the same channel.
    pub fn same_address(&self, other: &Identity) -> bool {
        self.address == other.address && self.reaches_on(other.channel)
    }

    /// Whether this address reaches someone on `kind`: a phone number on every phone
    /// channel, any other address on its own channel only.
    pub fn reaches_on(&self, kind: ChannelKind) -> bool {
        self.channel == kind || (self.channel.is_phone_addressed() && kind.is_phone_addressed())
    }

    /// Whether a customer can claim this kind of address by answering a flow's question
    /// (an e-mail address or a phone number), and so whether it tells one person from
    /// another beyond a single site or device.
    pub fn is_claimable(&self) -> bool {
        self.channel == ChannelKind::Email || self.channel.is_phone_addressed()
    }
}

/// What an address a contact claims as their own (a flow's answer) does to contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimDecision {
    /// The claimant holds it already: nothing changes.
    Held,
    /// Nobody holds it: it becomes one of the claimant's identities.
    Add,
    /// The holder (this contact id) is the known customer and the claimant nothing but a
    /// visitor (no e-mail address nor phone number of their own): the claimant is merged
    /// into the holder.
    MergeInto(String),
    /// The holder (this contact id) and the claimant both have an e-mail address or a
    /// phone number of their own: two people known apart, whom a typed answer does not
    /// merge (an agent may, after checking).
    KeepApart(String),
}

/// What `claimant` claiming `claimed` does, given the contact that holds it (found as
/// inbound messages find contacts; `None` when nobody does).
pub fn decide_claim(
    claimant: &Contact,
    holder: Option<&Contact>,
    claimed: &Identity,
) -> ClaimDecision {
    let holds = |c: &Contact| c.identities.iter().any(|i| i.same_address(claimed));
    match holder {
        _ if holds(claimant) => ClaimDecision::Held,
        Some(h) if h.id == claimant.id => ClaimDecision::Held,
        None => ClaimDecision::Add,
        // A visitor merged into a customer, then claiming another customer's address,
        // would otherwise merge two customers on one stranger's word.
        Some(h) if claimant.identities.iter().any(Identity::is_claimable) => {
            ClaimDecision::KeepApart(h.id.clone())
        }
        Some(h) => ClaimDecision::MergeInto(h.id.clone()),
    }
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
    fn each_channel_takes_its_own_address_of_a_contact() {
        let identity = |channel, address: &str| Identity {
            channel,
            address: address.to_owned(),
        };
        let contact = Contact {
            id: "c1".into(),
            attributes: Attributes::default(),
            timezone: None,
            locale: None,
            identities: vec![
                identity(
                    ChannelKind::Webpush,
                    r#"{"endpoint":"https://push.example/1"}"#,
                ),
                identity(ChannelKind::Whatsapp, "+33700000001"),
                identity(ChannelKind::Sms, "+33600000001"),
            ],
            created_at: jiff::Timestamp::UNIX_EPOCH,
            updated_at: jiff::Timestamp::UNIX_EPOCH,
        };
        assert_eq!(
            contact.address_on(ChannelKind::Webpush),
            Some(r#"{"endpoint":"https://push.example/1"}"#)
        );
        // Each phone channel its own number first, then the contact's phone number.
        assert_eq!(contact.address_on(ChannelKind::Sms), Some("+33600000001"));
        assert_eq!(
            contact.address_on(ChannelKind::Whatsapp),
            Some("+33700000001")
        );
        assert_eq!(contact.address_on(ChannelKind::Sim), Some("+33600000001"));
        assert_eq!(contact.address_on(ChannelKind::Rcs), Some("+33600000001"));
        // A push subscription never stands in for an e-mail address.
        assert_eq!(contact.address_on(ChannelKind::Email), None);
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

    fn someone(id: &str, identities: &[(ChannelKind, &str)]) -> Contact {
        Contact {
            id: id.into(),
            attributes: Attributes::new(),
            timezone: None,
            locale: None,
            identities: identities
                .iter()
                .map(|(channel, address)| Identity {
                    channel: *channel,
                    address: (*address).into(),
                })
                .collect(),
            created_at: jiff::Timestamp::UNIX_EPOCH,
            updated_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_visitor_claiming_a_customers_address_is_merged_into_the_customer() {
        let visitor = someone("v", &[(ChannelKind::Webchat, "v1")]);
        let ana = someone(
            "ana",
            &[
                (ChannelKind::Sim, "+33612345678"),
                (ChannelKind::Email, "ana@example.com"),
            ],
        );
        let email = Identity {
            channel: ChannelKind::Email,
            address: "ana@example.com".into(),
        };
        // A phone claim is kept as SMS and found on the simulated phone.
        let phone = Identity {
            channel: ChannelKind::PHONE_NUMBER,
            address: "+33612345678".into(),
        };
        for claimed in [&email, &phone] {
            assert_eq!(
                decide_claim(&visitor, Some(&ana), claimed),
                ClaimDecision::MergeInto("ana".into())
            );
            assert_eq!(decide_claim(&ana, Some(&ana), claimed), ClaimDecision::Held);
        }
        let unknown = Identity {
            channel: ChannelKind::Email,
            address: "new@example.com".into(),
        };
        assert_eq!(decide_claim(&visitor, None, &unknown), ClaimDecision::Add);
    }

    #[test]
    fn two_contacts_with_addresses_of_their_own_are_kept_apart() {
        let bob = someone("bob", &[(ChannelKind::Sms, "+33700000001")]);
        let ana = someone("ana", &[(ChannelKind::Email, "ana@example.com")]);
        let claimed = Identity {
            channel: ChannelKind::Email,
            address: "ana@example.com".into(),
        };
        assert_eq!(
            decide_claim(&bob, Some(&ana), &claimed),
            ClaimDecision::KeepApart("ana".into())
        );
        // The same address on another kind of channel is not the same identity.
        let token = Identity {
            channel: ChannelKind::Webchat,
            address: "ana@example.com".into(),
        };
        assert!(!token.same_address(&claimed));
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

    #[test]
    fn push_device_tokens_are_not_phone_numbers() {
        let id = |c, a| normalize_address(c, a, FR);
        let fcm = "dK3xVq0wRb2:APA91bHPRgkF3JUikC4ENAHEeMrd41Zxv3hVZjC9KtT8";
        assert_eq!(id(ChannelKind::Fcm, fcm).unwrap(), fcm);
        let long = "a".repeat(4097);
        assert!(matches!(
            id(ChannelKind::Fcm, &long),
            Err(IdentityError::TooLong { .. })
        ));
        let apns = "A1B2".repeat(16);
        assert_eq!(id(ChannelKind::Apns, &apns).unwrap(), apns.to_lowercase());
        for bad in ["+33612345678", "abc", &"g".repeat(64)] {
            assert!(matches!(
                id(ChannelKind::Apns, bad),
                Err(IdentityError::ApnsDeviceToken(_))
            ));
        }
    }
}
