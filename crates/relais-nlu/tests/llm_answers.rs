//! Generative answers against a fake OpenAI-compatible server started in the test.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use relais_nlu::{
    ConversationMessage, FaqEntry, HANDOVER_TEXT_EN, HANDOVER_TEXT_FR, HandoverReason,
    KnowledgeBase, LlmClient, LlmConfig, NluError, Speaker, answer, suggest_reply, summarize,
};

/// What the fake model does with every request.
#[derive(Clone)]
enum Behaviour {
    Reply(String),
    NullContent,
    Status(u16),
    NotJson,
    Slow(Duration, String),
}

/// Each request seen: its `Authorization` header and its JSON body.
type Requests = Arc<Mutex<Vec<(Option<String>, Value)>>>;

#[derive(Clone)]
struct Fake {
    behaviour: Behaviour,
    requests: Requests,
}

fn completion(content: Value) -> String {
    json!({"id": "x", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    ]})
    .to_string()
}

async fn chat_completions(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], String) {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    if let Ok(mut requests) = fake.requests.lock() {
        requests.push((authorization, body));
    }
    let json_type = [(header::CONTENT_TYPE, "application/json")];
    match fake.behaviour {
        Behaviour::Reply(text) => (StatusCode::OK, json_type, completion(json!(text))),
        Behaviour::NullContent => (StatusCode::OK, json_type, completion(Value::Null)),
        Behaviour::Status(code) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            json_type,
            json!({"error": {"message": "model overloaded"}}).to_string(),
        ),
        Behaviour::NotJson => (StatusCode::OK, json_type, "<html>gateway</html>".to_owned()),
        Behaviour::Slow(delay, text) => {
            tokio::time::sleep(delay).await;
            (StatusCode::OK, json_type, completion(json!(text)))
        }
    }
}

