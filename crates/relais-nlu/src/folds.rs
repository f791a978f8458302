//! K-fold evaluation of the intent classifier on a file with a `fold` column (HWU64's ten
//! folds): train on every fold but one, test on that one, report each fold and the mean
//! (`relais nlu eval-folds`).
//!
//! With `holdout_intents > 0`, a share of the intents is left out of training in each fold
//! and their test rows are labelled out of scope: the only honest measure of rejection
//! for a tenant whose model never saw what customers ask outside its intents. Which
//! intents are left out changes from fold to fold (seeded), so every figure is a mean over
//! ten different choices.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::NluError;
use crate::eval::{measured_curve, rejected_at, score, write_curves};
use crate::intent::load::open_file;
use crate::intent::rng::SeededRng;
use crate::intent::{
    CurvePoint, Example, IntentModel, IntentPrediction, TrainConfig, TuningGrid, curve_thresholds,
    tune,
};
use crate::semantic::{EmbeddingCache, Semantic, SemanticConfig, SemanticIntentModel, quantile};

/// A labelled utterance and the cross-validation fold it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldExample {
    pub fold: u32,
    pub example: Example,
}

/// Reads CSV rows with `fold`, `text` and `intent` columns (any order, extra columns
/// ignored), as `hwu64.csv`.
pub fn load_fold_examples_csv<R: Read>(reader: R) -> Result<Vec<FoldExample>, NluError> {
    let mut csv_reader = csv::Reader::from_reader(reader);
    let headers = csv_reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|header| header.trim().eq_ignore_ascii_case(name))
            .ok_or_else(|| NluError::BadExample {
                row: 1,
                reason: format!("header has no `{name}` column (expected `fold,text,intent`)"),
            })
    };
    let (fold_column, text_column, intent_column) =
        (column("fold")?, column("text")?, column("intent")?);
    let mut rows = Vec::new();
    for (index, record) in csv_reader.records().enumerate() {
        let record = record?;
        let row = index + 2;
        let field = |column: usize| record.get(column).unwrap_or("").trim();
        let fold = field(fold_column)
            .parse::<u32>()
            .map_err(|_| NluError::BadExample {
                row,
                reason: format!("fold is not a number: {:?}", field(fold_column)),
            })?;
        if field(intent_column).is_empty() {
            return Err(NluError::BadExample {
                row,
                reason: "empty intent".to_owned(),
            });
        }
        rows.push(FoldExample {
            fold,
            example: Example::new(field(text_column), field(intent_column)),
        });
    }
    Ok(rows)
}

/// Reads [`load_fold_examples_csv`] rows from a file.
pub fn load_fold_examples_file(path: &std::path::Path) -> Result<Vec<FoldExample>, NluError> {
    load_fold_examples_csv(open_file(path)?)
}

/// How to run the folds.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldsConfig {
    /// Share of the intents left out of training in each fold (0 keeps them all); their
    /// test rows are expected to be rejected.
    pub holdout_intents: f32,
    /// Seed of the choice of left-out intents.
    pub seed: u64,
    pub train: TrainConfig,
    /// Choose `C` and the n-gram weight in each fold by cross-validation on that fold's
    /// training examples (the test fold never takes part).
    pub tune: Option<TuningGrid>,
}

impl Default for FoldsConfig {
    fn default() -> Self {
        FoldsConfig {
            holdout_intents: 0.0,
            seed: 42,
            train: TrainConfig::default(),
            tune: None,
        }
    }
}

/// Figures of one fold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldFigures {
    pub fold: u32,
    pub train_examples: usize,
    pub test_examples: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub in_scope_accuracy: f64,
    pub oos_recall: Option<f64>,
    pub oos_threshold: f32,
    pub training_seconds: f64,
    /// The SVM's `C` and the n-gram weight the fold trained with.
    pub regularisation: f32,
    pub char_ngram_weight: f32,
    /// Two-stage model only: share of the test messages that went to the encoder.
    pub escalated: Option<f64>,
}

/// What the two-stage model gives when a given share of messages goes to the encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationPoint {
    pub share_asked: f32,
    pub share_escalated: f64,
    pub accuracy: f64,
    pub in_scope_accuracy: f64,
    pub oos_recall: Option<f64>,
}

