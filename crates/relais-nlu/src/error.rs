//! The one error type of the crate.

use thiserror::Error;

/// Everything that can go wrong in `relais-nlu`. Each variant names the input at fault so
/// that the CLI and the HTTP layer can show it to the user as is.
#[derive(Debug, Error)]
pub enum NluError {
    #[error("no training examples were given")]
    NoExamples,
    #[error("training needs at least two different intents, found {found}")]
    TooFewIntents { found: usize },
    #[error("row {row}: {reason}")]
    BadExample { row: usize, reason: String },
    #[error("cannot read CSV examples: {0}")]
    Csv(#[from] csv::Error),
    #[error("cannot read JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot read file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid model bytes: {0}")]
    ModelFormat(String),
    #[error("unsupported model format version {found} (this build reads version {supported})")]
    ModelVersion { found: u32, supported: u32 },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("language model request timed out after {timeout_ms} ms")]
    LlmTimeout { timeout_ms: u64 },
    #[error("language model request failed: {0}")]
    LlmTransport(String),
    #[error("language model answered HTTP {status}: {body}")]
    LlmStatus { status: u16, body: String },
    #[error("language model answer is not a chat completion: {0}")]
    LlmBadResponse(String),
    #[error("language model returned an empty answer")]
    LlmEmpty,
    /// The sentence encoder's files are not there: callers fall back on the lexical model.
    #[error(
        "sentence encoder not installed in {directory} (no {missing}); run `relais nlu install-encoder`"
    )]
    EncoderNotInstalled { directory: String, missing: String },
    /// The encoder's files are there but do not load or run.
    #[error("sentence encoder: {0}")]
    Encoder(String),
    /// `install-encoder` could not obtain or unpack the model.
    #[error("cannot install the sentence encoder: {0}")]
    Install(String),
}
