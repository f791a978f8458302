//! Intent classifier trained from a tenant's own examples.
//!
//! Model: one-vs-rest linear SVMs ([`svm`]) over sparse TF-IDF features ([`features`]:
//! word unigrams, word bigrams and character 3–5-grams of each word, accent-folded,
//! sublinear term frequency, L2-normalised). Its scores become probabilities through a
//! temperature, and a message is out of scope under a confidence threshold; both are
//! learned from out-of-fold scores of a 5-fold cross-validation on the training examples
//! ([`calibrate`]), where intents are left out in turn to play the out-of-scope messages.
//! The model is then fitted on all the examples.
//!
//! Why this model: on HWU64 (64 intents, 10 folds, rejection off) it gets 0.894 of the
//! in-scope messages right where the logistic regression it replaced (no IDF, no
//! regularisation, AdaGrad) got 0.884, and its threshold meets the out-of-scope recall a
//! tenant asks for within a point (docs/nlu.md). It trains 10,000 examples in seconds on
//! one core and predicts in microseconds (a hash-map look-up and one row of weights per
//! feature), and its n-gram features cope with typos and French inflection without a
//! tokenizer model.

mod calibrate;
pub(crate) mod features;
mod format;
pub(crate) mod load;
pub(crate) mod rng;
pub(crate) mod svm;
mod tune;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::NluError;
pub(crate) use calibrate::curve_thresholds;
use calibrate::{
    Calibrated, Calibration, NO_BACKGROUND, SimulateOutOfScope, balanced_threshold, calibrate,
    choose_threshold, cross_validate, fit_calibration, point_at, score_rows,
};
pub use calibrate::{CurvePoint, Rejection};
pub use features::FeatureConfig;
use features::{RawFeature, Vocabulary, raw_features};
pub use format::MODEL_FORMAT_VERSION;
pub use load::{
    ClincSplits, load_clinc_json, load_examples_csv, load_examples_file, load_examples_json,
};
use svm::{EncodedExample, SvmSettings, fit_one_vs_rest};
pub use tune::{Tuned, TuningGrid, tune};

/// One labelled training or test utterance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub text: String,
    pub intent: String,
}

impl Example {
    pub fn new(text: impl Into<String>, intent: impl Into<String>) -> Self {
        Example {
            text: text.into(),
            intent: intent.into(),
        }
    }
}

/// Training settings. `TrainConfig::default()` is what `relais nlu train` uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Seed of the fold assignment and of the solver's order: same seed, same data, same
    /// model.
    pub seed: u64,
    /// The SVM's `C`: larger fits the examples more closely, smaller generalises more.
    pub regularisation: f32,
    /// Folds of the cross-validation that calibrates confidence and threshold.
    pub cv_folds: usize,
    /// Features seen in fewer training examples than this are dropped (ignored below
    /// 1,000 examples, where every feature counts); halves the model size on large sets.
    pub min_feature_count: u32,
    /// Intent name that marks out-of-scope examples in the training data.
    pub oos_label: String,
    /// How the out-of-scope threshold is chosen; `None` aims at the default
    /// [`Rejection`] when it can be estimated on at least 10 examples per intent, else
    /// rejects only where the model is more often wrong than right; under 4 examples per
    /// intent it rejects nothing on confidence.
    pub rejection: Option<Rejection>,
    pub features: FeatureConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 42,
            // Chosen by 3-fold cross-validation inside each of HWU64's ten training sets
            // among 0.3, 1 and 3: 1 won in nine folds of ten (docs/nlu.md).
            regularisation: 1.0,
            cv_folds: 5,
            min_feature_count: 2,
            oos_label: "oos".to_owned(),
            rejection: None,
            features: FeatureConfig::default(),
        }
    }
}

/// What the model says about one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentPrediction {
    /// The recognised intent; `None` when the message is out of scope.
    pub name: Option<String>,
    /// Calibrated probability of `best_guess`; serialised with 4 decimals, which keeps
    /// it the same number after a JSON round trip through the store.
    #[serde(serialize_with = "four_decimals")]
    pub confidence: f32,
    pub out_of_scope: bool,
    /// The most probable intent even when the message was judged out of scope; useful to
    /// an agent, never to be acted on automatically.
    pub best_guess: String,
}

