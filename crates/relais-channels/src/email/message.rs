//! One e-mail as it goes on the wire: `From`, `To`, `Subject`, `Date`, the `Message-ID`
//! Relais chooses (`<{message id}@{from domain}>`, the provider id of the send), a
//! `multipart/alternative` body with the text and the HTML part, the RFC 8058 one-click
//! unsubscribe headers for a marketing message, and the DKIM signature when the channel has a key.

use super::config::EmailConfig;
use super::render::Rendered;
use crate::adapter::SendError;
use lettre::address::Envelope;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, header::Header};
use std::time::SystemTime;

/// A message ready to send: who the SMTP envelope names, and the bytes.
#[derive(Debug, Clone)]
pub struct Composed {
    /// The `Message-ID` without its angle brackets: the send's provider id.
    pub provider_id: String,
    pub envelope: Envelope,
    pub bytes: Vec<u8>,
}

/// The id of the message `message_id` sends: `{message_id}@{from domain}`.
pub fn provider_id(config: &EmailConfig, message_id: &str) -> String {
    let local: String = message_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .collect();
    format!("{local}@{}", config.from_domain())
}

/// The `List-Unsubscribe` value of a marketing message (RFC 2369, RFC 8058): the
/// channel's `public_url` unsubscribe address with the message's signed token
/// ([`super::unsubscribe`]), and a mail to `from`.
pub fn list_unsubscribe(config: &EmailConfig, token: &str) -> Option<String> {
    let public_url = config.public_url()?.trim_end_matches('/');
    Some(format!(
        "<{public_url}/unsubscribe/{token}>, <mailto:{}?subject=unsubscribe>",
        config.from()
    ))
}

/// The message `message_id` to `to`; an `unsubscribe` token (a marketing message's) adds
/// the one-click unsubscribe headers when the channel has a `public_url`.
pub fn compose(
    config: &EmailConfig,
    message_id: &str,
    to: &str,
    rendered: &Rendered,
    unsubscribe: Option<&str>,
    now: SystemTime,
) -> Result<Composed, SendError> {
    let to = to.trim();
    if !super::config::is_address(to) {
        return Err(SendError::permanent(
            "invalid_recipient",
            format!("`{to}` is not an e-mail address (local@domain)"),
        ));
    }
    let to_mailbox: Mailbox = to.parse().map_err(|e| {
        SendError::permanent(
            "invalid_recipient",
            format!("`{to}` is not an e-mail address: {e}"),
        )
    })?;
    let from_address = config.from().parse().map_err(|e| {
        SendError::permanent(
            "bad_config",
            format!("`from` is not an e-mail address: {e}"),
        )
    })?;
    let from = Mailbox::new(config.from_name().map(str::to_owned), from_address);
    let provider_id = provider_id(config, message_id);
    let mut builder = lettre::Message::builder()
        .from(from)
        .to(to_mailbox)
        .subject(rendered.subject.clone())
        .date(now)
        .message_id(Some(format!("<{provider_id}>")));
    if let Some(value) = unsubscribe.and_then(|token| list_unsubscribe(config, token)) {
        builder = builder
            .header(ListUnsubscribe(value))
            .header(ListUnsubscribePost);
    }
    let message = builder
        .multipart(MultiPart::alternative_plain_html(
            rendered.text.clone(),
            rendered.html.clone(),
        ))
        .map_err(|e| {
            SendError::permanent("bad_content", format!("the e-mail cannot be built: {e}"))
        })?;
    let mut bytes = message.formatted();
    if let Some(key) = config.dkim() {
        let seconds = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
        bytes = key
            .sign(&bytes, seconds)
            .map_err(|e| SendError::permanent("dkim_failed", e.to_string()))?;
    }
    Ok(Composed {
        provider_id,
        envelope: message.envelope().clone(),
        bytes,
    })
}

#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribe(s.to_owned()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribePost)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = include_str!("../../tests/fixtures/email/dkim-test-key.pem");

    fn config(extra: serde_json::Value) -> EmailConfig {
        let mut value = json!({"host": "h", "from": "news@shop.example", "tls": "none",
            "dkim_domain": "shop.example", "dkim_selector": "s1", "dkim_private_key": KEY});
        for (k, v) in extra.as_object().unwrap() {
            value[k] = v.clone();
        }
        EmailConfig::parse(&value).unwrap()
    }

    fn rendered() -> Rendered {
        Rendered {
            subject: "Sale".into(),
            text: "Sale".into(),
            html: "<p>Sale</p>".into(),
        }
    }

    #[test]
    fn a_marketing_message_has_one_click_unsubscribe_headers_and_signs_them() {
        let config = config(json!({"public_url": "https://relais.shop.example"}));
        let composed = compose(
            &config,
            "msg_9",
            "a@b.fr",
            &rendered(),
            Some("t.msg_9.TAG"),
            SystemTime::now(),
        )
        .unwrap();
        // Unfolded, as a reader sees it.
        let text = String::from_utf8(composed.bytes)
            .unwrap()
            .replace("\r\n ", " ");
        assert!(text.contains("List-Unsubscribe: <https://relais.shop.example/unsubscribe/t.msg_9.TAG>, <mailto:news@shop.example?subject=unsubscribe>\r\n"), "{text}");
        assert!(
            text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
            "{text}"
        );
        assert!(text.starts_with("DKIM-Signature: "), "{text}");
        assert!(text.contains("h=from:to:subject:date:message-id:mime-version:content-type:list-unsubscribe:list-unsubscribe-post;"), "{text}");
        assert_eq!(composed.provider_id, "msg_9@shop.example");
    }

    #[test]
    fn without_public_url_or_when_not_marketing_there_are_no_unsubscribe_headers() {
        let with_url = config(json!({"public_url": "https://relais.shop.example"}));
        for (config, unsubscribe) in [(&with_url, None), (&config(json!({})), Some("t.m.TAG"))] {
            let composed = compose(
                config,
                "m",
                "a@b.fr",
                &rendered(),
                unsubscribe,
                SystemTime::now(),
            )
            .unwrap();
            let text = String::from_utf8(composed.bytes).unwrap();
            assert!(!text.contains("List-Unsubscribe"), "{text}");
        }
    }
}
