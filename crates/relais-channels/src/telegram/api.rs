//! [`BotApi`]: one bot's calls to `POST {base_url}/bot{token}/{method}`, answered
//! `{"ok": true, "result": …}` or refused ([`super::errors::classify`]).
//!
//! The token is part of every URL, so no URL ever reaches an error or a log line: a
//! request that got no answer is reported without it.

use super::config::TelegramConfig;
use super::errors::{ErrorCode, Refusal, classify, excerpt};
use crate::whatsapp::adapter::{ClientError, SEND_TIMEOUT, http_client};
use serde_json::Value;

/// Answers larger than this are not read further: the Bot API's are a few kilobytes (a
/// sent message echoed back), and a broken proxy must not make us buffer without bound.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// One bot's connection to the Bot API.
pub struct BotApi {
    config: TelegramConfig,
    client: reqwest::Client,
}

impl std::fmt::Debug for BotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotApi")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl BotApi {
    pub fn new(config: TelegramConfig) -> Result<BotApi, ClientError> {
        Ok(BotApi {
            client: http_client()?,
            config,
        })
    }

    pub fn config(&self) -> &TelegramConfig {
        &self.config
    }

    /// Calls `method` with a JSON `body`; the `result` of its answer.
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, Refusal> {
        let response = self
            .client
            .post(self.config.method_url(method))
            .json(body)
            .send()
            .await
            .map_err(|e| unanswered(method, e))?;
        let status = response.status().as_u16();
        let answer = read_answer(response)
            .await
            .map_err(|e| unanswered(method, e))?;
        if !(200..300).contains(&status) {
            return Err(classify(status, &answer));
        }
        let parsed = serde_json::from_slice::<Value>(&answer).ok();
        match parsed {
            Some(Value::Object(mut answer)) if answer.get("ok") == Some(&Value::Bool(true)) => {
                Ok(answer.remove("result").unwrap_or(Value::Null))
            }
            _ => Err(classify(status, &answer)),
        }
    }

    /// Tells Telegram to post this bot's updates to `url` with the channel's secret token:
    /// only messages and button taps, the updates the channel reads.
    pub async fn set_webhook(&self, url: &str) -> Result<(), Refusal> {
        let body = serde_json::json!({
            "url": url,
            "secret_token": self.config.secret_token(),
            "allowed_updates": ["message", "callback_query"],
        });
        self.call("setWebhook", &body).await.map(|_| ())
    }

    /// Stops the spinner on the button the person tapped.
    pub async fn answer_callback_query(&self, callback_query_id: &str) -> Result<(), Refusal> {
        let body = serde_json::json!({ "callback_query_id": callback_query_id });
        self.call("answerCallbackQuery", &body).await.map(|_| ())
    }
}

/// A request that got no answer: the network, DNS, TLS or the 10 s timeout. The URL
/// (with the token) is left out.
fn unanswered(method: &str, error: reqwest::Error) -> Refusal {
    let error = error.without_url();
    let what = if error.is_timeout() {
        format!("no answer within {} s", SEND_TIMEOUT.as_secs())
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    Refusal {
        error: ErrorCode::ProviderUnavailable.error(format!(
            "Bot API {method}: {what}: {}",
            excerpt(&error.to_string(), 200)
        )),
        retry_after: None,
    }
}

/// The answer's body, at most [`MAX_ANSWER_BYTES`] of it.
async fn read_answer(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    Ok(body)
}
