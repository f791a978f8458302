//! What the training examples say about the model's own confidence, measured the only
//! honest way: k-fold cross-validation, each example scored by a model that did not see
//! it. From these out-of-fold scores come the temperature of the probabilities, the
//! estimated trade-off curve between in-scope accuracy and out-of-scope recall, and the
//! out-of-scope threshold the tenant's [`Rejection`] asks for.
//!
//! Without `oos` examples, out-of-scope messages are simulated: in each fold a share of
//! the intents (one group in `k`) is left out of the fitted model, and their held-out
//! examples play the messages about intents never trained, as they will in production.

use serde::{Deserialize, Serialize};

use crate::error::NluError;
use crate::intent::rng::SeededRng;
use crate::intent::svm::{
    EncodedExample, LinearWeights, SvmSettings, fit_one_vs_rest, scores_into,
};

/// How the out-of-scope threshold is chosen. Targets are estimated by cross-validation on
/// the training examples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// The lowest threshold that rejects this share of out-of-scope messages (`oos`
    /// examples, or, without them, examples of intents left out of the fold's model).
    OosRecall(f32),
    /// The lowest threshold at which this share of the in-scope messages the model
    /// answers get the right intent.
    InScopePrecision(f32),
    /// A fixed threshold on the calibrated confidence; `1.0` sends everything to a human.
    Threshold(f32),
}

impl Default for Rejection {
    /// Reject 30 % of what the model was not trained for. On HWU64's training folds,
    /// cross-validation puts the cost of 30 % at about 1.5 points of in-scope accuracy
    /// and of 40 % at 2.5 (docs/nlu.md): a mild default; the tenant picks its own point.
    fn default() -> Self {
        Rejection::OosRecall(0.3)
    }
}

impl Rejection {
    pub fn validate(&self) -> Result<(), NluError> {
        let (name, value) = match self {
            Rejection::OosRecall(value) => ("oos_recall", value),
            Rejection::InScopePrecision(value) => ("in_scope_precision", value),
            Rejection::Threshold(value) => ("oos_threshold", value),
        };
        if (0.0..=1.0).contains(value) {
            Ok(())
        } else {
            Err(NluError::Config(format!("{name} must be in [0, 1]")))
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::OosRecall(value) => write!(formatter, "oos_recall {value}"),
            Rejection::InScopePrecision(value) => write!(formatter, "in_scope_precision {value}"),
            Rejection::Threshold(value) => write!(formatter, "threshold {value}"),
        }
    }
}

/// What a threshold gives: measured on a test set, or estimated by cross-validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub threshold: f32,
    /// In-scope messages answered with the right intent, over all in-scope messages.
    pub in_scope_accuracy: f32,
    /// In-scope messages answered with the right intent, over those answered.
    pub in_scope_precision: f32,
    /// Out-of-scope messages rejected; `None` without out-of-scope messages.
    pub oos_recall: Option<f32>,
}

/// Thresholds at which curves are reported: every 0.05 from 0 to 0.95.
pub(crate) fn curve_thresholds() -> Vec<f32> {
    (0..20).map(|step| step as f32 * 0.05).collect()
}

/// The truth about a scored example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Truth {
    Intent(usize),
    OutOfScope,
}

/// An example scored by a model that did not see it.
pub(crate) struct OutOfFold {
    pub scores: Vec<f32>,
    pub truth: Truth,
}

/// Whether [`cross_validate`] leaves intents out in turn when there is no `oos` class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SimulateOutOfScope {
    Yes,
    No,
}

