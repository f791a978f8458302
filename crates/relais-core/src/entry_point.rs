//! Click-to-chat entry points: a link (and its QR code) that opens a conversation on
//! WhatsApp (`wa.me` with a prefilled text), SMS (`sms:` with a body) or the web chat
//! widget of a page, carrying a referral code.
//!
//! The referral travels inside the prefilled text as `[ref:CODE]`: it is the one thing
//! every channel carries back untouched from the person's first message, so the inbound
//! pipeline finds it there ([`referral_in`]) whatever the channel.

use crate::phone::normalize_phone;
use std::fmt;

/// Where an entry point opens a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryChannel {
    Whatsapp,
    Sms,
    Webchat,
}

impl EntryChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryChannel::Whatsapp => "whatsapp",
            EntryChannel::Sms => "sms",
            EntryChannel::Webchat => "webchat",
        }
    }

    pub fn parse(raw: &str) -> Option<EntryChannel> {
        match raw {
            "whatsapp" => Some(EntryChannel::Whatsapp),
            "sms" => Some(EntryChannel::Sms),
            "webchat" => Some(EntryChannel::Webchat),
            _ => None,
        }
    }
}

impl fmt::Display for EntryChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A referral code: 1 to 32 ASCII letters, digits, `-` and `_`, compared without case
/// (people retype what they read on a poster).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReferralCode(String);

impl ReferralCode {
    pub const MAX_LEN: usize = 32;

    pub fn parse(raw: &str) -> Result<ReferralCode, EntryPointError> {
        let raw = raw.trim();
        if raw.is_empty()
            || raw.len() > Self::MAX_LEN
            || !raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(EntryPointError::BadReferral(raw.to_owned()));
        }
        Ok(ReferralCode(raw.to_ascii_uppercase()))
    }

    /// A random code of 8 characters without look-alikes (no 0/O, 1/I).
    pub fn generate(rng: &mut impl rand::Rng) -> ReferralCode {
        const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
        ReferralCode(
            (0..8)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
                .collect(),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How the code is written in a prefilled text.
    pub fn tag(&self) -> String {
        format!("[ref:{}]", self.0)
    }
}

impl fmt::Display for ReferralCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryPointError {
    #[error("`{0}` is not a referral code: 1 to 32 letters, digits, `-` or `_` (e.g. SPRING-ADS)")]
    BadReferral(String),
    #[error("`{0}` is not a phone number in international form (e.g. +33612345678)")]
    BadNumber(String),
    #[error(
        "`{0}` is not a web page address: an https:// or http:// URL of the page that holds the widget"
    )]
    BadPage(String),
    #[error("a {0} entry point needs `{1}`")]
    Missing(EntryChannel, &'static str),
}

/// Where the link of an entry point leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A WhatsApp or SMS number, E.164.
    Number(String),
    /// The page embedding the widget.
    Page(String),
}

impl Destination {
    /// The destination of a `channel` entry point from what the request gave: `number`
    /// for WhatsApp and SMS, `page` for the web chat.
    pub fn parse(
        channel: EntryChannel,
        number: Option<&str>,
        page: Option<&str>,
    ) -> Result<Destination, EntryPointError> {
        match channel {
            EntryChannel::Whatsapp | EntryChannel::Sms => {
                let raw = number.ok_or(EntryPointError::Missing(channel, "number"))?;
                let e164 = normalize_phone(raw, None)
                    .map_err(|_| EntryPointError::BadNumber(raw.to_owned()))?;
                Ok(Destination::Number(e164.into_string()))
            }
            EntryChannel::Webchat => {
                let raw = page
                    .ok_or(EntryPointError::Missing(channel, "page"))?
                    .trim();
                let lower = raw.to_ascii_lowercase();
                let rest = lower
                    .strip_prefix("https://")
                    .or_else(|| lower.strip_prefix("http://"));
                if rest.is_none_or(|r| r.is_empty() || r.starts_with('/'))
                    || raw.contains('#')
                    || raw.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(EntryPointError::BadPage(raw.to_owned()));
                }
                Ok(Destination::Page(raw.to_owned()))
            }
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Destination::Number(s) | Destination::Page(s) => s,
        }
    }
}

/// The text the person's first message starts with: the tenant's words, then the tag.
pub fn prefilled_text(text: Option<&str>, referral: &ReferralCode) -> String {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        Some(text) => format!("{text} {}", referral.tag()),
        None => referral.tag(),
    }
}

