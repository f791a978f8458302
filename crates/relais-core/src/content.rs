//! What a message says, what a channel can show, and how rich content degrades by rule.
//!
//! The API's `content` is one JSON object whose key says what it is:
//! `{"text": …}`, `{"media": {…}}`, `{"card": {…}}`, `{"carousel": […]}`,
//! `{"location": {…}}`, `{"form": {…}}` or `{"template": "name", "variables": {…}}`, optionally with
//! `buttons` (on text and media) and `quick_replies`. Unknown keys are refused, so a typo
//! never silently sends something else. `docs/content.md` is the user-facing description.
//!
//! A channel's abilities are data ([`ChannelCapabilities`]); [`degrade`] turns content into
//! what the channel can show by looking only at that data, never at the channel's name.

use crate::channel::ChannelKind;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Bounds that hold on every channel; channel-specific limits are in [`ChannelCapabilities`].
pub mod limits {
    pub const TEXT_CHARS: usize = 20_000;
    pub const CAPTION_CHARS: usize = 4_096;
    pub const TITLE_CHARS: usize = 200;
    pub const BUTTON_TITLE_CHARS: usize = 64;
    pub const PAYLOAD_CHARS: usize = 1_000;
    pub const URL_CHARS: usize = 2_048;
    pub const BUTTONS: usize = 10;
    pub const QUICK_REPLIES: usize = 13;
    pub const CAROUSEL_CARDS: usize = 10;
    pub const TEMPLATE_NAME_CHARS: usize = 512;
    pub const FORM_FIELDS: usize = 10;
    pub const FORM_FIELD_NAME_CHARS: usize = 64;
    pub const FORM_OPTIONS: usize = 20;
}

/// The content of one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ContentWire", into = "ContentWire")]
pub struct Content {
    pub body: Body,
    /// Buttons under a text or a media.
    pub buttons: Vec<Button>,
    /// Short answers offered under the message; they disappear once one is tapped.
    pub quick_replies: Vec<QuickReply>,
}

/// The main part of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Text(String),
    Media(Media),
    Card(Card),
    Carousel(Vec<Card>),
    Location(Location),
    /// A few fields filled in and sent at once (an appointment to confirm, a delivery
    /// address); the answer comes back as one message whose payload holds the values.
    Form(Form),
    /// A template stored by the tenant or approved by the provider (WhatsApp), sent by name.
    Template(TemplateRef),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Form {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub fields: Vec<FormField>,
    /// The submit button's label (the widget's "Send" in its language when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormField {
    /// The key of the value in the answer: letters, digits and `_`.
    pub name: String,
    pub label: String,
    #[serde(default)]
    pub kind: FormFieldKind,
    /// The choices of a `choice` field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default = "required_by_default")]
    pub required: bool,
}

impl Form {
    /// The form on a channel without forms: its title and text, then one line per field
    /// to answer (`- Date`, a choice's options in brackets, `(optional)`), so that the
    /// customer can answer in words and an agent or a flow reads them.
    pub fn as_text(&self) -> String {
        let fields = self.fields.iter().map(|field| {
            let choices = if field.options.is_empty() {
                String::new()
            } else {
                format!(" [{}]", field.options.join(" / "))
            };
            let optional = if field.required { "" } else { " (optional)" };
            format!("- {}{choices}{optional}", field.label)
        });
        join_lines(
            [self.title.clone()]
                .into_iter()
                .chain(self.text.clone())
                .chain(fields),
        )
    }
}

fn required_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormFieldKind {
    #[default]
    Text,
    Email,
    Phone,
    Number,
    Date,
    Time,
    Choice,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Media {
    pub url: String,
    /// The MIME type, e.g. `image/jpeg`, `application/pdf`, `audio/ogg; codecs=opus`.
    pub mime_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// The name shown for a document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// What kind of media a MIME type names, as channels distinguish them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Document,
}

impl Media {
    pub fn kind(&self) -> MediaKind {
        let essence = self
            .mime_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.split('/').next() {
            Some("image") => MediaKind::Image,
            Some("video") => MediaKind::Video,
            Some("audio") => MediaKind::Audio,
            _ => MediaKind::Document,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Button {
    /// Sends `payload` (or the title) back as the person's answer.
    Reply {
        title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<String>,
    },
    /// Opens a web page.
    Url { title: String, url: String },
    /// Calls a phone number (E.164).
    Call { title: String, phone: String },
}

impl Button {
    pub fn title(&self) -> &str {
        match self {
            Button::Reply { title, .. }
            | Button::Url { title, .. }
            | Button::Call { title, .. } => title,
        }
    }
}

/// A short answer. Written as a string (`"Yes"`) or `{"title": "Yes", "payload": "YES"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuickReply {
    pub title: String,
    pub payload: Option<String>,
}

impl QuickReply {
    /// What comes back when the person picks it.
    pub fn effective_payload(&self) -> &str {
        self.payload.as_deref().unwrap_or(&self.title)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Button>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateRef {
    pub name: String,
    /// The template's language (e.g. `fr`), for providers that store one per language.
    pub language: Option<String>,
    pub variables: serde_json::Map<String, serde_json::Value>,
    /// What to send instead on a channel without provider templates: the tenant's stored
    /// template rendered for the recipient, set by the engine when it resolves one (see
    /// [`ChannelCapabilities::provider_templates`]).
    pub fallback: Option<Box<Content>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error(
        "content needs one of `text`, `media`, `card`, `carousel`, `location`, `form` or `template`"
    )]
    NoBody,
    #[error("content has both `{first}` and `{second}`; {hint}")]
    Conflict {
        first: &'static str,
        second: &'static str,
        hint: &'static str,
    },
    #[error("`{field}` is only allowed with {allowed}")]
    NotAllowedHere {
        field: &'static str,
        allowed: &'static str,
    },
    #[error("`{field}` must not be empty")]
    Empty { field: String },
    #[error("`{field}` is too long: {len} characters, at most {max}")]
    TooLong {
        field: String,
        len: usize,
        max: usize,
    },
    #[error("`{field}` has {len} items, at most {max}")]
    TooMany {
        field: String,
        len: usize,
        max: usize,
    },
    #[error(
        "`{field}`: `{url}` is not a usable link; it must start with https:// or http://, name a host, and contain no spaces"
    )]
    BadUrl { field: String, url: String },
    #[error(
        "`{field}`: `{phone}` is not a phone number in international form, such as +33612345678"
    )]
    BadPhone { field: String, phone: String },
    #[error("`{field}`: `{mime_type}` is not a MIME type such as image/jpeg or application/pdf")]
    BadMimeType { field: String, mime_type: String },
    #[error("`{field}`: {value} is out of range; it must lie within {min} and {max}")]
    OutOfRange {
        field: &'static str,
        value: String,
        min: i32,
        max: i32,
    },
    #[error("template name `{0}` may only contain letters, digits, `_`, `-` and `.`")]
    TemplateName(String),
    #[error("`{field}`: {detail}")]
    BadFormField { field: String, detail: &'static str },
    #[error("the text is {actual} for this channel, which allows {allowed}")]
    TooLongForChannel { actual: String, allowed: String },
}

impl Content {
    /// Plain text.
    pub fn text(text: impl Into<String>) -> Content {
        Content {
            body: Body::Text(text.into()),
            buttons: Vec::new(),
            quick_replies: Vec::new(),
        }
    }

    /// Checks everything that must hold on any channel.
    pub fn validate(&self) -> Result<(), ContentError> {
        let text_or_media = matches!(self.body, Body::Text(_) | Body::Media(_));
        if !self.buttons.is_empty() && !text_or_media {
            return Err(ContentError::NotAllowedHere {
                field: "buttons",
                allowed: "`text` or `media` (a card carries its own buttons)",
            });
        }
        if !self.quick_replies.is_empty() && matches!(self.body, Body::Template(_)) {
            return Err(ContentError::NotAllowedHere {
                field: "quick_replies",
                allowed: "content other than a template",
            });
        }
        match &self.body {
            Body::Text(text) => check_text("text", text, limits::TEXT_CHARS)?,
            Body::Media(media) => check_media("media", media)?,
            Body::Card(card) => check_card("card", card)?,
            Body::Carousel(cards) => {
                if cards.is_empty() {
                    return Err(ContentError::Empty {
                        field: "carousel".into(),
                    });
                }
                check_count("carousel", cards.len(), limits::CAROUSEL_CARDS)?;
                for (index, card) in cards.iter().enumerate() {
                    check_card(&format!("carousel[{index}]"), card)?;
                }
            }
            Body::Location(location) => check_location(location)?,
            Body::Form(form) => check_form(form)?,
            Body::Template(template) => check_template(template)?,
        }
        check_buttons("buttons", &self.buttons)?;
        check_count(
            "quick_replies",
            self.quick_replies.len(),
            limits::QUICK_REPLIES,
        )?;
        for (index, reply) in self.quick_replies.iter().enumerate() {
            let field = format!("quick_replies[{index}]");
            check_text(
                &format!("{field}.title"),
                &reply.title,
                limits::BUTTON_TITLE_CHARS,
            )?;
            if let Some(payload) = &reply.payload {
                check_text(&format!("{field}.payload"), payload, limits::PAYLOAD_CHARS)?;
            }
        }
        Ok(())
    }

    /// Visits every field a person reads or a template may personalise (texts, titles,
    /// captions, links, payloads, phone numbers), with its path (e.g. `buttons[0].url`).
    pub fn try_for_each_text_mut<E>(
        &mut self,
        mut visit: impl FnMut(&str, &mut String) -> Result<(), E>,
    ) -> Result<(), E> {
        let visit = &mut visit;
        match &mut self.body {
            Body::Text(text) => visit("text", text)?,
            Body::Media(media) => media_texts("media", media, visit)?,
            Body::Card(card) => card_texts("card", card, visit)?,
            Body::Carousel(cards) => {
                for (index, card) in cards.iter_mut().enumerate() {
                    card_texts(&format!("carousel[{index}]"), card, visit)?;
                }
            }
            Body::Location(location) => {
                if let Some(name) = &mut location.name {
                    visit("location.name", name)?;
                }
                if let Some(address) = &mut location.address {
                    visit("location.address", address)?;
                }
            }
            Body::Form(form) => {
                visit("form.title", &mut form.title)?;
                if let Some(text) = &mut form.text {
                    visit("form.text", text)?;
                }
                for (index, field) in form.fields.iter_mut().enumerate() {
                    visit(&format!("form.fields[{index}].label"), &mut field.label)?;
                    for (option_index, option) in field.options.iter_mut().enumerate() {
                        visit(
                            &format!("form.fields[{index}].options[{option_index}]"),
                            option,
                        )?;
                    }
                }
                if let Some(submit) = &mut form.submit {
                    visit("form.submit", submit)?;
                }
            }
            // Variables of a stored template are values, filled in by the template itself.
            Body::Template(_) => {}
        }
        button_texts("buttons", &mut self.buttons, visit)?;
        for (index, reply) in self.quick_replies.iter_mut().enumerate() {
            visit(&format!("quick_replies[{index}].title"), &mut reply.title)?;
            if let Some(payload) = &mut reply.payload {
                visit(&format!("quick_replies[{index}].payload"), payload)?;
            }
        }
        Ok(())
    }
}

type TextVisitor<'v, E> = dyn FnMut(&str, &mut String) -> Result<(), E> + 'v;

fn media_texts<E>(path: &str, media: &mut Media, visit: &mut TextVisitor<'_, E>) -> Result<(), E> {
    visit(&format!("{path}.url"), &mut media.url)?;
    if let Some(caption) = &mut media.caption {
        visit(&format!("{path}.caption"), caption)?;
    }
    if let Some(filename) = &mut media.filename {
        visit(&format!("{path}.filename"), filename)?;
    }
    Ok(())
}

fn card_texts<E>(path: &str, card: &mut Card, visit: &mut TextVisitor<'_, E>) -> Result<(), E> {
    visit(&format!("{path}.title"), &mut card.title)?;
    if let Some(text) = &mut card.text {
        visit(&format!("{path}.text"), text)?;
    }
    if let Some(media) = &mut card.media {
        media_texts(&format!("{path}.media"), media, visit)?;
    }
    button_texts(&format!("{path}.buttons"), &mut card.buttons, visit)
}

fn button_texts<E>(
    path: &str,
    buttons: &mut [Button],
    visit: &mut TextVisitor<'_, E>,
) -> Result<(), E> {
    for (index, button) in buttons.iter_mut().enumerate() {
        let field = format!("{path}[{index}]");
        match button {
            Button::Reply { title, payload } => {
                visit(&format!("{field}.title"), title)?;
                if let Some(payload) = payload {
                    visit(&format!("{field}.payload"), payload)?;
                }
            }
            Button::Url { title, url } => {
                visit(&format!("{field}.title"), title)?;
                visit(&format!("{field}.url"), url)?;
            }
            Button::Call { title, phone } => {
                visit(&format!("{field}.title"), title)?;
                visit(&format!("{field}.phone"), phone)?;
            }
        }
    }
    Ok(())
}

fn check_text(field: &str, text: &str, max: usize) -> Result<(), ContentError> {
    if text.trim().is_empty() {
        return Err(ContentError::Empty {
            field: field.to_owned(),
        });
    }
    let len = text.chars().count();
    if len > max {
        return Err(ContentError::TooLong {
            field: field.to_owned(),
            len,
            max,
        });
    }
    Ok(())
}

fn check_count(field: &str, len: usize, max: usize) -> Result<(), ContentError> {
    if len > max {
        Err(ContentError::TooMany {
            field: field.to_owned(),
            len,
            max,
        })
    } else {
        Ok(())
    }
}

/// A link a person can safely open: http(s), a host, no credentials (which phishing uses
/// to disguise the real host, as in `https://bank.example@evil.example`), no spaces.
fn check_url(field: &str, url: &str) -> Result<(), ContentError> {
    if has_template_syntax(url) {
        // Personalised (`https://shop.example/o/{{ order_id }}`): checked once rendered.
        return Ok(());
    }
    let bad = || ContentError::BadUrl {
        field: field.to_owned(),
        url: url.to_owned(),
    };
    if url.chars().count() > limits::URL_CHARS
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                host
            } else {
                authority
            }
        });
    let host_ok = !host.is_empty()
        && !authority.contains('@')
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '[' | ']' | ':'));
    if host_ok { Ok(()) } else { Err(bad()) }
}

