//! Each tenant's understanding of its customers: the live intent model (versioned in the
//! store, hot-swapped without restart, also across nodes), the knowledge base and the LLM
//! endpoint used for generative answers. With the sentence encoder installed
//! ([`NluService::with_encoder`]), new models are two-stage (relais-nlu's `semantic`);
//! without it, lexical, as are models trained before it was installed.

use jiff::Timestamp;
use relais_nlu::{
    Analysis, AnalysisContext, Answer, ConversationMessage, CurvePoint, EmbeddingCache, Example,
    FaqEntry, KnowledgeBase, LlmClient, LlmConfig, NluError, Rejection, Semantic, TenantModel,
    TrainConfig, analyze_with_intent,
};
use relais_store::{Store, StoreError};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

pub const KNOWLEDGE_BASE_KEY: &str = "nlu.knowledge_base";
pub const LLM_KEY: &str = "nlu.llm";
pub const URGENT_INTENTS_KEY: &str = "nlu.urgent_intents";

#[derive(Debug, thiserror::Error)]
pub enum NluServiceError {
    #[error(transparent)]
    Nlu(#[from] NluError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored setting `{key}` is invalid: {detail}")]
    Setting { key: &'static str, detail: String },
    #[error("no LLM is configured for this tenant; PUT /v1/nlu/llm first")]
    NoLlm,
    #[error("training was interrupted: {0}")]
    Interrupted(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainedModel {
    pub version: i64,
    pub summary: String,
    /// Confidence under which a message is out of scope.
    pub oos_threshold: f32,
    /// What that threshold gives, estimated by cross-validation on the examples (in-scope
    /// accuracy and precision, out-of-scope recall); `null` on too few examples.
    pub estimate: Option<CurvePoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Classification {
    /// The model version that answered; `null` when the tenant has trained none.
    pub model_version: Option<i64>,
    #[serde(flatten)]
    pub analysis: Analysis,
}

type LiveModel = (i64, Arc<TenantModel>);

pub struct NluService {
    store: Arc<dyn Store>,
    models: RwLock<HashMap<String, LiveModel>>,
    semantic: Option<Arc<Semantic>>,
    /// Sentence vectors of the texts trained on (1.5 KB each), so that training again
    /// encodes only new examples.
    cache: Arc<Mutex<EmbeddingCache>>,
}

impl NluService {
    /// Lexical intent models only.
    pub fn new(store: Arc<dyn Store>) -> Self {
        NluService {
            store,
            models: RwLock::new(HashMap::new()),
            semantic: None,
            cache: Arc::new(Mutex::new(EmbeddingCache::new())),
        }
    }

    /// With the sentence encoder installed in `encoder_dir` (`relais_nlu::encoder_dir` of
    /// the data directory) when it loads; logs one line saying which model intents use.
    pub fn with_encoder(store: Arc<dyn Store>, encoder_dir: &Path) -> Self {
        let started = std::time::Instant::now();
        let semantic = match Semantic::load(encoder_dir) {
            Ok(semantic) => {
                tracing::info!(
                    directory = %encoder_dir.display(),
                    seconds = started.elapsed().as_secs_f64(),
                    "sentence encoder loaded: intent models are two-stage"
                );
                Some(Arc::new(semantic))
            }
            Err(NluError::EncoderNotInstalled { .. }) => {
                tracing::info!(
                    directory = %encoder_dir.display(),
                    "sentence encoder not installed: intent models are lexical \
                     (relais nlu install-encoder adds it)"
                );
                None
            }
            Err(error) => {
                tracing::warn!(
                    directory = %encoder_dir.display(),
                    %error,
                    "sentence encoder does not load: intent models are lexical"
                );
                None
            }
        };
        NluService {
            semantic,
            ..NluService::new(store)
        }
    }

    /// The tenant's live model. Asks the store for the current version number (cheap) and
    /// reloads only when another node or request trained a newer one.
    pub async fn live_model(&self, tenant: &str) -> Result<Option<LiveModel>, NluServiceError> {
        let Some(version) = self.store.nlu_model_version(tenant).await? else {
            return Ok(None);
        };
        if let Some(live) = self.cached(tenant).filter(|(v, _)| *v == version) {
            return Ok(Some(live));
        }
        let Some(record) = self.store.nlu_model(tenant).await? else {
            return Ok(None);
        };
        let model = Arc::new(TenantModel::from_bytes(&record.model)?);
        self.install(tenant, record.version, model.clone());
        Ok(Some((record.version, model)))
    }

    fn cached(&self, tenant: &str) -> Option<LiveModel> {
        self.models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .cloned()
    }

    fn install(&self, tenant: &str, version: i64, model: Arc<TenantModel>) {
        let mut models = self.models.write().unwrap_or_else(|p| p.into_inner());
        // Never replace a newer model by an older one loaded concurrently.
        if models.get(tenant).is_none_or(|(v, _)| *v < version) {
            models.insert(tenant.to_owned(), (version, model));
        }
    }

    /// Trains with the default rejection; see [`NluService::train_with`].
    pub async fn train(
        &self,
        tenant: &str,
        examples: Vec<Example>,
        now: Timestamp,
    ) -> Result<TrainedModel, NluServiceError> {
        self.train_with(tenant, examples, None, now).await
    }

    /// Trains on a worker thread (CPU work stays off the async executor), with the
    /// out-of-scope threshold the tenant's `rejection` asks for (`None`: the default),
    /// stores the model as the tenant's next version and makes it live at once.
    pub async fn train_with(
        &self,
        tenant: &str,
        examples: Vec<Example>,
        rejection: Option<Rejection>,
        now: Timestamp,
    ) -> Result<TrainedModel, NluServiceError> {
        let config = TrainConfig {
            rejection,
            ..TrainConfig::default()
        };
        let semantic = self.semantic.clone();
        let cache = Arc::clone(&self.cache);
        let model = tokio::task::spawn_blocking(move || {
            let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
            let semantic = semantic.as_deref().map(|semantic| (semantic, &mut *cache));
            TenantModel::train(&examples, &config, semantic)
        })
        .await
        .map_err(|e| NluServiceError::Interrupted(e.to_string()))??;
        let deciding = model.deciding_model();
        let summary = deciding.summary().to_string();
        let version = self
            .store
            .save_nlu_model(tenant, &model.to_bytes(), &summary, now)
            .await?;
        let trained = TrainedModel {
            version,
            summary,
            oos_threshold: deciding.oos_threshold(),
            estimate: deciding.summary().estimate.clone(),
        };
        self.install(tenant, version, Arc::new(model));
        Ok(trained)
    }

    /// Language, intent, sentiment and urgency of one message, with the tenant's live model.
    pub async fn classify(
        &self,
        tenant: &str,
        text: &str,
        recent_messages: u32,
    ) -> Result<Classification, NluServiceError> {
        let live = self.live_model(tenant).await?;
        let urgent_intents: Vec<String> = self
            .setting(tenant, URGENT_INTENTS_KEY)
            .await?
            .unwrap_or_default();
        let context = AnalysisContext {
            recent_messages: recent_messages.max(1),
            urgent_intents,
        };
        let intent = match (&live, &self.semantic) {
            // A two-stage model may run the encoder (milliseconds): off the async workers.
            (Some((_, model)), Some(semantic)) if matches!(**model, TenantModel::TwoStage(_)) => {
                let (model, semantic, owned) = (model.clone(), semantic.clone(), text.to_owned());
                let predicted =
                    tokio::task::spawn_blocking(move || model.predict(&owned, Some(&semantic)))
                        .await;
                match predicted {
                    Ok(intent) => Some(intent),
                    // Only if the prediction panicked: answer without an intent.
                    Err(e) => {
                        tracing::error!(error = %e, "the intent prediction failed");
                        None
                    }
                }
            }
            _ => live
                .as_ref()
                .map(|(_, model)| model.predict(text, self.semantic.as_deref())),
        };
        let analysis = analyze_with_intent(text, intent, &context);
        Ok(Classification {
            model_version: live.map(|(v, _)| v),
            analysis,
        })
    }

    async fn setting<T: serde::de::DeserializeOwned>(
        &self,
        tenant: &str,
        key: &'static str,
    ) -> Result<Option<T>, NluServiceError> {
        match self.store.setting(tenant, key).await? {
            None => Ok(None),
            Some(value) => {
                serde_json::from_value(value)
                    .map(Some)
                    .map_err(|e| NluServiceError::Setting {
                        key,
                        detail: e.to_string(),
                    })
            }
        }
    }

    pub async fn knowledge_base(&self, tenant: &str) -> Result<KnowledgeBase, NluServiceError> {
        let entries: Vec<FaqEntry> = self
            .setting(tenant, KNOWLEDGE_BASE_KEY)
            .await?
            .unwrap_or_default();
        Ok(KnowledgeBase::new(entries)?)
    }

    /// The tenant's model settings, when it configured one.
    pub async fn llm_config(&self, tenant: &str) -> Result<Option<LlmConfig>, NluServiceError> {
        self.setting(tenant, LLM_KEY).await
    }

    pub async fn llm(&self, tenant: &str) -> Result<LlmClient, NluServiceError> {
        let config = self
            .llm_config(tenant)
            .await?
            .ok_or(NluServiceError::NoLlm)?;
        Ok(LlmClient::new(config)?)
    }

    pub async fn answer(&self, tenant: &str, question: &str) -> Result<Answer, NluServiceError> {
        let kb = self.knowledge_base(tenant).await?;
        let llm = self.llm(tenant).await?;
        Ok(relais_nlu::answer(question, &kb, &llm).await)
    }

    pub async fn suggest(
        &self,
        tenant: &str,
        messages: &[ConversationMessage],
    ) -> Result<Answer, NluServiceError> {
        let kb = self.knowledge_base(tenant).await?;
        let llm = self.llm(tenant).await?;
        Ok(relais_nlu::suggest_reply(messages, &kb, &llm).await)
    }

    pub async fn summarize(
        &self,
        tenant: &str,
        messages: &[ConversationMessage],
    ) -> Result<String, NluServiceError> {
        let llm = self.llm(tenant).await?;
        Ok(relais_nlu::summarize(messages, &llm).await?)
    }
}