/// Out-of-fold scores of every row, from `folds` fits. With `oos_class` the rows of that
/// class are the out-of-scope ones; without, intents are left out in turn (when there are
/// at least four, so that each fit keeps three).
pub(crate) fn cross_validate(
    rows: &[EncodedExample],
    classes: usize,
    oos_class: Option<usize>,
    folds: usize,
    feature_count: usize,
    settings: &SvmSettings,
    simulate: SimulateOutOfScope,
) -> Vec<OutOfFold> {
    let folds = folds.min(rows.len());
    if folds < 2 {
        return Vec::new();
    }
    let mut rng = SeededRng::new(settings.seed ^ 0xC0FF_EE00);
    // Stratified: each class's rows dealt round the folds in a seeded order.
    let mut fold_of = vec![0usize; rows.len()];
    let mut per_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (index, row) in rows.iter().enumerate() {
        per_class[row.class].push(index);
    }
    let mut next_fold = 0usize;
    for members in &mut per_class {
        rng.shuffle(members);
        for member in members.iter() {
            fold_of[*member] = next_fold % folds;
            next_fold += 1;
        }
    }
    let mut left_out_group = vec![None; classes];
    let in_scope: Vec<usize> = (0..classes)
        .filter(|class| Some(*class) != oos_class)
        .collect();
    if simulate == SimulateOutOfScope::Yes && oos_class.is_none() && in_scope.len() >= 4 {
        let mut shuffled = in_scope.clone();
        rng.shuffle(&mut shuffled);
        for (position, class) in shuffled.iter().enumerate() {
            left_out_group[*class] = Some(position % folds);
        }
    }
    let mut out_of_fold: Vec<Option<OutOfFold>> = (0..rows.len()).map(|_| None).collect();
    for fold in 0..folds {
        let trained: Vec<bool> = (0..classes)
            .map(|class| left_out_group[class] != Some(fold))
            .collect();
        let members: Vec<usize> = (0..rows.len())
            .filter(|index| fold_of[*index] != fold && trained[rows[*index].class])
            .collect();
        if members.is_empty() {
            continue;
        }
        let weights = fit_one_vs_rest(rows, &members, &trained, feature_count, settings);
        for (index, row) in rows.iter().enumerate() {
            if fold_of[index] != fold {
                continue;
            }
            let truth = if Some(row.class) == oos_class || !trained[row.class] {
                Truth::OutOfScope
            } else {
                Truth::Intent(row.class)
            };
            out_of_fold[index] = Some(OutOfFold {
                scores: score_row(row, &weights, classes),
                truth,
            });
        }
    }
    out_of_fold.into_iter().flatten().collect()
}

/// Scores of `rows` by an already fitted model, for a separate validation set.
pub(crate) fn score_rows(
    rows: &[EncodedExample],
    weights: &LinearWeights,
    classes: usize,
    oos_class: Option<usize>,
) -> Vec<OutOfFold> {
    rows.iter()
        .map(|row| OutOfFold {
            scores: score_row(row, weights, classes),
            truth: if Some(row.class) == oos_class {
                Truth::OutOfScope
            } else {
                Truth::Intent(row.class)
            },
        })
        .collect()
}

fn score_row(row: &EncodedExample, weights: &LinearWeights, classes: usize) -> Vec<f32> {
    let mut scores = vec![0.0f32; classes];
    scores_into(row, weights, classes, &mut scores);
    scores
}

pub(crate) fn softmax_in_place(values: &mut [f32]) {
    let maximum = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for value in values.iter_mut() {
        *value = (*value - maximum).exp();
        sum += *value;
    }
    if sum > 0.0 {
        for value in values.iter_mut() {
            *value /= sum;
        }
    }
}

pub(crate) fn argmax(values: &[f32]) -> (usize, f32) {
    values
        .iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (index, value)| {
            if value > best.1 { (index, value) } else { best }
        })
}

/// Background score meaning "no out-of-scope logit" (format version 1 models, and data
/// without out-of-scope rows): its probability is zero at any temperature.
pub(crate) const NO_BACKGROUND: f32 = -1.0e4;

/// How scores become a confidence: a softmax at `temperature` over the intents plus one
/// out-of-scope logit of constant `background`. SVM scores are margins, not log-odds; the
/// temperature maps them onto probabilities, and the background takes probability away
/// from messages on which no intent scores high, which is what out-of-scope messages
/// look like.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Calibration {
    pub temperature: f32,
    pub background: f32,
}

impl Calibration {
    /// The best intent and its probability; `probabilities` is scratch space.
    pub fn confidence(&self, scores: &[f32], probabilities: &mut Vec<f32>) -> (usize, f32) {
        probabilities.clear();
        probabilities.extend(scores.iter().map(|score| score / self.temperature));
        probabilities.push(self.background / self.temperature);
        softmax_in_place(probabilities);
        probabilities.pop();
        argmax(probabilities)
    }
}

fn log_sum_exp(left: f32, right: f32) -> f32 {
    let maximum = left.max(right);
    maximum + ((left - maximum).exp() + (right - maximum).exp()).ln()
}

