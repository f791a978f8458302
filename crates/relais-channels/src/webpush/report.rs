//! What a browser reports back about a notification: the page's service worker posts to
//! the channel's `/hooks/{channel}` address when it showed the notification (the message
//! is `delivered`) and when the person clicked it or one of its actions (`read`).
//!
//! A push service never says whether a browser showed a notification, so without these
//! reports a Web Push message ends `sent`, and a fallback that waits for `delivered`
//! always moves on. With the channel's `public_url` set, each notification carries
//! `"relais": {"message", "token", "report"}`: the message id, a token only this channel
//! can make for it (an HMAC of the id under a key derived from the VAPID private key), and
//! the address to post to. The service worker posts
//! `{"message", "token", "event": "shown" | "clicked" | "closed", "action"?}` there, as
//! `text/plain` so that a cross-origin `fetch` needs no preflight. A click on a reply
//! button (`action` `reply0`, `reply1`) also carries the button's `title` and `payload`,
//! and comes back as the person's answer in their conversation: an inbound message that
//! answers the notification's message (so it belongs to that message's contact, from the
//! subscription it went to), stored once per message and button.
//!
//! A report whose token is not the message's is refused (401) and changes nothing; a
//! report repeated changes nothing more (statuses only move forward).

use crate::configured::{
    ChannelEvent, ChannelIdentity, WebhookAnswer, WebhookError, WebhookRequest,
};
use crate::event::{Confirm, MessageRef, NewInbound, StatusReport};
use crate::secret::same_secret;
use crate::whatsapp::signature::keyed;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use relais_core::channel::ChannelKind;
use relais_core::status::MessageStatus;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::fmt;

/// A report is a few hundred bytes; anything much larger is not one.
pub const MAX_REPORT_BYTES: usize = 4 * 1024;

/// The key of a channel's report tokens, derived from its VAPID private key so that no
/// other secret has to be configured or kept.
#[derive(Clone)]
pub struct ReportKey([u8; 32]);

impl fmt::Debug for ReportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReportKey(<redacted>)")
    }
}

impl ReportKey {
    /// The key of the channel whose `vapid_private_key` is `private_key` (as configured).
    pub fn derive(private_key: &str) -> ReportKey {
        let mut hash = Sha256::new();
        hash.update(b"relais webpush report key\0");
        hash.update(private_key.trim().as_bytes());
        ReportKey(hash.finalize().into())
    }

    /// The token that lets a browser report on message `message_id`.
    pub fn token(&self, message_id: &str) -> String {
        let digest = keyed(&self.0, message_id.as_bytes())
            .map(|mac| mac.finalize().into_bytes().to_vec())
            .unwrap_or_default();
        URL_SAFE_NO_PAD.encode(&digest[..digest.len().min(16)])
    }

    fn accepts(&self, message_id: &str, token: &str) -> bool {
        same_secret(&self.token(message_id), token)
    }
}

/// The `relais` object of a notification: what its service worker needs to report.
pub fn stamp(key: &ReportKey, report_url: &str, message_id: &str) -> Value {
    json!({"message": message_id, "token": key.token(message_id), "report": report_url})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    message: String,
    token: String,
    event: Event,
    #[serde(default)]
    action: Option<String>,
    /// A reply button's title and payload, as its notification carried them.
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    payload: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Event {
    Shown,
    Clicked,
    Closed,
}

/// Reads a service worker's report into a status of the message it names.
pub(crate) fn receive(
    identity: &ChannelIdentity,
    key: &ReportKey,
    request: &WebhookRequest<'_>,
) -> Result<WebhookAnswer, WebhookError> {
    if request.is_get {
        return Err(WebhookError::Malformed(
            "a service worker posts its reports; there is nothing to answer a GET with".into(),
        ));
    }
    if request.body.len() > MAX_REPORT_BYTES {
        return Err(WebhookError::Malformed(format!(
            "a report is at most {MAX_REPORT_BYTES} bytes"
        )));
    }
    let report: Report = serde_json::from_slice(request.body).map_err(|e| {
        WebhookError::Malformed(format!(
            "a report is {{\"message\", \"token\", \"event\": \"shown\" | \"clicked\" | \"closed\", \"action\"?}}: {e}"
        ))
    })?;
    if !key.accepts(&report.message, &report.token) {
        return Err(WebhookError::Unauthorized(
            "the token is not the one this channel gave the message's notification".into(),
        ));
    }
    let (status, detail) = match (report.event, report.action.as_deref()) {
        (Event::Shown, _) => (
            MessageStatus::Delivered,
            "the browser showed the notification".to_owned(),
        ),
        (Event::Closed, _) => (
            MessageStatus::Delivered,
            "the person dismissed the notification".to_owned(),
        ),
        (Event::Clicked, Some(action)) if !action.is_empty() => (
            MessageStatus::Read,
            format!(
                "the person clicked the notification's action `{}`",
                printable(action)
            ),
        ),
        (Event::Clicked, _) => (
            MessageStatus::Read,
            "the person clicked the notification".to_owned(),
        ),
    };
    let answer = answer_of(identity, &report);
    let mut events = vec![ChannelEvent::Status(
        StatusReport {
            tenant_id: identity.tenant_id.clone(),
            channel_id: identity.id.clone(),
            message: MessageRef::Ours(report.message),
            status,
            at: None,
            detail: Some(detail),
            address_gone: false,
        },
        Confirm::none(),
    )];
    if let Some(answer) = answer {
        events.push(ChannelEvent::Inbound(answer, Confirm::none()));
    }
    Ok(WebhookAnswer::Deliver(events))
}

/// The person's answer a click on a reply button is: its payload, under its title. The
/// sender is left empty: the engine takes the address the answered message went to.
fn answer_of(identity: &ChannelIdentity, report: &Report) -> Option<NewInbound> {
    let action = report.action.as_deref()?;
    if !matches!(report.event, Event::Clicked) || !action.starts_with("reply") {
        return None;
    }
    let payload = report
        .payload
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())?;
    let title = report
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(payload);
    Some(NewInbound {
        tenant_id: identity.tenant_id.clone(),
        channel: ChannelKind::Webpush,
        channel_id: Some(identity.id.clone()),
        from: String::new(),
        to: identity.name.clone(),
        text: title.to_owned(),
        payload: Some(payload.to_owned()),
        media: None,
        provider_id: Some(format!("{}:{}", report.message, printable(action))),
        answers: vec![report.message.clone()],
    })
}