/// `0.9539128` as `0.9539`: an f32 widened to f64 prints 17 digits, which serde_json
/// does not always parse back to the same f64.
fn four_decimals<S: serde::Serializer>(value: &f32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64((f64::from(*value) * 1e4).round() / 1e4)
}

/// Summary of a training run, for logs and the CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub examples: usize,
    pub intents: usize,
    pub features: usize,
    /// Examples scored out of fold to calibrate.
    pub heldout_examples: usize,
    pub temperature: f32,
    /// Score of the out-of-scope logit next to the intents' (-10000 when off).
    pub background: f32,
    pub oos_threshold: f32,
    /// What the threshold gives, estimated on the out-of-fold scores; `None` for models
    /// of format version 1.
    pub estimate: Option<CurvePoint>,
    /// The estimated trade-off at [`curve_thresholds`]; empty for version 1 models.
    pub curve: Vec<CurvePoint>,
}

/// `0.1234`, or `n/a` for a figure that could not be measured.
pub(crate) fn optional(value: Option<f32>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |value| format!("{value:.4}"))
}

impl std::fmt::Display for TrainingSummary {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(formatter, "examples: {}", self.examples)?;
        writeln!(formatter, "intents: {}", self.intents)?;
        writeln!(formatter, "features: {}", self.features)?;
        writeln!(formatter, "heldout_examples: {}", self.heldout_examples)?;
        writeln!(formatter, "temperature: {:.4}", self.temperature)?;
        if self.background > NO_BACKGROUND {
            writeln!(formatter, "background: {:.4}", self.background)?;
        }
        writeln!(formatter, "oos_threshold: {:.4}", self.oos_threshold)?;
        if let Some(estimate) = &self.estimate {
            writeln!(
                formatter,
                "estimated_in_scope_accuracy: {:.4}",
                estimate.in_scope_accuracy
            )?;
            writeln!(
                formatter,
                "estimated_in_scope_precision: {:.4}",
                estimate.in_scope_precision
            )?;
            writeln!(
                formatter,
                "estimated_oos_recall: {}",
                optional(estimate.oos_recall)
            )?;
        }
        if !self.curve.is_empty() {
            writeln!(
                formatter,
                "estimated curve (threshold -> in_scope_accuracy in_scope_precision oos_recall):"
            )?;
            for point in &self.curve {
                writeln!(
                    formatter,
                    "  {:.2} -> {:.4} {:.4} {}",
                    point.threshold,
                    point.in_scope_accuracy,
                    point.in_scope_precision,
                    optional(point.oos_recall)
                )?;
            }
        }
        Ok(())
    }
}

/// A trained intent model. Cheap to share behind an `Arc`; prediction takes `&self`.
#[derive(Debug, Clone)]
pub struct IntentModel {
    labels: Vec<String>,
    oos_label: String,
    oos_class: Option<usize>,
    features: FeatureConfig,
    vocabulary: Vocabulary,
    /// Row-major `[feature][class]`, so a feature's contribution is one contiguous row,
    /// quantised to 8 bits with one scale per feature: four times smaller in memory and in
    /// the store, for a negligible change in predictions.
    weights: Vec<i8>,
    row_scales: Vec<f32>,
    bias: Vec<f32>,
    calibration: Calibration,
    oos_threshold: f32,
    summary: TrainingSummary,
    /// Dense features (sentence or static vectors) after the vocabulary's: their count
    /// (0 for a lexical model) and the factor they are scaled by.
    dense_dims: usize,
    dense_weight: f32,
    /// Confidences of the in-scope examples scored out of fold; only kept after training
    /// (empty when read from bytes), to place the two-stage model's escalation threshold.
    out_of_fold_confidences: Vec<f32>,
}

/// Dense vectors to append to the sparse features, one per training example, in order.
pub(crate) struct DenseFeatures<'a> {
    pub vectors: &'a [Vec<f32>],
    /// Factor on the vectors (norm 1) next to the sparse features (norm 1).
    pub weight: f32,
}

/// Appends `weight × vector` as features `offset..offset + vector.len()`.
fn append_dense(features: &mut Vec<(u32, f32)>, offset: usize, vector: &[f32], weight: f32) {
    features.extend(
        vector
            .iter()
            .enumerate()
            .filter(|(_, value)| **value != 0.0)
            .map(|(index, value)| ((offset + index) as u32, weight * value)),
    );
}

