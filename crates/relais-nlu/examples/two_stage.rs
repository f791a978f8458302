//! The two-stage intent model of docs/nlu.md, runnable once the encoder is installed:
//!
//! cargo run -p relais-nlu --example two_stage            # reads relais-data/nlu/encoder

use std::path::Path;

use relais_nlu::{EmbeddingCache, Example, Semantic, SemanticConfig, SemanticIntentModel, Stage};

fn main() -> Result<(), relais_nlu::NluError> {
    let semantic = Semantic::load(&relais_nlu::encoder_dir(Path::new("relais-data")))?;
    let examples: Vec<Example> = [
        ("where is my parcel", "track_order"),
        ("my package has not arrived", "track_order"),
        ("has my order shipped", "track_order"),
        ("when will my delivery come", "track_order"),
        ("I want my money back", "refund"),
        ("please refund me", "refund"),
        ("can I get a reimbursement", "refund"),
        ("return this and pay me back", "refund"),
    ]
    .iter()
    .map(|(text, intent)| Example::new(*text, *intent))
    .collect();
    let mut cache = EmbeddingCache::new();
    let model =
        SemanticIntentModel::train(&examples, &SemanticConfig::default(), &semantic, &mut cache)?;
    let answer = model.predict("the courier never delivered my box", &semantic);
    println!(
        "{} (confidence {:.2}) by the {} stage",
        answer.prediction.best_guess,
        answer.prediction.confidence,
        match answer.stage {
            Stage::Fast => "fast",
            Stage::Encoder => "encoder",
        }
    );
    Ok(())
}