fn check_phone(field: &str, phone: &str) -> Result<(), ContentError> {
    if has_template_syntax(phone) {
        return Ok(());
    }
    let digits = phone.strip_prefix('+').unwrap_or_default();
    let ok = (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(())
    } else {
        Err(ContentError::BadPhone {
            field: field.to_owned(),
            phone: phone.to_owned(),
        })
    }
}

/// Whether a field holds template syntax, to be personalised before it is sent.
pub fn has_template_syntax(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

fn check_mime_type(field: &str, mime_type: &str) -> Result<(), ContentError> {
    let essence = mime_type.split(';').next().unwrap_or_default().trim();
    let token = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
    };
    match essence.split_once('/') {
        Some((kind, subtype)) if token(kind) && token(subtype) => Ok(()),
        _ => Err(ContentError::BadMimeType {
            field: field.to_owned(),
            mime_type: mime_type.to_owned(),
        }),
    }
}

fn check_media(path: &str, media: &Media) -> Result<(), ContentError> {
    check_url(&format!("{path}.url"), &media.url)?;
    check_mime_type(&format!("{path}.mime_type"), &media.mime_type)?;
    if let Some(caption) = &media.caption {
        check_text(&format!("{path}.caption"), caption, limits::CAPTION_CHARS)?;
    }
    if let Some(filename) = &media.filename {
        check_text(&format!("{path}.filename"), filename, 255)?;
    }
    Ok(())
}

fn check_card(path: &str, card: &Card) -> Result<(), ContentError> {
    check_text(&format!("{path}.title"), &card.title, limits::TITLE_CHARS)?;
    if let Some(text) = &card.text {
        check_text(&format!("{path}.text"), text, limits::CAPTION_CHARS)?;
    }
    if let Some(media) = &card.media {
        check_media(&format!("{path}.media"), media)?;
    }
    check_buttons(&format!("{path}.buttons"), &card.buttons)
}

fn check_buttons(path: &str, buttons: &[Button]) -> Result<(), ContentError> {
    check_count(path, buttons.len(), limits::BUTTONS)?;
    for (index, button) in buttons.iter().enumerate() {
        let field = format!("{path}[{index}]");
        check_text(
            &format!("{field}.title"),
            button.title(),
            limits::BUTTON_TITLE_CHARS,
        )?;
        match button {
            Button::Reply {
                payload: Some(payload),
                ..
            } => check_text(&format!("{field}.payload"), payload, limits::PAYLOAD_CHARS)?,
            Button::Reply { payload: None, .. } => {}
            Button::Url { url, .. } => check_url(&format!("{field}.url"), url)?,
            Button::Call { phone, .. } => check_phone(&format!("{field}.phone"), phone)?,
        }
    }
    Ok(())
}

fn check_location(location: &Location) -> Result<(), ContentError> {
    let in_range = |field: &'static str, value: f64, bound: i32| {
        if value.is_finite() && (-f64::from(bound)..=f64::from(bound)).contains(&value) {
            Ok(())
        } else {
            Err(ContentError::OutOfRange {
                field,
                value: value.to_string(),
                min: -bound,
                max: bound,
            })
        }
    };
    in_range("location.lat", location.lat, 90)?;
    in_range("location.lon", location.lon, 180)?;
    if let Some(name) = &location.name {
        check_text("location.name", name, limits::TITLE_CHARS)?;
    }
    if let Some(address) = &location.address {
        check_text("location.address", address, limits::CAPTION_CHARS)?;
    }
    Ok(())
}

fn check_form(form: &Form) -> Result<(), ContentError> {
    check_text("form.title", &form.title, limits::TITLE_CHARS)?;
    if let Some(text) = &form.text {
        check_text("form.text", text, limits::CAPTION_CHARS)?;
    }
    if let Some(submit) = &form.submit {
        check_text("form.submit", submit, limits::BUTTON_TITLE_CHARS)?;
    }
    if form.fields.is_empty() {
        return Err(ContentError::Empty {
            field: "form.fields".into(),
        });
    }
    check_count("form.fields", form.fields.len(), limits::FORM_FIELDS)?;
    for (index, field) in form.fields.iter().enumerate() {
        let path = format!("form.fields[{index}]");
        let bad = |detail| ContentError::BadFormField {
            field: format!("{path}.name"),
            detail,
        };
        let name_ok = !field.name.is_empty()
            && field.name.len() <= limits::FORM_FIELD_NAME_CHARS
            && field
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !name_ok {
            return Err(bad("a name is 1 to 64 letters, digits or `_`"));
        }
        if form.fields[..index].iter().any(|f| f.name == field.name) {
            return Err(bad("another field has this name"));
        }
        check_text(&format!("{path}.label"), &field.label, limits::TITLE_CHARS)?;
        match (field.kind, field.options.is_empty()) {
            (FormFieldKind::Choice, true) => {
                return Err(ContentError::Empty {
                    field: format!("{path}.options"),
                });
            }
            (FormFieldKind::Choice, false) => {}
            (_, false) => {
                return Err(ContentError::NotAllowedHere {
                    field: "options",
                    allowed: "a field of kind `choice`",
                });
            }
            (_, true) => {}
        }
        check_count(
            &format!("{path}.options"),
            field.options.len(),
            limits::FORM_OPTIONS,
        )?;
        for (option_index, option) in field.options.iter().enumerate() {
            check_text(
                &format!("{path}.options[{option_index}]"),
                option,
                limits::BUTTON_TITLE_CHARS,
            )?;
        }
    }
    Ok(())
}

fn check_template(template: &TemplateRef) -> Result<(), ContentError> {
    let name = &template.name;
    if name.is_empty() {
        return Err(ContentError::Empty {
            field: "template".into(),
        });
    }
    let ok = name.chars().count() <= limits::TEMPLATE_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        return Err(ContentError::TemplateName(name.clone()));
    }
    if let Some(language) = &template.language {
        check_text("language", language, 35)?;
    }
    if let Some(fallback) = &template.fallback {
        if matches!(fallback.body, Body::Template(_)) {
            return Err(ContentError::NotAllowedHere {
                field: "fallback.template",
                allowed: "content other than a template inside `fallback`",
            });
        }
        fallback.validate()?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The JSON shape.

/// The flat JSON object of the API; exactly one body key may be present.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContentWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media: Option<Media>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    card: Option<Card>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    carousel: Option<Vec<Card>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    form: Option<Form>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variables: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fallback: Option<Box<Content>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    buttons: Vec<Button>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    quick_replies: Vec<QuickReply>,
}