/// Shares of the escalation curve.
const ESCALATION_SHARES: [f32; 8] = [0.0, 0.05, 0.10, 0.15, 0.20, 0.30, 0.50, 1.0];

/// Every fold, their mean, and the trade-off curve measured on the test folds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldsReport {
    pub folds: Vec<FoldFigures>,
    pub intents: usize,
    pub holdout_intents: f32,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub in_scope_accuracy: f64,
    pub oos_recall: Option<f64>,
    pub training_seconds: f64,
    /// Two-stage model only: mean share of the test messages that went to the encoder.
    pub escalated: Option<f64>,
    /// Two-stage model only: for escalation shares asked (of the training examples'
    /// out-of-fold confidences), the share of test messages escalated and the accuracy
    /// and in-scope accuracy obtained, mean over folds.
    pub escalation_curve: Vec<EscalationPoint>,
    /// Mean over folds of what each threshold gave on the test fold.
    pub curve: Vec<CurvePoint>,
    /// Mean over folds of what cross-validation on the training folds predicted.
    pub estimated_curve: Vec<CurvePoint>,
}

impl fmt::Display for FoldsReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let optional = |value: Option<f64>| match value {
            Some(value) => format!("{value:.4}"),
            None => "n/a".to_owned(),
        };
        for fold in &self.folds {
            writeln!(
                formatter,
                "fold {}: accuracy {:.4} macro_f1 {:.4} in_scope_accuracy {:.4} oos_recall {} \
                 threshold {:.4} train {} test {} training {:.2} s c {} char_weight {}{}",
                fold.fold,
                fold.accuracy,
                fold.macro_f1,
                fold.in_scope_accuracy,
                optional(fold.oos_recall),
                fold.oos_threshold,
                fold.train_examples,
                fold.test_examples,
                fold.training_seconds,
                fold.regularisation,
                fold.char_ngram_weight,
                fold.escalated
                    .map(|share| format!(" escalated {share:.4}"))
                    .unwrap_or_default()
            )?;
        }
        writeln!(
            formatter,
            "mean over {} folds ({} intents, {:.0} % of them left out of training per fold):",
            self.folds.len(),
            self.intents,
            self.holdout_intents * 100.0
        )?;
        writeln!(formatter, "accuracy: {:.4}", self.accuracy)?;
        writeln!(formatter, "macro_f1: {:.4}", self.macro_f1)?;
        writeln!(
            formatter,
            "in_scope_accuracy: {:.4}",
            self.in_scope_accuracy
        )?;
        if let Some(recall) = self.oos_recall {
            writeln!(formatter, "oos_recall: {recall:.4}")?;
        }
        if let Some(share) = self.escalated {
            writeln!(formatter, "escalated_to_encoder: {share:.4}")?;
        }
        if !self.escalation_curve.is_empty() {
            writeln!(
                formatter,
                "escalation (share asked -> share escalated, accuracy, in_scope_accuracy, oos_recall; test folds, mean):"
            )?;
            for point in &self.escalation_curve {
                writeln!(
                    formatter,
                    "  {:.2} -> {:.4} {:.4} {:.4} {}",
                    point.share_asked,
                    point.share_escalated,
                    point.accuracy,
                    point.in_scope_accuracy,
                    point
                        .oos_recall
                        .map_or_else(|| "n/a".to_owned(), |recall| format!("{recall:.4}"))
                )?;
            }
        }
        writeln!(
            formatter,
            "training_seconds: {:.2} per fold",
            self.training_seconds
        )?;
        write_curves(
            formatter,
            &self.curve,
            &self.estimated_curve,
            "the test folds, mean",
        )?;
        Ok(())
    }
}

/// Point-wise mean of curves measured at the same thresholds.
fn mean_curve(curves: &[Vec<CurvePoint>]) -> Vec<CurvePoint> {
    let Some(first) = curves.first() else {
        return Vec::new();
    };
    let count = curves.len() as f32;
    (0..first.len())
        .map(|index| {
            let points: Vec<&CurvePoint> =
                curves.iter().filter_map(|curve| curve.get(index)).collect();
            let sum = |value: fn(&CurvePoint) -> f32| {
                points.iter().map(|point| value(point)).sum::<f32>() / count
            };
            CurvePoint {
                threshold: first[index].threshold,
                in_scope_accuracy: sum(|point| point.in_scope_accuracy),
                in_scope_precision: sum(|point| point.in_scope_precision),
                oos_recall: points
                    .iter()
                    .all(|point| point.oos_recall.is_some())
                    .then(|| sum(|point| point.oos_recall.unwrap_or(0.0))),
            }
        })
        .collect()
}

