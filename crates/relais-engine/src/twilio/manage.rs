//! A message by its SID: fetch it, cancel it while it is scheduled, redact its body or
//! delete it once it is finished. A SID of another tenant's message finds nothing (20404),
//! exactly as a SID that names no message.

use super::TwilioError;
use jiff::Timestamp;
use relais_core::status::MessageStatus;
use relais_core::twilio::message_id_of_sid;
use relais_store::{CancelOutcome, DeleteOutcome, Message, Store};

/// The tenant's message with this SID; `uri` is what a 20404 names.
pub async fn fetch(
    store: &dyn Store,
    tenant: &str,
    sid: &str,
    uri: &str,
) -> Result<Message, TwilioError> {
    let not_found = || TwilioError::NotFound(uri.to_owned());
    let id = message_id_of_sid(sid).map_err(|_| not_found())?;
    store
        .message(tenant, &id)
        .await?
        .map(|m| m.message)
        .ok_or_else(not_found)
}

/// Whether a message went as far as it will (what may be redacted or deleted).
fn finished(status: MessageStatus) -> bool {
    status.is_final() || status.is_delivered()
}

/// `Status=canceled`: only a scheduled message may be, as on Twilio (30409 otherwise).
pub async fn cancel(
    store: &dyn Store,
    tenant: &str,
    sid: &str,
    uri: &str,
    now: Timestamp,
) -> Result<Message, TwilioError> {
    let message = fetch(store, tenant, sid, uri).await?;
    if message.status != MessageStatus::Scheduled {
        return Err(TwilioError::CannotCancel(
            message.status.as_str().to_owned(),
        ));
    }
    match store.cancel(tenant, &message.id, now).await? {
        CancelOutcome::Canceled => fetch(store, tenant, sid, uri).await,
        CancelOutcome::TooLate(status) => {
            Err(TwilioError::CannotCancel(status.as_str().to_owned()))
        }
    }
}

/// The content with its text removed: a text becomes empty, a media loses its caption,
/// anything richer becomes an empty text.
fn redacted(content: &serde_json::Value) -> serde_json::Value {
    match content.get("media") {
        Some(media) => {
            let mut media = media.clone();
            if let Some(fields) = media.as_object_mut() {
                fields.remove("caption");
            }
            serde_json::json!({"media": media})
        }
        None => serde_json::json!({"text": ""}),
    }
}

/// `Body=""`: the body is removed for good, once the message is finished (20009 before:
/// a message on its way is sent with what it holds).
pub async fn redact(
    store: &dyn Store,
    tenant: &str,
    sid: &str,
    uri: &str,
    now: Timestamp,
) -> Result<Message, TwilioError> {
    let message = fetch(store, tenant, sid, uri).await?;
    if !finished(message.status) {
        return Err(TwilioError::InProgress(message.status.as_str().to_owned()));
    }
    if !store
        .replace_message_content(tenant, &message.id, &redacted(&message.content), now)
        .await?
    {
        return Err(TwilioError::NotFound(uri.to_owned()));
    }
    fetch(store, tenant, sid, uri).await
}

/// `DELETE`: the message and what hangs on it, once it is finished (20009 before).
pub async fn delete(
    store: &dyn Store,
    tenant: &str,
    sid: &str,
    uri: &str,
) -> Result<(), TwilioError> {
    let message = fetch(store, tenant, sid, uri).await?;
    match store.delete_finished_message(tenant, &message.id).await? {
        DeleteOutcome::Deleted => Ok(()),
        DeleteOutcome::NotFound => Err(TwilioError::NotFound(uri.to_owned())),
        DeleteOutcome::InProgress(status) => {
            Err(TwilioError::InProgress(status.as_str().to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_the_media_but_not_its_caption() {
        let media = serde_json::json!({"media": {"url": "https://x/a.png", "mime_type": "image/png", "caption": "secret"}});
        assert_eq!(
            redacted(&media),
            serde_json::json!({"media": {"url": "https://x/a.png", "mime_type": "image/png"}})
        );
        assert_eq!(
            redacted(&serde_json::json!({"text": "code 1234"})),
            serde_json::json!({"text": ""})
        );
    }
}
