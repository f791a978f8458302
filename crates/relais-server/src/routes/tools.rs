//! Small calculators exposed for integrators.

use crate::AppState;
use crate::extract::{ApiJson, Caller};
use crate::problem::ApiResult;
use axum::Router;
use axum::routing::post;
use relais_core::sms::{segment_info, smart_encode};
use relais_core::tenant::Scope;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new().route("/tools/sms-segments", post(sms_segments))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentsRequest {
    pub text: String,
    /// Replace look-alike characters (curly quotes, long dashes…) to stay in GSM-7.
    #[serde(default)]
    pub smart_encoding: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentsResponse {
    /// `gsm7` or `ucs2`.
    pub encoding: String,
    pub characters: usize,
    pub segments: usize,
    /// The text as it would be sent, when smart encoding changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// How an SMS text is encoded and how many segments it costs.
#[utoipa::path(post, path = "/v1/tools/sms-segments", tag = "tools", request_body = SegmentsRequest, responses((status = 200, body = SegmentsResponse)))]
pub async fn sms_segments(
    caller: Caller,
    ApiJson(body): ApiJson<SegmentsRequest>,
) -> ApiResult<axum::Json<SegmentsResponse>> {
    caller.require(Scope::Read)?;
    let (text, changed) = if body.smart_encoding {
        let encoded = smart_encode(&body.text);
        let changed = encoded != body.text;
        (encoded.into_owned(), changed)
    } else {
        (body.text, false)
    };
    let info = segment_info(&text);
    let encoding = serde_json::to_value(info.encoding)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(axum::Json(SegmentsResponse {
        encoding,
        characters: info.characters,
        segments: info.segments,
        text: changed.then_some(text),
    }))
}
