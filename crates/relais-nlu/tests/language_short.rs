//! Language of short customer messages in the seven languages the detector knows, on
//! `tests/data/language_short.csv` (18 messages per language, written for Relais). The
//! same file decided against `whatlang` (docs/nlu.md): 0.833 right, and every miss a wrong
//! language, where this detector answers `unknown`.

use std::collections::BTreeMap;

use relais_nlu::detect_language;

#[test]
fn short_messages_get_their_language_or_unknown_never_a_wrong_one()
-> Result<(), Box<dyn std::error::Error>> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/language_short.csv");
    let mut reader = csv::Reader::from_path(path)?;
    let (mut total, mut right) = (0usize, 0usize);
    let mut wrong: Vec<String> = Vec::new();
    let mut right_per_language: BTreeMap<String, usize> = BTreeMap::new();
    for record in reader.records() {
        let record = record?;
        let (text, expected) = (&record[0], &record[1]);
        total += 1;
        let found = detect_language(text).code();
        if found == expected {
            right += 1;
            *right_per_language.entry(expected.to_owned()).or_default() += 1;
        } else if found != "unknown" {
            wrong.push(format!("{text:?}: {expected} -> {found}"));
        }
    }
    assert_eq!(total, 126);
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(right as f64 / total as f64 >= 0.85, "{right}/{total}");
    // At least 13 of 18 in every language, not a good average hiding a weak one.
    assert_eq!(right_per_language.len(), 7);
    assert!(
        right_per_language.values().all(|count| *count >= 13),
        "{right_per_language:?}"
    );
    Ok(())
}
