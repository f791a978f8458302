//! A message by its SID: fetch it, cancel it while it is scheduled, redact its body or
//! delete it once it is finished. A SID of another tenant's message finds nothing (20404),
//! exactly as a SID that names no message.

use super::TwilioError;
use jiff::Timestamp;
use relais_core::status::MessageStatus;
use relais_core::twilio::{finished, message_id_of_sid};
use relais_store::{CancelOutcome, DeleteOutcome, Message, Store};

/// A message as a request names it.
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    pub tenant: &'a str,
    /// `SM` + 32 hex digits.
    pub sid: &'a str,
    /// The request's path, which a 20404 names.
    pub uri: &'a str,
}

impl Named<'_> {
    fn not_found(&self) -> TwilioError {
        TwilioError::NotFound(self.uri.to_owned())
    }
}

/// The tenant's message with this SID.
pub async fn fetch(store: &dyn Store, named: Named<'_>) -> Result<Message, TwilioError> {
    let id = message_id_of_sid(named.sid).map_err(|_| named.not_found())?;
    store
        .message(named.tenant, &id)
        .await?
        .map(|m| m.message)
        .ok_or_else(|| named.not_found())
}

/// `Status=canceled`: only a scheduled message may be, as on Twilio (30409 otherwise).
pub async fn cancel(
    store: &dyn Store,
    named: Named<'_>,
    now: Timestamp,
) -> Result<Message, TwilioError> {
    let message = fetch(store, named).await?;
    let refused = |status: MessageStatus| TwilioError::CannotCancel(status.as_str().to_owned());
    if message.status != MessageStatus::Scheduled {
        return Err(refused(message.status));
    }
    match store.cancel(named.tenant, &message.id, now).await? {
        CancelOutcome::Canceled => fetch(store, named).await,
        CancelOutcome::TooLate(status) => Err(refused(status)),
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
    named: Named<'_>,
    now: Timestamp,
) -> Result<Message, TwilioError> {
    let message = fetch(store, named).await?;
    if !finished(message.status) {
        return Err(TwilioError::InProgress(message.status.as_str().to_owned()));
    }
    let content = redacted(&message.content);
    if !store
        .replace_message_content(named.tenant, &message.id, &content, now)
        .await?
    {
        return Err(named.not_found());
    }
    fetch(store, named).await
}

/// `DELETE`: the message and what hangs on it, once it is finished (20009 before).
pub async fn delete(store: &dyn Store, named: Named<'_>) -> Result<(), TwilioError> {
    let message = fetch(store, named).await?;
    match store
        .delete_finished_message(named.tenant, &message.id)
        .await?
    {
        DeleteOutcome::Deleted => Ok(()),
        DeleteOutcome::NotFound => Err(named.not_found()),
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