/// An action id as the browser gave it, short and without control characters, for a log.
fn printable(action: &str) -> String {
    action
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> ChannelIdentity {
        ChannelIdentity {
            id: "ch-1".into(),
            tenant_id: "t-1".into(),
            name: "push".into(),
        }
    }

    fn post(key: &ReportKey, body: &Value) -> Result<WebhookAnswer, WebhookError> {
        let body = body.to_string();
        let request = WebhookRequest {
            is_get: false,
            query: &[],
            headers: &[],
            body: body.as_bytes(),
        };
        receive(&identity(), key, &request)
    }

    fn status_of(answer: WebhookAnswer) -> (MessageStatus, MessageRef, Option<String>) {
        match answer {
            WebhookAnswer::Deliver(mut events) => match events.pop() {
                Some(ChannelEvent::Status(report, _)) => {
                    (report.status, report.message, report.detail)
                }
                other => panic!("not a status: {other:?}"),
            },
            other => panic!("not a delivery: {other:?}"),
        }
    }

    #[test]
    fn shown_is_delivered_and_a_click_is_read_with_its_action() {
        let key = ReportKey::derive("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw");
        let token = key.token("m-1");
        let shown = post(
            &key,
            &json!({"message": "m-1", "token": token, "event": "shown"}),
        );
        let (status, message, _) = status_of(shown.unwrap());
        assert_eq!(status, MessageStatus::Delivered);
        assert_eq!(message, MessageRef::Ours("m-1".into()));
        let clicked = post(
            &key,
            &json!({"message": "m-1", "token": token, "event": "clicked", "action": "url0"}),
        );
        let (status, _, detail) = status_of(clicked.unwrap());
        assert_eq!(status, MessageStatus::Read);
        assert!(detail.unwrap().contains("`url0`"));
    }

    #[test]
    fn a_token_of_another_message_or_channel_is_refused() {
        let key = ReportKey::derive("key-a");
        let other = ReportKey::derive("key-b");
        assert_ne!(key.token("m-1"), other.token("m-1"));
        assert_ne!(key.token("m-1"), key.token("m-2"));
        for forged in [
            json!({"message": "m-2", "token": key.token("m-1"), "event": "shown"}),
            json!({"message": "m-1", "token": other.token("m-1"), "event": "shown"}),
            json!({"message": "m-1", "token": "", "event": "shown"}),
        ] {
            assert!(
                matches!(post(&key, &forged), Err(WebhookError::Unauthorized(_))),
                "{forged}"
            );
        }
    }

    #[test]
    fn what_is_not_a_report_is_malformed() {
        let key = ReportKey::derive("key-a");
        let token = key.token("m-1");
        for bad in [
            json!({"message": "m-1", "token": token, "event": "opened"}),
            json!({"message": "m-1", "event": "shown"}),
            json!({"message": "m-1", "token": token, "event": "shown", "extra": 1}),
            json!(["m-1"]),
            json!({"message": "m-1", "token": token, "event": "shown", "action": "x".repeat(5000)}),
        ] {
            assert!(
                matches!(post(&key, &bad), Err(WebhookError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
