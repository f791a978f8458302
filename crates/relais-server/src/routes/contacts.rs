//! Contacts, their identities, their consent ledger and merges.

use crate::AppState;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::problem::{ApiError, ApiResult};
use crate::routes::PageQuery;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use relais_core::channel::ChannelKind;
use relais_core::consent::{
    ConsentDecision, ConsentRecord, ConsentSource, ConsentStatus, Purpose, current_state, may_send,
};
use relais_core::contact::{Contact, Identity, MergeCause, validate_locale, validate_timezone};
use relais_core::tenant::Scope;
use relais_store::{ContactPatch, MergeRecord, NewContact, Page};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/contacts", post(create_contact).get(list_contacts))
        .route(
            "/contacts/{id}",
            get(get_contact)
                .patch(update_contact)
                .delete(delete_contact),
        )
        .route("/contacts/{id}/identities", post(add_identity))
        .route(
            "/contacts/{id}/identities/{channel}/{address}",
            delete(remove_identity),
        )
        .route(
            "/contacts/{id}/consents",
            post(record_consent).get(list_consents),
        )
        .route("/contacts/{id}/consents/decision", get(consent_decision))
        .route("/contacts/{id}/merge", post(merge_contact))
        .route("/contacts/{id}/merges", get(list_merges))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityInput {
    pub channel: ChannelKind,
    /// Phone numbers may be national (the server's default country applies), `00…` or `+…`.
    pub address: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContact {
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// IANA time zone, e.g. `Europe/Paris`.
    pub timezone: Option<String>,
    /// BCP 47 tag, e.g. `fr-FR`.
    pub locale: Option<String>,
    #[serde(default)]
    pub identities: Vec<IdentityInput>,
    /// A fresh opt-in, recorded in the consent ledger: `{"purpose", "channel"?, "proof"}`.
    /// Required to create again a person whose data was erased (see docs/privacy.md).
    #[schema(value_type = Option<Object>)]
    pub opt_in: Option<relais_engine::privacy::OptIn>,
}

fn parse_identities(
    state: &AppState,
    inputs: &[IdentityInput],
    base: &str,
) -> ApiResult<Vec<Identity>> {
    let rules = state.address_rules();
    let mut out: Vec<Identity> = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let identity = Identity::parse(input.channel, &input.address, rules)
            .map_err(|e| ApiError::invalid_field(&format!("{base}/{i}/address"), e.to_string()))?;
        if !out.contains(&identity) {
            out.push(identity);
        }
    }
    Ok(out)
}

fn check_profile(timezone: Option<&str>, locale: Option<&str>) -> ApiResult<()> {
    if let Some(tz) = timezone {
        validate_timezone(tz).map_err(|e| ApiError::invalid_field("/timezone", e.to_string()))?;
    }
    if let Some(l) = locale {
        validate_locale(l).map_err(|e| ApiError::invalid_field("/locale", e.to_string()))?;
    }
    Ok(())
}

/// Create a contact.
#[utoipa::path(post, path = "/v1/contacts", tag = "contacts", request_body = CreateContact,
    responses((status = 201, body = Contact), (status = 409, description = "An identity belongs to another contact, or to an erased person and no `opt_in` came with it", body = crate::problem::Problem),
    (status = 422, body = crate::problem::Problem)))]
