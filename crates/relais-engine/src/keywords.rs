//! What a keyword does once the inbound pipeline found one: STOP and STOPALL write an
//! opt-out into the consent ledger, START reverses one, HELP answers with the tenant's
//! help text; each sends exactly one reply, and a consent change one `consent.changed`
//! webhook event, however often the message is processed.

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

/// What a keyword found in a message does, decided before anything is written: the
/// reply to send, then the consent change to write.
#[derive(Debug, Clone)]
pub struct KeywordPlan {
    pub action: KeywordAction,
    contact_id: String,
    /// The tenant's reply, in the customer's language.
    pub reply: Option<String>,
    change: Option<(Option<relais_core::channel::ChannelKind>, ConsentStatus)>,
    /// The record a run of the same message wrote before (a run again after a crash).
    recorded: Option<ConsentRecord>,
    proof: String,
}

/// What `matched` does for the customer who wrote `message` (owned by `contact_id`):
/// `None` when it is not a keyword after all (START from a contact who never opted out
/// is an ordinary "yes"), and the message goes on as any other. Send its
/// [`KeywordPlan::reply`] first (see [`reply_key`]): once an opt-out is in the ledger,
/// nothing could be sent; then [`apply`] it.
pub async fn plan(
    store: &dyn Store,
    keywords: &Keywords,
    message: &InboundMessage,
    contact_id: &str,
    matched: &KeywordMatch,
) -> Result<Option<KeywordPlan>, StoreError> {
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
        KeywordAction::Start => return Ok(None),
        KeywordAction::Help => None,
    };
    let contact = store.contact(tenant, contact_id).await?;
    let language = matched.language.or_else(|| {
        contact
            .as_ref()
            .and_then(|c| c.locale.as_deref())
            .and_then(|locale| ["fr", "en"].into_iter().find(|l| locale.starts_with(l)))
    });
    Ok(Some(KeywordPlan {
        action: matched.action,
        contact_id: contact_id.to_owned(),
        reply: keywords.reply(matched.action, language).map(str::to_owned),
        change,
        recorded,
        proof,
    }))
}

/// The idempotency key of the reply to a keyword in `message`: a second run replays the
/// first reply.
pub fn reply_key(message: &InboundMessage) -> String {
    format!("relais:inbound-reply:{}", message.id)
}

/// Writes the plan's consent change (once per message) and tells the tenant's CRM.
pub async fn apply(
    store: &dyn Store,
    plan: KeywordPlan,
    message: &InboundMessage,
    now: jiff::Timestamp,
) -> Result<(), StoreError> {
    let Some((channel, status)) = plan.change else {
        return Ok(());
    };
    let tenant = message.tenant_id.as_str();
    let record = match plan.recorded {
        Some(record) => record,
        None => {
            let record = ConsentRecord {
                id: relais_core::ids::new_id(),
                contact_id: plan.contact_id,
                channel,
                purpose: Purpose::Marketing,
                status,
                source: ConsentSource::Keyword,
                proof: Some(plan.proof),
                recorded_at: now,
            };
            store.append_consent(tenant, &record).await?;
            record
        }
    };
    // Keyed by the record: a run that a crash cut short after the write queues it now, a
    // later run finds it queued.
    crate::crm::consent_changed(store, tenant, &record, Some(&message.id), now).await
}
