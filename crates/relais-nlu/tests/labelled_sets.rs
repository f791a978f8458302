//! Accuracy of sentiment and urgency on the hand-written held-out sets in `data/eval/`.
//! Run with `--nocapture` to see the misses.

use std::fs::File;
use std::path::PathBuf;

use relais_nlu::{evaluate_sentiment_csv, evaluate_urgency_csv};

fn data_file(name: &str) -> Result<File, std::io::Error> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/eval")
        .join(name);
    File::open(path)
}

#[test]
fn sentiment_accuracy_on_the_french_english_set() -> Result<(), Box<dyn std::error::Error>> {
    let report = evaluate_sentiment_csv(data_file("sentiment_fr_en.csv")?)?;
    println!("sentiment {report}");
    assert!(report.total >= 100);
    assert!(report.accuracy >= 0.80, "{report}");
    Ok(())
}

#[test]
fn urgency_accuracy_on_the_french_english_set() -> Result<(), Box<dyn std::error::Error>> {
    let report = evaluate_urgency_csv(data_file("urgency_fr_en.csv")?)?;
    println!("urgency {report}");
    assert!(report.total >= 60);
    assert!(report.accuracy >= 0.80, "{report}");
    Ok(())
}

/// The second sets were written after the rules were tuned on the first ones and are not
/// used for tuning: their figures are the honest ones.
#[test]
fn accuracy_on_the_second_untuned_sets() -> Result<(), Box<dyn std::error::Error>> {
    let sentiment = evaluate_sentiment_csv(data_file("sentiment_fr_en_second.csv")?)?;
    println!("sentiment (second set) {sentiment}");
    let urgency = evaluate_urgency_csv(data_file("urgency_fr_en_second.csv")?)?;
    println!("urgency (second set) {urgency}");
    assert!(sentiment.total >= 40 && urgency.total >= 20);
    assert!(sentiment.accuracy >= 0.70, "{sentiment}");
    assert!(urgency.accuracy >= 0.70, "{urgency}");
    Ok(())
}