/// One fold's training and test examples (left-out intents' test rows relabelled `oos`).
struct Split {
    fold: u32,
    train: Vec<Example>,
    test: Vec<Example>,
}

/// Deals `rows` into folds, leaving out `config.holdout_intents` of the intents in each.
fn splits(rows: &[FoldExample], config: &FoldsConfig) -> Result<(Vec<Split>, usize), NluError> {
    if !(0.0..1.0).contains(&config.holdout_intents) {
        return Err(NluError::Config(
            "holdout_intents must be in [0, 1)".to_owned(),
        ));
    }
    let folds: Vec<u32> = {
        let mut folds: Vec<u32> = rows.iter().map(|row| row.fold).collect();
        folds.sort_unstable();
        folds.dedup();
        folds
    };
    if folds.len() < 2 {
        return Err(NluError::Config(format!(
            "k-fold evaluation needs at least two folds, found {}",
            folds.len()
        )));
    }
    let mut intents: Vec<&str> = rows.iter().map(|row| row.example.intent.as_str()).collect();
    intents.sort_unstable();
    intents.dedup();
    let oos_label = config.train.oos_label.as_str();
    let splits = folds
        .iter()
        .enumerate()
        .map(|(fold_index, fold)| {
            let mut shuffled = intents.clone();
            SeededRng::new(config.seed.wrapping_add(fold_index as u64)).shuffle(&mut shuffled);
            let left_out_count = (intents.len() as f32 * config.holdout_intents).round() as usize;
            let left_out = &shuffled[..left_out_count];
            let train: Vec<Example> = rows
                .iter()
                .filter(|row| row.fold != *fold && !left_out.contains(&row.example.intent.as_str()))
                .map(|row| row.example.clone())
                .collect();
            let test: Vec<Example> = rows
                .iter()
                .filter(|row| row.fold == *fold)
                .map(|row| {
                    if left_out.contains(&row.example.intent.as_str()) {
                        Example::new(row.example.text.clone(), oos_label)
                    } else {
                        row.example.clone()
                    }
                })
                .collect();
            Split {
                fold: *fold,
                train,
                test,
            }
        })
        .collect();
    Ok((splits, intents.len()))
}

/// The mean of the folds' figures and curves.
fn report(
    figures: Vec<FoldFigures>,
    curves: &[Vec<CurvePoint>],
    estimated_curves: &[Vec<CurvePoint>],
    intents: usize,
    config: &FoldsConfig,
) -> FoldsReport {
    let count = figures.len() as f64;
    let mean = |value: fn(&FoldFigures) -> f64| figures.iter().map(value).sum::<f64>() / count;
    let has_oos = figures.iter().all(|fold| fold.oos_recall.is_some());
    let has_escalation = figures.iter().all(|fold| fold.escalated.is_some());
    FoldsReport {
        intents,
        holdout_intents: config.holdout_intents,
        accuracy: mean(|fold| fold.accuracy),
        macro_f1: mean(|fold| fold.macro_f1),
        in_scope_accuracy: mean(|fold| fold.in_scope_accuracy),
        oos_recall: has_oos.then(|| mean(|fold| fold.oos_recall.unwrap_or(0.0))),
        training_seconds: mean(|fold| fold.training_seconds),
        escalated: has_escalation.then(|| mean(|fold| fold.escalated.unwrap_or(0.0))),
        escalation_curve: Vec::new(),
        curve: mean_curve(curves),
        estimated_curve: mean_curve(estimated_curves),
        folds: figures,
    }
}

/// Labels of predictions: the intent, or `oos` when rejected.
fn labels_of(predictions: &[IntentPrediction], oos_label: &str) -> Vec<String> {
    predictions
        .iter()
        .map(|prediction| match &prediction.name {
            Some(name) => name.clone(),
            None => oos_label.to_owned(),
        })
        .collect()
}

