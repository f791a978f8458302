//! Configured channels: `POST/GET /v1/channels`, `GET/DELETE /v1/channels/{id}`. Secrets in
//! a channel's config are never returned.

use crate::AppState;
use crate::extract::{ApiJson, ApiQuery, Caller};
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use relais_channels::configured::TemplateFetchError;
use relais_channels::whatsapp::TemplateSyncError;
use relais_core::channel::ChannelKind;
use relais_core::tenant::Scope;
use relais_engine::channels::TemplateSyncFailure;
use relais_engine::secrets::SECRET_KEYS;
use relais_engine::smpp_server::IssueError;
use relais_store::{ChannelRecord, NewChannel};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/channels", post(create_channel).get(list_channels))
        .route("/channels/{id}", get(get_channel).delete(delete_channel))
        .route("/channels/{id}/templates", get(list_provider_templates))
        .route(
            "/channels/{id}/templates/sync",
            post(sync_provider_templates),
        )
        .route("/smpp/credentials", post(create_smpp_credentials))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    /// `smpp` or `whatsapp`.
    pub kind: String,
    /// Unique in the tenant; a message's `channel` may name it.
    pub name: String,
    /// For `smpp`: `host`, `port`, `system_id`, `password`, `source_addr`, `window`, `binds`,
    /// `max_rate`, and optionally `data_coding`, `concatenation`, `receipt_id_base`… (docs/smpp.md).
    /// For `whatsapp`: `phone_number_id`, `access_token`, `app_secret`, `verify_token`, and
    /// optionally `business_account_id`, `base_url`, `api_version`, `max_rate`
    /// (docs/channels.md). Every kind also takes the routing keys `prefixes`, `countries`
    /// and `weight` (docs/channels.md, "Routing between accounts").
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelView {
    pub id: String,
    pub kind: String,
    pub name: String,
    /// The config with its secrets replaced by `"***"`.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Where the provider calls (a path on this server's public address), for channels
    /// their provider tells by webhooks (`whatsapp`); absent for the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[schema(value_type = String)]
    pub created_at: jiff::Timestamp,
}

fn view(record: ChannelRecord) -> ChannelView {
    let mut config = record.config;
    if let Some(object) = config.as_object_mut() {
        // A credential's hash is no secret to seal, but no one's business either.
        for key in SECRET_KEYS.iter().chain(&["password_hash"]) {
            if let Some(value) = object.get_mut(*key) {
                *value = serde_json::Value::String("***".into());
            }
        }
    }
    ChannelView {
        webhook_url: super::hooks::webhook_url(&record.kind, &record.id),
        id: record.id,
        kind: record.kind,
        name: record.name,
        config,
        created_at: record.created_at,
    }
}

/// Configures a channel; an `smpp` channel binds to its SMSC at once, a `whatsapp` channel
/// answers its provider's calls at its `webhook_url` at once.
#[utoipa::path(post, path = "/v1/channels", tag = "channels", request_body = CreateChannel,
    responses((status = 201, body = ChannelView), (status = 409, body = crate::problem::Problem),
        (status = 422, body = crate::problem::Problem)))]
pub async fn create_channel(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateChannel>,
) -> ApiResult<(StatusCode, axum::Json<ChannelView>)> {
    caller.require(Scope::Admin)?;
    if !relais_channels::configured::KINDS.contains(&body.kind.as_str()) {
        return Err(ApiError::invalid_field(
            "/kind",
            format!(
                "`{}` channels cannot be configured yet; use one of: {}",
                body.kind,
                relais_channels::configured::KINDS.join(", ")
            ),
        ));
    }
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::invalid_field(
            "/name",
            "the name must hold 1 to 64 characters",
        ));
    }
    // A message's `channel` is read as a kind first: a channel named `sms` could never be chosen.
    if name.parse::<ChannelKind>().is_ok() {
        return Err(ApiError::invalid_field(
            "/name",
            format!("`{name}` is a channel kind; choose another name"),
        ));
    }
    relais_channels::check_config(&body.kind, &body.config)
        .map_err(|e| ApiError::invalid_field(&format!("/config{}", e.pointer), e.detail))?;
    let record = state
        .store
        .create_channel(
            &NewChannel {
                tenant_id: caller.tenant_id.clone(),
                kind: body.kind,
                name: name.to_owned(),
                config: relais_engine::secrets::current().seal_config(&body.config),
            },
            state.clock.now(),
        )
        .await?;
    state
        .channels
        .start(&record)
        .map_err(|e| ApiError::invalid_field(&format!("/config{}", e.pointer), e.detail))?;
    Ok((StatusCode::CREATED, axum::Json(view(record))))
}

/// The tenant's channels (secrets redacted).
#[utoipa::path(get, path = "/v1/channels", tag = "channels",
    responses((status = 200, body = Vec<ChannelView>)))]
pub async fn list_channels(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<ChannelView>>> {
    caller.require(Scope::Read)?;
    let records = state.store.channels(&caller.tenant_id).await?;
    Ok(axum::Json(records.into_iter().map(view).collect()))
}

/// One channel (secrets redacted).
#[utoipa::path(get, path = "/v1/channels/{id}", tag = "channels",
    responses((status = 200, body = ChannelView), (status = 404, body = crate::problem::Problem)))]
pub async fn get_channel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ChannelView>> {
    caller.require(Scope::Read)?;
    let record = state
        .store
        .channel(&caller.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("channel {id}")))?;
    Ok(axum::Json(view(record)))
}

/// Deletes a channel and closes its connection. Refused (409) while messages wait to be
/// sent on it, unless `?force=true` (they then fail with `unknown_channel`).
#[utoipa::path(delete, path = "/v1/channels/{id}", tag = "channels", params(DeleteQuery),
    responses((status = 204), (status = 404, body = crate::problem::Problem),
        (status = 409, body = crate::problem::Problem)))]
