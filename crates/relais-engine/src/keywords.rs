//! What a keyword does once the inbound pipeline found one: STOP and STOPALL write an
//! opt-out into the consent ledger, START reverses one, HELP answers with the tenant's
//! help text; each sends exactly one reply, and a consent change one `consent.changed`
//! webhook event, however often the message is processed.

use crate::send::{AcceptContext, AcceptError};
use relais_core::consent::{ConsentRecord, ConsentSource, ConsentStatus, Purpose, may_send};
use relais_core::keywords::{KeywordAction, KeywordMatch, Keywords};
use relais_store::{InboundMessage, Store, StoreError};

/// The tenant setting that holds its keywords (`GET` / `PUT /v1/keywords`).
pub const KEYWORDS_SETTING: &str = "keywords";

/// The tenant's keywords, the defaults when it set none.
pub async fn keywords_of(store: &dyn Store, tenant: &str) -> Result<Keywords, StoreError> {
    match store.setting(tenant, KEYWORDS_SETTING).await? {
        None => Ok(Keywords::default()),
        Some(value) => serde_json::from_value(value)
            .map_err(|e| StoreError::Corrupt(format!("the tenant's keywords cannot be read: {e}"))),
    }
}

/// Why a keyword could not be carried out; the pipeline tries again later.
#[derive(Debug, thiserror::Error)]
pub enum KeywordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the keyword's reply was refused: {0}")]
    Reply(AcceptError),
}

/// Carries out `matched` for the customer who wrote `message` (owned by `contact_id`):
/// `false` when it is not a keyword after all (START from a contact who never opted
/// out is an ordinary "yes"), and the message goes on as any other.
pub async fn carry_out(
    ctx: AcceptContext<'_>,
    keywords: &Keywords,
    message: &InboundMessage,
    contact_id: &str,
    matched: &KeywordMatch,
) -> Result<bool, KeywordError> {
    let store = &**ctx.store;
    let tenant = message.tenant_id.as_str();
    let ledger = store.consents(tenant, contact_id).await?;
    // The same message processed again finds its record: the change is done, and not
    // done twice.
    let proof = format!(
        "\"{}\" (inbound message {} from {} on {})",
        message.text, message.id, message.from_address, message.channel
    );
    let recorded = ledger
        .iter()
        .find(|r| r.proof.as_deref() == Some(proof.as_str()))
        .cloned();
    let marketing = may_send(&ledger, message.channel, &Purpose::Marketing);
    let change = match matched.action {
        KeywordAction::Stop => Some((Some(message.channel), ConsentStatus::OptedOut)),
        KeywordAction::StopAll => Some((None, ConsentStatus::OptedOut)),
        // Once its opt-in is written, a START run again no longer finds an opt-out: its
        // record says it was the keyword.
        KeywordAction::Start if marketing.code == "opted_out" || recorded.is_some() => {
            Some((Some(message.channel), ConsentStatus::OptedIn))
        }
        KeywordAction::Start => return Ok(false),
        KeywordAction::Help => None,
    };
    // The reply first: once the opt-out is in the ledger, nothing could be sent.
    let contact = store.contact(tenant, contact_id).await?;
    let language = matched.language.or_else(|| {
        contact
            .as_ref()
            .and_then(|c| c.locale.as_deref())
            .and_then(|locale| ["fr", "en"].into_iter().find(|l| locale.starts_with(l)))
    });
    if let Some(text) = keywords.reply(matched.action, language) {
        reply(ctx, message, text).await?;
    }
    if let Some((channel, status)) = change {
        let record = match recorded {
            Some(record) => record,
            None => {
                let record = ConsentRecord {
                    id: relais_core::ids::new_id(),
                    contact_id: contact_id.to_owned(),
                    channel,
                    purpose: Purpose::Marketing,
                    status,
                    source: ConsentSource::Keyword,
                    proof: Some(proof),
                    recorded_at: ctx.now,
                };
                store.append_consent(tenant, &record).await?;
                record
            }
        };
        // Keyed by the record: a run that a crash cut short after the write queues it
        // now, a later run finds it queued.
        crate::crm::consent_changed(store, tenant, &record, Some(&message.id), ctx.now).await?;
    }
    Ok(true)
}

/// Sends `text` back where `message` came from, once: the message's id is the reply's
/// idempotency key, so a second run replays the first reply.
pub(crate) async fn reply(
    ctx: AcceptContext<'_>,
    message: &InboundMessage,
    text: &str,
) -> Result<(), KeywordError> {
    let key = format!("relais:inbound-reply:{}", message.id);
    crate::replies::reply_once(ctx, message, serde_json::json!({"text": text}), &key)
        .await
        .map_err(KeywordError::Reply)
}
