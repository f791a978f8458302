//! Train-on-one-set, test-on-another evaluation of the intent classifier
//! (`relais nlu eval --train FILE --test FILE`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::NluError;
use crate::intent::{
    CurvePoint, Example, IntentModel, IntentPrediction, TrainConfig, curve_thresholds, optional,
};

/// One (true intent → predicted intent) error count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub expected: String,
    pub predicted: String,
    pub count: usize,
}

/// Figures of one evaluation. Its `Display` prints one `name: value` per line, starting
/// with `accuracy: 0.xxxx` and `macro_f1: 0.xxxx`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub train_examples: usize,
    pub test_examples: usize,
    pub intents: usize,
    /// Share of test rows whose predicted label (an intent, or `oos` when rejected) is right.
    pub accuracy: f64,
    /// Unweighted mean F1 over the labels of the test set (including `oos` if present).
    pub macro_f1: f64,
    /// Accuracy over test rows that are not out of scope (a rejection counts as wrong).
    pub in_scope_accuracy: f64,
    /// Share of out-of-scope test rows that were rejected; `None` without such rows.
    pub oos_recall: Option<f64>,
    pub oos_threshold: f32,
    pub top_confusions: Vec<Confusion>,
    pub training_seconds: f64,
    pub training_examples_per_second: f64,
    pub inference_micros_per_message: f64,
    pub model_bytes: usize,
    /// What each threshold gives on the test set.
    pub curve: Vec<CurvePoint>,
    /// What cross-validation on the training set predicted for the same thresholds.
    pub estimated_curve: Vec<CurvePoint>,
}

impl fmt::Display for EvalReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(formatter, "accuracy: {:.4}", self.accuracy)?;
        writeln!(formatter, "macro_f1: {:.4}", self.macro_f1)?;
        writeln!(
            formatter,
            "in_scope_accuracy: {:.4}",
            self.in_scope_accuracy
        )?;
        match self.oos_recall {
            Some(recall) => writeln!(formatter, "oos_recall: {recall:.4}")?,
            None => writeln!(formatter, "oos_recall: n/a (no oos rows in the test set)")?,
        }
        writeln!(formatter, "oos_threshold: {:.4}", self.oos_threshold)?;
        writeln!(
            formatter,
            "examples: train {} test {} intents {}",
            self.train_examples, self.test_examples, self.intents
        )?;
        writeln!(
            formatter,
            "training: {:.3} s ({:.0} examples/s)",
            self.training_seconds, self.training_examples_per_second
        )?;
        writeln!(
            formatter,
            "inference: {:.2} us/message",
            self.inference_micros_per_message
        )?;
        writeln!(formatter, "model_size: {} bytes", self.model_bytes)?;
        writeln!(formatter, "top confusions (expected -> predicted: count):")?;
        if self.top_confusions.is_empty() {
            writeln!(formatter, "  none")?;
        }
        for confusion in &self.top_confusions {
            writeln!(
                formatter,
                "  {} -> {}: {}",
                confusion.expected, confusion.predicted, confusion.count
            )?;
        }
        write_curves(
            formatter,
            &self.curve,
            &self.estimated_curve,
            "the test set",
        )
    }
}

/// Trains with the default configuration on `train` and evaluates on `test`.
pub fn evaluate(train: &[Example], test: &[Example]) -> Result<EvalReport, NluError> {
    evaluate_with(train, None, test, &TrainConfig::default())
}

