//! `/v1/nlu`: classify a message, train the tenant's intent model, the knowledge base and
//! LLM settings, generative answers and agent assist.

use crate::AppState;
use crate::extract::{ApiJson, ApiQuery, Caller};
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post, put};
use relais_core::tenant::Scope;
use relais_engine::nlu::{
    Classification, KNOWLEDGE_BASE_KEY, LLM_KEY, NluServiceError, TrainedModel,
};
use relais_nlu::{Answer, ConversationMessage, FaqEntry, LlmConfig, Rejection};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/nlu/classify", post(classify))
        .route(
            "/nlu/train",
            post(train).layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024)),
        )
        .route("/nlu/knowledge-base", put(put_knowledge_base))
        .route("/nlu/llm", get(get_llm).put(put_llm))
        .route("/nlu/answer", post(answer))
        .route("/nlu/suggest", post(suggest))
        .route("/nlu/summarize", post(summarize))
}

fn nlu_error(e: NluServiceError) -> ApiError {
    match e {
        NluServiceError::Store(s) => s.into(),
        NluServiceError::NoLlm => {
            ApiError::new(StatusCode::CONFLICT, "not-configured", e.to_string())
        }
        NluServiceError::Nlu(n) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            n.to_string(),
        ),
        other => ApiError::internal(other),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    pub text: String,
    /// Messages the same customer sent in the last few minutes, this one included.
    #[serde(default)]
    pub recent_messages: u32,
}

/// Language, intent (with confidence, or out of scope), sentiment with emotion signals and
/// urgency of one message, from the tenant's live model.
#[utoipa::path(post, path = "/v1/nlu/classify", tag = "nlu", request_body = ClassifyRequest,
    responses((status = 200, description = "`{model_version, language, intent, sentiment, urgency}`", body = Object)))]
pub async fn classify(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ClassifyRequest>,
) -> ApiResult<axum::Json<Classification>> {
    caller.require(Scope::Read)?;
    if body.text.len() > 10_000 {
        return Err(ApiError::invalid_field("/text", "at most 10000 bytes"));
    }
    Ok(axum::Json(
        state
            .nlu
            .classify(&caller.tenant_id, &body.text, body.recent_messages)
            .await
            .map_err(nlu_error)?,
    ))
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct TrainedModelDoc {
    version: i64,
    summary: String,
    oos_threshold: f32,
    /// `{threshold, in_scope_accuracy, in_scope_precision, oos_recall}` estimated by
    /// cross-validation, or `null`.
    #[schema(value_type = Option<Object>)]
    estimate: Option<()>,
}

/// How the tenant wants out-of-scope messages rejected: at most one of the three.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TrainQuery {
    /// Reject this share of out-of-scope messages (0–1), as estimated by cross-validation.
    pub oos_recall: Option<f32>,
    /// Answer right this share of the in-scope messages answered (0–1).
    pub in_scope_precision: Option<f32>,
    /// A fixed confidence threshold (0–1); 1 sends everything to a human.
    pub oos_threshold: Option<f32>,
}

impl TrainQuery {
    fn rejection(&self) -> Result<Option<Rejection>, ApiError> {
        let chosen: Vec<Rejection> = [
            self.oos_recall.map(Rejection::OosRecall),
            self.in_scope_precision.map(Rejection::InScopePrecision),
            self.oos_threshold.map(Rejection::Threshold),
        ]
        .into_iter()
        .flatten()
        .collect();
        match chosen.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            _ => Err(ApiError::bad_parameter(
                "oos_recall",
                "give at most one of oos_recall, in_scope_precision and oos_threshold",
            )),
        }
    }
}

/// Train a new version of the tenant's intent model from examples: CSV `text,intent`
/// (`Content-Type: text/csv`) or a JSON array of `{"text", "intent"}`. It is live at once.
/// The query chooses the out-of-scope threshold: `?oos_recall=0.6`,
/// `?in_scope_precision=0.95` or `?oos_threshold=0.3` (default: an out-of-scope recall of
/// 0.3 when it can be estimated).
#[utoipa::path(post, path = "/v1/nlu/train", tag = "nlu", params(TrainQuery), request_body(content = String, content_type = "text/csv"),
    responses((status = 201, body = TrainedModelDoc), (status = 422, body = crate::problem::Problem)))]
pub async fn train(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<TrainQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<TrainedModel>)> {
    caller.require(Scope::Admin)?;
    let rejection = query.rejection()?;
    let is_csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/csv"));
    let examples = if is_csv {
        relais_nlu::load_examples_csv(&body[..])
    } else {
        relais_nlu::load_examples_json(&body[..])
    }
    .map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            e.to_string(),
        )
    })?;
    let trained = state
        .nlu
        .train_with(&caller.tenant_id, examples, rejection, state.clock.now())
        .await
        .map_err(nlu_error)?;
    Ok((StatusCode::CREATED, axum::Json(trained)))
}

