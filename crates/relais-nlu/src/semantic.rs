//! Two-stage intent classification with the sentence encoder: a fast model (TF-IDF
//! features plus the message's static vector) answers every message; the least confident
//! ones go to a second model that reads the TF-IDF features plus the encoder's sentence
//! vector, in one linear model.
//!
//! Invariant: the encoder runs only on messages whose fast confidence is under
//! `escalate_below` or that the fast model rejects; every other message is answered in
//! microseconds. When the encoder fails on a message, the fast answer stands.
//!
//! Why two stages: the encoder takes milliseconds per message on one core, the table
//! look-up microseconds; on the least confident tenth of the messages, where the fast
//! model is most often wrong, the encoder recovers most of what running it on every
//! message gains (issue 18: 0.958 / 0.937 against 0.962 / 0.938 on CLINC150 / Banking77
//! with scikit-learn). Rejection is decided by whichever stage answers; a message the fast
//! model would reject always gets the encoder's second opinion.

use std::collections::HashMap;
use std::path::Path;

use crate::encoder::SentenceEncoder;
use crate::encoder::static_vectors::StaticVectors;
use crate::error::NluError;
use crate::intent::{DenseFeatures, Example, IntentModel, IntentPrediction, TrainConfig};

/// The encoder and its static vectors, loaded once per process.
#[derive(Debug)]
pub struct Semantic {
    pub encoder: SentenceEncoder,
    pub static_vectors: StaticVectors,
}

impl Semantic {
    /// Loads both from the directory `install-encoder` wrote (see
    /// [`crate::encoder_dir`]). [`NluError::EncoderNotInstalled`] when files are missing:
    /// callers then use the lexical [`IntentModel`] alone.
    pub fn load(directory: &Path) -> Result<Semantic, NluError> {
        Ok(Semantic {
            encoder: SentenceEncoder::load(directory)?,
            static_vectors: StaticVectors::load(directory)?,
        })
    }
}

/// Sentence vectors of texts already encoded, so that training again on the same examples
/// (a new version of the tenant's model, or the next fold of an evaluation) encodes only
/// the new ones.
#[derive(Debug, Default, Clone)]
pub struct EmbeddingCache {
    vectors: HashMap<String, Vec<f32>>,
}

/// Messages encoded together: batches of 32 messages of similar length keep the padding
/// small; larger batches gained nothing on one core.
const ENCODE_BATCH: usize = 32;

impl EmbeddingCache {
    pub fn new() -> Self {
        EmbeddingCache::default()
    }

    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// The sentence vectors of `texts`, in order, encoding those not in the cache.
    pub fn embed_all(
        &mut self,
        encoder: &SentenceEncoder,
        texts: &[&str],
    ) -> Result<Vec<Vec<f32>>, NluError> {
        let mut missing: Vec<&str> = texts
            .iter()
            .copied()
            .filter(|text| !self.vectors.contains_key(*text))
            .collect();
        // By length, so that a batch pads little; then by text, so that duplicates meet.
        missing.sort_by(|left, right| left.len().cmp(&right.len()).then(left.cmp(right)));
        missing.dedup();
        for batch in missing.chunks(ENCODE_BATCH) {
            for (text, vector) in batch.iter().zip(encoder.encode_batch(batch)?) {
                self.vectors.insert((*text).to_owned(), vector);
            }
        }
        texts
            .iter()
            .map(|text| {
                self.vectors
                    .get(*text)
                    .cloned()
                    .ok_or_else(|| NluError::Encoder("vector missing from the cache".to_owned()))
            })
            .collect()
    }
}

/// Which messages go to the encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Escalation {
    /// The threshold under which this share of the training examples, scored out of fold
    /// by the fast model, falls (in-scope examples only).
    Share(f32),
    /// A fixed threshold on the fast model's confidence.
    Below(f32),
}

impl Default for Escalation {
    /// The least confident tenth: on HWU64 it is where most of the fast model's errors
    /// are, and it keeps the median message in microseconds (docs/nlu.md).
    fn default() -> Self {
        Escalation::Share(0.10)
    }
}