/// Temperature and background that minimise the negative log-likelihood of the
/// out-of-fold rows: in-scope rows should get their intent, out-of-scope rows the
/// background. Without out-of-scope rows the background stays off.
pub(crate) fn fit_calibration(rows: &[OutOfFold]) -> Calibration {
    let mut best = (
        f32::INFINITY,
        Calibration {
            temperature: 1.0,
            background: NO_BACKGROUND,
        },
    );
    if rows.is_empty() {
        return best.1;
    }
    let has_oos = rows.iter().any(|row| row.truth == Truth::OutOfScope);
    // Backgrounds from -2 to 2 by 0.05 (scores are margins around ±1), and none.
    let backgrounds: Vec<f32> = std::iter::once(NO_BACKGROUND)
        .chain((0..=80).map(|step| -2.0 + step as f32 * 0.05))
        .filter(|background| has_oos || *background == NO_BACKGROUND)
        .collect();
    let mut per_row: Vec<(f32, Option<f32>)> = Vec::with_capacity(rows.len());
    for step in 0..=60 {
        // Log-spaced grid from 0.01 to 10.
        let temperature = 0.01f32 * (1000.0f32).powf(step as f32 / 60.0);
        // Per row: log-sum-exp of the intents' scaled scores, and the true intent's.
        per_row.clear();
        per_row.extend(rows.iter().map(|row| {
            let maximum =
                row.scores.iter().copied().fold(f32::NEG_INFINITY, f32::max) / temperature;
            let sum: f32 = row
                .scores
                .iter()
                .map(|score| (score / temperature - maximum).exp())
                .sum();
            let truth = match row.truth {
                Truth::Intent(class) => Some(row.scores[class] / temperature),
                Truth::OutOfScope => None,
            };
            (maximum + sum.ln(), truth)
        }));
        for background in &backgrounds {
            let scaled = background / temperature;
            let loss: f32 = per_row
                .iter()
                .map(|(intents, truth)| log_sum_exp(*intents, scaled) - truth.unwrap_or(scaled))
                .sum();
            if loss < best.0 {
                best = (
                    loss,
                    Calibration {
                        temperature,
                        background: *background,
                    },
                );
            }
        }
    }
    best.1
}

/// An out-of-fold row once calibrated.
pub(crate) struct Calibrated {
    pub confidence: f32,
    pub predicted: usize,
    pub truth: Truth,
}

pub(crate) fn calibrate(rows: &[OutOfFold], calibration: &Calibration) -> Vec<Calibrated> {
    let mut probabilities = Vec::new();
    rows.iter()
        .map(|row| {
            let (predicted, confidence) = calibration.confidence(&row.scores, &mut probabilities);
            Calibrated {
                confidence,
                predicted,
                truth: row.truth,
            }
        })
        .collect()
}

/// What `threshold` gives on calibrated rows.
pub(crate) fn point_at(
    rows: &[Calibrated],
    oos_class: Option<usize>,
    threshold: f32,
) -> CurvePoint {
    let (mut in_scope, mut answered, mut right, mut oos, mut rejected_oos) = (0, 0, 0, 0, 0);
    for row in rows {
        let rejected = row.confidence < threshold || Some(row.predicted) == oos_class;
        match row.truth {
            Truth::Intent(class) => {
                in_scope += 1;
                if !rejected {
                    answered += 1;
                    if class == row.predicted {
                        right += 1;
                    }
                }
            }
            Truth::OutOfScope => {
                oos += 1;
                if rejected {
                    rejected_oos += 1;
                }
            }
        }
    }
    let ratio = |part: usize, whole: usize| {
        if whole == 0 {
            0.0
        } else {
            part as f32 / whole as f32
        }
    };
    CurvePoint {
        threshold,
        in_scope_accuracy: ratio(right, in_scope),
        in_scope_precision: if answered == 0 {
            1.0
        } else {
            ratio(right, answered)
        },
        oos_recall: (oos > 0).then(|| ratio(rejected_oos, oos)),
    }
}

/// The smallest float above `value`: `predict` rejects strictly below the threshold.
fn just_above(value: f32) -> f32 {
    f32::from_bits(value.to_bits() + 1)
}

/// `(confidence, is right)` of the in-scope rows answered with an intent, least confident
/// first.
fn in_scope_answers(rows: &[Calibrated], oos_class: Option<usize>) -> Vec<(f32, bool)> {
    let mut answers: Vec<(f32, bool)> = rows
        .iter()
        .filter_map(|row| match row.truth {
            Truth::Intent(class) if Some(row.predicted) != oos_class => {
                Some((row.confidence, class == row.predicted))
            }
            _ => None,
        })
        .collect();
    answers.sort_by(|left, right| left.0.total_cmp(&right.0));
    answers
}

