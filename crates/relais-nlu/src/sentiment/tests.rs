//! What a user of the console notices, with the model the binary ships: complaints are
//! negative, thanks positive, plain questions neutral, in French and English.

use super::*;

fn label(text: &str) -> SentimentLabel {
    sentiment(text).label
}

fn assert_labels(cases: &[(&str, SentimentLabel)]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(text, expected)| label(text) != *expected)
        .map(|(text, expected)| format!("{text:?}: expected {expected:?}, got {:?}", label(text)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_shipped_model_loads_and_is_small() {
    assert!(
        shipped_model().is_some(),
        "data/sentiment/model.bin does not load"
    );
    assert!(
        SHIPPED_MODEL.len() < 2_000_000,
        "{} bytes",
        SHIPPED_MODEL.len()
    );
}

#[test]
fn clear_complaints_are_negative_in_french_and_english() {
    use SentimentLabel::Negative;
    assert_labels(&[
        ("This is the worst service ever", Negative),
        ("I am really angry, my order never arrived", Negative),
        ("You charged me twice, this is unacceptable", Negative),
        ("C'est une arnaque, service lamentable", Negative),
        (
            "Ma valise a été perdue, c'est inadmissible, je suis furieux !",
            Negative,
        ),
        (
            "Toujours pas de réponse, ça fait trois fois que j'écris",
            Negative,
        ),
        (
            "URGENT my flight leaves today and I still have no ticket!!",
            Negative,
        ),
    ]);
}

#[test]
fn thanks_are_positive() {
    use SentimentLabel::Positive;
    assert_labels(&[
        ("Thank you so much, great service!", Positive),
        ("Thanks, that solved it", Positive),
        ("Merci beaucoup, service parfait", Positive),
        ("Super, merci pour votre aide !", Positive),
    ]);
}

#[test]
fn plain_questions_and_answers_are_neutral() {
    use SentimentLabel::Neutral;
    assert_labels(&[
        ("What time do you open on Sunday?", Neutral),
        ("Quelle est votre adresse ?", Neutral),
        // Messages of the bag flow's calm customer (relais-server tests/flows.rs): a
        // negative label would hand them over to an agent.
        ("where is my bag", Neutral),
        ("k7q2zd", Neutral),
    ]);
    for calm in ["Oui !", "Bonjour", "ok"] {
        assert_ne!(label(calm), SentimentLabel::Negative, "{calm}");
    }
}

#[test]
fn negation_flips_polarity() {
    // The model reads "je suis content du service" as neutral: "content" is an English
    // noun of the review snippets (docs/nlu.md, limits). Its negation must be negative.
    assert_ne!(
        label("je suis content du service"),
        SentimentLabel::Negative
    );
    assert_eq!(label("je suis ravi du service"), SentimentLabel::Positive);
    assert_eq!(
        label("je ne suis pas content du service"),
        SentimentLabel::Negative
    );
    assert_eq!(
        label("je ne suis pas ravi du service"),
        SentimentLabel::Negative
    );
    assert_eq!(label("pas content"), SentimentLabel::Negative);
    assert_eq!(
        label("I am happy with the new app"),
        SentimentLabel::Positive
    );
    assert_eq!(
        label("I am not happy with the new app"),
        SentimentLabel::Negative
    );
    // The model reads "I am happy with the delivery" as neutral (docs/nlu.md, limits); the
    // negation must still not leave it on the positive side.
    assert_eq!(
        label("I am not happy with the delivery"),
        SentimentLabel::Negative
    );
}

#[test]
fn the_score_agrees_with_the_label() {
    for text in [
        "This is the worst service ever",
        "Merci beaucoup, service parfait",
        "Quelle est votre adresse ?",
        "bof",
        "",
        "😡😡",
    ] {
        let result = sentiment(text);
        let consistent = match result.label {
            SentimentLabel::Positive => result.score >= 0.05,
            SentimentLabel::Negative => result.score <= -0.05,
            SentimentLabel::Neutral => result.score.abs() < 0.05,
        };
        assert!(
            consistent && result.score.abs() <= 1.0,
            "{text:?}: {result:?}"
        );
    }
    assert!(sentiment("This is the worst service ever, I am furious").score <= -0.6);
}

#[test]
fn emotions_stay_with_the_trained_label() {
    let angry = sentiment("THIS IS A SCAM, I WANT MY MONEY BACK NOW!!!");
    assert_eq!(angry.label, SentimentLabel::Negative);
    assert!(angry.emotions.anger >= 0.5, "{angry:?}");
    let frustrated = sentiment("Toujours pas de réponse, ça fait trois fois que j'écris");
    assert!(frustrated.emotions.frustration >= 0.5, "{frustrated:?}");
    let happy = sentiment("Merci, je suis ravie !");
    assert!(happy.emotions.joy >= 0.4, "{happy:?}");
    let worried = sentiment("I'm worried, my card was stolen");
    assert!(worried.emotions.worry >= 0.4, "{worried:?}");
    let lost = sentiment("Ma valise a été perdue, c'est inadmissible, je suis furieux !");
    assert!(lost.emotions.anger >= 0.5, "{lost:?}");
    let calm = sentiment("Could you tell me my order status?");
    assert!(
        calm.emotions.anger < 0.2 && calm.emotions.frustration < 0.2,
        "{calm:?}"
    );
}

#[test]
fn a_model_survives_its_bytes_and_corrupt_bytes_are_an_error() {
    let bytes = SHIPPED_MODEL;
    let model = SentimentModel::from_bytes(bytes).expect("shipped model");
    assert_eq!(model.to_bytes(), bytes);
    assert!(SentimentModel::from_bytes(&bytes[..bytes.len() / 2]).is_err());
    assert!(SentimentModel::from_bytes(b"RSNT").is_err());
    assert!(SentimentModel::from_bytes(b"not a model at all").is_err());
    let mut wrong_version = bytes.to_vec();
    wrong_version[4] = 99;
    assert!(matches!(
        SentimentModel::from_bytes(&wrong_version),
        Err(crate::NluError::ModelVersion { .. })
    ));
}

#[test]
fn training_learns_words_the_lexicon_does_not_know() {
    let mut examples = Vec::new();
    for (text, label) in [
        ("the zorblax was here", SentimentLabel::Negative),
        ("zorblax again today", SentimentLabel::Negative),
        ("what a zorblax", SentimentLabel::Negative),
        ("the flimwap was here", SentimentLabel::Positive),
        ("flimwap again today", SentimentLabel::Positive),
        ("what a flimwap", SentimentLabel::Positive),
        ("the order was here", SentimentLabel::Neutral),
        ("order again today", SentimentLabel::Neutral),
        ("what an order", SentimentLabel::Neutral),
    ] {
        examples.push(SentimentExample {
            text: text.to_owned(),
            label,
            weight: 1,
            source: 0,
        });
    }
    let config = SentimentTrainConfig {
        min_count: 1,
        c: 10.0,
        ..SentimentTrainConfig::default()
    };
    let model = train(&examples, &config).expect("trained");
    assert_eq!(model.scores("zorblax").label, SentimentLabel::Negative);
    assert_eq!(model.scores("flimwap").label, SentimentLabel::Positive);
    let report = RecallReport::of(&examples, |text| model.scores(text).label);
    assert!(report.macro_recall() > 0.99, "{report}");
}

#[test]
fn mean_ratings_map_to_three_labels() {
    assert_eq!(
        SentimentLabel::of_mean_rating(-0.5),
        SentimentLabel::Negative
    );
    assert_eq!(
        SentimentLabel::of_mean_rating(-0.49),
        SentimentLabel::Neutral
    );
    assert_eq!(
        SentimentLabel::of_mean_rating(0.49),
        SentimentLabel::Neutral
    );
    assert_eq!(
        SentimentLabel::of_mean_rating(0.5),
        SentimentLabel::Positive
    );
}

#[test]
fn negation_marks_the_words_up_to_the_punctuation() {
    assert_eq!(
        model::mark_negation("I am not happy with it. Great staff"),
        "I am not neghappy negwith negit. Great staff"
    );
    assert_eq!(
        model::mark_negation("je ne suis pas content, merci"),
        "je ne suis pas negcontent, merci"
    );
    assert_eq!(
        model::mark_negation("I don't like it"),
        "I don'negt neglike negit"
    );
}