/// Runs every fold of `rows`. Errors when there are fewer than two folds.
pub fn evaluate_folds(rows: &[FoldExample], config: &FoldsConfig) -> Result<FoldsReport, NluError> {
    let (splits, intents) = splits(rows, config)?;
    let oos_label = config.train.oos_label.as_str();
    let mut figures = Vec::with_capacity(splits.len());
    let mut curves = Vec::with_capacity(splits.len());
    let mut estimated_curves = Vec::with_capacity(splits.len());
    for Split { fold, train, test } in splits {
        let started = Instant::now();
        let train_config = match &config.tune {
            Some(grid) => tune(&train, &config.train, grid)?.config,
            None => config.train.clone(),
        };
        let model = IntentModel::train(&train, &train_config)?;
        let training_seconds = started.elapsed().as_secs_f64();
        let predictions: Vec<IntentPrediction> = test
            .iter()
            .map(|example| model.predict(&example.text))
            .collect();
        let scores = score(&test, &labels_of(&predictions, oos_label), oos_label);
        curves.push(measured_curve(&test, &predictions, &model));
        estimated_curves.push(model.summary().curve.clone());
        figures.push(FoldFigures {
            fold,
            train_examples: train.len(),
            test_examples: test.len(),
            accuracy: scores.accuracy,
            macro_f1: scores.macro_f1,
            in_scope_accuracy: scores.in_scope_accuracy,
            oos_recall: scores.oos_recall,
            oos_threshold: model.oos_threshold(),
            training_seconds,
            regularisation: train_config.regularisation,
            char_ngram_weight: train_config.features.char_ngram_weight,
            escalated: None,
        });
    }
    Ok(report(figures, &curves, &estimated_curves, intents, config))
}

/// Which model the k-fold evaluation of [`evaluate_folds_semantic`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemanticMode {
    /// TF-IDF and static vectors only (the first stage).
    Fast,
    /// TF-IDF and the sentence encoder on every message (the second stage alone).
    Encoder,
    /// The first stage, the encoder under the escalation threshold.
    TwoStage,
}