pub async fn create_contact(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateContact>,
) -> ApiResult<(StatusCode, axum::Json<Contact>)> {
    caller.require(Scope::Send)?;
    check_profile(body.timezone.as_deref(), body.locale.as_deref())?;
    let new = NewContact {
        identities: parse_identities(&state, &body.identities, "/identities")?,
        attributes: body.attributes,
        timezone: body.timezone,
        locale: body.locale,
    };
    let contact = relais_engine::privacy::create_contact(
        &*state.store,
        &caller.tenant_id,
        &new,
        body.opt_in.as_ref(),
        state.clock.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(contact)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ContactQuery {
    /// Find the contact with this address (a phone in any format, an email, a chat id…).
    pub identity: Option<String>,
    /// Restrict `identity` to one channel kind.
    pub channel: Option<ChannelKind>,
    /// Items per page, 1 to 1000 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List contacts (cursor pagination), or find one by identity.
#[utoipa::path(get, path = "/v1/contacts", tag = "contacts", params(ContactQuery),
    responses((status = 200, body = ContactPage)))]
pub async fn list_contacts(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ContactQuery>,
) -> ApiResult<axum::Json<Page<Contact>>> {
    caller.require(Scope::Read)?;
    if let Some(raw) = q.identity.as_deref() {
        let rules = state.address_rules();
        // The same person may be written many ways: try the address as each kind reads it.
        let kinds: Vec<ChannelKind> = match q.channel {
            Some(c) => vec![c],
            None => vec![
                ChannelKind::Sms,
                ChannelKind::Email,
                ChannelKind::Telegram,
                ChannelKind::Webchat,
            ],
        };
        let mut candidates: Vec<(Option<ChannelKind>, String)> =
            vec![(q.channel, raw.trim().to_owned())];
        for kind in kinds {
            if let Ok(address) = relais_core::contact::normalize_address(kind, raw, rules) {
                candidates.push((q.channel, address));
            }
        }
        for (channel, address) in candidates {
            if let Some(c) = state
                .store
                .contact_by_identity(&caller.tenant_id, channel, &address)
                .await?
            {
                return Ok(axum::Json(Page {
                    data: vec![c],
                    next_cursor: None,
                }));
            }
        }
        return Ok(axum::Json(Page {
            data: vec![],
            next_cursor: None,
        }));
    }
    Ok(axum::Json(
        state
            .store
            .list_contacts(
                &caller.tenant_id,
                &PageQuery {
                    limit: q.limit,
                    cursor: q.cursor,
                }
                .to_request()?,
            )
            .await?,
    ))
}

/// A page of contacts.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ContactPage {
    data: Vec<Contact>,
    next_cursor: Option<String>,
}

pub async fn load(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Contact> {
    state
        .store
        .contact(&caller.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("contact {id}")))
}

/// An answer a bot flow stored in one of the contact's attributes: first-party data, with
/// where and when it was given.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowAnswerView {
    pub attribute: String,
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    /// The flow and its node that asked.
    pub flow: String,
    pub node: String,
    #[schema(value_type = String)]
    pub channel: relais_core::channel::ChannelKind,
    pub conversation_id: String,
    /// The inbound message that carried the answer.
    pub message_id: String,
    #[schema(value_type = String)]
    pub answered_at: jiff::Timestamp,
}

/// A contact, with the answers flows stored on it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactDetail {
    #[serde(flatten)]
    pub contact: Contact,
    /// Oldest first.
    pub answers: Vec<FlowAnswerView>,
}

/// Get a contact, with the answers bot flows stored on it (where and when each was given).
#[utoipa::path(get, path = "/v1/contacts/{id}", tag = "contacts", responses((status = 200, body = ContactDetail), (status = 404, body = crate::problem::Problem)))]
pub async fn get_contact(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<ContactDetail>> {
    caller.require(Scope::Read)?;
    let contact = load(&state, &caller, &id).await?;
    let answers = state
        .store
        .flow_answers(&caller.tenant_id, &contact.id)
        .await?
        .into_iter()
        .map(|a| FlowAnswerView {
            attribute: a.attribute,
            value: a.value,
            flow: a.flow,
            node: a.node,
            channel: a.channel,
            conversation_id: a.conversation_id,
            message_id: a.message_id,
            answered_at: a.answered_at,
        })
        .collect();
    Ok(axum::Json(ContactDetail { contact, answers }))
}

/// `null` clears, absent leaves alone.
fn double_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContact {
    /// Merged key by key; a `null` value removes the key.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub timezone: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub locale: Option<Option<String>>,
}

/// Update a contact's attributes, time zone or locale.
#[utoipa::path(patch, path = "/v1/contacts/{id}", tag = "contacts", request_body = UpdateContact, responses((status = 200, body = Contact)))]
pub async fn update_contact(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateContact>,
) -> ApiResult<axum::Json<Contact>> {
    caller.require(Scope::Send)?;
    check_profile(
        body.timezone.clone().flatten().as_deref(),
        body.locale.clone().flatten().as_deref(),
    )?;
    let patch = ContactPatch {
        attributes: body.attributes,
        timezone: body.timezone,
        locale: body.locale,
    };
    Ok(axum::Json(
        state
            .store
            .update_contact(&caller.tenant_id, &id, &patch, state.clock.now())
            .await?,
    ))
}

/// Delete a contact with its identities and consent ledger.
#[utoipa::path(delete, path = "/v1/contacts/{id}", tag = "contacts", responses((status = 204), (status = 404, body = crate::problem::Problem)))]
pub async fn delete_contact(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    if state.store.delete_contact(&caller.tenant_id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("contact {id}")))
    }
}