impl TryFrom<ContentWire> for Content {
    type Error = ContentError;
    fn try_from(wire: ContentWire) -> Result<Self, Self::Error> {
        let present: Vec<&'static str> = [
            ("text", wire.text.is_some()),
            ("media", wire.media.is_some()),
            ("card", wire.card.is_some()),
            ("carousel", wire.carousel.is_some()),
            ("location", wire.location.is_some()),
            ("form", wire.form.is_some()),
            ("template", wire.template.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, here)| here.then_some(name))
        .collect();
        if let [first, second, ..] = present[..] {
            let hint = match (first, second) {
                ("text", "media") => "put the text in `media.caption`",
                ("text", "card") => "put the text in `card.text`",
                ("text", "template") => {
                    "a template brings its own text; pass values in `variables`"
                }
                _ => "send them as separate messages",
            };
            return Err(ContentError::Conflict {
                first,
                second,
                hint,
            });
        }
        if wire.template.is_none()
            && (wire.variables.is_some() || wire.language.is_some() || wire.fallback.is_some())
        {
            let field = if wire.variables.is_some() {
                "variables"
            } else if wire.language.is_some() {
                "language"
            } else {
                "fallback"
            };
            return Err(ContentError::NotAllowedHere {
                field,
                allowed: "`template`",
            });
        }
        let body = if let Some(text) = wire.text {
            Body::Text(text)
        } else if let Some(media) = wire.media {
            Body::Media(media)
        } else if let Some(card) = wire.card {
            Body::Card(card)
        } else if let Some(cards) = wire.carousel {
            Body::Carousel(cards)
        } else if let Some(location) = wire.location {
            Body::Location(location)
        } else if let Some(form) = wire.form {
            Body::Form(form)
        } else if let Some(name) = wire.template {
            Body::Template(TemplateRef {
                name,
                language: wire.language,
                variables: wire.variables.unwrap_or_default(),
                fallback: wire.fallback,
            })
        } else {
            return Err(ContentError::NoBody);
        };
        let content = Content {
            body,
            buttons: wire.buttons,
            quick_replies: wire.quick_replies,
        };
        content.validate()?;
        Ok(content)
    }
}