/// Like [`evaluate`], with an explicit configuration and an optional validation set used
/// for calibration instead of an internal held-out split.
pub fn evaluate_with(
    train: &[Example],
    validation: Option<&[Example]>,
    test: &[Example],
    config: &TrainConfig,
) -> Result<EvalReport, NluError> {
    if test.is_empty() {
        return Err(NluError::Config("the test set is empty".to_owned()));
    }
    let started = Instant::now();
    let model = match validation {
        Some(validation) => IntentModel::train_with_validation(train, validation, config)?,
        None => IntentModel::train(train, config)?,
    };
    let training_seconds = started.elapsed().as_secs_f64();

    let oos_label = config.oos_label.as_str();
    let started = Instant::now();
    let predictions: Vec<IntentPrediction> = test
        .iter()
        .map(|example| model.predict(&example.text))
        .collect();
    let predicted: Vec<String> = predictions
        .iter()
        .map(|prediction| {
            prediction
                .name
                .clone()
                .unwrap_or_else(|| oos_label.to_owned())
        })
        .collect();
    let mut inference_seconds = started.elapsed().as_secs_f64();
    let mut timed_messages = test.len();
    // One pass over a small test set lasts a few milliseconds, too short to time on a busy
    // machine: repeat the pass until a quarter of a second has been measured.
    while inference_seconds < 0.25 {
        let started = Instant::now();
        for example in test {
            std::hint::black_box(model.predict(std::hint::black_box(&example.text)));
        }
        inference_seconds += started.elapsed().as_secs_f64();
        timed_messages += test.len();
    }

    let scores = score(test, &predicted, oos_label);
    Ok(EvalReport {
        train_examples: train.len(),
        test_examples: test.len(),
        intents: model.intents().len(),
        accuracy: scores.accuracy,
        macro_f1: scores.macro_f1,
        in_scope_accuracy: scores.in_scope_accuracy,
        oos_recall: scores.oos_recall,
        oos_threshold: model.oos_threshold(),
        top_confusions: scores.top_confusions,
        training_seconds,
        training_examples_per_second: train.len() as f64 / training_seconds.max(1e-9),
        inference_micros_per_message: inference_seconds * 1e6 / timed_messages as f64,
        model_bytes: model.to_bytes().len(),
        curve: measured_curve(test, &predictions, &model),
        estimated_curve: model.summary().curve.clone(),
    })
}

/// What a test set says of a model's answers: `predicted[i]` is the label given to
/// `test[i]` (an intent, or the out-of-scope label when the message was rejected).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scores {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub in_scope_accuracy: f64,
    /// Right answers over in-scope rows answered (not rejected).
    pub in_scope_precision: f64,
    pub oos_recall: Option<f64>,
    pub top_confusions: Vec<Confusion>,
}

pub(crate) fn score(test: &[Example], predicted: &[String], oos_label: &str) -> Scores {
    let mut correct = 0usize;
    let mut in_scope_total = 0usize;
    let mut in_scope_correct = 0usize;
    let mut in_scope_answered = 0usize;
    let mut oos_total = 0usize;
    let mut oos_rejected = 0usize;
    let mut confusions: BTreeMap<(String, String), usize> = BTreeMap::new();
    // Per label: (true positives, false positives, false negatives).
    let mut counts: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    let test_labels: BTreeSet<&str> = test.iter().map(|example| example.intent.trim()).collect();
    for (example, guess) in test.iter().zip(predicted) {
        let expected = example.intent.trim();
        let is_right = expected == guess;
        if is_right {
            correct += 1;
            counts.entry(expected).or_default().0 += 1;
        } else {
            counts.entry(expected).or_default().2 += 1;
            counts.entry(guess.as_str()).or_default().1 += 1;
            *confusions
                .entry((expected.to_owned(), guess.clone()))
                .or_default() += 1;
        }
        if expected == oos_label {
            oos_total += 1;
            if guess == oos_label {
                oos_rejected += 1;
            }
        } else {
            in_scope_total += 1;
            if is_right {
                in_scope_correct += 1;
            }
            if guess != oos_label {
                in_scope_answered += 1;
            }
        }
    }
    let f1_sum: f64 = test_labels
        .iter()
        .map(|label| {
            let (true_positives, false_positives, false_negatives) =
                counts.get(label).copied().unwrap_or_default();
            let denominator = 2 * true_positives + false_positives + false_negatives;
            if denominator == 0 {
                0.0
            } else {
                2.0 * true_positives as f64 / denominator as f64
            }
        })
        .sum();
    let mut top_confusions: Vec<Confusion> = confusions
        .into_iter()
        .map(|((expected, predicted), count)| Confusion {
            expected,
            predicted,
            count,
        })
        .collect();
    top_confusions.sort_by_key(|confusion| std::cmp::Reverse(confusion.count));
    top_confusions.truncate(10);
    Scores {
        accuracy: correct as f64 / test.len().max(1) as f64,
        macro_f1: f1_sum / test_labels.len().max(1) as f64,
        in_scope_accuracy: if in_scope_total == 0 {
            0.0
        } else {
            in_scope_correct as f64 / in_scope_total as f64
        },
        in_scope_precision: if in_scope_answered == 0 {
            1.0
        } else {
            in_scope_correct as f64 / in_scope_answered as f64
        },
        oos_recall: (oos_total > 0).then(|| oos_rejected as f64 / oos_total as f64),
        top_confusions,
    }
}

