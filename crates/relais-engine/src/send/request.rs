//! What a client asks for: the body of `POST /v1/messages` (one item of a batch), and the
//! `Idempotency-Key` that makes a retried request safe.

use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::consent::Purpose;
use relais_core::content::Content;
use relais_core::fallback::FallbackChain;
use relais_core::retry::Validity;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Most messages one batch request may carry.
pub const MAX_BATCH: usize = 10_000;

/// Who a message goes to: an E.164 number, a contact, or an address on a channel.
#[derive(Debug, Clone)]
pub enum Recipient {
    Phone(String),
    Contact {
        contact_id: String,
    },
    Address {
        channel: ChannelKind,
        address: String,
    },
}

impl<'de> Deserialize<'de> for Recipient {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ContactRef {
            contact_id: String,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct AddressRef {
            channel: ChannelKind,
            address: String,
        }
        const EXPECTED: &str = "`to` must be a phone number such as \"+33612345678\", {\"contact_id\": …} or {\"channel\": …, \"address\": …}";
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(phone) => Ok(Recipient::Phone(phone)),
            value @ serde_json::Value::Object(_) if value.get("contact_id").is_some() => {
                ContactRef::deserialize(value)
                    .map(|c| Recipient::Contact {
                        contact_id: c.contact_id,
                    })
                    .map_err(|e| D::Error::custom(format!("{e}; {EXPECTED}")))
            }
            value @ serde_json::Value::Object(_) => AddressRef::deserialize(value)
                .map(|a| Recipient::Address {
                    channel: a.channel,
                    address: a.address,
                })
                .map_err(|e| D::Error::custom(format!("{e}; {EXPECTED}"))),
            _ => Err(D::Error::custom(EXPECTED)),
        }
    }
}

/// The body of `POST /v1/messages`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    pub to: Recipient,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub channels: Option<FallbackChain>,
    #[serde(default)]
    pub content: Option<Content>,
    /// A text template (`Bonjour {{ first_name }}`), instead of `content`.
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub variables: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub purpose: Option<Purpose>,
    /// The sender shown to the recipient (`MyShop`, `+33612345678`, a short code); the
    /// dispatcher paces each sender at its own rate.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub send_at: Option<Timestamp>,
    #[serde(default)]
    pub validity: Option<Validity>,
    /// The campaign the message belongs to (`black-friday-2026`), to find it by later.
    #[serde(default)]
    pub campaign: Option<String>,
    /// Written by a human agent in a conversation, on a channel configured to give agents
    /// a longer window (capabilities' `human_agent_window_hours`): set by
    /// [`crate::conversations::reply`], never read from a request body.
    #[serde(skip)]
    pub human_agent: bool,
    /// `false` leaves the links of the content as they are; by default they are rewritten
    /// to tracked short links when the server has a public URL (see `docs/links.md`). A
    /// campaign passes its own setting here.
    #[serde(default)]
    pub track_links: Option<bool>,
}

/// An `Idempotency-Key` with the digest of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

/// An `Idempotency-Key` header that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Idempotency-Key header must hold 1 to 255 characters")]
pub struct BadIdempotencyKey;

impl Idempotency {
    /// `body` is the parsed JSON body; its canonical form (sorted keys) is hashed, so
    /// spacing and key order do not matter.
    pub fn new(key: &str, body: &serde_json::Value) -> Result<Self, BadIdempotencyKey> {
        let key = key.trim();
        if key.is_empty() || key.len() > 255 {
            return Err(BadIdempotencyKey);
        }
        let mut canonical = String::new();
        write_canonical(body, &mut canonical);
        let digest = Sha256::digest(canonical.as_bytes());
        Ok(Idempotency {
            key: key.to_owned(),
            request_hash: hex::encode(digest),
        })
    }
}

/// JSON with object keys sorted at every level, so that key order never changes a hash.
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// One message of a batch, read from its own JSON text (the batch body is parsed once,
/// without building a JSON tree per message); on error, the JSON pointer into the item
/// and what is wrong there.
pub(super) fn parse_item(
    raw: &serde_json::value::RawValue,
) -> Result<SendRequest, (String, String)> {
    let de = &mut serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize(de).map_err(|e| {
        let mut pointer = String::new();
        for segment in e.path().iter() {
            use serde_path_to_error::Segment;
            match segment {
                Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
                Segment::Map { key } | Segment::Enum { variant: key } => {
                    pointer.push('/');
                    pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                }
                Segment::Unknown => pointer.push_str("/?"),
            }
        }
        (pointer, e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_hash_ignores_key_order_but_not_content() {
        let a: serde_json::Value = serde_json::from_str(
            r#"{"to": "+33612345678", "content": {"text": "Hi", "buttons": []}}"#,
        )
        .unwrap_or_default();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"content":{"buttons":[],"text":"Hi"},"to":"+33612345678"}"#)
                .unwrap_or_default();
        let c: serde_json::Value = serde_json::from_str(
            r#"{"to": "+33612345678", "content": {"text": "Ho", "buttons": []}}"#,
        )
        .unwrap_or_default();
        let hash = |v: &serde_json::Value| Idempotency::new("k", v).map(|i| i.request_hash).ok();
        assert!(hash(&a).is_some());
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(hash(&a), hash(&c));
        assert!(Idempotency::new("  ", &a).is_err());
    }
}
