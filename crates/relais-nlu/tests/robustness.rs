//! No input from outside makes the analysers or the model reader panic.

use proptest::prelude::*;
use relais_nlu::{
    AnalysisContext, Example, IntentModel, KnowledgeBase, TrainConfig, analyze, detect_language,
};

fn small_model() -> Result<IntentModel, relais_nlu::NluError> {
    let examples: Vec<Example> = [
        ("where is my parcel", "track"),
        ("où est mon colis", "track"),
        ("refund me", "refund"),
        ("remboursez-moi", "refund"),
    ]
    .iter()
    .map(|(text, intent)| Example::new(*text, *intent))
    .collect();
    IntentModel::train(&examples, &TrainConfig::default())
}

#[test]
fn model_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<IntentModel>();
    assert_send_sync::<KnowledgeBase>();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn analysers_accept_any_text(text in "\\PC{0,200}", recent in 0u32..50) {
        let model = small_model().map_err(|error| TestCaseError::fail(error.to_string()))?;
        let context = AnalysisContext { recent_messages: recent, urgent_intents: Vec::new() };
        let analysis = analyze(&text, Some(&model), &context);
        prop_assert!((0.0..=1.0).contains(&analysis.urgency.score));
        prop_assert!((-1.0..=1.0).contains(&analysis.sentiment.score));
        let confidence = analysis.intent.map(|intent| intent.confidence).unwrap_or(0.5);
        prop_assert!((0.0..=1.0).contains(&confidence));
        let _ = detect_language(&text);
    }

    #[test]
    fn model_reader_refuses_garbage_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(IntentModel::from_bytes(&bytes).is_err());
    }

    #[test]
    fn model_reader_survives_any_single_corruption(position in 0usize..4096, flip in 1u8..=255) {
        let model = small_model().map_err(|error| TestCaseError::fail(error.to_string()))?;
        let mut bytes = model.to_bytes();
        let index = position % bytes.len();
        bytes[index] ^= flip;
        // The checksum catches every single-byte change.
        prop_assert!(IntentModel::from_bytes(&bytes).is_err());
    }
}