/// Whether `prediction` is a rejection at `threshold` (the model's own threshold ignored).
pub(crate) fn rejected_at(
    prediction: &IntentPrediction,
    threshold: f32,
    model: &IntentModel,
) -> bool {
    // A rejection the threshold does not explain (no known word, or the best intent is the
    // out-of-scope one) stays a rejection at any threshold.
    let forced = prediction.out_of_scope
        && (prediction.confidence >= model.oos_threshold()
            || model.oos_label() == prediction.best_guess);
    forced || prediction.confidence < threshold
}

/// What each threshold of [`curve_thresholds`] gives on `test`, from the model's
/// `predictions` of it.
pub(crate) fn measured_curve(
    test: &[Example],
    predictions: &[IntentPrediction],
    model: &IntentModel,
) -> Vec<CurvePoint> {
    let oos_label = model.oos_label();
    curve_thresholds()
        .into_iter()
        .map(|threshold| {
            let labels: Vec<String> = predictions
                .iter()
                .map(|prediction| {
                    if rejected_at(prediction, threshold, model) {
                        oos_label.to_owned()
                    } else {
                        prediction.best_guess.clone()
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

/// Prints the measured curve next to the one cross-validation estimated (when the model
/// has one), a line per threshold.
pub(crate) fn write_curves(
    formatter: &mut fmt::Formatter<'_>,
    measured: &[CurvePoint],
    estimated: &[CurvePoint],
    on: &str,
) -> fmt::Result {
    writeln!(
        formatter,
        "curve (threshold -> in_scope_accuracy in_scope_precision oos_recall on {on}{}):",
        if estimated.is_empty() {
            ""
        } else {
            " | the same estimated by cross-validation on the training set"
        }
    )?;
    for (index, point) in measured.iter().enumerate() {
        write!(
            formatter,
            "  {:.2} -> {:.4} {:.4} {}",
            point.threshold,
            point.in_scope_accuracy,
            point.in_scope_precision,
            optional(point.oos_recall)
        )?;
        match estimated.get(index) {
            Some(estimate) => writeln!(
                formatter,
                " | {:.4} {:.4} {}",
                estimate.in_scope_accuracy,
                estimate.in_scope_precision,
                optional(estimate.oos_recall)
            )?,
            None => writeln!(formatter)?,
        }
    }
    Ok(())
}

/// Reads both files (CSV `text,intent`, or JSON when the name ends in `.json`) and
/// evaluates; what `relais nlu eval --train FILE --test FILE` calls.
pub fn evaluate_files(
    train_path: &std::path::Path,
    test_path: &std::path::Path,
) -> Result<EvalReport, NluError> {
    evaluate_files_with(train_path, test_path, &TrainConfig::default())
}

/// [`evaluate_files`] with an explicit configuration (`relais nlu eval --oos-target`).
pub fn evaluate_files_with(
    train_path: &std::path::Path,
    test_path: &std::path::Path,
    config: &TrainConfig,
) -> Result<EvalReport, NluError> {
    let train = crate::intent::load_examples_file(train_path)?;
    let test = crate::intent::load_examples_file(test_path)?;
    evaluate_with(&train, None, &test, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples(rows: &[(&str, &str)]) -> Vec<Example> {
        rows.iter()
            .map(|(text, intent)| Example::new(*text, *intent))
            .collect()
    }

    #[test]
    fn report_prints_the_contract_lines_and_counts_oos() -> Result<(), NluError> {
        let train = examples(&[
            ("book a table for two", "restaurant"),
            ("reserve a table tonight", "restaurant"),
            ("table for four at eight", "restaurant"),
            ("i want to book a restaurant", "restaurant"),
            ("what's the weather tomorrow", "weather"),
            ("will it rain today", "weather"),
            ("is it sunny in paris", "weather"),
            ("weather forecast for the weekend", "weather"),
            ("sing me a song", "oos"),
            ("what is the meaning of life", "oos"),
            ("tell me about dinosaurs", "oos"),
            ("how old is the pope", "oos"),
        ]);
        let test = examples(&[
            ("book a table for six", "restaurant"),
            ("will it rain tomorrow", "weather"),
            ("sing a song for me", "oos"),
        ]);
        let report = evaluate(&train, &test)?;
        let printed = report.to_string();
        let accuracy_line = format!("accuracy: {:.4}", report.accuracy);
        assert!(
            printed.lines().any(|line| line == accuracy_line),
            "{printed}"
        );
        assert!(
            printed
                .lines()
                .any(|line| line.starts_with("macro_f1: 0.") || line == "macro_f1: 1.0000")
        );
        assert!(report.oos_recall.is_some());
        assert!(report.accuracy >= 2.0 / 3.0, "{printed}");
        assert_eq!(report.test_examples, 3);
        Ok(())
    }

    #[test]
    fn empty_test_set_is_an_error() {
        let train = examples(&[("a b", "x"), ("c d", "y")]);
        assert!(evaluate(&train, &[]).is_err());
    }
}

/// Accuracy of a rule-based analyser on a labelled CSV set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledReport {
    pub total: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// `(text, expected, obtained)` of each miss.
    pub errors: Vec<(String, String, String)>,
}

impl fmt::Display for LabelledReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            formatter,
            "accuracy: {:.4} ({}/{})",
            self.accuracy, self.correct, self.total
        )?;
        for (text, expected, obtained) in &self.errors {
            writeln!(
                formatter,
                "  miss: expected {expected}, got {obtained}: {text}"
            )?;
        }
        Ok(())
    }
}

fn labelled_rows<R: std::io::Read>(
    reader: R,
    columns: &[&str],
) -> Result<Vec<Vec<String>>, NluError> {
    let mut csv_reader = csv::Reader::from_reader(reader);
    let headers = csv_reader.headers()?.clone();
    let positions: Vec<usize> = columns
        .iter()
        .map(|name| {
            headers
                .iter()
                .position(|header| header == *name)
                .ok_or_else(|| NluError::BadExample {
                    row: 1,
                    reason: format!("header has no `{name}` column"),
                })
        })
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    for record in csv_reader.records() {
        let record = record?;
        rows.push(
            positions
                .iter()
                .map(|position| record.get(*position).unwrap_or("").trim().to_owned())
                .collect(),
        );
    }
    Ok(rows)
}

fn labelled_report(outcomes: Vec<(String, String, String)>) -> LabelledReport {
    let total = outcomes.len();
    let errors: Vec<(String, String, String)> = outcomes
        .into_iter()
        .filter(|(_, expected, obtained)| expected != obtained)
        .collect();
    let correct = total - errors.len();
    LabelledReport {
        total,
        correct,
        accuracy: if total == 0 {
            0.0
        } else {
            correct as f64 / total as f64
        },
        errors,
    }
}

/// Sentiment accuracy on a CSV with `text` and `label` (`negative|neutral|positive`).
pub fn evaluate_sentiment_csv<R: std::io::Read>(reader: R) -> Result<LabelledReport, NluError> {
    let outcomes = labelled_rows(reader, &["text", "label"])?
        .into_iter()
        .map(|row| {
            let obtained = match crate::sentiment::sentiment(&row[0]).label {
                crate::sentiment::SentimentLabel::Negative => "negative",
                crate::sentiment::SentimentLabel::Neutral => "neutral",
                crate::sentiment::SentimentLabel::Positive => "positive",
            };
            (row[0].clone(), row[1].clone(), obtained.to_owned())
        })
        .collect();
    Ok(labelled_report(outcomes))
}

/// Urgency accuracy (urgent = score ≥ 0.5) on a CSV with `text`, `recent_messages` and
/// `urgent` (`yes|no`).
pub fn evaluate_urgency_csv<R: std::io::Read>(reader: R) -> Result<LabelledReport, NluError> {
    let mut outcomes = Vec::new();
    for (index, row) in labelled_rows(reader, &["text", "recent_messages", "urgent"])?
        .into_iter()
        .enumerate()
    {
        let recent_messages = row[1].parse::<u32>().map_err(|_| NluError::BadExample {
            row: index + 2,
            reason: format!("recent_messages is not a number: {:?}", row[1]),
        })?;
        let context = crate::urgency::UrgencyContext {
            recent_messages,
            urgent_intents: Vec::new(),
        };
        let sentiment = crate::sentiment::sentiment(&row[0]);
        let result = crate::urgency::urgency(&row[0], &sentiment, None, &context);
        let obtained = if result.urgent { "yes" } else { "no" };
        outcomes.push((
            format!(
                "{} (score {:.2}, cues {:?})",
                row[0], result.score, result.cues
            ),
            row[2].clone(),
            obtained.to_owned(),
        ));
    }
    Ok(labelled_report(outcomes))
}