/// Quantises each row of `[feature][class]` weights to `i8` with its own scale.
fn quantise_rows(weights: &[f32], classes: usize) -> (Vec<i8>, Vec<f32>) {
    let mut quantised = Vec::with_capacity(weights.len());
    let mut scales = Vec::with_capacity(weights.len() / classes.max(1));
    for row in weights.chunks(classes.max(1)) {
        let largest = row
            .iter()
            .fold(0.0f32, |largest, weight| largest.max(weight.abs()));
        let scale = largest / 127.0;
        scales.push(scale);
        for weight in row {
            let level = if scale > 0.0 {
                (weight / scale).round()
            } else {
                0.0
            };
            quantised.push(level.clamp(-127.0, 127.0) as i8);
        }
    }
    (quantised, scales)
}

/// Fewer examples per intent than this, on average, and out-of-fold estimates of the
/// out-of-scope recall are too noisy to aim at: the default falls back on the balanced
/// threshold.
const MIN_EXAMPLES_PER_INTENT_FOR_RECALL: usize = 10;

/// Fewer than this and there is nothing to cross-validate on: the default rejects nothing
/// on confidence, as the held-out rule before it did under 4 examples per intent.
const MIN_EXAMPLES_PER_INTENT: usize = 4;

/// The threshold when the tenant chose none: the default [`Rejection`] when out-of-scope
/// rows could be simulated on enough examples, else the balanced threshold, and 0 on very
/// few examples.
fn default_threshold(
    rows: &[Calibrated],
    oos_class: Option<usize>,
    examples_per_intent: usize,
) -> Result<f32, NluError> {
    if examples_per_intent < MIN_EXAMPLES_PER_INTENT {
        return Ok(0.0);
    }
    let can_estimate_recall = rows
        .iter()
        .any(|row| row.truth == calibrate::Truth::OutOfScope);
    if can_estimate_recall && examples_per_intent >= MIN_EXAMPLES_PER_INTENT_FOR_RECALL {
        choose_threshold(rows, oos_class, Rejection::default())
    } else {
        Ok(balanced_threshold(rows, oos_class))
    }
}

/// Examples turned into what the solver reads: sorted labels, the vocabulary and the
/// encoded rows.
struct Prepared {
    labels: Vec<String>,
    oos_class: Option<usize>,
    vocabulary: Vocabulary,
    rows: Vec<EncodedExample>,
}

impl Prepared {
    fn new(
        examples: &[Example],
        dense: Option<&DenseFeatures>,
        config: &TrainConfig,
    ) -> Result<Prepared, NluError> {
        if examples.is_empty() {
            return Err(NluError::NoExamples);
        }
        if let Some(dense) = dense
            && dense.vectors.len() != examples.len()
        {
            return Err(NluError::Config(format!(
                "{} dense vectors for {} examples",
                dense.vectors.len(),
                examples.len()
            )));
        }
        for (row, example) in examples.iter().enumerate() {
            if example.intent.trim().is_empty() {
                return Err(NluError::BadExample {
                    row: row + 1,
                    reason: "empty intent".to_owned(),
                });
            }
        }
        let mut labels: Vec<String> = examples
            .iter()
            .map(|e| e.intent.trim().to_owned())
            .collect();
        labels.sort();
        labels.dedup();
        if labels.len() < 2 {
            return Err(NluError::TooFewIntents {
                found: labels.len(),
            });
        }
        let class_of: HashMap<&str, usize> = labels
            .iter()
            .enumerate()
            .map(|(index, label)| (label.as_str(), index))
            .collect();
        let oos_class = class_of.get(config.oos_label.as_str()).copied();
        let extracted: Vec<(Vec<RawFeature>, usize, usize)> = examples
            .iter()
            .enumerate()
            .filter_map(|(index, example)| {
                let class = *class_of.get(example.intent.trim())?;
                Some((raw_features(&example.text, &config.features), class, index))
            })
            .collect();
        let min_count = if extracted.len() < 1000 {
            1
        } else {
            config.min_feature_count.max(1)
        };
        let documents: Vec<Vec<RawFeature>> = extracted
            .iter()
            .map(|(features, _, _)| features.clone())
            .collect();
        let vocabulary = Vocabulary::build(&documents, min_count, &config.features);
        drop(documents);
        let rows = extracted
            .into_iter()
            .map(|(features, class, index)| {
                let mut row = EncodedExample::sparse(
                    vocabulary.vectorise(&features, &config.features),
                    class,
                );
                if let Some(dense) = dense {
                    row.dense_offset = vocabulary.len();
                    row.dense = dense.vectors[index]
                        .iter()
                        .map(|value| value * dense.weight)
                        .collect();
                }
                row
            })
            .collect();
        Ok(Prepared {
            labels,
            oos_class,
            vocabulary,
            rows,
        })
    }
}