async fn start_fake(
    behaviour: Behaviour,
) -> Result<(LlmClient, Requests), Box<dyn std::error::Error>> {
    let requests: Requests = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .with_state(Fake {
            behaviour,
            requests: requests.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut config = LlmConfig::new(format!("http://{address}/v1/"), "test-model");
    config.api_key = Some("sk-test".to_owned());
    config.timeout_ms = 300;
    Ok((LlmClient::new(config)?, requests))
}

fn knowledge_base() -> Result<KnowledgeBase, NluError> {
    let entry = |id: &str, question: &str, answer: &str| FaqEntry {
        id: id.to_owned(),
        question: question.to_owned(),
        answer: answer.to_owned(),
        tags: Vec::new(),
    };
    KnowledgeBase::new(vec![
        entry(
            "refund-delay",
            "How long does a refund take?",
            "Refunds reach your card within 5 business days.",
        ),
        entry(
            "baggage",
            "Combien de bagages en cabine ?",
            "Un bagage cabine de 10 kg est inclus.",
        ),
        entry(
            "opening-hours",
            "What are your opening hours?",
            "Monday to Saturday, 9:00 to 19:00.",
        ),
    ])
}

#[tokio::test]
async fn grounded_reply_with_a_valid_citation_is_returned() -> Result<(), Box<dyn std::error::Error>>
{
    let (llm, requests) = start_fake(Behaviour::Reply(
        "Refunds reach your card within 5 business days [refund-delay].".to_owned(),
    ))
    .await?;
    let result = answer("How long does my refund take?", &knowledge_base()?, &llm).await;
    assert!(!result.needs_human, "{result:?}");
    assert_eq!(result.citations, vec!["refund-delay"]);
    assert!(result.text.contains("5 business days"));

    let requests = requests.lock().map_err(|_| "poisoned")?;
    let (authorization, body) = &requests[0];
    assert_eq!(authorization.as_deref(), Some("Bearer sk-test"));
    assert_eq!(body["model"], "test-model");
    let prompt = body["messages"].to_string();
    assert!(prompt.contains("refund-delay"));
    // Only retrieved entries are shown to the model.
    assert!(!prompt.contains("Un bagage cabine"), "{prompt}");
    Ok(())
}

#[tokio::test]
async fn citation_of_an_entry_not_retrieved_goes_to_a_human()
-> Result<(), Box<dyn std::error::Error>> {
    let (llm, _) = start_fake(Behaviour::Reply(
        "Refunds take 2 days [refund-policy-2019].".to_owned(),
    ))
    .await?;
    let result = answer("How long does my refund take?", &knowledge_base()?, &llm).await;
    assert!(result.needs_human);
    assert_eq!(result.text, HANDOVER_TEXT_EN);
    assert_eq!(
        result.handover_reason,
        Some(HandoverReason::UnknownCitation)
    );
    assert!(result.citations.is_empty());
    Ok(())
}

#[tokio::test]
async fn reply_without_citation_or_declined_goes_to_a_human()
-> Result<(), Box<dyn std::error::Error>> {
    let base = knowledge_base()?;
    let (llm, _) = start_fake(Behaviour::Reply("Refunds take 5 days.".to_owned())).await?;
    let result = answer("How long does my refund take?", &base, &llm).await;
    assert_eq!(
        result.handover_reason,
        Some(HandoverReason::MissingCitation)
    );
    let (llm, _) = start_fake(Behaviour::Reply("NO_ANSWER".to_owned())).await?;
    let result = answer("How long does my refund take?", &base, &llm).await;
    assert_eq!(result.handover_reason, Some(HandoverReason::ModelDeclined));
    assert_eq!(result.text, HANDOVER_TEXT_EN);
    Ok(())
}

#[tokio::test]
async fn nothing_retrieved_never_calls_the_model() -> Result<(), Box<dyn std::error::Error>> {
    let (llm, requests) = start_fake(Behaviour::Reply("Paris [capital].".to_owned())).await?;
    let result = answer(
        "Quelle est la capitale du Pérou ?",
        &knowledge_base()?,
        &llm,
    )
    .await;
    assert!(result.needs_human);
    assert_eq!(
        result.handover_reason,
        Some(HandoverReason::NoRelevantEntry)
    );
    assert_eq!(result.text, HANDOVER_TEXT_FR);
    assert!(requests.lock().map_err(|_| "poisoned")?.is_empty());
    Ok(())
}

#[tokio::test]
async fn timeout_error_empty_and_garbage_answers_go_to_a_human()
-> Result<(), Box<dyn std::error::Error>> {
    let base = knowledge_base()?;
    let cases = [
        (
            Behaviour::Slow(
                Duration::from_millis(1500),
                "late [refund-delay]".to_owned(),
            ),
            HandoverReason::ModelTimeout,
        ),
        (Behaviour::Status(500), HandoverReason::ModelError),
        (Behaviour::Status(401), HandoverReason::ModelError),
        (Behaviour::NotJson, HandoverReason::ModelError),
        (
            Behaviour::Reply("   ".to_owned()),
            HandoverReason::EmptyAnswer,
        ),
        (Behaviour::NullContent, HandoverReason::EmptyAnswer),
    ];
    for (behaviour, expected) in cases {
        let (llm, _) = start_fake(behaviour).await?;
        let started = std::time::Instant::now();
        let result = answer("How long does my refund take?", &base, &llm).await;
        assert!(result.needs_human, "{result:?}");
        assert_eq!(result.handover_reason, Some(expected.clone()));
        assert_eq!(result.text, HANDOVER_TEXT_EN);
        assert!(
            started.elapsed() < Duration::from_millis(1200),
            "timeout not enforced"
        );
    }
    Ok(())
}

#[tokio::test]
async fn client_errors_are_typed() -> Result<(), Box<dyn std::error::Error>> {
    let (llm, _) = start_fake(Behaviour::Status(429)).await?;
    let error = llm.complete(&[relais_nlu::ChatMessage::user("hi")]).await;
    assert!(
        matches!(error, Err(NluError::LlmStatus { status: 429, .. })),
        "{error:?}"
    );
    assert!(LlmClient::new(LlmConfig::new("localhost:11434", "m")).is_err());
    // Nothing listens on port 9 of 127.0.0.1: a transport error, not a panic.
    let unreachable = LlmClient::new(LlmConfig::new("http://127.0.0.1:9/v1", "m"))?;
    let error = unreachable
        .complete(&[relais_nlu::ChatMessage::user("hi")])
        .await;
    assert!(matches!(error, Err(NluError::LlmTransport(_))), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn agent_assist_suggests_grounded_replies_and_summaries()
-> Result<(), Box<dyn std::error::Error>> {
    let conversation = vec![
        ConversationMessage {
            speaker: Speaker::Customer,
            text: "Bonjour".to_owned(),
        },
        ConversationMessage {
            speaker: Speaker::Agent,
            text: "Bonjour, que puis-je faire pour vous ?".to_owned(),
        },
        ConversationMessage {
            speaker: Speaker::Customer,
            text: "Combien de bagages je peux prendre en cabine ?".to_owned(),
        },
    ];
    let (llm, requests) = start_fake(Behaviour::Reply(
        "Un bagage cabine de 10 kg est inclus [baggage].".to_owned(),
    ))
    .await?;
    let suggestion = suggest_reply(&conversation, &knowledge_base()?, &llm).await;
    assert!(!suggestion.needs_human, "{suggestion:?}");
    assert_eq!(suggestion.citations, vec!["baggage"]);
    let prompt = requests.lock().map_err(|_| "poisoned")?[0].1["messages"].to_string();
    assert!(
        prompt.contains("Agent: Bonjour, que puis-je faire"),
        "{prompt}"
    );

    let (llm, _) = start_fake(Behaviour::Reply(
        "Demande : bagages cabine. Fait : rien. En attente : réponse.".to_owned(),
    ))
    .await?;
    let summary = summarize(&conversation, &llm).await?;
    assert!(summary.starts_with("Demande"));
    let (llm, _) = start_fake(Behaviour::Reply(String::new())).await?;
    assert!(matches!(
        summarize(&conversation, &llm).await,
        Err(NluError::LlmEmpty)
    ));
    assert!(summarize(&[], &llm).await.is_err());
    Ok(())
}
