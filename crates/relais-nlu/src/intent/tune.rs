//! Choosing the model's settings (the SVM's `C`, the weight of character n-grams) by
//! k-fold cross-validation on the training examples only: what `relais nlu eval-folds
//! --tune` does inside each fold, and how the defaults were chosen.

use serde::{Deserialize, Serialize};

use crate::error::NluError;
use crate::intent::calibrate::{SimulateOutOfScope, Truth, argmax, cross_validate};
use crate::intent::svm::SvmSettings;
use crate::intent::{Example, Prepared, TrainConfig};

/// The settings compared: every pair of values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuningGrid {
    pub regularisation: Vec<f32>,
    pub char_ngram_weight: Vec<f32>,
    /// Folds of the cross-validation.
    pub folds: usize,
}

impl Default for TuningGrid {
    fn default() -> Self {
        TuningGrid {
            regularisation: vec![0.3, 1.0, 3.0],
            char_ngram_weight: vec![0.4, 0.7],
            folds: 3,
        }
    }
}

/// The chosen configuration and the cross-validated accuracy of every candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tuned {
    pub config: TrainConfig,
    /// `(regularisation, char_ngram_weight, accuracy)`, in the order tried.
    pub candidates: Vec<(f32, f32, f32)>,
}

/// Tries every candidate of `grid` on `examples` and keeps the one whose out-of-fold
/// predictions (rejection off, in-scope examples only) are most often right; ties keep the
/// first tried.
pub fn tune(
    examples: &[Example],
    base: &TrainConfig,
    grid: &TuningGrid,
) -> Result<Tuned, NluError> {
    if grid.regularisation.is_empty() || grid.char_ngram_weight.is_empty() || grid.folds < 2 {
        return Err(NluError::Config(
            "tuning needs at least one value of each setting and two folds".to_owned(),
        ));
    }
    let mut candidates = Vec::new();
    let mut best: Option<(f32, TrainConfig)> = None;
    for weight in &grid.char_ngram_weight {
        let mut config = base.clone();
        config.features.char_ngram_weight = *weight;
        let prepared = Prepared::new(examples, None, &config)?;
        for regularisation in &grid.regularisation {
            config.regularisation = *regularisation;
            let out_of_fold = cross_validate(
                &prepared.rows,
                prepared.labels.len(),
                prepared.oos_class,
                grid.folds,
                prepared.vocabulary.len(),
                &SvmSettings::of(&config),
                SimulateOutOfScope::No,
            );
            let (mut right, mut total) = (0usize, 0usize);
            for row in &out_of_fold {
                if let Truth::Intent(class) = row.truth {
                    total += 1;
                    if argmax(&row.scores).0 == class {
                        right += 1;
                    }
                }
            }
            let accuracy = right as f32 / total.max(1) as f32;
            candidates.push((*regularisation, *weight, accuracy));
            if best.as_ref().is_none_or(|(score, _)| accuracy > *score) {
                best = Some((accuracy, config.clone()));
            }
        }
    }
    let config = best.map_or_else(|| base.clone(), |(_, config)| config);
    Ok(Tuned { config, candidates })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_candidate_is_kept_and_every_one_is_reported() -> Result<(), NluError> {
        let examples: Vec<Example> = (0..10)
            .flat_map(|number| {
                [
                    Example::new(format!("set an alarm for {number} am"), "alarm"),
                    Example::new(format!("play song number {number}"), "music"),
                    Example::new(format!("weather in {number} days"), "weather"),
                ]
            })
            .collect();
        let grid = TuningGrid {
            regularisation: vec![0.01, 1.0],
            char_ngram_weight: vec![0.4],
            folds: 3,
        };
        let tuned = tune(&examples, &TrainConfig::default(), &grid)?;
        assert_eq!(tuned.candidates.len(), 2);
        let best = tuned
            .candidates
            .iter()
            .map(|candidate| candidate.2)
            .fold(0.0f32, f32::max);
        assert!(
            tuned
                .candidates
                .iter()
                .any(|candidate| candidate.0 == tuned.config.regularisation && candidate.2 == best)
        );
        Ok(())
    }
}