/// Add an identity to a contact.
#[utoipa::path(post, path = "/v1/contacts/{id}/identities", tag = "contacts", request_body = IdentityInput, responses((status = 200, body = Contact), (status = 409, body = crate::problem::Problem)))]
pub async fn add_identity(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<IdentityInput>,
) -> ApiResult<axum::Json<Contact>> {
    caller.require(Scope::Send)?;
    let identity = Identity::parse(body.channel, &body.address, state.address_rules())
        .map_err(|e| ApiError::invalid_field("/address", e.to_string()))?;
    Ok(axum::Json(
        state
            .store
            .add_identity(&caller.tenant_id, &id, &identity, state.clock.now())
            .await?,
    ))
}

/// Remove an identity from a contact.
#[utoipa::path(delete, path = "/v1/contacts/{id}/identities/{channel}/{address}", tag = "contacts", responses((status = 204), (status = 404, body = crate::problem::Problem)))]
pub async fn remove_identity(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, channel, address)): ApiPath<(String, String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Send)?;
    let channel: ChannelKind =
        channel
            .parse()
            .map_err(|e: relais_core::channel::UnknownChannelKind| {
                ApiError::bad_request(e.to_string())
            })?;
    let identity = Identity::parse(channel, &address, state.address_rules())
        .unwrap_or(Identity { channel, address });
    if state
        .store
        .remove_identity(&caller.tenant_id, &id, &identity)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "{} identity {} of contact {id}",
            identity.channel, identity.address
        )))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    /// A channel kind, or absent / `"all"` for every channel.
    pub channel: Option<String>,
    /// `transactional`, `marketing`, `all`, or a topic of your own such as `newsletter`.
    #[schema(value_type = String)]
    pub purpose: Purpose,
    pub status: ConsentStatus,
    /// Defaults to `api`.
    pub source: Option<ConsentSource>,
    /// The text the person agreed to, or the message they sent.
    pub proof: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentView {
    /// The current state per channel and purpose, derived from the history.
    pub current: Vec<ConsentRecord>,
    /// Every record, oldest first.
    pub history: Vec<ConsentRecord>,
}

/// Append a consent record (opt-in or opt-out) to the contact's ledger; the tenant's
/// webhooks get a `consent.changed` event.
#[utoipa::path(post, path = "/v1/contacts/{id}/consents", tag = "consents", request_body = ConsentInput, responses((status = 201, body = ConsentRecord)))]
pub async fn record_consent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ConsentInput>,
) -> ApiResult<(StatusCode, axum::Json<ConsentRecord>)> {
    caller.require(Scope::Send)?;
    let channel = match body.channel.as_deref() {
        None | Some("all") => None,
        Some(c) => Some(
            c.parse::<ChannelKind>()
                .map_err(|e| ApiError::invalid_field("/channel", e.to_string()))?,
        ),
    };
    if body.proof.as_ref().is_some_and(|p| p.len() > 10_000) {
        return Err(ApiError::invalid_field("/proof", "at most 10000 bytes"));
    }
    let record = ConsentRecord {
        id: uuid_v7(),
        contact_id: id,
        channel,
        purpose: body.purpose,
        status: body.status,
        source: body.source.unwrap_or(ConsentSource::Api),
        proof: body.proof,
        recorded_at: state.clock.now(),
    };
    relais_engine::crm::record_consent(&*state.store, &caller.tenant_id, &record).await?;
    Ok((StatusCode::CREATED, axum::Json(record)))
}

