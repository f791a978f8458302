//! `/v1/nlu/train` as a tenant uses it to choose how strictly messages outside its intents
//! are rejected: a fixed threshold, an out-of-scope recall or an in-scope precision.

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};

fn travel_examples() -> Value {
    let rows = [
        ("where is my bag", "baggage"),
        ("my suitcase is lost", "baggage"),
        ("my luggage did not arrive", "baggage"),
        ("ma valise a été perdue", "baggage"),
        ("I want a refund for my trip", "refund"),
        ("please give me my money back", "refund"),
        ("je veux être remboursé", "refund"),
        ("remboursez-moi svp", "refund"),
        ("I still have not received my ticket", "ticket_issue"),
        ("my e-ticket never arrived", "ticket_issue"),
        ("where is my boarding pass", "ticket_issue"),
        ("je n'ai pas reçu mon billet", "ticket_issue"),
    ];
    rows.iter()
        .map(|(text, intent)| json!({"text": text, "intent": intent}))
        .collect()
}

async fn classify(server: &support::Stepped, text: &str) -> Value {
    let (status, answer) = server
        .call("POST", "/v1/nlu/classify", Some(json!({ "text": text })))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["intent"].clone()
}

#[tokio::test]
async fn the_tenants_threshold_decides_what_is_out_of_scope() {
    let server = support::stepped().await;
    let (status, trained) = server
        .call(
            "POST",
            "/v1/nlu/train?oos_threshold=1",
            Some(travel_examples()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{trained}");
    assert_eq!(trained["oos_threshold"], 1.0);
    let intent = classify(&server, "my suitcase was lost").await;
    assert_eq!(intent["out_of_scope"], true, "{intent}");
    assert!(intent["name"].is_null());

    let (status, trained) = server
        .call(
            "POST",
            "/v1/nlu/train?oos_threshold=0",
            Some(travel_examples()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{trained}");
    let intent = classify(&server, "my suitcase was lost").await;
    assert_eq!(intent["name"], "baggage", "{intent}");
}

#[tokio::test]
async fn targets_are_checked_before_anything_is_trained() {
    let server = support::stepped().await;
    // Two ways of choosing at once.
    let (status, problem) = server
        .call(
            "POST",
            "/v1/nlu/train?oos_recall=0.5&oos_threshold=0.2",
            Some(travel_examples()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    // Out of range.
    let (status, problem) = server
        .call(
            "POST",
            "/v1/nlu/train?in_scope_precision=1.5",
            Some(travel_examples()),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    // Three intents and no `oos` example: no way to estimate an out-of-scope recall.
    let (status, problem) = server
        .call(
            "POST",
            "/v1/nlu/train?oos_recall=0.5",
            Some(travel_examples()),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or("")
            .contains("out-of-scope recall")
    );
    // No model was stored by any of them.
    let intent = classify(&server, "where is my bag").await;
    assert!(intent.is_null(), "{intent}");
}
