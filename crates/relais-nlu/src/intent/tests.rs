use super::*;
use crate::intent::load::{load_clinc_json, load_examples_csv, load_examples_json};

fn toy_examples() -> Vec<Example> {
    let rows = [
        ("where is my parcel", "track_order"),
        ("my package has not arrived", "track_order"),
        ("track my order please", "track_order"),
        ("when will my delivery come", "track_order"),
        ("où est mon colis", "track_order"),
        ("je n'ai pas reçu ma commande", "track_order"),
        ("suivre ma livraison", "track_order"),
        ("has my order shipped yet", "track_order"),
        ("i want my money back", "refund"),
        ("please refund me", "refund"),
        ("how do i get a refund", "refund"),
        ("je veux être remboursé", "refund"),
        ("remboursez-moi svp", "refund"),
        ("return the item for a refund", "refund"),
        ("can i get reimbursed", "refund"),
        ("refund my last purchase", "refund"),
        ("cancel my subscription", "cancel"),
        ("i want to cancel my order", "cancel"),
        ("annuler ma commande", "cancel"),
        ("je veux résilier mon abonnement", "cancel"),
        ("stop my plan now", "cancel"),
        ("please cancel the booking", "cancel"),
        ("cancel everything", "cancel"),
        ("annulez ma réservation", "cancel"),
    ];
    rows.iter()
        .map(|(text, intent)| Example::new(*text, *intent))
        .collect()
}

#[test]
fn learns_intents_from_a_few_examples_in_two_languages() -> Result<(), NluError> {
    let model = IntentModel::train(&toy_examples(), &TrainConfig::default())?;
    assert_eq!(
        model.predict("where is my package").best_guess,
        "track_order"
    );
    assert_eq!(
        model.predict("je veux un remboursement").best_guess,
        "refund"
    );
    assert_eq!(model.predict("annuler mon abonnement").best_guess, "cancel");
    Ok(())
}

#[test]
fn same_seed_gives_identical_models_and_other_seeds_differ() -> Result<(), NluError> {
    let config = TrainConfig::default();
    let first = IntentModel::train(&toy_examples(), &config)?.to_bytes();
    let second = IntentModel::train(&toy_examples(), &config)?.to_bytes();
    assert_eq!(first, second);
    let other = IntentModel::train(
        &toy_examples(),
        &TrainConfig {
            seed: 7,
            ..TrainConfig::default()
        },
    )?
    .to_bytes();
    assert_ne!(first, other);
    Ok(())
}

#[test]
fn bytes_round_trip_gives_the_same_predictions() -> Result<(), NluError> {
    let model = IntentModel::train(&toy_examples(), &TrainConfig::default())?;
    let restored = IntentModel::from_bytes(&model.to_bytes())?;
    assert_eq!(model.summary(), restored.summary());
    assert!(restored.summary().to_string().contains("intents: 3"));
    for text in ["where is my parcel", "rembourser", "blah blah", ""] {
        assert_eq!(model.predict(text), restored.predict(text));
    }
    Ok(())
}