/// The link that opens the conversation with `prefilled` typed in:
/// - WhatsApp: `https://wa.me/<number without +>?text=<prefilled>`;
/// - SMS: `sms:<number>?body=<prefilled>` (RFC 5724; iOS and Android both read `body`);
/// - web chat: the page with `relais_text=<prefilled>`, which the widget opens with.
pub fn chat_link(channel: EntryChannel, destination: &Destination, prefilled: &str) -> String {
    let text = percent_encode(prefilled);
    match (channel, destination) {
        (EntryChannel::Whatsapp, d) => format!(
            "https://wa.me/{}?text={text}",
            d.as_str().trim_start_matches('+')
        ),
        (EntryChannel::Sms, d) => format!("sms:{}?body={text}", d.as_str()),
        (EntryChannel::Webchat, d) => {
            let page = d.as_str();
            let sep = if page.contains('?') { '&' } else { '?' };
            format!("{page}{sep}relais_text={text}")
        }
    }
}

/// The referral code a message carries (`… [ref:SPRING] …`), if any: the first tag.
pub fn referral_in(text: &str) -> Option<ReferralCode> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find("[ref:")? + "[ref:".len();
    let rest = &text[start..];
    let end = rest.find(']')?;
    ReferralCode::parse(&rest[..end]).ok()
}

/// Every byte but the unreserved ones (RFC 3986) percent-encoded, so that the text reads
/// the same in a query string of any of the three links.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn referral() -> ReferralCode {
        ReferralCode::parse("spring-26").unwrap()
    }

    #[test]
    fn a_whatsapp_link_opens_wa_me_with_the_referral_in_the_text() {
        let to =
            Destination::parse(EntryChannel::Whatsapp, Some("+33 6 12 34 56 78"), None).unwrap();
        let text = prefilled_text(Some("Bonjour !"), &referral());
        assert_eq!(text, "Bonjour ! [ref:SPRING-26]");
        assert_eq!(
            chat_link(EntryChannel::Whatsapp, &to, &text),
            "https://wa.me/33612345678?text=Bonjour%20%21%20%5Bref%3ASPRING-26%5D"
        );
    }

    #[test]
    fn an_sms_link_uses_the_body_parameter() {
        let to = Destination::parse(EntryChannel::Sms, Some("+447911123456"), None).unwrap();
        assert_eq!(
            chat_link(EntryChannel::Sms, &to, &prefilled_text(None, &referral())),
            "sms:+447911123456?body=%5Bref%3ASPRING-26%5D"
        );
    }

    #[test]
    fn a_web_chat_link_adds_the_text_to_the_page_address() {
        let to = Destination::parse(
            EntryChannel::Webchat,
            None,
            Some("https://shop.example/contact?lang=fr"),
        )
        .unwrap();
        assert_eq!(
            chat_link(EntryChannel::Webchat, &to, "Hi [ref:A]"),
            "https://shop.example/contact?lang=fr&relais_text=Hi%20%5Bref%3AA%5D"
        );
    }

    #[test]
    fn a_destination_must_suit_its_channel() {
        assert_eq!(
            Destination::parse(EntryChannel::Whatsapp, None, Some("https://x")),
            Err(EntryPointError::Missing(EntryChannel::Whatsapp, "number"))
        );
        assert!(matches!(
            Destination::parse(EntryChannel::Sms, Some("hello"), None),
            Err(EntryPointError::BadNumber(_))
        ));
        assert!(matches!(
            Destination::parse(EntryChannel::Webchat, None, Some("javascript:alert(1)")),
            Err(EntryPointError::BadPage(_))
        ));
    }

    #[test]
    fn the_referral_is_found_in_the_first_message_whatever_its_case() {
        assert_eq!(
            referral_in("Bonjour ! [REF:spring-26] je voudrais"),
            Some(referral())
        );
        assert_eq!(referral_in("no tag here"), None);
        assert_eq!(referral_in("[ref:bad code]"), None);
        assert_eq!(referral_in("[ref:unclosed"), None);
    }

    #[test]
    fn referral_codes_are_short_words() {
        assert!(ReferralCode::parse("").is_err());
        assert!(ReferralCode::parse(&"A".repeat(33)).is_err());
        assert!(ReferralCode::parse("a b").is_err());
        let generated = ReferralCode::generate(&mut rand::thread_rng());
        assert_eq!(ReferralCode::parse(generated.as_str()), Ok(generated));
    }
}