fn uuid_v7() -> String {
    // Time-ordered ids keep the ledger's insertion order visible in the id itself.
    relais_core::ids::new_id()
}

/// The consent ledger of a contact: current state and full history.
#[utoipa::path(get, path = "/v1/contacts/{id}/consents", tag = "consents", responses((status = 200, body = ConsentView)))]
pub async fn list_consents(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<ConsentView>> {
    caller.require(Scope::Read)?;
    load(&state, &caller, &id).await?;
    let history = state.store.consents(&caller.tenant_id, &id).await?;
    Ok(axum::Json(ConsentView {
        current: current_state(&history),
        history,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DecisionQuery {
    pub channel: ChannelKind,
    /// `transactional`, `marketing` or a topic.
    pub purpose: String,
}

/// May we send this purpose on this channel to the contact now? With the reason.
#[utoipa::path(get, path = "/v1/contacts/{id}/consents/decision", tag = "consents", params(DecisionQuery), responses((status = 200, body = ConsentDecision)))]
pub async fn consent_decision(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DecisionQuery>,
) -> ApiResult<axum::Json<ConsentDecision>> {
    caller.require(Scope::Read)?;
    let purpose = Purpose::parse(&q.purpose).map_err(|e| ApiError::bad_request(e.to_string()))?;
    load(&state, &caller, &id).await?;
    let ledger = state.store.consents(&caller.tenant_id, &id).await?;
    Ok(axum::Json(may_send(&ledger, q.channel, &purpose)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeInput {
    /// The duplicate to fold into the contact of the path; it is deleted.
    pub contact_id: String,
}

/// Merge another contact into this one: identities, attributes (this contact's values win),
/// consents and history move here; the merge is recorded.
#[utoipa::path(post, path = "/v1/contacts/{id}/merge", tag = "contacts", request_body = MergeInput, responses((status = 200, body = Contact)))]
pub async fn merge_contact(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<MergeInput>,
) -> ApiResult<axum::Json<Contact>> {
    caller.require(Scope::Send)?;
    state
        .store
        .merge_contacts(
            &caller.tenant_id,
            &id,
            &body.contact_id,
            &MergeCause::Api,
            state.clock.now(),
        )
        .await?;
    Ok(axum::Json(load(&state, &caller, &id).await?))
}

#[derive(Serialize, ToSchema)]
pub struct MergeView {
    pub id: String,
    pub merged_id: String,
    pub merged_at: jiff::Timestamp,
    pub merged_snapshot: Contact,
    /// `{"type": "api"}`, or `{"type": "flow_answer", "identity", "flow", "node",
    /// "message_id", "conversation_id"}` when the merged contact (a web chat visitor)
    /// gave an address of this contact in a flow: their claim, not a proof.
    pub cause: MergeCause,
}

/// The merges recorded for a contact.
#[utoipa::path(get, path = "/v1/contacts/{id}/merges", tag = "contacts", responses((status = 200, body = Vec<MergeView>), (status = 404, body = crate::problem::Problem)))]
pub async fn list_merges(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<Vec<MergeView>>> {
    caller.require(Scope::Read)?;
    load(&state, &caller, &id).await?;
    let merges: Vec<MergeRecord> = state.store.merges(&caller.tenant_id, &id).await?;
    Ok(axum::Json(
        merges
            .into_iter()
            .map(|m| MergeView {
                id: m.id,
                merged_id: m.merged_id,
                merged_at: m.merged_at,
                merged_snapshot: m.merged_snapshot,
                cause: m.cause,
            })
            .collect(),
    ))
}