/// Replace the tenant's knowledge base (FAQ entries `{id, question, answer, tags}`).
#[utoipa::path(put, path = "/v1/nlu/knowledge-base", tag = "nlu", request_body = Vec<Object>, responses((status = 204)))]
pub async fn put_knowledge_base(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(entries): ApiJson<Vec<FaqEntry>>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    for (i, e) in entries.iter().enumerate() {
        if e.id.trim().is_empty() || e.answer.trim().is_empty() {
            return Err(ApiError::invalid_field(
                &format!("/{i}"),
                "every entry needs an id and an answer",
            ));
        }
    }
    let value = serde_json::to_value(&entries).map_err(ApiError::internal)?;
    state
        .store
        .put_setting(
            &caller.tenant_id,
            KNOWLEDGE_BASE_KEY,
            &value,
            state.clock.now(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Configure the OpenAI-compatible model used for answers (`base_url`, `model`, `api_key`,
/// `timeout_ms`, `temperature`, `max_tokens`). Works with Ollama, vLLM or a hosted service.
#[utoipa::path(put, path = "/v1/nlu/llm", tag = "nlu", request_body = Object, responses((status = 204)))]
pub async fn put_llm(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(config): ApiJson<LlmConfig>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://")) {
        return Err(ApiError::invalid_field(
            "/base_url",
            "must be an http:// or https:// URL",
        ));
    }
    let value = serde_json::to_value(&config).map_err(ApiError::internal)?;
    state
        .store
        .put_setting(&caller.tenant_id, LLM_KEY, &value, state.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The model settings as anyone of the tenant may read them: the key itself is never
/// shown. Without a model, only `configured: false`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LlmView {
    pub configured: bool,
    #[serde(flatten)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<LlmSettingsView>,
}

#[derive(Debug, Serialize)]
pub struct LlmSettingsView {
    pub base_url: String,
    pub model: String,
    pub api_key_set: bool,
    pub timeout_ms: u64,
    pub temperature: f32,
    pub max_tokens: u32,
}

/// Whether the tenant configured a model, and its settings without the API key: the
/// console shows its reply suggestions and summaries only when there is one.
#[utoipa::path(get, path = "/v1/nlu/llm", tag = "nlu", responses((status = 200, body = LlmView)))]
pub async fn get_llm(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<LlmView>> {
    caller.require(Scope::Read)?;
    let config = state
        .nlu
        .llm_config(&caller.tenant_id)
        .await
        .map_err(nlu_error)?;
    Ok(axum::Json(LlmView {
        configured: config.is_some(),
        settings: config.map(|config| LlmSettingsView {
            api_key_set: config.api_key.is_some(),
            base_url: config.base_url,
            model: config.model,
            timeout_ms: config.timeout_ms,
            temperature: config.temperature,
            max_tokens: config.max_tokens,
        }),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    pub question: String,
}

/// Answer a question from the tenant's knowledge base, citing the entries used; says it
/// passes to a human (`needs_human: true`) rather than invent.
#[utoipa::path(post, path = "/v1/nlu/answer", tag = "nlu", request_body = AnswerRequest, responses((status = 200, body = Object)))]
pub async fn answer(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<AnswerRequest>,
) -> ApiResult<axum::Json<Answer>> {
    caller.require(Scope::Read)?;
    Ok(axum::Json(
        state
            .nlu
            .answer(&caller.tenant_id, &body.question)
            .await
            .map_err(nlu_error)?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessagesRequest {
    /// `[{"speaker": "customer" | "agent" | "bot", "text": "…"}]`, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<ConversationMessage>,
}

/// Agent assist: a suggested reply for the conversation so far.
#[utoipa::path(post, path = "/v1/nlu/suggest", tag = "nlu", request_body = MessagesRequest, responses((status = 200, body = Object)))]
pub async fn suggest(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<MessagesRequest>,
) -> ApiResult<axum::Json<Answer>> {
    caller.require(Scope::Read)?;
    Ok(axum::Json(
        state
            .nlu
            .suggest(&caller.tenant_id, &body.messages)
            .await
            .map_err(nlu_error)?,
    ))
}

#[derive(Serialize, ToSchema)]
pub struct Summary {
    pub summary: String,
}

/// Agent assist: a short summary of the conversation.
#[utoipa::path(post, path = "/v1/nlu/summarize", tag = "nlu", request_body = MessagesRequest, responses((status = 200, body = Summary)))]
pub async fn summarize(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<MessagesRequest>,
) -> ApiResult<axum::Json<Summary>> {
    caller.require(Scope::Read)?;
    let summary = state
        .nlu
        .summarize(&caller.tenant_id, &body.messages)
        .await
        .map_err(|e| match e {
            NluServiceError::Nlu(n) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "llm-unavailable",
                format!("the model did not answer: {n}"),
            ),
            other => nlu_error(other),
        })?;
    Ok(axum::Json(Summary { summary }))
}
