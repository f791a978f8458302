//! Client for an OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM,
//! llama.cpp server…). The only I/O of the crate.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::NluError;

/// Where and how to call the model. `base_url` is the API root, e.g.
/// `https://api.openai.com/v1` or `http://localhost:11434/v1` for Ollama; the client
/// appends `/chat/completions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmConfig {
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer …` when present (local servers need none).
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub temperature: f32,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
}

fn default_timeout_ms() -> u64 {
    15_000
}

fn default_max_tokens() -> u32 {
    400
}

impl LlmConfig {
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        LlmConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout_ms: default_timeout_ms(),
            temperature: 0.0,
            max_tokens: default_max_tokens(),
        }
    }
}

/// Role of one chat message sent to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage {
            role: ChatRole::System,
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: ChatRole::User,
            content: content.into(),
        }
    }
}

#[derive(Serialize)]
struct CompletionRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    temperature: f32,
    max_tokens: u32,
    stream: bool,
}

#[derive(Deserialize)]
struct CompletionResponse {
    choices: Vec<CompletionChoice>,
}

#[derive(Deserialize)]
struct CompletionChoice {
    message: CompletionMessage,
}

#[derive(Deserialize)]
struct CompletionMessage {
    #[serde(default)]
    content: Option<String>,
}

/// A reusable client (keeps connections alive). Cheap to clone.
#[derive(Debug, Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    config: LlmConfig,
    endpoint: String,
}

/// Longest error body kept in an error message; providers sometimes answer with a page.
const MAX_ERROR_BODY: usize = 300;

impl LlmClient {
    pub fn new(config: LlmConfig) -> Result<LlmClient, NluError> {
        if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://")) {
            return Err(NluError::Config(format!(
                "LLM base URL must start with http:// or https://, got {:?}",
                config.base_url
            )));
        }
        if config.model.trim().is_empty() {
            return Err(NluError::Config("LLM model name is empty".to_owned()));
        }
        if config.timeout_ms == 0 {
            return Err(NluError::Config("LLM timeout must be positive".to_owned()));
        }
        // reqwest is built without a default TLS provider; the process may already have
        // installed one (the server does), which is fine.
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(|error| NluError::LlmTransport(error.to_string()))?;
        let endpoint = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        Ok(LlmClient {
            http,
            config,
            endpoint,
        })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// Sends the messages and returns the trimmed text of the first choice. An empty
    /// answer is an error (`LlmEmpty`), so callers never forward an empty reply.
    pub async fn complete(&self, messages: &[ChatMessage]) -> Result<String, NluError> {
        let body = CompletionRequest {
            model: &self.config.model,
            messages,
            temperature: self.config.temperature,
            max_tokens: self.config.max_tokens,
            stream: false,
        };
        let mut request = self.http.post(&self.endpoint).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .map_err(|error| self.transport_error(error))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|error| self.transport_error(error))?;
        if !status.is_success() {
            let mut body: String = text.chars().take(MAX_ERROR_BODY).collect();
            if text.chars().count() > MAX_ERROR_BODY {
                body.push('…');
            }
            return Err(NluError::LlmStatus {
                status: status.as_u16(),
                body,
            });
        }
        let parsed: CompletionResponse = serde_json::from_str(&text)
            .map_err(|error| NluError::LlmBadResponse(error.to_string()))?;
        let content = parsed
            .choices
            .into_iter()
            .next()
            .and_then(|choice| choice.message.content)
            .unwrap_or_default();
        let content = content.trim();
        if content.is_empty() {
            return Err(NluError::LlmEmpty);
        }
        Ok(content.to_owned())
    }

    fn transport_error(&self, error: reqwest::Error) -> NluError {
        if error.is_timeout() {
            NluError::LlmTimeout {
                timeout_ms: self.config.timeout_ms,
            }
        } else {
            NluError::LlmTransport(error.to_string())
        }
    }
}
