//! Training, cross-validation and recall figures of the sentiment model.
//!
//! Classes are balanced by weight (a row of a class `k` times rarer than the largest counts
//! `k` times, rounded): macro-averaged recall is the figure the model is judged on, and
//! neutral is 5 % of the movie snippets it learns from but 18 % of the tweets.

use std::fmt;

use super::SentimentLabel;
use super::lexicon::read;
use super::model::{
    DENSE_FEATURES, SentimentModel, class_of, dense_features, encode, mark_negation,
};
use crate::error::NluError;
use crate::intent::FeatureConfig;
use crate::intent::features::{RawFeature, Vocabulary, raw_features};
use crate::intent::rng::SeededRng;
use crate::intent::svm::{EncodedExample, SvmSettings, fit_one_vs_rest, scores_into};

/// One labelled message to learn from.
#[derive(Debug, Clone, PartialEq)]
pub struct SentimentExample {
    pub text: String,
    pub label: SentimentLabel,
    /// How many times the row counts (1 for a corpus row; more for the few hand-written
    /// chat messages so that they are not drowned by 14,000 review snippets).
    pub weight: u32,
    /// Which corpus the row comes from (movie, Amazon, chat…), for [`Folds::BySource`].
    pub source: u32,
}

/// How cross-validation splits the training rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folds {
    /// `k` folds at random; the figure is the pooled out-of-fold recall.
    Random(usize),
    /// One fold per source: each corpus is predicted by a model trained on the others,
    /// the way the shipped model meets chat messages it has no corpus of; the figure is
    /// the mean over sources of their macro recall, so a small source weighs as much as
    /// the 10,605 movie snippets.
    BySource,
}

/// The hyper-parameters of the model.
#[derive(Debug, Clone, PartialEq)]
pub struct SentimentTrainConfig {
    pub features: FeatureConfig,
    /// The SVM's C (inverse regularisation).
    pub c: f32,
    /// Factor on the rules' dense features next to the TF-IDF vector (norm 1).
    pub lexicon_weight: f32,
    /// Features in fewer training messages than this are dropped (keeps the model small).
    pub min_count: u32,
    pub balanced: bool,
    pub seed: u64,
}

impl Default for SentimentTrainConfig {
    fn default() -> Self {
        SentimentTrainConfig {
            features: FeatureConfig {
                word_bigrams: true,
                char_ngram_min: 0,
                char_ngram_max: 0,
                char_ngram_weight: 0.0,
                sublinear_tf: true,
                idf: true,
            },
            c: 0.2,
            lexicon_weight: 1.0,
            min_count: 2,
            balanced: true,
            seed: 7,
        }
    }
}

/// A message reduced once to what every fit needs: its raw n-grams and dense features.
struct Prepared {
    raw: Vec<RawFeature>,
    dense: [f32; DENSE_FEATURES],
    class: usize,
    weight: u32,
    source: u32,
}

fn prepare(examples: &[SentimentExample], config: &FeatureConfig) -> Vec<Prepared> {
    examples
        .iter()
        .map(|example| Prepared {
            raw: raw_features(&mark_negation(&example.text), config),
            dense: dense_features(&example.text, &read(&example.text)),
            class: class_of(example.label),
            weight: example.weight.max(1),
            source: example.source,
        })
        .collect()
}

/// Fits a model on the rows `training` of `prepared`.
fn fit(
    prepared: &[Prepared],
    training: &[usize],
    config: &SentimentTrainConfig,
) -> Result<SentimentModel, NluError> {
    if training.is_empty() {
        return Err(NluError::NoExamples);
    }
    let documents: Vec<Vec<RawFeature>> = training
        .iter()
        .map(|row| prepared[*row].raw.clone())
        .collect();
    let vocabulary = Vocabulary::build(&documents, config.min_count, &config.features);
    let rows: Vec<EncodedExample> = training
        .iter()
        .map(|row| {
            EncodedExample::sparse(
                encode(
                    &vocabulary,
                    &config.features,
                    &prepared[*row].raw,
                    &prepared[*row].dense,
                    config.lexicon_weight,
                ),
                prepared[*row].class,
            )
        })
        .collect();
    let mut counts = [0u64; 3];
    for row in training {
        counts[prepared[*row].class] += u64::from(prepared[*row].weight);
    }
    let present = counts.iter().filter(|count| **count > 0).count();
    if present < 2 {
        return Err(NluError::TooFewIntents { found: present });
    }
    let largest = counts.iter().copied().max().unwrap_or(1).max(1);
    // A row repeated in `members` counts that many times in the squared-hinge objective,
    // exactly as a per-row weight would.
    let mut members: Vec<usize> = Vec::with_capacity(training.len() * 2);
    for (position, row) in training.iter().enumerate() {
        let class = prepared[*row].class;
        let balance = if config.balanced {
            ((largest as f64 / counts[class] as f64).round() as u32).max(1)
        } else {
            1
        };
        for _ in 0..prepared[*row].weight * balance {
            members.push(position);
        }
    }
    let settings = SvmSettings {
        c: config.c,
        tolerance: 0.1,
        max_passes: 50,
        seed: config.seed,
    };
    let trained = [counts[0] > 0, counts[1] > 0, counts[2] > 0];
    let weights = fit_one_vs_rest(
        &rows,
        &members,
        &trained,
        vocabulary.len() + DENSE_FEATURES,
        &settings,
    );
    Ok(SentimentModel {
        features: config.features.clone(),
        vocabulary,
        lexicon_weight: config.lexicon_weight,
        weights,
    })
}