/// Training settings of the two-stage model.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticConfig {
    /// Settings of both linear models (rejection included; it is chosen for each).
    pub train: TrainConfig,
    pub escalation: Escalation,
    /// Factor on the static vector (norm 1) next to the TF-IDF features (norm 1).
    pub static_weight: f32,
    /// Factor on the sentence vector (norm 1) next to the TF-IDF features (norm 1).
    pub encoder_weight: f32,
}

impl Default for SemanticConfig {
    fn default() -> Self {
        SemanticConfig {
            train: TrainConfig::default(),
            escalation: Escalation::default(),
            // Both blocks have norm 1, as in the scikit-learn measurement of the issue
            // (TF-IDF and sentence vectors stacked side by side); not tuned.
            static_weight: 1.0,
            encoder_weight: 1.0,
        }
    }
}

/// Which model answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// TF-IDF and static vectors.
    Fast,
    /// TF-IDF and the sentence encoder.
    Encoder,
}

/// The answer and who gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticPrediction {
    pub prediction: IntentPrediction,
    pub stage: Stage,
}

/// Both stages' models.
#[derive(Debug, Clone)]
pub struct SemanticIntentModel {
    fast: IntentModel,
    full: IntentModel,
    escalate_below: f32,
}

const MAGIC: &[u8; 16] = b"RELAIS-NLU-2STGE";

impl SemanticIntentModel {
    /// Trains both stages; sentence vectors come from `cache`, which encodes the texts it
    /// has not seen.
    pub fn train(
        examples: &[Example],
        config: &SemanticConfig,
        semantic: &Semantic,
        cache: &mut EmbeddingCache,
    ) -> Result<SemanticIntentModel, NluError> {
        let texts: Vec<&str> = examples
            .iter()
            .map(|example| example.text.as_str())
            .collect();
        let sentence_vectors = cache.embed_all(&semantic.encoder, &texts)?;
        let static_vectors: Vec<Vec<f32>> = texts
            .iter()
            .map(|text| semantic.static_vectors.embed(text))
            .collect();
        Self::train_with_vectors(examples, config, &static_vectors, &sentence_vectors)
    }

    /// Trains from vectors already computed (one of each kind per example).
    pub(crate) fn train_with_vectors(
        examples: &[Example],
        config: &SemanticConfig,
        static_vectors: &[Vec<f32>],
        sentence_vectors: &[Vec<f32>],
    ) -> Result<SemanticIntentModel, NluError> {
        let fast = IntentModel::train_dense(
            examples,
            &DenseFeatures {
                vectors: static_vectors,
                weight: config.static_weight,
            },
            &config.train,
        )?;
        let full = IntentModel::train_dense(
            examples,
            &DenseFeatures {
                vectors: sentence_vectors,
                weight: config.encoder_weight,
            },
            &config.train,
        )?;
        let escalate_below = match config.escalation {
            Escalation::Below(threshold) => threshold,
            Escalation::Share(share) => quantile(fast.out_of_fold_confidences(), share),
        };
        Ok(SemanticIntentModel {
            fast,
            full,
            escalate_below,
        })
    }

    /// Classifies one message: the fast model, then the encoder when the fast confidence
    /// is under [`SemanticIntentModel::escalate_below`] or the fast model rejects it.
    pub fn predict(&self, text: &str, semantic: &Semantic) -> SemanticPrediction {
        let static_vector = semantic.static_vectors.embed(text);
        self.predict_with(text, &static_vector, |text| semantic.encoder.encode(text))
    }

    /// The fast stage alone (no encoder), for a caller that cannot wait.
    pub fn predict_fast(&self, text: &str, static_vectors: &StaticVectors) -> IntentPrediction {
        self.fast
            .predict_with_dense(text, Some(&static_vectors.embed(text)))
    }

    /// Whether the fast answer `prediction` goes to the encoder.
    pub fn escalates(&self, prediction: &IntentPrediction) -> bool {
        // 1.0 sends every message to the encoder, even one of saturated confidence.
        prediction.out_of_scope
            || prediction.confidence < self.escalate_below
            || self.escalate_below >= 1.0
    }

