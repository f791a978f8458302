//! Click-to-chat entry points at work: created from a request (checked, with a referral
//! code of their own), their link, and the entry point an inbound message's referral tag
//! names, which starts its flow and attributes the conversation (see the inbound steps).

use jiff::Timestamp;
use relais_core::campaign::CampaignLabel;
use relais_core::entry_point::{
    Destination, EntryChannel, EntryPointError, ReferralCode, chat_link, prefilled_text,
    referral_in,
};
use relais_store::{EntryPoint, Store, StoreError};
use serde::Deserialize;

/// The body of `POST /v1/entry-points`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEntryPoint {
    pub name: String,
    /// `whatsapp`, `sms` or `webchat`.
    pub channel: String,
    /// The WhatsApp or SMS number people write to (E.164).
    #[serde(default)]
    pub number: Option<String>,
    /// The web page holding the chat widget (`webchat`).
    #[serde(default)]
    pub page: Option<String>,
    /// The words typed in for the person, before the referral tag.
    #[serde(default)]
    pub text: Option<String>,
    /// The referral code (drawn at random when absent).
    #[serde(default, rename = "ref")]
    pub referral: Option<String>,
    /// The flow a conversation opened through it starts.
    #[serde(default)]
    pub flow: Option<String>,
    /// The campaign its conversations are attributed to.
    #[serde(default)]
    pub campaign: Option<String>,
}

/// Why an entry point was not created; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum EntryPointsError {
    #[error("{pointer}: {detail}")]
    Invalid { pointer: String, detail: String },
    /// The referral code is the tenant's already.
    #[error("{0}")]
    ReferralTaken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(pointer: &str, detail: impl Into<String>) -> EntryPointsError {
    EntryPointsError::Invalid {
        pointer: pointer.to_owned(),
        detail: detail.into(),
    }
}

/// Most characters of a name and of the prefilled text: a name is a label in a list, and
/// the text is typed in a chat box (WhatsApp trims long prefilled texts).
const MAX_NAME_CHARS: usize = 100;
const MAX_TEXT_CHARS: usize = 500;

/// Checks `request` and stores the entry point.
pub async fn create(
    store: &dyn Store,
    tenant: &str,
    request: NewEntryPoint,
    now: Timestamp,
) -> Result<EntryPoint, EntryPointsError> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            "/name",
            format!("give a name of 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    let channel = EntryChannel::parse(&request.channel).ok_or_else(|| {
        invalid(
            "/channel",
            format!(
                "`{}` is not an entry point channel: whatsapp, sms or webchat",
                request.channel
            ),
        )
    })?;
    let destination =
        Destination::parse(channel, request.number.as_deref(), request.page.as_deref()).map_err(
            |e| match e {
                EntryPointError::BadPage(_) => invalid("/page", e.to_string()),
                EntryPointError::Missing(_, field) => invalid(&format!("/{field}"), e.to_string()),
                _ => invalid("/number", e.to_string()),
            },
        )?;
    let text = request
        .text
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    if text
        .as_ref()
        .is_some_and(|t| t.chars().count() > MAX_TEXT_CHARS)
    {
        return Err(invalid(
            "/text",
            format!("the text has at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    let referral = match &request.referral {
        Some(raw) => ReferralCode::parse(raw).map_err(|e| invalid("/ref", e.to_string()))?,
        None => ReferralCode::generate(&mut rand::thread_rng()),
    };
    let campaign = request
        .campaign
        .as_deref()
        .map(|c| CampaignLabel::parse(c).map_err(|e| invalid("/campaign", e.to_string())))
        .transpose()?;
    let flow = request
        .flow
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty());
    if let Some(flow) = &flow
        && store.flow(tenant, flow).await?.is_none()
    {
        return Err(invalid(
            "/flow",
            format!("the tenant has no flow named `{flow}` (PUT /v1/flows/{flow} first)"),
        ));
    }
    let entry = EntryPoint {
        id: relais_core::ids::new_id(),
        tenant_id: tenant.to_owned(),
        name: name.to_owned(),
        channel,
        destination,
        referral,
        text,
        flow,
        campaign,
        created_at: now,
    };
    store
        .create_entry_point(&entry)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(detail) => EntryPointsError::ReferralTaken(detail),
            other => other.into(),
        })?;
    Ok(entry)
}

/// The text typed in for the person when they follow the entry point's link.
pub fn prefilled(entry: &EntryPoint) -> String {
    prefilled_text(entry.text.as_deref(), &entry.referral)
}

/// The link that opens the conversation (what the QR code holds).
pub fn link(entry: &EntryPoint) -> String {
    chat_link(entry.channel, &entry.destination, &prefilled(entry))
}

/// The entry point whose referral tag `text` carries, if the tenant has one.
pub async fn referred_by(
    store: &dyn Store,
    tenant: &str,
    text: &str,
) -> Result<Option<EntryPoint>, StoreError> {
    match referral_in(text) {
        Some(referral) => store.entry_point_by_referral(tenant, &referral).await,
        None => Ok(None),
    }
}