impl From<Content> for ContentWire {
    fn from(content: Content) -> Self {
        let mut wire = ContentWire {
            text: None,
            media: None,
            card: None,
            carousel: None,
            location: None,
            form: None,
            template: None,
            language: None,
            variables: None,
            fallback: None,
            buttons: content.buttons,
            quick_replies: content.quick_replies,
        };
        match content.body {
            Body::Text(text) => wire.text = Some(text),
            Body::Media(media) => wire.media = Some(media),
            Body::Card(card) => wire.card = Some(card),
            Body::Carousel(cards) => wire.carousel = Some(cards),
            Body::Location(location) => wire.location = Some(location),
            Body::Form(form) => wire.form = Some(form),
            Body::Template(template) => {
                wire.template = Some(template.name);
                wire.language = template.language;
                wire.variables = (!template.variables.is_empty()).then_some(template.variables);
                wire.fallback = template.fallback;
            }
        }
        wire
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuickReplyObject {
    title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
}

impl Serialize for QuickReply {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.payload {
            None => serializer.serialize_str(&self.title),
            Some(payload) => QuickReplyObject {
                title: self.title.clone(),
                payload: Some(payload.clone()),
            }
            .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for QuickReply {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QuickReplyVisitor;
        impl<'de> Visitor<'de> for QuickReplyVisitor {
            type Value = QuickReply;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quick reply: a string, or {\"title\": …, \"payload\": …}")
            }
            fn visit_str<E: de::Error>(self, title: &str) -> Result<QuickReply, E> {
                Ok(QuickReply {
                    title: title.to_owned(),
                    payload: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<QuickReply, A::Error> {
                let object =
                    QuickReplyObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(QuickReply {
                    title: object.title,
                    payload: object.payload,
                })
            }
        }
        deserializer.deserialize_any(QuickReplyVisitor)
    }
}

// ---------------------------------------------------------------------------------------
// Channel capabilities, as data.

/// How much text a channel takes in one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextLimit {
    Characters(u32),
    /// SMS: a number of concatenated segments (how many characters fit depends on the
    /// encoding, which the SMS module computes).
    SmsSegments(u8),
    Unlimited,
}

/// Captions under media: a caption the channel cannot carry (none at all, or one longer
/// than its limit) turns the media into text with the caption and the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Captions {
    None,
    /// At most this many characters (Telegram: 1024 under a photo, a video, a document).
    UpTo(u16),
    /// As long as the channel's texts.
    Unlimited,
}

impl Captions {
    /// Whether `caption` goes under the media as it is.
    pub fn carries(self, caption: &str) -> bool {
        match self {
            Captions::None => false,
            Captions::UpTo(max) => caption.chars().count() <= usize::from(max),
            Captions::Unlimited => true,
        }
    }

    pub fn any(self) -> bool {
        self != Captions::None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaKinds {
    pub image: bool,
    pub video: bool,
    pub audio: bool,
    pub document: bool,
}

impl MediaKinds {
    pub const NONE: MediaKinds = MediaKinds {
        image: false,
        video: false,
        audio: false,
        document: false,
    };
    pub const ALL: MediaKinds = MediaKinds {
        image: true,
        video: true,
        audio: true,
        document: true,
    };

    pub fn supports(&self, kind: MediaKind) -> bool {
        match kind {
            MediaKind::Image => self.image,
            MediaKind::Video => self.video,
            MediaKind::Audio => self.audio,
            MediaKind::Document => self.document,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ButtonSupport {
    /// Buttons in one message or card; 0 when the channel has none.
    pub max: u8,
    pub reply: bool,
    pub url: bool,
    pub call: bool,
    /// Longer titles are not cut: the buttons become text instead.
    pub max_title_chars: u16,
}

impl ButtonSupport {
    pub const NONE: ButtonSupport = ButtonSupport {
        max: 0,
        reply: false,
        url: false,
        call: false,
        max_title_chars: 0,
    };

    fn shows(&self, buttons: &[Button]) -> bool {
        buttons.len() <= usize::from(self.max)
            && buttons.iter().all(|button| {
                let kind_ok = match button {
                    Button::Reply { .. } => self.reply,
                    Button::Url { .. } => self.url,
                    Button::Call { .. } => self.call,
                };
                kind_ok && button.title().chars().count() <= usize::from(self.max_title_chars)
            })
    }
}

/// How long after the person last wrote Meta lets a human agent answer with the
/// `HUMAN_AGENT` tag on Messenger and Instagram: 7 days.
pub const HUMAN_AGENT_WINDOW_HOURS: u16 = 7 * 24;

/// What a channel can show and report. Adapters publish one; the engine never asks which
/// channel it is, only what it can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelCapabilities {
    pub text_limit: TextLimit,
    pub buttons: ButtonSupport,
    /// Quick replies in one message; 0 when the channel has none.
    pub quick_replies_max: u8,
    pub cards: bool,
    /// Cards in one carousel; 0 when the channel has no carousel.
    pub carousel_max_cards: u8,
    pub media: MediaKinds,
    /// Whether media carries a caption in the same message, and how long one may be.
    pub media_caption: Captions,
    pub location: bool,
    /// Shows a form whose values come back in one message (the web chat widget).
    pub forms: bool,
    pub read_receipts: bool,
    /// Free-form messages are allowed only this long after the person last wrote (WhatsApp,
    /// Messenger); outside it, only provider templates.
    pub service_window_hours: Option<u16>,
    /// A human agent's reply may still go this long after the person last wrote, past
    /// `service_window_hours` (Messenger and Instagram's `HUMAN_AGENT` tag: 7 days), when
    /// the configured channel allows it.
    pub human_agent_window_hours: Option<u16>,
    /// The provider keeps approved templates that are sent by name and language (WhatsApp):
    /// a template body goes out as it is. Elsewhere a template body is sent as the content
    /// it was resolved to (its `fallback`).
    pub provider_templates: bool,
}

impl ChannelCapabilities {
    pub const SMS: ChannelCapabilities = ChannelCapabilities {
        text_limit: TextLimit::SmsSegments(10),
        buttons: ButtonSupport::NONE,
        quick_replies_max: 0,
        cards: false,
        carousel_max_cards: 0,
        media: MediaKinds::NONE,
        media_caption: Captions::None,
        location: false,
        forms: false,
        read_receipts: false,
        service_window_hours: None,
        human_agent_window_hours: None,
        provider_templates: false,
    };

    /// WhatsApp Cloud API session messages: up to 3 reply buttons of 20 characters; link
    /// and call buttons and carousels exist only in approved templates.
    pub const WHATSAPP: ChannelCapabilities = ChannelCapabilities {
        text_limit: TextLimit::Characters(4096),
        buttons: ButtonSupport {
            max: 3,
            reply: true,
            url: false,
            call: false,
            max_title_chars: 20,
        },
        quick_replies_max: 0,
        cards: false,
        carousel_max_cards: 0,
        media: MediaKinds::ALL,
        media_caption: Captions::Unlimited,
        location: true,
        forms: false,
        read_receipts: true,
        service_window_hours: Some(24),
        human_agent_window_hours: None,
        provider_templates: true,
    };

    /// Telegram Bot API: inline keyboards (callback and link buttons), reply keyboards.
    pub const TELEGRAM: ChannelCapabilities = ChannelCapabilities {
        text_limit: TextLimit::Characters(4096),
        buttons: ButtonSupport {
            max: 10,
            reply: true,
            url: true,
            call: false,
            max_title_chars: 64,
        },
        quick_replies_max: 12,
        cards: false,
        carousel_max_cards: 0,
        media: MediaKinds::ALL,
        // Bot API: a caption is 0 to 1024 characters after entity parsing.
        media_caption: Captions::UpTo(1024),
        location: true,
        forms: false,
        read_receipts: false,
        service_window_hours: None,
        human_agent_window_hours: None,
        provider_templates: false,
    };

    /// Messenger: button and generic templates, quick replies; attachments have no caption.
    pub const MESSENGER: ChannelCapabilities = ChannelCapabilities {
        text_limit: TextLimit::Characters(2000),
        buttons: ButtonSupport {
            max: 3,
            reply: true,
            url: true,
            call: true,
            max_title_chars: 20,
        },
        quick_replies_max: 13,
        cards: true,
        carousel_max_cards: 10,
        media: MediaKinds::ALL,
        media_caption: Captions::None,
        location: false,
        forms: false,
        read_receipts: true,
        service_window_hours: Some(24),
        human_agent_window_hours: Some(HUMAN_AGENT_WINDOW_HOURS),
        provider_templates: false,
    };

    pub const INSTAGRAM: ChannelCapabilities = ChannelCapabilities {
        text_limit: TextLimit::Characters(1000),
        buttons: ButtonSupport {
            max: 3,
            reply: true,
            url: true,
            call: false,
            max_title_chars: 20,
        },
        quick_replies_max: 13,
        cards: true,
        carousel_max_cards: 10,
        media: MediaKinds {
            image: true,
            video: true,
            audio: true,
            document: false,
        },
        media_caption: Captions::None,
        location: false,
        forms: false,
        read_receipts: true,
        service_window_hours: Some(24),
        human_agent_window_hours: Some(HUMAN_AGENT_WINDOW_HOURS),
        provider_templates: false,
    };

    /// RCS Business Messaging: rich cards, carousels, suggested replies and actions.
    pub const RCS: ChannelCapabilities = ChannelCapabilities {
        text_limit: TextLimit::Characters(3072),
        buttons: ButtonSupport {
            max: 4,
            reply: true,
            url: true,
            call: true,
            max_title_chars: 25,
        },
        quick_replies_max: 11,
        cards: true,
        carousel_max_cards: 10,
        media: MediaKinds::ALL,
        media_caption: Captions::None,
        location: false,
        forms: false,
        read_receipts: true,
        service_window_hours: None,
        human_agent_window_hours: None,
        provider_templates: false,
    };

    pub const VIBER: ChannelCapabilities = ChannelCapabilities {
        text_limit: TextLimit::Characters(7000),
        // A keyboard under the message carries reply and link keys; 3 buttons keep a card
        // with its image (3 rows) and text (1 row) inside rich media's 7 rows.
        buttons: ButtonSupport {
            max: 3,
            reply: true,
            url: true,
            call: false,
            max_title_chars: 30,
        },
        quick_replies_max: 12,
        cards: true,
        carousel_max_cards: 6,
        // A video message must state its size and duration, which a URL does not give:
        // videos go as links.
        media: MediaKinds {
            image: true,
            video: false,
            audio: false,
            document: true,
        },
        media_caption: Captions::Unlimited,
        location: true,
        forms: false,
        read_receipts: true,
        service_window_hours: None,
        human_agent_window_hours: None,
        provider_templates: false,
    };

    /// Email: HTML links and attachments; no way to answer with a tap.
    pub const EMAIL: ChannelCapabilities = ChannelCapabilities {
        text_limit: TextLimit::Unlimited,
        buttons: ButtonSupport {
            max: 10,
            reply: false,
            url: true,
            call: true,
            max_title_chars: 64,
        },
        quick_replies_max: 0,
        cards: true,
        carousel_max_cards: 0,
        media: MediaKinds::ALL,
        media_caption: Captions::Unlimited,
        location: false,
        forms: false,
        read_receipts: false,
        service_window_hours: None,
        human_agent_window_hours: None,
        provider_templates: false,
    };

    /// The embeddable web chat widget: everything.
    pub const WEBCHAT: ChannelCapabilities = ChannelCapabilities {
        text_limit: TextLimit::Characters(10_000),
        buttons: ButtonSupport {
            max: 10,
            reply: true,
            url: true,
            call: true,
            max_title_chars: 64,
        },
        quick_replies_max: 13,
        cards: true,
        carousel_max_cards: 10,
        media: MediaKinds::ALL,
        media_caption: Captions::Unlimited,
        location: true,
        forms: true,
        read_receipts: true,
        service_window_hours: None,
        human_agent_window_hours: None,
        provider_templates: false,
    };

    /// Web Push notifications: a short text, an image, up to two action links.
    pub const WEBPUSH: ChannelCapabilities = ChannelCapabilities {
        text_limit: TextLimit::Characters(1000),
        buttons: ButtonSupport {
            max: 2,
            reply: false,
            url: true,
            call: false,
            max_title_chars: 32,
        },
        quick_replies_max: 0,
        cards: false,
        carousel_max_cards: 0,
        media: MediaKinds {
            image: true,
            video: false,
            audio: false,
            document: false,
        },
        media_caption: Captions::Unlimited,
        location: false,
        forms: false,
        read_receipts: false,
        service_window_hours: None,
        human_agent_window_hours: None,
        provider_templates: false,
    };

    /// Mobile push (FCM, APNs): action buttons need app-side categories, so none here.
    pub const MOBILE_PUSH: ChannelCapabilities = ChannelCapabilities {
        text_limit: TextLimit::Characters(1000),
        buttons: ButtonSupport::NONE,
        quick_replies_max: 0,
        cards: false,
        carousel_max_cards: 0,
        media: MediaKinds {
            image: true,
            video: false,
            audio: false,
            document: false,
        },
        media_caption: Captions::Unlimited,
        location: false,
        forms: false,
        read_receipts: false,
        service_window_hours: None,
        human_agent_window_hours: None,
        provider_templates: false,
    };

    /// The `sim` sandbox phone: a full smartphone app, so every kind of content can be
    /// tried. Use the SMS channel against the SMSC simulator to see SMS degradation.
    pub const SIM: ChannelCapabilities = ChannelCapabilities {
        text_limit: TextLimit::Characters(10_000),
        buttons: ButtonSupport {
            max: 10,
            reply: true,
            url: true,
            call: true,
            max_title_chars: 64,
        },
        quick_replies_max: 13,
        cards: true,
        carousel_max_cards: 10,
        media: MediaKinds::ALL,
        media_caption: Captions::Unlimited,
        location: true,
        forms: false,
        read_receipts: true,
        service_window_hours: None,
        human_agent_window_hours: None,
        provider_templates: false,
    };

    /// Whether a free-form message (anything but a provider template) may be sent at
    /// `now`, given when the person last wrote: always, unless the channel has a
    /// customer-service window, which must still be open.
    pub fn allows_free_form(
        &self,
        last_inbound_at: Option<jiff::Timestamp>,
        now: jiff::Timestamp,
    ) -> bool {
        match self.service_window_hours {
            None => true,
            Some(hours) => last_inbound_at.is_some_and(|wrote_at| {
                let closes_at = wrote_at
                    .checked_add(jiff::SignedDuration::from_hours(i64::from(hours)))
                    .unwrap_or(jiff::Timestamp::MAX);
                now < closes_at
            }),
        }
    }

    /// Whether a free-form reply written by a human agent may be sent at `now`: inside
    /// the customer-service window as any message, and after it for as long as the
    /// channel's human-agent window lasts. Only for a channel configured to allow it (see
    /// `human_agent_window_hours`); a bot's or an API's message uses [`Self::allows_free_form`].
    pub fn allows_human_agent_reply(
        &self,
        last_inbound_at: Option<jiff::Timestamp>,
        now: jiff::Timestamp,
    ) -> bool {
        if self.allows_free_form(last_inbound_at, now) {
            return true;
        }
        let Some(hours) = self.human_agent_window_hours else {
            return false;
        };
        last_inbound_at.is_some_and(|wrote_at| {
            let closes_at = wrote_at
                .checked_add(jiff::SignedDuration::from_hours(i64::from(hours)))
                .unwrap_or(jiff::Timestamp::MAX);
            now < closes_at
        })
    }

    /// The built-in profile of a channel kind (an adapter may publish a narrower one).
    pub fn for_kind(kind: ChannelKind) -> &'static ChannelCapabilities {
        match kind {
            ChannelKind::Sms => &Self::SMS,
            ChannelKind::Whatsapp => &Self::WHATSAPP,
            ChannelKind::Rcs => &Self::RCS,
            ChannelKind::Messenger => &Self::MESSENGER,
            ChannelKind::Instagram => &Self::INSTAGRAM,
            ChannelKind::Telegram => &Self::TELEGRAM,
            ChannelKind::Viber => &Self::VIBER,
            ChannelKind::Webpush => &Self::WEBPUSH,
            ChannelKind::Fcm | ChannelKind::Apns => &Self::MOBILE_PUSH,
            ChannelKind::Email => &Self::EMAIL,
            ChannelKind::Webchat => &Self::WEBCHAT,
            ChannelKind::Sim => &Self::SIM,
        }
    }
}

/// Checks the main text against the channel's length limit. `sms_segments` counts the
/// segments of a text (the SMS module knows the encodings); it is called only for SMS-like
/// limits. Text is never cut: an over-long message is an error the sender must fix.
pub fn check_text_length(
    content: &Content,
    capabilities: &ChannelCapabilities,
    sms_segments: impl Fn(&str) -> usize,
) -> Result<(), ContentError> {
    let text = match &content.body {
        Body::Text(text) => text.as_str(),
        Body::Media(media) => media.caption.as_deref().unwrap_or_default(),
        Body::Card(card) => card.text.as_deref().unwrap_or_default(),
        _ => return Ok(()),
    };
    match capabilities.text_limit {
        TextLimit::Unlimited => Ok(()),
        TextLimit::Characters(max) => {
            let len = text.chars().count();
            if len <= max as usize {
                Ok(())
            } else {
                Err(ContentError::TooLongForChannel {
                    actual: format!("{len} characters"),
                    allowed: format!("{max} characters"),
                })
            }
        }
        TextLimit::SmsSegments(max) => {
            let segments = sms_segments(text);
            if segments <= usize::from(max) {
                Ok(())
            } else {
                Err(ContentError::TooLongForChannel {
                    actual: format!("{segments} SMS segments"),
                    allowed: format!("{max} segments"),
                })
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Degradation.

/// A map link for a location on channels that cannot show one: OpenStreetMap, which opens
/// in any browser and tracks no one.
pub fn map_link(lat: f64, lon: f64) -> String {
    format!("https://www.openstreetmap.org/?mlat={lat:.5}&mlon={lon:.5}#map=17/{lat:.5}/{lon:.5}")
}

/// A numbered line of degraded content, and the payload an answer with that number means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberedChoice {
    pub number: u32,
    pub title: String,
    pub payload: String,
}

/// Degraded content and, when reply buttons, quick replies or carousel cards became
/// numbered lines, what each number stands for (so an inbound "2" can be understood).
#[derive(Debug, Clone, PartialEq)]
pub struct Degraded {
    pub content: Content,
    pub choices: Vec<NumberedChoice>,
}

impl Degraded {
    /// The choice a reply names by its number (`2`, `2.`, `#2`), when the content offered
    /// numbered choices and the number is one of them.
    pub fn answered(&self, reply: &str) -> Option<&NumberedChoice> {
        let number = answered_number(reply)?;
        self.choices.iter().find(|choice| choice.number == number)
    }
}

/// The number a reply consists of, as customers answer a numbered list: `2`, ` 2. `,
/// `2)`, `#2`. A reply with anything more (`2 please`, `20 rue …`) is words, not a choice.
pub fn answered_number(reply: &str) -> Option<u32> {
    let reply = reply.trim();
    let reply = reply.strip_prefix('#').unwrap_or(reply);
    let reply = reply.strip_suffix(['.', ')']).unwrap_or(reply).trim();
    let digits_only =
        !reply.is_empty() && reply.len() <= 3 && reply.bytes().all(|b| b.is_ascii_digit());
    if !digits_only {
        return None;
    }
    reply.parse().ok().filter(|number| *number >= 1)
}

/// `content` as the channel described by `capabilities` can show it. See
/// [`degrade_with_choices`] for the rules.
pub fn degrade(content: &Content, capabilities: &ChannelCapabilities) -> Content {
    degrade_with_choices(content, capabilities).content
}

/// The rules, applied by capability and never by channel name:
/// - reply buttons and quick replies the channel cannot show become numbered lines
///   (`1. Yes`); link buttons become `Title: https://…`; call buttons `Title: +33…`.
///   Buttons are kept or turned to text all together, so their order stays readable;
/// - quick replies the channel lacks become reply buttons first, then follow the rule above;
/// - media of a kind the channel cannot show, or with a caption it cannot carry, becomes
///   the caption and the link;
/// - a location becomes its name, its address and a map link;
/// - a card becomes its title, text, media link and buttons, or, where the channel shows
///   media with a caption, the media captioned with the title and text;
/// - a carousel becomes one numbered entry per card with its links;
/// - once any part has become text, everything else joins it as text.
///
/// Nothing is cut and no link is lost. A template is sent as its `fallback` (the stored
/// template the engine rendered) on a channel without provider templates, and left as it
/// is elsewhere.
pub fn degrade_with_choices(content: &Content, capabilities: &ChannelCapabilities) -> Degraded {
    if let Body::Template(TemplateRef {
        fallback: Some(fallback),
        ..
    }) = &content.body
        && !capabilities.provider_templates
    {
        return degrade_with_choices(fallback, capabilities);
    }
    let mut degrader = Degrader {
        capabilities,
        choices: Vec::new(),
    };
    let content = degrader.content(content);
    Degraded {
        content,
        choices: degrader.choices,
    }
}

struct Degrader<'c> {
    capabilities: &'c ChannelCapabilities,
    choices: Vec<NumberedChoice>,
}

impl Degrader<'_> {
    fn content(&mut self, content: &Content) -> Content {
        let caps = self.capabilities;
        let (body, mut buttons) = self.body(&content.body);
        buttons.extend(content.buttons.iter().cloned());
        let mut quick_replies = content.quick_replies.clone();
        if quick_replies.len() > usize::from(caps.quick_replies_max) {
            buttons.extend(quick_replies.drain(..).map(|reply| Button::Reply {
                title: reply.title,
                payload: reply.payload,
            }));
        }
        let buttons_stay = buttons.is_empty()
            || (matches!(body, Body::Text(_) | Body::Media(_)) && caps.buttons.shows(&buttons));
        if buttons_stay {
            return Content {
                body,
                buttons,
                quick_replies,
            };
        }
        let body = match body {
            Body::Text(text) => {
                let lines = self.button_lines(&buttons);
                Body::Text(join_lines([text].into_iter().chain(lines)))
            }
            Body::Media(mut media) if caps.media_caption.any() => {
                let lines = self.button_lines(&buttons);
                let caption = join_lines(media.caption.take().into_iter().chain(lines));
                if caps.media_caption.carries(&caption) {
                    media.caption = Some(caption);
                    Body::Media(media)
                } else {
                    media.caption = Some(caption);
                    Body::Text(media_text(&media))
                }
            }
            other => {
                let text = self.body_as_text(&other);
                let lines = self.button_lines(&buttons);
                Body::Text(join_lines([text].into_iter().chain(lines)))
            }
        };
        Content {
            body,
            buttons: Vec::new(),
            quick_replies,
        }
    }

    /// The body the channel can show, and buttons it hands to the message (a card shown as
    /// captioned media keeps its buttons that way).
    fn body(&mut self, body: &Body) -> (Body, Vec<Button>) {
        let caps = self.capabilities;
        match body {
            Body::Text(_) | Body::Template(_) => (body.clone(), Vec::new()),
            Body::Media(media) if self.media_shows(media) => (body.clone(), Vec::new()),
            Body::Location(_) if caps.location => (body.clone(), Vec::new()),
            Body::Form(_) if caps.forms => (body.clone(), Vec::new()),
            Body::Card(card) if caps.cards => (Body::Card(self.card_kept(card)), Vec::new()),
            Body::Card(card) => match card.media.as_ref().filter(|media| {
                caps.media.supports(media.kind()) && caps.media_caption.carries(&card_caption(card))
            }) {
                Some(media) => {
                    let caption = card_caption(card);
                    (
                        Body::Media(Media {
                            caption: Some(caption),
                            ..media.clone()
                        }),
                        card.buttons.clone(),
                    )
                }
                None => (Body::Text(self.body_as_text(body)), Vec::new()),
            },
            Body::Carousel(cards)
                if caps.cards && cards.len() <= usize::from(caps.carousel_max_cards) =>
            {
                (
                    Body::Carousel(cards.iter().map(|card| self.card_kept(card)).collect()),
                    Vec::new(),
                )
            }
            other => (Body::Text(self.body_as_text(other)), Vec::new()),
        }
    }

    fn media_shows(&self, media: &Media) -> bool {
        self.capabilities.media.supports(media.kind())
            && media
                .caption
                .as_deref()
                .is_none_or(|caption| self.capabilities.media_caption.carries(caption))
    }

    /// A card on a channel with cards: its buttons stay if the channel shows them, else
    /// they join the card's text.
    fn card_kept(&mut self, card: &Card) -> Card {
        if card.buttons.is_empty() || self.capabilities.buttons.shows(&card.buttons) {
            return card.clone();
        }
        let lines = self.button_lines(&card.buttons);
        Card {
            title: card.title.clone(),
            text: Some(join_lines(card.text.clone().into_iter().chain(lines))),
            media: card.media.clone(),
            buttons: Vec::new(),
        }
    }

    /// Any body written out as plain text.
    fn body_as_text(&mut self, body: &Body) -> String {
        match body {
            Body::Text(text) => text.clone(),
            Body::Media(media) => media_text(media),
            Body::Location(location) => join_lines(
                location
                    .name
                    .clone()
                    .into_iter()
                    .chain(location.address.clone())
                    .chain([map_link(location.lat, location.lon)]),
            ),
            Body::Card(card) => {
                let lines = self.button_lines(&card.buttons);
                join_lines(
                    [card.title.clone()]
                        .into_iter()
                        .chain(card.text.clone())
                        .chain(card.media.as_ref().map(media_text))
                        .chain(lines),
                )
            }
            Body::Carousel(cards) => join_lines(
                cards
                    .iter()
                    .map(|card| self.carousel_entry(card))
                    .collect::<Vec<_>>(),
            ),
            Body::Form(form) => form.as_text(),
            // Resolved by the engine before degradation; the name is the only text it has.
            Body::Template(template) => template.name.clone(),
        }
    }

    /// `1. Title`, its text, its media link, then its buttons' links. The number answers for the card: its first
    /// reply button's payload, or its title.
    fn carousel_entry(&mut self, card: &Card) -> String {
        let payload = card
            .buttons
            .iter()
            .find_map(|button| match button {
                Button::Reply { title, payload } => {
                    Some(payload.clone().unwrap_or_else(|| title.clone()))
                }
                _ => None,
            })
            .unwrap_or_else(|| card.title.clone());
        let number = self.choose(&card.title, payload);
        let links: Vec<String> = card
            .buttons
            .iter()
            .filter_map(|button| match button {
                Button::Url { title, url } => Some(format!("{title}: {url}")),
                Button::Call { title, phone } => Some(format!("{title}: {phone}")),
                Button::Reply { .. } => None,
            })
            .collect();
        join_lines(
            [format!("{number}. {}", card.title)]
                .into_iter()
                .chain(card.text.clone())
                .chain(card.media.as_ref().map(|media| media.url.clone()))
                .chain(links),
        )
    }

    fn button_lines(&mut self, buttons: &[Button]) -> Vec<String> {
        buttons
            .iter()
            .map(|button| match button {
                Button::Reply { title, payload } => {
                    let number =
                        self.choose(title, payload.clone().unwrap_or_else(|| title.clone()));
                    format!("{number}. {title}")
                }
                Button::Url { title, url } => format!("{title}: {url}"),
                Button::Call { title, phone } => format!("{title}: {phone}"),
            })
            .collect()
    }

    fn choose(&mut self, title: &str, payload: String) -> u32 {
        let number = u32::try_from(self.choices.len()).unwrap_or(u32::MAX - 1) + 1;
        self.choices.push(NumberedChoice {
            number,
            title: title.to_owned(),
            payload,
        });
        number
    }
}

/// A card's title and text, as the caption of its media.
fn card_caption(card: &Card) -> String {
    join_lines([card.title.clone()].into_iter().chain(card.text.clone()))
}

fn media_text(media: &Media) -> String {
    join_lines(media.caption.clone().into_iter().chain([media.url.clone()]))
}

fn join_lines(lines: impl IntoIterator<Item = String>) -> String {
    lines
        .into_iter()
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Content {
        serde_json::from_value(value).unwrap()
    }

    fn parse_err(value: serde_json::Value) -> String {
        serde_json::from_value::<Content>(value)
            .unwrap_err()
            .to_string()
    }

    fn text_of(content: &Content) -> &str {
        match &content.body {
            Body::Text(text) => text,
            other => panic!("expected text, got {other:?}"),
        }
    }

    #[test]
    fn plain_text_is_just_text() {
        let content = parse(json!({"text": "Bonjour"}));
        assert_eq!(content, Content::text("Bonjour"));
        assert_eq!(
            serde_json::to_value(&content).unwrap(),
            json!({"text": "Bonjour"})
        );
    }

    #[test]
    fn every_form_round_trips_through_json() {
        let forms = [
            json!({"text": "Pick one", "buttons": [
                {"type": "reply", "title": "Yes", "payload": "YES"},
                {"type": "url", "title": "Track", "url": "https://shop.example/t/1"},
                {"type": "call", "title": "Call us", "phone": "+33123456789"}]}),
            json!({"text": "OK?", "quick_replies": ["Yes", {"title": "No", "payload": "NO"}]}),
            json!({"media": {"url": "https://cdn.example/a.jpg", "mime_type": "image/jpeg", "caption": "Your ticket"}}),
            json!({"card": {"title": "Sneaker", "text": "89 €", "media": {"url": "https://cdn.example/s.jpg", "mime_type": "image/jpeg"},
                "buttons": [{"type": "url", "title": "Buy", "url": "https://shop.example/s"}]}}),
            json!({"carousel": [{"title": "A"}, {"title": "B", "text": "second"}]}),
            json!({"location": {"lat": 48.8584, "lon": 2.2945, "name": "Tour Eiffel", "address": "Champ de Mars, Paris"}}),
            json!({"template": "order_shipped", "language": "fr", "variables": {"order": "A-12"}}),
            json!({"form": {"title": "Your appointment", "text": "Tuesday 10:00?", "submit": "Confirm", "fields": [
                {"name": "date", "label": "Date", "kind": "date", "required": true},
                {"name": "slot", "label": "Time", "kind": "choice", "options": ["10:00", "14:00"], "required": false}]}}),
        ];
        for form in forms {
            let content = parse(form.clone());
            assert_eq!(serde_json::to_value(&content).unwrap(), form);
        }
    }

    #[test]
    fn a_form_is_checked_field_by_field() {
        let form = |fields: serde_json::Value| json!({"form": {"title": "RDV", "fields": fields}});
        let ok = parse(form(
            json!([{"name": "date", "label": "Date", "kind": "date"}]),
        ));
        let Body::Form(parsed) = &ok.body else {
            panic!("{ok:?}")
        };
        assert!(parsed.fields[0].required, "fields are required unless said");
        assert!(parse_err(form(json!([]))).contains("`form.fields` must not be empty"));
        assert!(
            parse_err(form(json!([{"name": "a b", "label": "A"}]))).contains("form.fields[0].name")
        );
        assert!(
            parse_err(form(
                json!([{"name": "a", "label": "A"}, {"name": "a", "label": "B"}])
            ))
            .contains("another field has this name")
        );
        assert!(
            parse_err(form(json!([{"name": "c", "label": "C", "kind": "choice"}])))
                .contains("form.fields[0].options")
        );
        assert!(
            parse_err(form(json!([{"name": "t", "label": "T", "options": ["x"]}])))
                .contains("`options` is only allowed with a field of kind `choice`")
        );
        assert!(
            parse_err(form(json!([{"name": "t", "label": "T", "kind": "colour"}])))
                .contains("unknown variant `colour`")
        );
        let eleven: Vec<_> = (0..11)
            .map(|i| json!({"name": format!("f{i}"), "label": "F"}))
            .collect();
        assert!(parse_err(form(json!(eleven))).contains("at most 10"));
        assert!(
            parse_err(json!({"form": {"title": "RDV", "fields": [{"name": "d", "label": "D"}]}, "text": "x"}))
                .contains("both `text` and `form`")
        );
    }

    #[test]
    fn a_form_stays_on_the_web_chat_and_becomes_lines_to_answer_elsewhere() {
        let content = parse(
            json!({"form": {"title": "Votre rendez-vous", "text": "Mardi 10 h ?", "fields": [
            {"name": "ok", "label": "Vous venez ?", "kind": "choice", "options": ["Oui", "Non"]},
            {"name": "note", "label": "Un mot", "required": false}]}}),
        );
        assert_eq!(
            degrade(&content, &ChannelCapabilities::WEBCHAT),
            content,
            "the widget shows forms"
        );
        for caps in [ChannelCapabilities::SMS, ChannelCapabilities::WHATSAPP] {
            assert_eq!(
                text_of(&degrade(&content, &caps)),
                "Votre rendez-vous\nMardi 10 h ?\n- Vous venez ? [Oui / Non]\n- Un mot (optional)"
            );
        }
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        assert!(parse_err(json!({"txt": "hi"})).contains("unknown field `txt`"));
        assert!(
            parse_err(json!({"media": {"url": "https://x.example/a.png", "mime": "image/png"}}))
                .contains("unknown field `mime`")
        );
        assert!(
            parse_err(
                json!({"text": "x", "buttons": [{"type": "reply", "title": "A", "colour": "red"}]})
            )
            .contains("unknown field `colour`")
        );
        assert!(
            parse_err(json!({"text": "x", "buttons": [{"type": "share", "title": "A"}]}))
                .contains("unknown variant `share`")
        );
    }

    #[test]
    fn one_body_only_with_a_hint() {
        assert!(parse_err(json!({})).contains("content needs one of"));
        let err = parse_err(
            json!({"text": "x", "media": {"url": "https://x.example/a.png", "mime_type": "image/png"}}),
        );
        assert!(
            err.contains("both `text` and `media`; put the text in `media.caption`"),
            "{err}"
        );
        assert!(
            parse_err(json!({"text": "x", "variables": {}}))
                .contains("`variables` is only allowed with `template`")
        );
        assert!(
            parse_err(
                json!({"card": {"title": "A"}, "buttons": [{"type": "reply", "title": "B"}]})
            )
            .contains("`buttons` is only allowed with `text` or `media`")
        );
    }

    #[test]
    fn validation_names_the_field() {
        assert!(parse_err(json!({"text": "   "})).contains("`text` must not be empty"));
        let err = parse_err(
            json!({"text": "x", "buttons": [{"type": "url", "title": "Go", "url": "javascript:alert(1)"}]}),
        );
        assert!(
            err.contains("`buttons[0].url`: `javascript:alert(1)` is not a usable link"),
            "{err}"
        );
        assert!(
            parse_err(json!({"text": "x", "buttons": [{"type": "url", "title": "Go", "url": "https://bank.example@evil.example/"}]}))
                .contains("not a usable link")
        );
        assert!(
            parse_err(json!({"text": "x", "buttons": [{"type": "call", "title": "Call", "phone": "0612345678"}]}))
                .contains("`buttons[0].phone`")
        );
        let eleven: Vec<_> = (0..11)
            .map(|i| json!({"type": "reply", "title": format!("B{i}")}))
            .collect();
        assert!(
            parse_err(json!({"text": "x", "buttons": eleven}))
                .contains("`buttons` has 11 items, at most 10")
        );
        assert!(
            parse_err(json!({"media": {"url": "https://x.example/a", "mime_type": "jpeg"}}))
                .contains("`media.mime_type`")
        );
        assert!(
            parse_err(json!({"location": {"lat": 91.0, "lon": 0.0}}))
                .contains("`location.lat`: 91 is out of range")
        );
        assert!(parse_err(json!({"carousel": []})).contains("`carousel` must not be empty"));
        assert!(
            parse_err(json!({"carousel": [{"title": "A"}, {"title": ""}]}))
                .contains("`carousel[1].title` must not be empty")
        );
        assert!(
            parse_err(json!({"template": "order shipped"}))
                .contains("template name `order shipped`")
        );
    }

    #[test]
    fn personalised_links_are_checked_after_rendering() {
        let content = parse(
            json!({"text": "x", "buttons": [{"type": "url", "title": "Go", "url": "https://x.example/{{ id }}"}]}),
        );
        assert_eq!(content.validate(), Ok(()));
    }

    #[test]
    fn urls_with_ports_and_paths_are_fine() {
        assert!(check_url("u", "https://shop.example:8443/a?b=c#d").is_ok());
        assert!(check_url("u", "HTTP://Example.COM").is_ok());
        assert!(check_url("u", "https:///nohost").is_err());
        assert!(check_url("u", "https://exa mple.com").is_err());
    }

    fn sms(content: &Content) -> Degraded {
        degrade_with_choices(content, &ChannelCapabilities::SMS)
    }

    #[test]
    fn sms_reply_buttons_become_numbered_lines() {
        let content = parse(json!({"text": "Confirm your appointment?", "buttons": [
            {"type": "reply", "title": "Yes", "payload": "CONFIRM"}, {"type": "reply", "title": "No"}]}));
        let degraded = sms(&content);
        assert_eq!(
            text_of(&degraded.content),
            "Confirm your appointment?\n1. Yes\n2. No"
        );
        assert!(degraded.content.buttons.is_empty());
        assert_eq!(
            degraded.choices,
            vec![
                NumberedChoice {
                    number: 1,
                    title: "Yes".into(),
                    payload: "CONFIRM".into()
                },
                NumberedChoice {
                    number: 2,
                    title: "No".into(),
                    payload: "No".into()
                },
            ]
        );
    }

    #[test]
    fn sms_link_and_call_buttons_show_inline() {
        let content = parse(json!({"text": "Shipped!", "buttons": [
            {"type": "url", "title": "Track", "url": "https://t.example/1"},
            {"type": "call", "title": "Help", "phone": "+33123456789"}]}));
        assert_eq!(
            text_of(&degrade(&content, &ChannelCapabilities::SMS)),
            "Shipped!\nTrack: https://t.example/1\nHelp: +33123456789"
        );
    }

    #[test]
    fn a_numbered_answer_names_the_choice_and_its_payload() {
        let content = Content {
            body: Body::Text("Votre rendez-vous demain à 10 h ?".into()),
            buttons: vec![
                Button::Reply {
                    title: "Je confirme".into(),
                    payload: Some("CONFIRM".into()),
                },
                Button::Reply {
                    title: "Je déplace".into(),
                    payload: Some("MOVE".into()),
                },
                Button::Reply {
                    title: "J'annule".into(),
                    payload: None,
                },
            ],
            quick_replies: Vec::new(),
        };
        let degraded =
            degrade_with_choices(&content, ChannelCapabilities::for_kind(ChannelKind::Sms));
        let payload = |reply: &str| degraded.answered(reply).map(|c| c.payload.as_str());
        assert_eq!(payload("2"), Some("MOVE"));
        assert_eq!(payload(" 1. "), Some("CONFIRM"));
        assert_eq!(payload("#3"), Some("J'annule"));
        assert_eq!(payload("4"), None);
        assert_eq!(payload("0"), None);
        assert_eq!(payload("2 svp"), None);
        assert_eq!(payload("20 rue de la Paix"), None);
        let shown = degrade_with_choices(
            &content,
            ChannelCapabilities::for_kind(ChannelKind::Whatsapp),
        );
        assert!(
            shown.answered("2").is_none(),
            "buttons shown as buttons are not numbered"
        );
    }

    #[test]
    fn sms_quick_replies_become_numbered_lines() {
        let content = parse(json!({"text": "Rate us", "quick_replies": ["Good", "Bad"]}));
        assert_eq!(
            text_of(&degrade(&content, &ChannelCapabilities::SMS)),
            "Rate us\n1. Good\n2. Bad"
        );
    }

    #[test]
    fn sms_media_becomes_caption_and_link() {
        let content = parse(
            json!({"media": {"url": "https://cdn.example/t.pdf", "mime_type": "application/pdf", "caption": "Your ticket"}}),
        );
        assert_eq!(
            text_of(&degrade(&content, &ChannelCapabilities::SMS)),
            "Your ticket\nhttps://cdn.example/t.pdf"
        );
    }

    #[test]
    fn sms_location_becomes_address_and_map_link() {
        let content = parse(
            json!({"location": {"lat": 48.8584, "lon": 2.2945, "name": "Tour Eiffel", "address": "Champ de Mars, Paris"}}),
        );
        assert_eq!(
            text_of(&degrade(&content, &ChannelCapabilities::SMS)),
            "Tour Eiffel\nChamp de Mars, Paris\nhttps://www.openstreetmap.org/?mlat=48.85840&mlon=2.29450#map=17/48.85840/2.29450"
        );
    }

    #[test]
    fn sms_card_becomes_title_text_link() {
        let content = parse(json!({"card": {"title": "Sneaker", "text": "89 €",
            "media": {"url": "https://cdn.example/s.jpg", "mime_type": "image/jpeg"},
            "buttons": [{"type": "url", "title": "Buy", "url": "https://shop.example/s"}]}}));
        assert_eq!(
            text_of(&degrade(&content, &ChannelCapabilities::SMS)),
            "Sneaker\n89 €\nhttps://cdn.example/s.jpg\nBuy: https://shop.example/s"
        );
    }

    #[test]
    fn sms_carousel_becomes_numbered_text_with_links() {
        let content = parse(json!({"carousel": [
            {"title": "Paris", "text": "from 49 €", "buttons": [{"type": "url", "title": "Book", "url": "https://air.example/par"}]},
            {"title": "Nice", "media": {"url": "https://cdn.example/nice.jpg", "mime_type": "image/jpeg"},
             "buttons": [{"type": "reply", "title": "Pick", "payload": "NCE"}]}]}));
        let degraded = sms(&content);
        assert_eq!(
            text_of(&degraded.content),
            "1. Paris\nfrom 49 €\nBook: https://air.example/par\n2. Nice\nhttps://cdn.example/nice.jpg"
        );
        assert_eq!(
            degraded.choices[1],
            NumberedChoice {
                number: 2,
                title: "Nice".into(),
                payload: "NCE".into()
            }
        );
        assert_eq!(degraded.choices[0].payload, "Paris");
    }

    #[test]
    fn the_examples_in_docs_content_md_are_what_is_sent() {
        let carousel = parse(json!({"carousel": [
            {"title": "Paris → Nice", "text": "dès 49 €",
             "media": {"url": "https://cdn.example/nice.jpg", "mime_type": "image/jpeg"},
             "buttons": [{"type": "url", "title": "Réserver", "url": "https://air.example/nce"}]},
            {"title": "Paris → Biarritz", "text": "dès 59 €",
             "buttons": [{"type": "reply", "title": "Choisir", "payload": "BIQ"}]}]}));
        let degraded = sms(&carousel);
        assert_eq!(
            text_of(&degraded.content),
            "1. Paris → Nice\ndès 49 €\nhttps://cdn.example/nice.jpg\nRéserver: https://air.example/nce\n2. Paris → Biarritz\ndès 59 €"
        );
        assert_eq!(degraded.choices[0].payload, "Paris → Nice");
        assert_eq!(degraded.choices[1].payload, "BIQ");
        let appointment = parse(
            json!({"text": "Confirmez-vous votre rendez-vous de mardi 10h ?",
            "buttons": [
                {"type": "reply", "title": "Oui", "payload": "CONFIRM"},
                {"type": "reply", "title": "Non", "payload": "CANCEL"},
                {"type": "url", "title": "Déplacer", "url": "https://clinique.example/rdv/8812"},
                {"type": "call", "title": "Appeler", "phone": "+33123456789"}]}),
        );
        assert_eq!(
            text_of(&degrade(&appointment, &ChannelCapabilities::WHATSAPP)),
            "Confirmez-vous votre rendez-vous de mardi 10h ?\n1. Oui\n2. Non\nDéplacer: https://clinique.example/rdv/8812\nAppeler: +33123456789"
        );
    }

    #[test]
    fn whatsapp_keeps_three_short_reply_buttons() {
        let content = parse(
            json!({"text": "Confirm?", "buttons": [{"type": "reply", "title": "Yes"}, {"type": "reply", "title": "No"}]}),
        );
        assert_eq!(degrade(&content, &ChannelCapabilities::WHATSAPP), content);
    }

    #[test]
    fn whatsapp_turns_four_buttons_or_a_link_button_into_text() {
        let four: Vec<_> = (1..=4)
            .map(|i| json!({"type": "reply", "title": format!("Slot {i}")}))
            .collect();
        let content = parse(json!({"text": "Pick a slot", "buttons": four}));
        assert_eq!(
            text_of(&degrade(&content, &ChannelCapabilities::WHATSAPP)),
            "Pick a slot\n1. Slot 1\n2. Slot 2\n3. Slot 3\n4. Slot 4"
        );
        let link = parse(
            json!({"text": "Shipped", "buttons": [{"type": "url", "title": "Track", "url": "https://t.example/1"}]}),
        );
        assert_eq!(
            text_of(&degrade(&link, &ChannelCapabilities::WHATSAPP)),
            "Shipped\nTrack: https://t.example/1"
        );
    }

    #[test]
    fn button_titles_too_long_for_the_channel_become_text_rather_than_cut() {
        let content = parse(
            json!({"text": "Choose", "buttons": [{"type": "reply", "title": "A title far longer than twenty"}]}),
        );
        assert_eq!(
            text_of(&degrade(&content, &ChannelCapabilities::WHATSAPP)),
            "Choose\n1. A title far longer than twenty"
        );
    }

    #[test]
    fn whatsapp_shows_a_card_as_captioned_media_with_its_buttons() {
        let content = parse(json!({"card": {"title": "Sneaker", "text": "89 €",
            "media": {"url": "https://cdn.example/s.jpg", "mime_type": "image/jpeg"},
            "buttons": [{"type": "reply", "title": "Buy", "payload": "BUY_1"}]}}));
        let degraded = degrade(&content, &ChannelCapabilities::WHATSAPP);
        let Body::Media(media) = &degraded.body else {
            panic!("expected media, got {degraded:?}")
        };
        assert_eq!(media.caption.as_deref(), Some("Sneaker\n89 €"));
        assert_eq!(
            degraded.buttons,
            vec![Button::Reply {
                title: "Buy".into(),
                payload: Some("BUY_1".into())
            }]
        );
    }

    #[test]
    fn whatsapp_media_with_link_buttons_puts_links_in_the_caption() {
        let content = parse(
            json!({"media": {"url": "https://cdn.example/s.jpg", "mime_type": "image/jpeg", "caption": "New!"},
            "buttons": [{"type": "url", "title": "Shop", "url": "https://shop.example"}]}),
        );
        let degraded = degrade(&content, &ChannelCapabilities::WHATSAPP);
        let Body::Media(media) = &degraded.body else {
            panic!("expected media")
        };
        assert_eq!(
            media.caption.as_deref(),
            Some("New!\nShop: https://shop.example")
        );
        assert!(degraded.buttons.is_empty());
    }

    #[test]
    fn messenger_keeps_carousels_and_quick_replies() {
        let content =
            parse(json!({"carousel": [{"title": "A"}, {"title": "B"}], "quick_replies": ["More"]}));
        assert_eq!(degrade(&content, &ChannelCapabilities::MESSENGER), content);
    }

    #[test]
    fn messenger_media_caption_has_nowhere_to_go_but_text() {
        let content = parse(
            json!({"media": {"url": "https://cdn.example/s.jpg", "mime_type": "image/jpeg", "caption": "Look"}}),
        );
        assert_eq!(
            text_of(&degrade(&content, &ChannelCapabilities::MESSENGER)),
            "Look\nhttps://cdn.example/s.jpg"
        );
        let bare = parse(
            json!({"media": {"url": "https://cdn.example/s.jpg", "mime_type": "image/jpeg"}}),
        );
        assert_eq!(degrade(&bare, &ChannelCapabilities::MESSENGER), bare);
    }

    #[test]
    fn a_telegram_caption_past_1024_characters_becomes_text_with_its_link() {
        let photo = |caption: String| {
            parse(
                json!({"media": {"url": "https://cdn.example/s.jpg", "mime_type": "image/jpeg",
                "caption": caption}}),
            )
        };
        let fits = photo("é".repeat(1024));
        assert_eq!(degrade(&fits, &ChannelCapabilities::TELEGRAM), fits);
        let long = "é".repeat(1025);
        assert_eq!(
            text_of(&degrade(
                &photo(long.clone()),
                &ChannelCapabilities::TELEGRAM
            )),
            format!("{long}\nhttps://cdn.example/s.jpg")
        );
        // Elsewhere a caption is as long as a text.
        let whatsapp = degrade(&photo(long.clone()), &ChannelCapabilities::WHATSAPP);
        assert!(matches!(whatsapp.body, Body::Media(_)));
    }

    #[test]
    fn a_telegram_caption_that_buttons_or_a_card_make_too_long_becomes_text() {
        // A call button Telegram cannot show joins the caption, which then passes 1024.
        let near = "a".repeat(1010);
        let content = parse(json!({"media": {"url": "https://cdn.example/s.jpg",
            "mime_type": "image/jpeg", "caption": near},
            "buttons": [{"type": "call", "title": "Call us", "phone": "+33612345678"}]}));
        let degraded = degrade(&content, &ChannelCapabilities::TELEGRAM);
        let text = text_of(&degraded);
        assert!(text.starts_with(&near), "{text}");
        assert!(text.contains("https://cdn.example/s.jpg"), "{text}");
        assert!(text.contains("Call us: +33612345678"), "{text}");
        // A card is its image captioned with its title and text, while they fit.
        let card = |text: String| {
            parse(json!({"card": {"title": "Colis", "text": text,
                "media": {"url": "https://cdn.example/c.jpg", "mime_type": "image/jpeg"}}}))
        };
        match degrade(&card("Livré".into()), &ChannelCapabilities::TELEGRAM).body {
            Body::Media(media) => assert_eq!(media.caption.as_deref(), Some("Colis\nLivré")),
            other => panic!("{other:?}"),
        }
        let long = "b".repeat(1100);
        let degraded = degrade(&card(long.clone()), &ChannelCapabilities::TELEGRAM);
        let text = text_of(&degraded);
        assert!(
            text.contains(&long) && text.contains("https://cdn.example/c.jpg"),
            "{text}"
        );
    }

    #[test]
    fn telegram_carousel_becomes_text_but_reply_buttons_stay_as_buttons_elsewhere() {
        let content = parse(json!({"carousel": [{"title": "A"}, {"title": "B"}]}));
        assert_eq!(
            text_of(&degrade(&content, &ChannelCapabilities::TELEGRAM)),
            "1. A\n2. B"
        );
    }

    #[test]
    fn email_reply_buttons_on_a_kept_card_join_its_text() {
        let content = parse(
            json!({"card": {"title": "Survey", "buttons": [{"type": "reply", "title": "Good"}, {"type": "url", "title": "More", "url": "https://x.example"}]}}),
        );
        let degraded = degrade(&content, &ChannelCapabilities::EMAIL);
        let Body::Card(card) = &degraded.body else {
            panic!("expected card")
        };
        assert_eq!(
            card.text.as_deref(),
            Some("1. Good\nMore: https://x.example")
        );
        assert!(card.buttons.is_empty());
    }

    #[test]
    fn templates_are_left_for_the_engine() {
        let content = parse(json!({"template": "otp", "variables": {"code": "123456"}}));
        assert_eq!(degrade(&content, &ChannelCapabilities::SMS), content);
    }

    #[test]
    fn length_is_checked_never_cut() {
        let long = Content::text("x".repeat(5000));
        let err = check_text_length(&long, &ChannelCapabilities::WHATSAPP, |_| 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the text is 5000 characters for this channel, which allows 4096 characters"
        );
        assert!(check_text_length(&long, &ChannelCapabilities::SMS, |_| 11).is_err());
        assert!(check_text_length(&long, &ChannelCapabilities::SMS, |_| 10).is_ok());
        assert!(check_text_length(&long, &ChannelCapabilities::EMAIL, |_| 0).is_ok());
    }

    #[test]
    fn the_customer_service_window_closes_after_24_hours() {
        let wrote: jiff::Timestamp = "2026-11-20T10:00:00Z".parse().unwrap();
        let whatsapp = ChannelCapabilities::WHATSAPP;
        assert!(whatsapp.allows_free_form(Some(wrote), "2026-11-21T09:59:59Z".parse().unwrap()));
        assert!(!whatsapp.allows_free_form(Some(wrote), "2026-11-21T10:00:00Z".parse().unwrap()));
        assert!(
            !whatsapp.allows_free_form(None, wrote),
            "never wrote: templates only"
        );
        assert!(ChannelCapabilities::SMS.allows_free_form(None, wrote));
    }

    #[test]
    fn a_human_agent_may_answer_for_7_days_where_the_channel_has_the_agent_window() {
        let wrote: jiff::Timestamp = "2026-11-20T10:00:00Z".parse().unwrap();
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let messenger = ChannelCapabilities::MESSENGER;
        assert!(!messenger.allows_free_form(Some(wrote), at("2026-11-22T10:00:00Z")));
        assert!(messenger.allows_human_agent_reply(Some(wrote), at("2026-11-22T10:00:00Z")));
        assert!(messenger.allows_human_agent_reply(Some(wrote), at("2026-11-27T09:59:59Z")));
        assert!(!messenger.allows_human_agent_reply(Some(wrote), at("2026-11-27T10:00:00Z")));
        assert!(!messenger.allows_human_agent_reply(None, wrote));
        // WhatsApp has no agent window: an agent's reply after 24 h needs a template.
        let whatsapp = ChannelCapabilities::WHATSAPP;
        assert!(!whatsapp.allows_human_agent_reply(Some(wrote), at("2026-11-22T10:00:00Z")));
    }

    #[test]
    fn every_channel_kind_has_a_profile() {
        for kind in ChannelKind::ALL {
            let caps = ChannelCapabilities::for_kind(kind);
            assert!(
                caps.buttons.max == 0 || caps.buttons.max_title_chars > 0,
                "{kind}"
            );
        }
    }

    // ---- properties ----

    fn word() -> impl Strategy<Value = String> {
        "[A-Za-z][A-Za-z0-9 ]{0,30}"
            .prop_map(|s| s.trim().to_owned())
            .prop_filter("non-empty", |s| !s.is_empty())
    }

    fn url() -> impl Strategy<Value = String> {
        "[a-z]{1,8}".prop_map(|s| format!("https://{s}.example/{s}"))
    }

    fn button() -> impl Strategy<Value = Button> {
        prop_oneof![
            (word(), proptest::option::of(word()))
                .prop_map(|(title, payload)| Button::Reply { title, payload }),
            (word(), url()).prop_map(|(title, url)| Button::Url { title, url }),
            (word(), "[1-9][0-9]{8,11}").prop_map(|(title, digits)| Button::Call {
                title,
                phone: format!("+{digits}")
            }),
        ]
    }

    fn media() -> impl Strategy<Value = Media> {
        (
            url(),
            prop_oneof![
                Just("image/jpeg"),
                Just("video/mp4"),
                Just("audio/ogg"),
                Just("application/pdf")
            ],
            proptest::option::of(word()),
        )
            .prop_map(|(url, mime, caption)| Media {
                url,
                mime_type: mime.to_owned(),
                caption,
                filename: None,
            })
    }

    fn card() -> impl Strategy<Value = Card> {
        (
            word(),
            proptest::option::of(word()),
            proptest::option::of(media()),
            proptest::collection::vec(button(), 0..4),
        )
            .prop_map(|(title, text, media, buttons)| Card {
                title,
                text,
                media: media.map(|m| Media { caption: None, ..m }),
                buttons,
            })
    }

    fn content() -> impl Strategy<Value = Content> {
        let body = prop_oneof![
            word().prop_map(Body::Text),
            media().prop_map(Body::Media),
            card().prop_map(Body::Card),
            proptest::collection::vec(card(), 1..5).prop_map(Body::Carousel),
            (
                -90.0f64..90.0,
                -180.0f64..180.0,
                proptest::option::of(word())
            )
                .prop_map(|(lat, lon, name)| Body::Location(Location {
                    lat,
                    lon,
                    name,
                    address: None
                })),
        ];
        let quick = proptest::collection::vec(
            (word(), proptest::option::of(word()))
                .prop_map(|(title, payload)| QuickReply { title, payload }),
            0..4,
        );
        (body, proptest::collection::vec(button(), 0..5), quick).prop_map(
            |(body, buttons, quick_replies)| {
                let buttons = if matches!(body, Body::Text(_) | Body::Media(_)) {
                    buttons
                } else {
                    Vec::new()
                };
                Content {
                    body,
                    buttons,
                    quick_replies,
                }
            },
        )
    }

    const PROFILES: [ChannelCapabilities; 12] = [
        ChannelCapabilities::SMS,
        ChannelCapabilities::WHATSAPP,
        ChannelCapabilities::TELEGRAM,
        ChannelCapabilities::MESSENGER,
        ChannelCapabilities::INSTAGRAM,
        ChannelCapabilities::RCS,
        ChannelCapabilities::VIBER,
        ChannelCapabilities::EMAIL,
        ChannelCapabilities::WEBCHAT,
        ChannelCapabilities::WEBPUSH,
        ChannelCapabilities::MOBILE_PUSH,
        ChannelCapabilities::SIM,
    ];

    fn urls_in(content: &Content) -> Vec<String> {
        let mut urls = Vec::new();
        let mut copy = content.clone();
        let _ = copy.try_for_each_text_mut(|path, value| {
            if path.ends_with("url") {
                urls.push(value.clone());
            }
            Ok::<(), ()>(())
        });
        urls
    }

    proptest! {
        #[test]
        fn generated_content_is_valid_and_round_trips(content in content()) {
            prop_assert_eq!(content.validate(), Ok(()));
            let json = serde_json::to_value(&content).unwrap();
            prop_assert_eq!(serde_json::from_value::<Content>(json).unwrap(), content);
        }

        #[test]
        fn sms_gets_plain_text_with_every_link(content in content()) {
            let degraded = degrade(&content, &ChannelCapabilities::SMS);
            prop_assert!(degraded.buttons.is_empty() && degraded.quick_replies.is_empty());
            let Body::Text(text) = &degraded.body else { return Err(TestCaseError::fail("not text")) };
            for url in urls_in(&content) {
                prop_assert!(text.contains(&url), "lost {} in {:?}", url, text);
            }
        }

        #[test]
        fn degrading_twice_changes_nothing_more(content in content(), profile in 0usize..12) {
            let caps = &PROFILES[profile];
            let once = degrade(&content, caps);
            prop_assert_eq!(degrade(&once, caps), once.clone());
            prop_assert_eq!(once.validate(), Ok(()));
        }

        #[test]
        fn numbers_are_consecutive_from_one(content in content(), profile in 0usize..12) {
            let degraded = degrade_with_choices(&content, &PROFILES[profile]);
            for (index, choice) in degraded.choices.iter().enumerate() {
                prop_assert_eq!(choice.number as usize, index + 1);
            }
        }
    }
}

#[cfg(test)]
mod fallback_tests {
    use super::*;
    use serde_json::json;

    fn mapped() -> Content {
        serde_json::from_value(json!({"template": "order_shipped", "language": "fr",
            "variables": {"1": "Camille"}, "fallback": {"text": "Bonjour Camille"}}))
        .unwrap()
    }

    #[test]
    fn a_template_goes_by_name_where_the_provider_keeps_templates_and_as_its_fallback_elsewhere() {
        let content = mapped();
        assert_eq!(degrade(&content, &ChannelCapabilities::WHATSAPP), content);
        assert_eq!(
            degrade(&content, &ChannelCapabilities::SMS),
            Content::text("Bonjour Camille")
        );
        assert_eq!(
            degrade(&content, &ChannelCapabilities::SIM),
            Content::text("Bonjour Camille")
        );
    }

    #[test]
    fn the_fallback_round_trips_and_is_only_allowed_with_a_template_that_it_is_not() {
        let content = mapped();
        let wire = serde_json::to_value(&content).unwrap();
        assert_eq!(wire["fallback"], json!({"text": "Bonjour Camille"}));
        assert_eq!(serde_json::from_value::<Content>(wire).unwrap(), content);
        assert!(
            serde_json::from_value::<Content>(json!({"text": "x", "fallback": {"text": "y"}}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<Content>(
                json!({"template": "a", "fallback": {"template": "b"}})
            )
            .is_err()
        );
    }
}