impl IntentModel {
    /// Trains a model. Errors when there are no examples, an empty text or intent, fewer
    /// than two intents, or a rejection target that the examples cannot estimate.
    pub fn train(examples: &[Example], config: &TrainConfig) -> Result<IntentModel, NluError> {
        Self::train_inner(examples, None, None, config)
    }

    /// Trains on the sparse features plus one dense vector per example (all of the same
    /// length); predict with [`IntentModel::predict_with_dense`].
    pub(crate) fn train_dense(
        examples: &[Example],
        dense: &DenseFeatures,
        config: &TrainConfig,
    ) -> Result<IntentModel, NluError> {
        Self::train_inner(examples, Some(dense), None, config)
    }

    /// Trains on `examples` and calibrates on a separate validation set (for example the
    /// `val` split of a benchmark) instead of cross-validation.
    pub fn train_with_validation(
        examples: &[Example],
        validation: &[Example],
        config: &TrainConfig,
    ) -> Result<IntentModel, NluError> {
        Self::train_inner(examples, None, Some(validation), config)
    }

    fn train_inner(
        examples: &[Example],
        dense: Option<&DenseFeatures>,
        validation: Option<&[Example]>,
        config: &TrainConfig,
    ) -> Result<IntentModel, NluError> {
        if config.cv_folds == 1 || config.regularisation.is_nan() || config.regularisation <= 0.0 {
            return Err(NluError::Config(
                "cv_folds must be 0 (no calibration) or at least 2, and regularisation positive"
                    .to_owned(),
            ));
        }
        if let Some(rejection) = &config.rejection {
            rejection.validate()?;
        }
        let Prepared {
            labels,
            oos_class,
            vocabulary,
            rows,
        } = Prepared::new(examples, dense, config)?;
        let dense_dims = dense
            .and_then(|dense| dense.vectors.first())
            .map_or(0, Vec::len);
        if dense.is_some_and(|dense| {
            dense
                .vectors
                .iter()
                .any(|vector| vector.len() != dense_dims)
        }) {
            return Err(NluError::Config(
                "dense vectors of different lengths".to_owned(),
            ));
        }
        let dense_weight = dense.map_or(0.0, |dense| dense.weight);
        let classes = labels.len();
        let encode = |examples: &[Example]| -> Vec<EncodedExample> {
            examples
                .iter()
                .filter_map(|example| {
                    let class = labels
                        .binary_search(&example.intent.trim().to_owned())
                        .ok()?;
                    let features = raw_features(&example.text, &config.features);
                    Some(EncodedExample::sparse(
                        vocabulary.vectorise(&features, &config.features),
                        class,
                    ))
                })
                .collect()
        };
        let feature_count = vocabulary.len() + dense_dims;
        let settings = SvmSettings::of(config);
        let all_rows: Vec<usize> = (0..rows.len()).collect();
        let every_class = vec![true; classes];
        let final_weights =
            fit_one_vs_rest(&rows, &all_rows, &every_class, feature_count, &settings);
        // Validation rows whose intent the training data does not know cannot calibrate.
        let out_of_fold = match validation {
            Some(validation) => score_rows(&encode(validation), &final_weights, classes, oos_class),
            None => cross_validate(
                &rows,
                classes,
                oos_class,
                config.cv_folds,
                feature_count,
                &settings,
                SimulateOutOfScope::Yes,
            ),
        };
        let calibration = fit_calibration(&out_of_fold);
        let calibrated = calibrate(&out_of_fold, &calibration);
        let oos_threshold = match config.rejection {
            Some(rejection) => choose_threshold(&calibrated, oos_class, rejection)?,
            None => default_threshold(&calibrated, oos_class, rows.len() / classes)?,
        };
        let (estimate, curve) = if calibrated.is_empty() {
            (None, Vec::new())
        } else {
            (
                Some(point_at(&calibrated, oos_class, oos_threshold)),
                curve_thresholds()
                    .into_iter()
                    .map(|threshold| point_at(&calibrated, oos_class, threshold))
                    .collect(),
            )
        };
        let out_of_fold_confidences = calibrated
            .iter()
            .filter(|row| row.truth != calibrate::Truth::OutOfScope)
            .map(|row| row.confidence)
            .collect();
        let (weights, row_scales) = quantise_rows(&final_weights.weights, classes);
        let summary = TrainingSummary {
            examples: rows.len(),
            intents: classes,
            features: feature_count,
            heldout_examples: calibrated.len(),
            temperature: calibration.temperature,
            background: calibration.background,
            oos_threshold,
            estimate,
            curve,
        };
        Ok(IntentModel {
            labels,
            oos_label: config.oos_label.clone(),
            oos_class,
            features: config.features.clone(),
            vocabulary,
            weights,
            row_scales,
            bias: final_weights.bias,
            calibration,
            oos_threshold,
            summary,
            dense_dims,
            dense_weight,
            out_of_fold_confidences,
        })
    }

