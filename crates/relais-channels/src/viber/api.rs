//! [`ViberApi`]: one bot's calls to `POST {base_url}/{method}` with the
//! `X-Viber-Auth-Token` header, answered `{"status": 0, …}` or refused
//! ([`super::errors::classify`]).

use super::config::ViberConfig;
use super::errors::{ErrorCode, classify, excerpt};
use crate::adapter::SendError;
use crate::whatsapp::adapter::{ClientError, SEND_TIMEOUT, http_client};
use serde_json::Value;

/// The header every call carries the bot's token in.
pub const AUTH_HEADER: &str = "X-Viber-Auth-Token";

/// Answers larger than this are not read further: Viber's are under a kilobyte, and a
/// broken proxy must not make us buffer without bound.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The callbacks a webhook set by Relais asks for (`message` and `subscribed` always come).
pub const EVENT_TYPES: [&str; 5] = [
    "delivered",
    "seen",
    "failed",
    "unsubscribed",
    "conversation_started",
];

/// One bot's connection to the REST bot API.
pub struct ViberApi {
    config: ViberConfig,
    client: reqwest::Client,
}

impl std::fmt::Debug for ViberApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViberApi")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ViberApi {
    pub fn new(config: ViberConfig) -> Result<ViberApi, ClientError> {
        Ok(ViberApi {
            client: http_client()?,
            config,
        })
    }

    pub fn config(&self) -> &ViberConfig {
        &self.config
    }

    /// Calls `method` with a JSON `body`; the answer, when its `status` is 0.
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, SendError> {
        let response = self
            .client
            .post(self.config.method_url(method))
            .header(AUTH_HEADER, self.config.auth_token())
            .json(body)
            .send()
            .await
            .map_err(|e| unanswered(method, e))?;
        let status = response.status().as_u16();
        let answer = read_answer(response)
            .await
            .map_err(|e| unanswered(method, e))?;
        match serde_json::from_slice::<Value>(&answer) {
            Ok(parsed)
                if (200..300).contains(&status)
                    && parsed.get("status") == Some(&Value::from(0)) =>
            {
                Ok(parsed)
            }
            _ => Err(classify(status, &answer)),
        }
    }

    /// Tells Viber to post this bot's callbacks to `url`.
    pub async fn set_webhook(&self, url: &str) -> Result<(), SendError> {
        let body = serde_json::json!({
            "url": url,
            "event_types": EVENT_TYPES,
            "send_name": true,
            "send_photo": false,
        });
        self.call("set_webhook", &body).await.map(|_| ())
    }

    /// The size a media's server gives for it (`Content-Length` of a `HEAD`), which a
    /// `file` message must state.
    pub async fn file_size(&self, url: &str) -> Option<u64> {
        let response = self.client.head(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }
}

/// A request that got no answer: the network, DNS, TLS or the 10 s timeout.
fn unanswered(method: &str, error: reqwest::Error) -> SendError {
    let error = error.without_url();
    let what = if error.is_timeout() {
        format!("no answer within {} s", SEND_TIMEOUT.as_secs())
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    ErrorCode::ProviderUnavailable.error(format!(
        "Viber {method}: {what}: {}",
        excerpt(&error.to_string(), 200)
    ))
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