    /// Whether the fast answer goes to the encoder when the rejection threshold is
    /// `threshold` (the model's own is ignored): what the curve of an evaluation needs.
    pub(crate) fn escalates_at(&self, prediction: &IntentPrediction, threshold: f32) -> bool {
        prediction.confidence < self.escalate_below.max(threshold) || self.escalate_below >= 1.0
    }

    pub(crate) fn predict_with(
        &self,
        text: &str,
        static_vector: &[f32],
        encode: impl FnOnce(&str) -> Result<Vec<f32>, NluError>,
    ) -> SemanticPrediction {
        let fast = self.fast.predict_with_dense(text, Some(static_vector));
        if !self.escalates(&fast) {
            return SemanticPrediction {
                prediction: fast,
                stage: Stage::Fast,
            };
        }
        match encode(text) {
            Ok(vector) => SemanticPrediction {
                prediction: self.full.predict_with_dense(text, Some(&vector)),
                stage: Stage::Encoder,
            },
            Err(_) => SemanticPrediction {
                prediction: fast,
                stage: Stage::Fast,
            },
        }
    }

    /// The fast model's answer with a given static vector, and the encoder stage's with a
    /// given sentence vector: what an evaluation needs to draw the curve of both.
    pub(crate) fn predict_both(
        &self,
        text: &str,
        static_vector: &[f32],
        sentence_vector: &[f32],
    ) -> (IntentPrediction, IntentPrediction) {
        (
            self.fast.predict_with_dense(text, Some(static_vector)),
            self.full.predict_with_dense(text, Some(sentence_vector)),
        )
    }

    pub fn escalate_below(&self) -> f32 {
        self.escalate_below
    }

    pub fn set_escalate_below(&mut self, threshold: f32) {
        self.escalate_below = threshold;
    }

    /// The model of the first stage (TF-IDF and static vectors).
    pub fn fast_model(&self) -> &IntentModel {
        &self.fast
    }

    /// The model of the second stage (TF-IDF and sentence vectors).
    pub fn encoder_model(&self) -> &IntentModel {
        &self.full
    }