    /// Classifies one message.
    pub fn predict(&self, text: &str) -> IntentPrediction {
        self.predict_with_dense(text, None)
    }

    /// Classifies one message with its dense vector (a model trained with
    /// [`IntentModel::train_dense`]); a vector of another length than the model's is
    /// ignored, and so is any vector for a lexical model.
    pub(crate) fn predict_with_dense(&self, text: &str, dense: Option<&[f32]>) -> IntentPrediction {
        let classes = self.labels.len();
        let mut features = self
            .vocabulary
            .vectorise(&raw_features(text, &self.features), &self.features);
        let no_known_word = features.is_empty();
        if let Some(vector) =
            dense.filter(|vector| self.dense_dims > 0 && vector.len() == self.dense_dims)
        {
            append_dense(
                &mut features,
                self.vocabulary.len(),
                vector,
                self.dense_weight,
            );
        }
        let mut scores = self.bias.clone();
        for (feature, value) in &features {
            let index = *feature as usize;
            let scale = value * self.row_scales[index];
            let row = &self.weights[index * classes..(index + 1) * classes];
            for (score, level) in scores.iter_mut().zip(row) {
                *score += scale * f32::from(*level);
            }
        }
        let mut probabilities = Vec::with_capacity(classes + 1);
        let (best_class, confidence) = self.calibration.confidence(&scores, &mut probabilities);
        let best_guess = self.labels[best_class].clone();
        // A message with no known feature at all gives the prior; never act on it.
        let out_of_scope = no_known_word
            || Some(best_class) == self.oos_class
            || confidence < self.oos_threshold
            // 1.0 means "never trust the model": a saturated probability must not pass.
            || self.oos_threshold >= 1.0;
        IntentPrediction {
            name: if out_of_scope {
                None
            } else {
                Some(best_guess.clone())
            },
            confidence,
            out_of_scope,
            best_guess,
        }
    }

    /// Intent names the model knows, sorted (the out-of-scope label included if trained).
    pub fn intents(&self) -> &[String] {
        &self.labels
    }

    pub fn oos_threshold(&self) -> f32 {
        self.oos_threshold
    }

    /// The intent name that marks out-of-scope examples and rejected messages.
    pub fn oos_label(&self) -> &str {
        &self.oos_label
    }

    /// Lets the tenant override the learned out-of-scope threshold.
    pub fn set_oos_threshold(&mut self, threshold: f32) -> Result<(), NluError> {
        Rejection::Threshold(threshold).validate()?;
        self.oos_threshold = threshold;
        self.summary.oos_threshold = threshold;
        self.summary.estimate = self
            .summary
            .curve
            .iter()
            .find(|point| point.threshold >= threshold)
            .cloned()
            .filter(|point| point.threshold == threshold);
        Ok(())
    }

    pub fn temperature(&self) -> f32 {
        self.calibration.temperature
    }

    pub fn summary(&self) -> &TrainingSummary {
        &self.summary
    }

    /// Confidences of the in-scope training examples scored out of fold (empty for a
    /// model read from bytes).
    pub(crate) fn out_of_fold_confidences(&self) -> &[f32] {
        &self.out_of_fold_confidences
    }

    /// Length of the dense vectors the model was trained with (0: lexical only).
    pub fn dense_dims(&self) -> usize {
        self.dense_dims
    }
}

#[cfg(test)]
mod tests;
