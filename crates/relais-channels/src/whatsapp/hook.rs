//! A call from Meta to the channel's `/hooks/{channel}` address: the subscription
//! handshake (`GET`), or a signed delivery of notifications (`POST`) read into the
//! channel's events. A delivery is taken whole or refused whole: unsigned, wrongly signed,
//! malformed, or about another business number than this channel's.

use super::{Notification, SIGNATURE_HEADER, SubscriptionRequest, WhatsAppConfig, parse_webhook};
use crate::configured::{
    ChannelEvent, ChannelIdentity, WebhookAnswer, WebhookError, WebhookRequest,
};
use crate::event::Confirm;

pub(crate) fn receive(
    identity: &ChannelIdentity,
    config: &WhatsAppConfig,
    request: &WebhookRequest<'_>,
) -> Result<WebhookAnswer, WebhookError> {
    if request.is_get {
        let subscription = SubscriptionRequest::from_pairs(request.query.iter().cloned());
        return config
            .answer_subscription(&subscription)
            .map(WebhookAnswer::Echo)
            .map_err(|e| WebhookError::Unauthorized(e.to_string()));
    }
    config
        .verify_signature(request.header(SIGNATURE_HEADER), request.body)
        .map_err(|e| WebhookError::Unauthorized(e.to_string()))?;
    let notifications =
        parse_webhook(request.body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let mut events = Vec::with_capacity(notifications.len());
    for notification in notifications {
        let business = match &notification {
            Notification::Message(message) => &message.business,
            Notification::Status(status) => &status.business,
        };
        if business.phone_number_id != config.phone_number_id() {
            return Err(WebhookError::OtherAccount(format!(
                "the delivery is about phone number id {}, not this channel's",
                business.phone_number_id
            )));
        }
        match notification {
            Notification::Message(message) => events.push(ChannelEvent::Inbound(
                message.to_new_inbound(&identity.tenant_id, &identity.id),
                Confirm::none(),
            )),
            Notification::Status(status) => {
                // A state the engine does not act on (`deleted`) is taken and dropped.
                if let Some(report) = status.to_status_report(&identity.tenant_id, &identity.id) {
                    events.push(ChannelEvent::Status(report, Confirm::none()));
                }
            }
        }
    }
    Ok(WebhookAnswer::Deliver(events))
}