#[test]
fn corrupt_or_foreign_bytes_are_refused() -> Result<(), NluError> {
    let bytes = IntentModel::train(&toy_examples(), &TrainConfig::default())?.to_bytes();
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xFF;
    assert!(matches!(
        IntentModel::from_bytes(&flipped),
        Err(NluError::ModelFormat(_))
    ));
    assert!(IntentModel::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(IntentModel::from_bytes(b"hello").is_err());
    let mut future = bytes.clone();
    future[16..20].copy_from_slice(&99u32.to_le_bytes());
    assert!(matches!(
        IntentModel::from_bytes(&future),
        Err(NluError::ModelVersion { found: 99, .. })
    ));
    Ok(())
}

#[test]
fn unknown_words_are_out_of_scope() -> Result<(), NluError> {
    let model = IntentModel::train(&toy_examples(), &TrainConfig::default())?;
    let prediction = model.predict("zzzz qqqq");
    assert!(prediction.out_of_scope);
    assert_eq!(prediction.name, None);
    Ok(())
}

#[test]
fn tenant_threshold_controls_out_of_scope() -> Result<(), NluError> {
    let strict = IntentModel::train(
        &toy_examples(),
        &TrainConfig {
            rejection: Some(Rejection::Threshold(1.0)),
            ..TrainConfig::default()
        },
    )?;
    assert!(strict.predict("where is my parcel").out_of_scope);
    let lenient = IntentModel::train(
        &toy_examples(),
        &TrainConfig {
            rejection: Some(Rejection::Threshold(0.0)),
            ..TrainConfig::default()
        },
    )?;
    let prediction = lenient.predict("where is my parcel");
    assert!(!prediction.out_of_scope);
    assert_eq!(prediction.name.as_deref(), Some("track_order"));
    Ok(())
}

#[test]
fn an_oos_intent_in_training_makes_such_messages_out_of_scope() -> Result<(), NluError> {
    let mut examples = toy_examples();
    for text in [
        "what is the weather like",
        "tell me a joke",
        "who won the football match",
        "quelle heure est-il",
        "raconte moi une blague",
        "what's the capital of peru",
        "play some music",
        "how tall is mount everest",
    ] {
        examples.push(Example::new(text, "oos"));
    }
    let model = IntentModel::train(&examples, &TrainConfig::default())?;
    assert!(model.predict("tell me a funny joke").out_of_scope);
    assert_eq!(
        model.predict("where is my parcel").name.as_deref(),
        Some("track_order")
    );
    Ok(())
}

#[test]
fn bad_training_input_is_an_error() {
    assert!(matches!(
        IntentModel::train(&[], &TrainConfig::default()),
        Err(NluError::NoExamples)
    ));
    assert!(matches!(
        IntentModel::train(&[Example::new("hi", "greet")], &TrainConfig::default()),
        Err(NluError::TooFewIntents { found: 1 })
    ));
    assert!(IntentModel::train(&[Example::new("hi", " ")], &TrainConfig::default()).is_err());
}

#[test]
fn csv_and_json_loaders_read_examples_and_report_bad_rows() -> Result<(), NluError> {
    let csv = "text,intent\n\"hello, there\",greet\nbye,leave\n";
    let examples = load_examples_csv(csv.as_bytes())?;
    assert_eq!(
        examples,
        vec![
            Example::new("hello, there", "greet"),
            Example::new("bye", "leave")
        ]
    );
    let reordered = load_examples_csv("intent,text\ngreet,hi\n".as_bytes())?;
    assert_eq!(reordered, vec![Example::new("hi", "greet")]);
    assert!(matches!(
        load_examples_csv("text,label\nhi,greet\n".as_bytes()),
        Err(NluError::BadExample { row: 1, .. })
    ));
    assert!(matches!(
        load_examples_csv("text,intent\nhi,greet\nho,\n".as_bytes()),
        Err(NluError::BadExample { row: 3, .. })
    ));
    let json = r#"[{"text":"salut","intent":"greet"}]"#;
    assert_eq!(
        load_examples_json(json.as_bytes())?,
        vec![Example::new("salut", "greet")]
    );
    assert!(load_examples_json("{".as_bytes()).is_err());
    Ok(())
}

#[test]
fn clinc_file_maps_out_of_scope_rows_to_oos() -> Result<(), NluError> {
    let json = r#"{"train":[["book a flight","book_flight"]],"oos_train":[["sing","oos"]],
        "val":[],"oos_val":[],"test":[["fly me","book_flight"]],"oos_test":[["dance","oos"]]}"#;
    let splits = load_clinc_json(json.as_bytes())?;
    assert_eq!(splits.train.len(), 2);
    assert_eq!(splits.test[1], Example::new("dance", "oos"));
    Ok(())
}

#[test]
fn a_prediction_is_the_same_after_a_json_round_trip() -> Result<(), NluError> {
    let model = IntentModel::train(&toy_examples(), &TrainConfig::default())?;
    for text in ["where is my parcel", "je veux un remboursement", "annuler"] {
        let value = serde_json::to_value(model.predict(text))?;
        let reparsed: serde_json::Value = serde_json::from_str(&value.to_string())?;
        assert_eq!(value, reparsed);
    }
    Ok(())
}

#[test]
fn greetings_are_out_of_scope_for_a_small_travel_model() -> Result<(), NluError> {
    let rows = [
        ("I still have not received my ticket", "ticket_issue"),
        ("where is my boarding pass", "ticket_issue"),
        ("my e-ticket never arrived", "ticket_issue"),
        ("je n'ai toujours pas reçu mon billet", "ticket_issue"),
        ("I want a refund for my trip", "refund"),
        ("please give me my money back", "refund"),
        ("je veux être remboursé", "refund"),
        ("remboursez-moi svp", "refund"),
        ("my suitcase is lost", "baggage"),
        ("where is my bag", "baggage"),
        ("ma valise a été perdue", "baggage"),
        ("mes bagages ne sont pas arrivés", "baggage"),
    ];
    let examples: Vec<Example> = rows
        .iter()
        .map(|(text, intent)| Example::new(*text, *intent))
        .collect();
    let model = IntentModel::train(&examples, &TrainConfig::default())?;
    assert!(model.predict("bonjour").out_of_scope);
    assert_eq!(
        model.predict("where is my bag please").name.as_deref(),
        Some("baggage")
    );
    Ok(())
}