/// [`evaluate_folds`] for the models with the encoder's vectors, one report per mode
/// of `modes` (in order), from one training of both stages per fold. Every text is
/// encoded once (`cache`); `config.train` gives the rejection, `semantic_config` the
/// rest. The measured curve of the two-stage mode moves the rejection threshold of both
/// stages together, escalating what the fast model would reject at that threshold.
pub fn evaluate_folds_semantic(
    rows: &[FoldExample],
    config: &FoldsConfig,
    semantic_config: &SemanticConfig,
    semantic: &Semantic,
    cache: &mut EmbeddingCache,
    modes: &[SemanticMode],
) -> Result<Vec<FoldsReport>, NluError> {
    let (splits, intents) = splits(rows, config)?;
    let oos_label = config.train.oos_label.as_str();
    let texts: Vec<&str> = rows.iter().map(|row| row.example.text.as_str()).collect();
    let sentence_vectors: HashMap<&str, Vec<f32>> = texts
        .iter()
        .copied()
        .zip(cache.embed_all(&semantic.encoder, &texts)?)
        .collect();
    let static_vectors: HashMap<&str, Vec<f32>> = texts
        .iter()
        .map(|text| (*text, semantic.static_vectors.embed(text)))
        .collect();
    let vectors_of = |examples: &[Example], table: &HashMap<&str, Vec<f32>>| -> Vec<Vec<f32>> {
        examples
            .iter()
            .map(|example| {
                table
                    .get(example.text.as_str())
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    };
    let semantic_config = SemanticConfig {
        train: TrainConfig {
            rejection: config.train.rejection,
            ..semantic_config.train.clone()
        },
        ..semantic_config.clone()
    };
    let mut figures = vec![Vec::with_capacity(splits.len()); modes.len()];
    let mut curves = vec![Vec::with_capacity(splits.len()); modes.len()];
    let mut estimated_curves = vec![Vec::with_capacity(splits.len()); modes.len()];
    let mut escalation_points: Vec<Vec<EscalationPoint>> = Vec::new();
    for Split { fold, train, test } in splits {
        let started = Instant::now();
        let model = SemanticIntentModel::train_with_vectors(
            &train,
            &semantic_config,
            &vectors_of(&train, &static_vectors),
            &vectors_of(&train, &sentence_vectors),
        )?;
        let training_seconds = started.elapsed().as_secs_f64();
        let empty = Vec::new();
        let both: Vec<(IntentPrediction, IntentPrediction)> = test
            .iter()
            .map(|example| {
                let text = example.text.as_str();
                model.predict_both(
                    text,
                    static_vectors.get(text).unwrap_or(&empty),
                    sentence_vectors.get(text).unwrap_or(&empty),
                )
            })
            .collect();
        escalation_points.push(
            ESCALATION_SHARES
                .iter()
                .map(|share| {
                    let below = quantile(model.fast_model().out_of_fold_confidences(), *share);
                    let escalates = |fast: &IntentPrediction| {
                        *share >= 1.0
                            || (*share > 0.0 && (fast.out_of_scope || fast.confidence < below))
                    };
                    let predictions: Vec<IntentPrediction> = both
                        .iter()
                        .map(|(fast, full)| if escalates(fast) { full } else { fast }.clone())
                        .collect();
                    let escalated = both.iter().filter(|(fast, _)| escalates(fast)).count();
                    let scores = score(&test, &labels_of(&predictions, oos_label), oos_label);
                    EscalationPoint {
                        share_asked: *share,
                        share_escalated: escalated as f64 / test.len().max(1) as f64,
                        accuracy: scores.accuracy,
                        in_scope_accuracy: scores.in_scope_accuracy,
                        oos_recall: scores.oos_recall,
                    }
                })
                .collect(),
        );
        for (index, mode) in modes.iter().enumerate() {
            let (predictions, escalated, measured, stage_model) = match mode {
                SemanticMode::Fast => {
                    let predictions: Vec<IntentPrediction> =
                        both.iter().map(|(fast, _)| fast.clone()).collect();
                    let curve = measured_curve(&test, &predictions, model.fast_model());
                    (predictions, None, curve, model.fast_model())
                }
                SemanticMode::Encoder => {
                    let predictions: Vec<IntentPrediction> =
                        both.iter().map(|(_, full)| full.clone()).collect();
                    let curve = measured_curve(&test, &predictions, model.encoder_model());
                    (predictions, None, curve, model.encoder_model())
                }
                SemanticMode::TwoStage => {
                    let curve = two_stage_curve(&test, &both, &model);
                    let predictions: Vec<IntentPrediction> = both
                        .iter()
                        .map(|(fast, full)| {
                            if model.escalates(fast) {
                                full.clone()
                            } else {
                                fast.clone()
                            }
                        })
                        .collect();
                    let escalated = both
                        .iter()
                        .filter(|(fast, _)| model.escalates(fast))
                        .count();
                    let share = escalated as f64 / test.len().max(1) as f64;
                    (predictions, Some(share), curve, model.encoder_model())
                }
            };
            let scores = score(&test, &labels_of(&predictions, oos_label), oos_label);
            curves[index].push(measured);
            estimated_curves[index].push(stage_model.summary().curve.clone());
            figures[index].push(FoldFigures {
                fold,
                train_examples: train.len(),
                test_examples: test.len(),
                accuracy: scores.accuracy,
                macro_f1: scores.macro_f1,
                in_scope_accuracy: scores.in_scope_accuracy,
                oos_recall: scores.oos_recall,
                oos_threshold: stage_model.oos_threshold(),
                training_seconds,
                regularisation: semantic_config.train.regularisation,
                char_ngram_weight: semantic_config.train.features.char_ngram_weight,
                escalated,
            });
        }
    }
    let folds = escalation_points.len().max(1) as f64;
    let escalation_curve: Vec<EscalationPoint> = ESCALATION_SHARES
        .iter()
        .enumerate()
        .map(|(index, share)| {
            let points: Vec<&EscalationPoint> = escalation_points
                .iter()
                .filter_map(|fold| fold.get(index))
                .collect();
            let mean = |value: fn(&EscalationPoint) -> f64| {
                points.iter().map(|point| value(point)).sum::<f64>() / folds
            };
            EscalationPoint {
                share_asked: *share,
                share_escalated: mean(|point| point.share_escalated),
                accuracy: mean(|point| point.accuracy),
                in_scope_accuracy: mean(|point| point.in_scope_accuracy),
                oos_recall: points
                    .iter()
                    .all(|point| point.oos_recall.is_some())
                    .then(|| mean(|point| point.oos_recall.unwrap_or(0.0))),
            }
        })
        .collect();
    Ok(figures
        .into_iter()
        .zip(curves.iter().zip(&estimated_curves))
        .zip(modes)
        .map(|((figures, (curves, estimated)), mode)| {
            let mut report = report(figures, curves, estimated, intents, config);
            if *mode == SemanticMode::TwoStage {
                report.escalation_curve = escalation_curve.clone();
            }
            report
        })
        .collect())
}

/// The two-stage model's curve: at threshold `t`, the fast answer stands when its
/// confidence is at least `t` and the escalation threshold; every other message gets
/// the encoder stage's answer, rejected under `t`.
fn two_stage_curve(
    test: &[Example],
    both: &[(IntentPrediction, IntentPrediction)],
    model: &SemanticIntentModel,
) -> Vec<CurvePoint> {
    let oos_label = model.encoder_model().oos_label();
    curve_thresholds()
        .into_iter()
        .map(|threshold| {
            let labels: Vec<String> = both
                .iter()
                .map(|(fast, full)| {
                    let fast_stands = !rejected_at(fast, threshold, model.fast_model())
                        && !model.escalates_at(fast, threshold);
                    if fast_stands {
                        fast.best_guess.clone()
                    } else if rejected_at(full, threshold, model.encoder_model()) {
                        oos_label.to_owned()
                    } else {
                        full.best_guess.clone()
                    }
                })
                .collect();
            let scores = score(test, &labels, oos_label);
            CurvePoint {
                threshold,
                in_scope_accuracy: scores.in_scope_accuracy as f32,
                in_scope_precision: scores.in_scope_precision as f32,
                oos_recall: scores.oos_recall.map(|recall| recall as f32),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<FoldExample> {
        let texts = [
            ("book a table for {} people", "restaurant"),
            ("reserve a table at {} pm", "restaurant"),
            ("what's the weather in {} days", "weather"),
            ("will it rain in {} hours", "weather"),
            ("play {} songs by queen", "music"),
            ("put on {} jazz tracks", "music"),
            ("set an alarm at {} am", "alarm"),
            ("wake me up at {} o'clock", "alarm"),
        ];
        let mut rows = Vec::new();
        for number in 0..12u32 {
            for (text, intent) in texts {
                rows.push(FoldExample {
                    fold: number % 3 + 1,
                    example: Example::new(text.replace("{}", &number.to_string()), intent),
                });
            }
        }
        rows
    }

    #[test]
    fn every_fold_is_tested_once_and_the_mean_is_printed() -> Result<(), NluError> {
        let report = evaluate_folds(&rows(), &FoldsConfig::default())?;
        assert_eq!(report.folds.len(), 3);
        assert_eq!(
            report
                .folds
                .iter()
                .map(|fold| fold.test_examples)
                .sum::<usize>(),
            96
        );
        assert!(report.in_scope_accuracy > 0.9, "{report}");
        assert_eq!(report.oos_recall, None);
        let printed = report.to_string();
        assert!(printed.lines().any(|line| line.starts_with("accuracy: ")));
        assert!(printed.lines().any(|line| line.starts_with("macro_f1: ")));
        Ok(())
    }

    #[test]
    fn left_out_intents_are_tested_as_out_of_scope() -> Result<(), NluError> {
        let config = FoldsConfig {
            holdout_intents: 0.25,
            ..FoldsConfig::default()
        };
        let report = evaluate_folds(&rows(), &config)?;
        assert!(report.oos_recall.is_some(), "{report}");
        assert!(report.to_string().contains("oos_recall: "));
        // The curve starts with a threshold that rejects nothing the model accepts and
        // rejects more out-of-scope rows as the threshold rises.
        let first = report.curve.first().and_then(|point| point.oos_recall);
        let last = report.curve.last().and_then(|point| point.oos_recall);
        assert!(first <= last, "{report}");
        Ok(())
    }

    #[test]
    fn a_file_without_folds_is_refused() {
        assert!(load_fold_examples_csv("text,intent\nhi,greet\n".as_bytes()).is_err());
        assert!(matches!(
            load_fold_examples_csv("fold,text,intent\nx,hi,greet\n".as_bytes()),
            Err(NluError::BadExample { row: 2, .. })
        ));
        let one_fold = vec![FoldExample {
            fold: 1,
            example: Example::new("hi", "greet"),
        }];
        assert!(evaluate_folds(&one_fold, &FoldsConfig::default()).is_err());
    }
}