pub async fn delete_channel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    if !q.force {
        let queued = state
            .store
            .queued_on_channel(&caller.tenant_id, &id)
            .await?;
        if queued > 0 {
            return Err(ApiError::conflict(format!(
                "{queued} message(s) are waiting to be sent on channel {id}; deleting it would \
                 fail them (`unknown_channel`). Wait for them, cancel them, or delete with \
                 ?force=true"
            )));
        }
    }
    if !state.store.delete_channel(&caller.tenant_id, &id).await? {
        return Err(ApiError::not_found(format!("channel {id}")));
    }
    state.channels.stop(&id);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct DeleteQuery {
    /// Delete even though messages wait to be sent on the channel: they fail with
    /// `unknown_channel`.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SmppCredentials {
    /// The channel record holding them (kind `smpp_server`); delete it to revoke them.
    pub id: String,
    pub system_id: String,
    /// Shown once; only its argon2 hash is stored.
    pub password: String,
}

/// Issues a system_id and password with which an ESME binds to `relais serve --smpp-listen`
/// and sends as this tenant.
#[utoipa::path(post, path = "/v1/smpp/credentials", tag = "channels",
    responses((status = 201, body = SmppCredentials)))]
pub async fn create_smpp_credentials(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<(StatusCode, axum::Json<SmppCredentials>)> {
    caller.require(Scope::Admin)?;
    let issued = relais_engine::smpp_server::issue_credentials(
        &*state.store,
        &caller.tenant_id,
        state.clock.now(),
    )
    .await
    .map_err(|e| match e {
        IssueError::Store(e) => ApiError::from(e),
        IssueError::Hash(_) => ApiError::internal(e),
    })?;
    Ok((
        StatusCode::CREATED,
        axum::Json(SmppCredentials {
            id: issued.id,
            system_id: issued.system_id,
            password: issued.password,
        }),
    ))
}

/// A template of a channel's provider account, as the last synchronisation found it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderTemplateView {
    pub name: String,
    /// The provider's locale code (`fr`, `en_US`).
    pub language: String,
    /// `MARKETING`, `UTILITY` or `AUTHENTICATION`.
    pub category: String,
    /// `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, `DISABLED`…: only `APPROVED` ones are sent.
    pub status: String,
    /// Header, body, footer and buttons, as the provider wrote them.
    #[schema(value_type = Vec<Object>)]
    pub components: serde_json::Value,
    #[schema(value_type = String)]
    pub synced_at: jiff::Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderTemplateList {
    pub data: Vec<ProviderTemplateView>,
}

fn provider_list(templates: Vec<relais_store::ProviderTemplate>) -> ProviderTemplateList {
    ProviderTemplateList {
        data: templates
            .into_iter()
            .map(|t| ProviderTemplateView {
                name: t.name,
                language: t.language,
                category: t.category,
                status: t.status,
                components: t.components,
                synced_at: t.synced_at,
            })
            .collect(),
    }
}

impl From<TemplateSyncFailure> for ApiError {
    fn from(e: TemplateSyncFailure) -> Self {
        match e {
            TemplateSyncFailure::NotFound(id) => ApiError::not_found(format!("channel {id}")),
            TemplateSyncFailure::Store(e) => e.into(),
            TemplateSyncFailure::Fetch(e) => match e {
                TemplateFetchError::NoTemplates(_) => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "no-provider-templates",
                    e.to_string(),
                ),
                TemplateFetchError::Config(config) => {
                    ApiError::invalid_field(&format!("/config{}", config.pointer), config.detail)
                }
                TemplateFetchError::Sync(TemplateSyncError::NoBusinessAccount) => {
                    ApiError::invalid_field(
                        "/config/waba_id",
                        TemplateSyncError::NoBusinessAccount.to_string(),
                    )
                }
                // The provider refused, could not be reached or answered nonsense: nothing
                // was changed, and the fault is upstream.
                TemplateFetchError::Sync(sync) => {
                    ApiError::new(StatusCode::BAD_GATEWAY, "provider", sync.to_string())
                }
            },
        }
    }
}

/// Reads the templates of the channel's provider account (WhatsApp: `GET
/// {base_url}/{api_version}/{waba_id}/message_templates`, every page) and keeps them in
/// place of the last synchronisation's. A send of a known template that is not `APPROVED`
/// is then refused at once.
#[utoipa::path(post, path = "/v1/channels/{id}/templates/sync", tag = "channels",
    responses((status = 200, body = ProviderTemplateList), (status = 404, body = crate::problem::Problem),
        (status = 422, body = crate::problem::Problem), (status = 502, body = crate::problem::Problem)))]
pub async fn sync_provider_templates(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ProviderTemplateList>> {
    caller.require(Scope::Admin)?;
    let templates = state
        .channels
        .sync_templates(&caller.tenant_id, &id)
        .await?;
    Ok(axum::Json(provider_list(templates)))
}

/// The templates of the channel's provider account, as the last synchronisation found
/// them, by name then language.
#[utoipa::path(get, path = "/v1/channels/{id}/templates", tag = "channels",
    responses((status = 200, body = ProviderTemplateList), (status = 404, body = crate::problem::Problem)))]
pub async fn list_provider_templates(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ProviderTemplateList>> {
    caller.require(Scope::Read)?;
    if state.store.channel(&caller.tenant_id, &id).await?.is_none() {
        return Err(ApiError::not_found(format!("channel {id}")));
    }
    let templates = state
        .store
        .provider_templates(&caller.tenant_id, &id)
        .await?;
    Ok(axum::Json(provider_list(templates)))
}
