//! A relay's call to the channel's `/hooks/{channel}` address: one raw message
//! (`Content-Type: message/rfc822`), with `Authorization: Bearer {inbound_secret}`; and
//! [`events_of_mail`], what any raw mail for the channel becomes, whether a relay posted
//! it or the SMTP listener took it.
//!
//! The secret is checked first, in constant time; a call without it or with another
//! value, or to a channel without `inbound_secret`, is refused (401) and nothing of it is
//! read. A person's mail becomes an inbound message; a bounce a status report on the
//! message it names (`undelivered`, with the status and the remote server's answer); an
//! automatic answer or a report of a delay is answered 200 with nothing stored.

use super::config::EmailConfig;
use super::inbound::{Mail, MailError, parse_mail};
use crate::configured::{
    ChannelEvent, ChannelIdentity, WebhookAnswer, WebhookError, WebhookRequest,
};
use crate::event::{Confirm, MessageRef, NewInbound, StatusReport};
use crate::secret::same_secret;
use relais_core::channel::ChannelKind;
use relais_core::status::MessageStatus;

pub(crate) fn receive(
    identity: &ChannelIdentity,
    config: &EmailConfig,
    request: &WebhookRequest<'_>,
) -> Result<WebhookAnswer, WebhookError> {
    let Some(secret) = config.inbound_secret() else {
        return Err(WebhookError::Unauthorized(
            "this channel takes no inbound mail: its config has no `inbound_secret`".into(),
        ));
    };
    let given = request
        .header("authorization")
        .and_then(|value| value.trim().strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(given) if same_secret(secret, given) => {}
        Some(_) => {
            return Err(WebhookError::Unauthorized(
                "the bearer token is not this channel's inbound_secret".into(),
            ));
        }
        None => {
            return Err(WebhookError::Unauthorized(
                "no `Authorization: Bearer …` header".into(),
            ));
        }
    }
    if request.is_get {
        return Err(WebhookError::Malformed(
            "the relay posts messages; there is nothing to answer a GET with".into(),
        ));
    }
    let content_type = request.header("content-type").unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("message/rfc822") {
        return Err(WebhookError::Malformed(format!(
            "the body must be one raw message with `Content-Type: message/rfc822`, not `{content_type}`"
        )));
    }
    let events = events_of_mail(identity, config, request.body)
        .map_err(|e| WebhookError::Malformed(e.to_string()))?;
    Ok(WebhookAnswer::Deliver(events))
}

/// What one raw mail that arrived for the channel (posted by a relay, or taken by the
/// SMTP listener) hands the engine: a person's mail as an inbound message, a bounce as
/// an `undelivered` status of the message it names, an automatic answer as nothing.
pub(crate) fn events_of_mail(
    identity: &ChannelIdentity,
    config: &EmailConfig,
    raw: &[u8],
) -> Result<Vec<ChannelEvent>, MailError> {
    let event = match parse_mail(raw)? {
        Mail::Ignored(reason) => {
            tracing::debug!(channel = %identity.id, %reason, "inbound mail ignored");
            return Ok(Vec::new());
        }
        Mail::Reply(reply) => ChannelEvent::Inbound(
            NewInbound {
                tenant_id: identity.tenant_id.clone(),
                channel: ChannelKind::Email,
                channel_id: Some(identity.id.clone()),
                from: reply.from,
                to: config.from().to_owned(),
                text: reply.text,
                payload: None,
                media: None,
                provider_id: Some(reply.message_id),
                answers: reply.answers,
            },
            Confirm::none(),
        ),
        Mail::Bounce(bounce) => ChannelEvent::Status(
            StatusReport {
                tenant_id: identity.tenant_id.clone(),
                channel_id: identity.id.clone(),
                message: MessageRef::Provider(bounce.message_id.clone()),
                status: MessageStatus::Undelivered,
                at: None,
                detail: Some(bounce.detail()),
                address_gone: bounce.address_gone(),
            },
            Confirm::none(),
        ),
    };
    Ok(vec![event])
}
