//! Intent accuracy and rejection on a fixed HWU64 split as a tenant would see them:
//! trained on folds 2 and 3 (2,152 utterances, 64 intents), tested on fold 1 (1,076).
//! Data: `tests/data/hwu64_folds_1_3.csv`, three of the ten folds of HWU64 (CC BY 4.0,
//! see `tests/data/README.md`).
//!
//! The floors are above what the model before "Understanding v2" reached on this split:
//! in-scope accuracy 0.7203 with its default rejection, and 0.7853 with rejection off
//! (mean of the three folds); with a quarter of the intents never trained it rejected
//! 0.43 of them at an in-scope accuracy of 0.76.

use relais_nlu::{
    EvalReport, Example, FoldExample, NluError, Rejection, TrainConfig, evaluate_with,
    load_fold_examples_file,
};

fn split() -> Result<(Vec<Example>, Vec<Example>), NluError> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hwu64_folds_1_3.csv");
    let rows: Vec<FoldExample> = load_fold_examples_file(&path)?;
    let (test, train): (Vec<FoldExample>, Vec<FoldExample>) =
        rows.into_iter().partition(|row| row.fold == 1);
    let examples = |rows: Vec<FoldExample>| rows.into_iter().map(|row| row.example).collect();
    Ok((examples(train), examples(test)))
}

/// Every fourth intent (in name order) left out of training; its test rows become `oos`.
fn with_a_quarter_unseen(train: &[Example], test: &[Example]) -> (Vec<Example>, Vec<Example>) {
    let mut intents: Vec<&str> = train
        .iter()
        .map(|example| example.intent.as_str())
        .collect();
    intents.sort_unstable();
    intents.dedup();
    let unseen: Vec<&str> = intents.iter().step_by(4).copied().collect();
    let kept = train
        .iter()
        .filter(|example| !unseen.contains(&example.intent.as_str()))
        .cloned()
        .collect();
    let relabelled = test
        .iter()
        .map(|example| {
            if unseen.contains(&example.intent.as_str()) {
                Example::new(example.text.clone(), "oos")
            } else {
                example.clone()
            }
        })
        .collect();
    (kept, relabelled)
}

fn evaluate(
    train: &[Example],
    test: &[Example],
    rejection: Option<Rejection>,
) -> Result<EvalReport, NluError> {
    let config = TrainConfig {
        rejection,
        ..TrainConfig::default()
    };
    evaluate_with(train, None, test, &config)
}

#[test]
fn four_in_five_in_scope_messages_get_the_right_intent() -> Result<(), NluError> {
    let (train, test) = split()?;
    let without_rejection = evaluate(&train, &test, Some(Rejection::Threshold(0.0)))?;
    assert!(
        without_rejection.in_scope_accuracy >= 0.80,
        "{without_rejection}"
    );
    let by_default = evaluate(&train, &test, None)?;
    assert!(by_default.in_scope_accuracy >= 0.75, "{by_default}");
    Ok(())
}

#[test]
fn the_tenants_recall_target_decides_how_many_unseen_requests_are_rejected() -> Result<(), NluError>
{
    let (train, test) = split()?;
    let (train, test) = with_a_quarter_unseen(&train, &test);
    let strict = evaluate(&train, &test, Some(Rejection::OosRecall(0.6)))?;
    let lenient = evaluate(&train, &test, Some(Rejection::OosRecall(0.2)))?;
    let recall = |report: &EvalReport| report.oos_recall.unwrap_or(0.0);
    // Estimated by cross-validation on the training set, met on the test set within a
    // few points.
    assert!((0.5..=0.75).contains(&recall(&strict)), "{strict}");
    assert!((0.1..=0.35).contains(&recall(&lenient)), "{lenient}");
    assert!(strict.oos_threshold > lenient.oos_threshold);
    assert!(lenient.in_scope_accuracy > strict.in_scope_accuracy);
    assert!(strict.in_scope_accuracy >= 0.72, "{strict}");
    // The report shows the trade-off, measured and estimated.
    let printed = strict.to_string();
    assert!(printed.contains("curve (threshold"), "{printed}");
    assert!(printed.lines().any(|line| line.starts_with("oos_recall: ")));
    Ok(())
}