/// Trains the model on every example.
pub fn train(
    examples: &[SentimentExample],
    config: &SentimentTrainConfig,
) -> Result<SentimentModel, NluError> {
    let prepared = prepare(examples, &config.features);
    let all: Vec<usize> = (0..prepared.len()).collect();
    fit(&prepared, &all, config)
}

/// Recall per label and its macro average, from a confusion matrix
/// `confusion[expected][obtained]` (negative, neutral, positive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecallReport {
    pub confusion: [[u32; 3]; 3],
}

impl RecallReport {
    pub fn add(&mut self, expected: SentimentLabel, obtained: SentimentLabel) {
        self.confusion[class_of(expected)][class_of(obtained)] += 1;
    }

    pub fn total(&self) -> u32 {
        self.confusion.iter().flatten().sum()
    }

    /// Share of the messages of `label` given `label`; `None` when there are none.
    pub fn recall(&self, label: SentimentLabel) -> Option<f32> {
        let row = &self.confusion[class_of(label)];
        let total: u32 = row.iter().sum();
        (total > 0).then(|| row[class_of(label)] as f32 / total as f32)
    }

    /// Mean of the recalls of the labels present.
    pub fn macro_recall(&self) -> f32 {
        let recalls: Vec<f32> = super::model::LABELS
            .iter()
            .filter_map(|label| self.recall(*label))
            .collect();
        if recalls.is_empty() {
            0.0
        } else {
            recalls.iter().sum::<f32>() / recalls.len() as f32
        }
    }

    pub fn accuracy(&self) -> f32 {
        let right: u32 = (0..3).map(|class| self.confusion[class][class]).sum();
        right as f32 / self.total().max(1) as f32
    }

    /// The report of `predict` on `examples`.
    pub fn of(
        examples: &[SentimentExample],
        predict: impl Fn(&str) -> SentimentLabel,
    ) -> RecallReport {
        let mut report = RecallReport::default();
        for example in examples {
            report.add(example.label, predict(&example.text));
        }
        report
    }
}

impl fmt::Display for RecallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let recall = |label| {
            self.recall(label)
                .map_or_else(|| "-".to_owned(), |value| format!("{value:.4}"))
        };
        writeln!(f, "messages: {}", self.total())?;
        writeln!(f, "macro_recall: {:.4}", self.macro_recall())?;
        writeln!(
            f,
            "recall: negative {} neutral {} positive {}",
            recall(SentimentLabel::Negative),
            recall(SentimentLabel::Neutral),
            recall(SentimentLabel::Positive)
        )?;
        writeln!(f, "accuracy: {:.4}", self.accuracy())?;
        writeln!(
            f,
            "confusion (rows expected, columns obtained: neg neu pos):"
        )?;
        for (name, row) in ["neg", "neu", "pos"].iter().zip(&self.confusion) {
            writeln!(f, "  {name} {:>6} {:>6} {:>6}", row[0], row[1], row[2])?;
        }
        Ok(())
    }
}

/// Out-of-fold recall of `config` on `examples`: the pooled report and one per fold.
pub fn cross_validate(
    examples: &[SentimentExample],
    config: &SentimentTrainConfig,
    folds: Folds,
) -> Result<CrossValidated, NluError> {
    let prepared = prepare(examples, &config.features);
    cross_validate_prepared(&prepared, config, folds)
}

/// Out-of-fold figures of one configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossValidated {
    pub pooled: RecallReport,
    pub per_fold: Vec<RecallReport>,
    /// The figure configurations are ranked by (see [`Folds`]).
    pub score: f32,
}

