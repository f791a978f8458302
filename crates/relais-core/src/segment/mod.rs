//! A segment's filter: which of a tenant's contacts it holds, as an expression over what
//! Relais knows of each contact (attributes, identities, consents, time zone, locale) and
//! what they did (wrote in, were delivered or read a message, replied) within a period.
//!
//! ```text
//! attributes.city = 'Lyon' and consent.sms.marketing = 'opted_in'
//! (identity.whatsapp exists or identity.sms exists) and not read within 30d
//! attributes.tags contains 'vip' and attributes.age >= 18 and locale in ('fr', 'fr-FR')
//! ```
//!
//! The text is parsed once ([`Filter::parse`]), where it enters, into a tree that the
//! store compiles to SQL for each backend; a syntax error names its position. The meaning
//! of each comparison is fixed here, so that SQLite and PostgreSQL find the same contacts:
//!
//! - A comparison holds only between values of the same JSON type: `attributes.age > 30`
//!   is false for an age stored as the string `"31"`. Text compares byte by byte (case
//!   counts); numbers compare as numbers.
//! - A missing value satisfies no comparison, and `!=` is `not =`: `attributes.city !=
//!   'Lyon'` holds for a contact with no city.
//! - `contains` looks for a substring in text, and for an element in a list.
//! - `consent.<channel>.<purpose>` is the status (`opted_in` / `opted_out`) of the latest
//!   consent record that speaks to that channel and purpose, as the send path reads it.

mod parse;

pub use parse::ParseError;

use crate::channel::ChannelKind;
use crate::consent::Purpose;
use jiff::SignedDuration;

/// Longest filter text accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 4096;
/// Deepest nesting of `not`, `and`, `or` and parentheses accepted: a filter is read by a
/// recursive parser and compiled to nested SQL, and a hostile one must not exhaust either.
pub const MAX_DEPTH: usize = 32;
/// Most comparisons one filter holds (each becomes a clause, some a subquery, of the
/// query that reads every contact).
pub const MAX_CONDITIONS: usize = 64;

/// What a condition reads of a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// `attributes.<name>[.<name>…]`: a value of the contact's attributes, nested objects
    /// followed name by name.
    Attribute(Vec<String>),
    /// `identity.<channel>`: the contact's address on that channel.
    Identity(ChannelKind),
    /// `consent.<channel>.<purpose>`: `opted_in` or `opted_out`, by the latest record.
    Consent {
        channel: ChannelKind,
        purpose: Purpose,
    },
    Timezone,
    Locale,
}

impl Field {
    /// The field holds text only (not a JSON value of any type).
    pub fn is_text_only(&self) -> bool {
        !matches!(self, Field::Attribute(_))
    }
}

/// Something a contact did, or that happened to their messages, asked about over a period
/// (`read within 30d`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// They wrote in, on any channel.
    Inbound,
    /// A message to them was sent (or got further: delivered, read).
    Sent,
    /// A message to them was delivered (or read).
    Delivered,
    /// A message to them was read.
    Read,
    /// They wrote in after a message was sent to them.
    Replied,
    /// They clicked a tracked link of a message sent to them.
    Clicked,
    /// `event.<name>`: a customer event of that name (`POST /v1/events`) was recorded
    /// for them: a purchase, a conversion.
    Event(String),
}

impl Behaviour {
    /// The behaviour as a filter writes it.
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Behaviour::Inbound => "inbound".into(),
            Behaviour::Sent => "sent".into(),
            Behaviour::Delivered => "delivered".into(),
            Behaviour::Read => "read".into(),
            Behaviour::Replied => "replied".into(),
            Behaviour::Clicked => "clicked".into(),
            Behaviour::Event(name) => format!("event.{name}").into(),
        }
    }

    /// The behaviour `name` spells: `None` when it is no behaviour, `Err` when it is an
    /// `event.` with a name no event can have.
    fn parse(name: &str) -> Option<Result<Behaviour, String>> {
        Some(Ok(match name {
            "inbound" => Behaviour::Inbound,
            "sent" => Behaviour::Sent,
            "delivered" => Behaviour::Delivered,
            "read" => Behaviour::Read,
            "replied" => Behaviour::Replied,
            "clicked" => Behaviour::Clicked,
            _ => {
                let event = name.strip_prefix("event.")?;
                return Some(event_name(event).map(|n| Behaviour::Event(n.to_owned())));
            }
        }))
    }

    /// The names a filter may use, for error messages.
    pub const NAMES: &'static str =
        "inbound, sent, delivered, read, replied, clicked, event.<name>";
}

/// An event's name as `POST /v1/events` takes it.
fn event_name(name: &str) -> Result<&str, String> {
    if name.is_empty() {
        return Err("`event.` needs an event's name: `event.purchase within 30d`".into());
    }
    crate::journey::check_name(name)?;
    Ok(name)
}

/// A literal of a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Number(f64),
    Bool(bool),
}

/// How a field is compared with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Comparison {
    /// The SQL operator (both backends spell them the same way).
    pub fn sql(self) -> &'static str {
        match self {
            Comparison::Equal => "=",
            Comparison::NotEqual => "<>",
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
        }
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `field op value`. `!=` is kept as [`Comparison::NotEqual`] but means `not =`.
    Compare {
        field: Field,
        op: Comparison,
        value: Value,
    },
    /// `field in (v1, v2, …)`: equal to one of them.
    In {
        field: Field,
        values: Vec<Value>,
    },
    /// `field contains value`.
    Contains {
        field: Field,
        value: Value,
    },
    /// `field exists`: the contact has a value there (a JSON `null` is none).
    Exists(Field),
    /// `behaviour within 30d`.
    Within {
        behaviour: Behaviour,
        period: SignedDuration,
    },
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

impl Filter {
    /// Parses a filter's text; the error says where it went wrong.
    pub fn parse(text: &str) -> Result<Filter, ParseError> {
        parse::parse(text)
    }
}

/// `attributes.city`, `identity.whatsapp`, `consent.sms.marketing`, `timezone`, `locale`;
/// `Err` says what is wrong with the name.
fn field_of(name: &str) -> Result<Field, String> {
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        ["timezone"] => Ok(Field::Timezone),
        ["locale"] => Ok(Field::Locale),
        ["attributes", path @ ..] if !path.is_empty() && path.iter().all(|p| !p.is_empty()) => Ok(
            Field::Attribute(path.iter().map(|p| (*p).to_owned()).collect()),
        ),
        ["attributes", ..] => Err("`attributes` needs a name: `attributes.city`".into()),
        ["identity", channel] => channel
            .parse::<ChannelKind>()
            .map(Field::Identity)
            .map_err(|_| format!("`{channel}` is not a channel kind (sms, whatsapp, email…)")),
        ["identity", ..] => Err("an identity is `identity.<channel>`: `identity.whatsapp`".into()),
        ["consent", channel, purpose] => {
            let channel = channel.parse::<ChannelKind>().map_err(|_| {
                format!("`{channel}` is not a channel kind (sms, whatsapp, email…)")
            })?;
            let purpose = Purpose::parse(purpose).map_err(|e| e.to_string())?;
            Ok(Field::Consent { channel, purpose })
        }
        ["consent", ..] => {
            Err("a consent is `consent.<channel>.<purpose>`: `consent.sms.marketing`".into())
        }
        _ => Err(format!(
            "unknown field `{name}`: a filter reads `attributes.<name>`, `identity.<channel>`, \
             `consent.<channel>.<purpose>`, `timezone`, `locale`, or a behaviour with `within` \
             ({})",
            Behaviour::NAMES
        )),
    }
}