/// The threshold that keeps the most right answers plus rejected wrong ones: it rejects
/// only where the model is more often wrong than right. What a tenant gets when there is
/// no out-of-scope example to aim a recall at.
pub(crate) fn balanced_threshold(rows: &[Calibrated], oos_class: Option<usize>) -> f32 {
    let answers = in_scope_answers(rows, oos_class);
    // Raising the threshold past an answer gains one if it was wrong, loses one if right.
    let (mut gain, mut best_gain, mut threshold) = (0i64, 0i64, 0.0f32);
    for (confidence, is_right) in &answers {
        gain += if *is_right { -1 } else { 1 };
        if gain > best_gain {
            best_gain = gain;
            threshold = just_above(*confidence);
        }
    }
    threshold
}

/// The threshold `rejection` asks for, from calibrated out-of-fold rows.
pub(crate) fn choose_threshold(
    rows: &[Calibrated],
    oos_class: Option<usize>,
    rejection: Rejection,
) -> Result<f32, NluError> {
    rejection.validate()?;
    let threshold = match rejection {
        Rejection::Threshold(threshold) => return Ok(threshold),
        Rejection::OosRecall(target) => {
            let mut accepted: Vec<f32> = Vec::new();
            let mut total = 0usize;
            for row in rows.iter().filter(|row| row.truth == Truth::OutOfScope) {
                total += 1;
                if Some(row.predicted) != oos_class {
                    accepted.push(row.confidence);
                }
            }
            if total == 0 {
                return Err(NluError::Config(
                    "cannot aim at an out-of-scope recall: it needs `oos` examples or at least \
                     four intents to leave out in turn; set a threshold or a precision instead"
                        .to_owned(),
                ));
            }
            // The epsilon keeps 0.6 × 10 at 6: `0.6f32` is a little above 0.6.
            let needed = (f64::from(target) * total as f64 - 1e-6).ceil() as usize;
            let already = total - accepted.len();
            if needed <= already {
                0.0
            } else {
                accepted.sort_by(f32::total_cmp);
                let index = (needed - already - 1).min(accepted.len().saturating_sub(1));
                accepted.get(index).map_or(0.0, |value| just_above(*value))
            }
        }
        Rejection::InScopePrecision(target) => {
            // Raise the threshold past the least confident answers until precision holds.
            let answers = in_scope_answers(rows, oos_class);
            let mut right = answers.iter().filter(|(_, is_right)| *is_right).count();
            let mut threshold = 0.0;
            for (position, (confidence, is_right)) in answers.iter().enumerate() {
                let answered = answers.len() - position;
                if right as f64 >= f64::from(target) * answered as f64 {
                    break;
                }
                if *is_right {
                    right -= 1;
                }
                threshold = just_above(*confidence);
            }
            threshold
        }
    };
    Ok(threshold.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(confidence: f32, predicted: usize, truth: Truth) -> Calibrated {
        Calibrated {
            confidence,
            predicted,
            truth,
        }
    }

    #[test]
    fn recall_target_rejects_that_share_of_out_of_scope_rows() -> Result<(), NluError> {
        let rows: Vec<Calibrated> = (0..10)
            .map(|step| row(step as f32 / 10.0, 0, Truth::OutOfScope))
            .chain((0..10).map(|_| row(0.95, 1, Truth::Intent(1))))
            .collect();
        let threshold = choose_threshold(&rows, None, Rejection::OosRecall(0.6))?;
        let point = point_at(&rows, None, threshold);
        assert_eq!(point.oos_recall, Some(0.6));
        assert_eq!(point.in_scope_accuracy, 1.0);
        Ok(())
    }

    #[test]
    fn precision_target_drops_the_least_confident_answers() -> Result<(), NluError> {
        let rows = vec![
            row(0.3, 0, Truth::Intent(1)),
            row(0.4, 0, Truth::Intent(1)),
            row(0.5, 1, Truth::Intent(1)),
            row(0.9, 1, Truth::Intent(1)),
        ];
        let threshold = choose_threshold(&rows, None, Rejection::InScopePrecision(0.9))?;
        assert!(threshold > 0.4 && threshold <= 0.5, "{threshold}");
        assert_eq!(point_at(&rows, None, threshold).in_scope_precision, 1.0);
        Ok(())
    }

    #[test]
    fn impossible_targets_are_errors() {
        let rows = vec![row(0.9, 1, Truth::Intent(1))];
        assert!(choose_threshold(&rows, None, Rejection::OosRecall(0.5)).is_err());
        assert!(choose_threshold(&rows, None, Rejection::Threshold(1.5)).is_err());
    }
}