    /// Both models' bytes ([`IntentModel::to_bytes`]) after a magic and the escalation
    /// threshold.
    pub fn to_bytes(&self) -> Vec<u8> {
        let fast = self.fast.to_bytes();
        let full = self.full.to_bytes();
        let mut bytes = Vec::with_capacity(32 + fast.len() + full.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.escalate_below.to_le_bytes());
        bytes.extend_from_slice(&(fast.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&fast);
        bytes.extend_from_slice(&full);
        bytes
    }

    /// Reads [`SemanticIntentModel::to_bytes`]; each model checks its own checksum.
    pub fn from_bytes(bytes: &[u8]) -> Result<SemanticIntentModel, NluError> {
        let bad = |reason: &str| NluError::ModelFormat(format!("two-stage model: {reason}"));
        let header = MAGIC.len() + 4 + 8;
        if bytes.len() < header || &bytes[..MAGIC.len()] != MAGIC {
            return Err(bad("not a two-stage model"));
        }
        let mut threshold = [0u8; 4];
        threshold.copy_from_slice(&bytes[MAGIC.len()..MAGIC.len() + 4]);
        let escalate_below = f32::from_le_bytes(threshold);
        if !(0.0..=1.0).contains(&escalate_below) {
            return Err(bad("escalation threshold out of [0, 1]"));
        }
        let mut length = [0u8; 8];
        length.copy_from_slice(&bytes[MAGIC.len() + 4..header]);
        let fast_length = usize::try_from(u64::from_le_bytes(length))
            .ok()
            .filter(|length| *length <= bytes.len() - header)
            .ok_or_else(|| bad("truncated"))?;
        let (fast, full) = bytes[header..].split_at(fast_length);
        Ok(SemanticIntentModel {
            fast: IntentModel::from_bytes(fast)?,
            full: IntentModel::from_bytes(full)?,
            escalate_below,
        })
    }
}

/// A tenant's intent model as the store keeps it: lexical, or two-stage when it was
/// trained with the encoder installed. Read either from bytes by its magic.
#[derive(Debug, Clone)]
// A tenant's model lives in an `Arc` and moves once per training: 760 bytes against 376
// cost nothing there.
#[allow(clippy::large_enum_variant)]
pub enum TenantModel {
    Lexical(IntentModel),
    TwoStage(SemanticIntentModel),
}

impl TenantModel {
    /// Trains the two-stage model when `semantic` is given, else the lexical one.
    pub fn train(
        examples: &[Example],
        config: &TrainConfig,
        semantic: Option<(&Semantic, &mut EmbeddingCache)>,
    ) -> Result<TenantModel, NluError> {
        match semantic {
            Some((semantic, cache)) => {
                let config = SemanticConfig {
                    train: config.clone(),
                    ..SemanticConfig::default()
                };
                Ok(TenantModel::TwoStage(SemanticIntentModel::train(
                    examples, &config, semantic, cache,
                )?))
            }
            None => Ok(TenantModel::Lexical(IntentModel::train(examples, config)?)),
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<TenantModel, NluError> {
        if bytes.starts_with(MAGIC) {
            Ok(TenantModel::TwoStage(SemanticIntentModel::from_bytes(
                bytes,
            )?))
        } else {
            Ok(TenantModel::Lexical(IntentModel::from_bytes(bytes)?))
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            TenantModel::Lexical(model) => model.to_bytes(),
            TenantModel::TwoStage(model) => model.to_bytes(),
        }
    }

    /// The model whose rejection and estimates the tenant sees: the lexical one, or the
    /// encoder stage (which decides every message the fast stage is unsure of).
    pub fn deciding_model(&self) -> &IntentModel {
        match self {
            TenantModel::Lexical(model) => model,
            TenantModel::TwoStage(model) => model.encoder_model(),
        }
    }

    /// Classifies one message. A two-stage model without the encoder (its files removed
    /// since training) answers with its fast stage on the TF-IDF features alone: still an
    /// answer, from weights fitted next to static vectors it no longer gets.
    pub fn predict(&self, text: &str, semantic: Option<&Semantic>) -> IntentPrediction {
        match (self, semantic) {
            (TenantModel::Lexical(model), _) => model.predict(text),
            (TenantModel::TwoStage(model), Some(semantic)) => {
                model.predict(text, semantic).prediction
            }
            (TenantModel::TwoStage(model), None) => model.fast_model().predict(text),
        }
    }
}

/// The value under which a share `share` of `values` falls (0 for no values).
pub(crate) fn quantile(values: &[f32], share: f32) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    let index = ((sorted.len() as f32 * share.clamp(0.0, 1.0)) as usize).min(sorted.len() - 1);
    sorted[index]
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// Two intents, and dense vectors that tell them apart on one axis.
    fn data() -> (Vec<Example>, Vec<Vec<f32>>) {
        let mut examples = Vec::new();
        let mut vectors = Vec::new();
        for number in 0..30 {
            examples.push(Example::new(
                format!("where is my parcel {number}"),
                "track",
            ));
            vectors.push(vec![1.0, 0.0, 0.0]);
            examples.push(Example::new(format!("I want a refund {number}"), "refund"));
            vectors.push(vec![0.0, 1.0, 0.0]);
            examples.push(Example::new(format!("set an alarm at {number}"), "alarm"));
            vectors.push(vec![0.0, 0.0, 1.0]);
        }
        (examples, vectors)
    }

    fn model(escalation: Escalation) -> Result<SemanticIntentModel, NluError> {
        let (examples, vectors) = data();
        let config = SemanticConfig {
            train: TrainConfig {
                rejection: Some(crate::Rejection::Threshold(0.0)),
                ..TrainConfig::default()
            },
            escalation,
            ..SemanticConfig::default()
        };
        SemanticIntentModel::train_with_vectors(&examples, &config, &vectors, &vectors)
    }

    #[test]
    fn the_encoder_runs_only_under_the_escalation_threshold() -> Result<(), NluError> {
        let calls = Cell::new(0);
        let encode = |_: &str| {
            calls.set(calls.get() + 1);
            Ok(vec![1.0, 0.0, 0.0])
        };
        let never = model(Escalation::Below(0.0))?;
        let answer = never.predict_with("where is my parcel", &[1.0, 0.0, 0.0], encode);
        assert_eq!(answer.stage, Stage::Fast);
        assert_eq!(answer.prediction.name.as_deref(), Some("track"));
        assert_eq!(calls.get(), 0);

        let always = model(Escalation::Below(1.0))?;
        let answer = always.predict_with("where is my parcel", &[1.0, 0.0, 0.0], encode);
        assert_eq!(answer.stage, Stage::Encoder);
        assert_eq!(
            answer.prediction.name.as_deref(),
            Some("track"),
            "{answer:?}"
        );
        assert_eq!(calls.get(), 1);
        Ok(())
    }

    #[test]
    fn a_failing_encoder_leaves_the_fast_answer() -> Result<(), NluError> {
        let always = model(Escalation::Below(1.0))?;
        let answer = always.predict_with("where is my parcel", &[1.0, 0.0, 0.0], |_| {
            Err(NluError::Encoder("boom".to_owned()))
        });
        assert_eq!(answer.stage, Stage::Fast);
        assert_eq!(answer.prediction.best_guess, "track");
        Ok(())
    }

    #[test]
    fn the_share_escalation_sits_inside_the_fast_confidences() -> Result<(), NluError> {
        let model = model(Escalation::Share(0.1))?;
        assert!((0.0..=1.0).contains(&model.escalate_below()));
        Ok(())
    }

    #[test]
    fn without_the_encoder_files_the_lexical_model_is_trained() -> Result<(), NluError> {
        let missing = Path::new("/nonexistent/relais/nlu/encoder");
        let semantic = Semantic::load(missing);
        assert!(matches!(
            semantic,
            Err(NluError::EncoderNotInstalled { .. })
        ));
        let mut cache = EmbeddingCache::new();
        let (examples, _) = data();
        let loaded = semantic.ok();
        let model = TenantModel::train(
            &examples,
            &TrainConfig::default(),
            loaded.as_ref().map(|semantic| (semantic, &mut cache)),
        )?;
        assert!(matches!(model, TenantModel::Lexical(_)));
        assert_eq!(model.predict("set an alarm at 7", None).best_guess, "alarm");
        Ok(())
    }

    #[test]
    fn a_tenant_model_is_read_back_as_what_was_stored() -> Result<(), NluError> {
        let (examples, _) = data();
        let lexical = TenantModel::train(&examples, &TrainConfig::default(), None)?;
        assert!(matches!(
            TenantModel::from_bytes(&lexical.to_bytes())?,
            TenantModel::Lexical(_)
        ));
        let two_stage = TenantModel::TwoStage(model(Escalation::Below(0.4))?);
        let read = TenantModel::from_bytes(&two_stage.to_bytes())?;
        assert!(matches!(read, TenantModel::TwoStage(_)));
        // Without the encoder's files, the two-stage model still answers.
        assert_eq!(read.predict("I want a refund", None).best_guess, "refund");
        Ok(())
    }

    #[test]
    fn a_two_stage_model_round_trips_through_bytes() -> Result<(), NluError> {
        let model = model(Escalation::Below(0.4))?;
        let bytes = model.to_bytes();
        let same = SemanticIntentModel::from_bytes(&bytes)?;
        assert_eq!(same.escalate_below(), 0.4);
        let vector = [0.0, 1.0, 0.0];
        assert_eq!(
            same.predict_both("refund please", &vector, &vector),
            model.predict_both("refund please", &vector, &vector)
        );
        assert!(SemanticIntentModel::from_bytes(&bytes[..bytes.len() - 3]).is_err());
        assert!(SemanticIntentModel::from_bytes(b"short").is_err());
        Ok(())
    }
}