fn cross_validate_prepared(
    prepared: &[Prepared],
    config: &SentimentTrainConfig,
    folds: Folds,
) -> Result<CrossValidated, NluError> {
    let (fold_of, count) = match folds {
        Folds::Random(count) => {
            if count < 2 {
                return Err(NluError::Config(format!(
                    "cross-validation needs at least 2 folds, not {count}"
                )));
            }
            let mut order: Vec<usize> = (0..prepared.len()).collect();
            SeededRng::new(config.seed).shuffle(&mut order);
            let mut fold_of = vec![0usize; prepared.len()];
            for (position, row) in order.iter().enumerate() {
                fold_of[*row] = position % count;
            }
            (fold_of, count)
        }
        Folds::BySource => {
            let mut sources: Vec<u32> = prepared.iter().map(|row| row.source).collect();
            sources.sort_unstable();
            sources.dedup();
            if sources.len() < 2 {
                return Err(NluError::Config(
                    "cross-validation by source needs at least 2 sources".to_owned(),
                ));
            }
            let fold_of = prepared
                .iter()
                .map(|row| {
                    sources
                        .iter()
                        .position(|source| *source == row.source)
                        .unwrap_or(0)
                })
                .collect();
            (fold_of, sources.len())
        }
    };
    let mut pooled = RecallReport::default();
    let mut per_fold = Vec::with_capacity(count);
    for fold in 0..count {
        let training: Vec<usize> = (0..prepared.len())
            .filter(|row| fold_of[*row] != fold)
            .collect();
        let model = fit(prepared, &training, config)?;
        let mut report = RecallReport::default();
        let mut scores = [0.0f32; 3];
        for (row, example) in prepared.iter().enumerate() {
            if fold_of[row] != fold {
                continue;
            }
            let encoded = encode(
                &model.vocabulary,
                &model.features,
                &example.raw,
                &example.dense,
                model.lexicon_weight,
            );
            scores_into(
                &EncodedExample::sparse(encoded, 0),
                &model.weights,
                3,
                &mut scores,
            );
            let mut best = 0;
            for class in 1..3 {
                if scores[class] > scores[best] {
                    best = class;
                }
            }
            report.confusion[example.class][best] += 1;
            pooled.confusion[example.class][best] += 1;
        }
        per_fold.push(report);
    }
    let score = match folds {
        Folds::Random(_) => pooled.macro_recall(),
        Folds::BySource => {
            per_fold.iter().map(RecallReport::macro_recall).sum::<f32>() / per_fold.len() as f32
        }
    };
    Ok(CrossValidated {
        pooled,
        per_fold,
        score,
    })
}

/// The candidate values [`tune`] tries.
#[derive(Debug, Clone, PartialEq)]
pub struct SentimentGrid {
    pub c: Vec<f32>,
    pub lexicon_weight: Vec<f32>,
    /// Character n-gram settings (`(min, max, weight)`; `(0, 0, 0.0)` for none).
    pub char_ngrams: Vec<(u8, u8, f32)>,
    pub balanced: Vec<bool>,
}

/// One configuration tried by [`tune`] and its out-of-fold report.
#[derive(Debug, Clone, PartialEq)]
pub struct TunedSentiment {
    pub config: SentimentTrainConfig,
    pub figures: CrossValidated,
}

/// Tries every configuration of `grid` around `base` by cross-validation on `examples`
/// and returns them all, the best score first.
pub fn tune(
    examples: &[SentimentExample],
    base: &SentimentTrainConfig,
    grid: &SentimentGrid,
    folds: Folds,
) -> Result<Vec<TunedSentiment>, NluError> {
    let mut results = Vec::new();
    for (char_min, char_max, char_weight) in &grid.char_ngrams {
        let mut features = base.features.clone();
        features.char_ngram_min = *char_min;
        features.char_ngram_max = *char_max;
        features.char_ngram_weight = *char_weight;
        let prepared = prepare(examples, &features);
        for c in &grid.c {
            for lexicon_weight in &grid.lexicon_weight {
                for balanced in &grid.balanced {
                    let config = SentimentTrainConfig {
                        features: features.clone(),
                        c: *c,
                        lexicon_weight: *lexicon_weight,
                        balanced: *balanced,
                        ..base.clone()
                    };
                    let figures = cross_validate_prepared(&prepared, &config, folds)?;
                    results.push(TunedSentiment { config, figures });
                }
            }
        }
    }
    results.sort_by(|a, b| b.figures.score.total_cmp(&a.figures.score));
    Ok(results)
}
