//! Trust over the API (`docs/trust.md`): the anti-phishing content checks hold a message
//! with a look-alike of the tenant's brand for review and send one linking to an allowed
//! domain; a reviewer releases or rejects what was held; a tenant that refuses such
//! messages gets a 422 and nothing is stored.

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::Stepped;

const PHONE: &str = "+33612345678";

/// A server whose dispatcher sends on the sandbox's simulated phones, which report
/// `delivered` at once.
async fn sim_server() -> Stepped {
    use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
    let mut server = support::stepped().await;
    let sim = relais_engine::sim::adapter(
        server.store.clone(),
        relais_engine::sim::SimConfig {
            delivered_after: Some(jiff::SignedDuration::ZERO),
            read_after: None,
        },
    );
    server.dispatcher = Dispatcher::new(
        server.store.clone(),
        std::sync::Arc::new(relais_core::clock::SystemClock),
        DispatcherConfig {
            lease_owner: "test".into(),
            ..Default::default()
        },
    )
    .with_adapter(std::sync::Arc::new(sim));
    server
}

async fn bank_server(action: &str) -> Stepped {
    let server = sim_server().await;
    let (status, settings) = server
        .call(
            "PATCH",
            "/v1/settings",
            Some(json!({"content_checks": {
                "brands": ["mabanque.fr", "Ma Banque"],
                "allowed_domains": ["mabanque-rdv.fr"],
                "action": action,
            }})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["content_checks"]["threshold"], 50);
    server
}

async fn send(server: &Stepped, text: &str) -> (StatusCode, Value) {
    server
        .call(
            "POST",
            "/v1/messages",
            Some(json!({"to": PHONE, "channel": "sim", "content": {"text": text}})),
        )
        .await
}

/// Runs dispatcher rounds until message `id` is delivered (the sim's receipt is one more
/// round after `sent`), or gives up; the message as `GET` then gives it.
async fn delivered(server: &Stepped, id: &str) -> Value {
    let mut message = server.settle(id).await;
    for _ in 0..100 {
        if message["status"] != "sent" {
            break;
        }
        server.dispatcher.run_once().await.unwrap();
        message = server
            .call("GET", &format!("/v1/messages/{id}"), None)
            .await
            .1;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    message
}

/// The texts the simulated phone received.
async fn received(server: &Stepped) -> Vec<String> {
    let (status, phone) = server
        .call("GET", &format!("/v1/sim/phones/{PHONE}/messages"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{phone}");
    phone["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "received")
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_look_alike_link_is_held_for_review_and_a_link_to_an_allowed_domain_is_sent() {
    let server = bank_server("hold").await;
    let (status, held) = send(
        &server,
        "Ma Banque : votre compte sera suspendu, connectez-vous sur ma-banque-securite.com/login",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{held}");
    assert_eq!(held["status"], "held");
    let held_id = held["id"].as_str().unwrap().to_owned();

    let (status, fine) = send(
        &server,
        "Votre RDV du 12/12 : https://www.mabanque-rdv.fr/rdv/42",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{fine}");
    assert_eq!(fine["status"], "queued");
    let sent = delivered(&server, fine["id"].as_str().unwrap()).await;
    assert_eq!(sent["status"], "delivered", "{sent}");
    assert!(
        sent.get("content_check").is_none(),
        "a clean message has no findings: {sent}"
    );

    // Rounds of the dispatcher never send the held one.
    for _ in 0..3 {
        server.dispatcher.run_once().await.unwrap();
    }
    assert_eq!(received(&server).await.len(), 1);
    let (_, message) = server
        .call("GET", &format!("/v1/messages/{held_id}"), None)
        .await;
    assert_eq!(message["status"], "held", "{message}");
    let check = &message["content_check"];
    assert_eq!(check["verdict"], "hold", "{message}");
    assert!(check["score"].as_u64().unwrap() >= 50, "{check}");
    let codes: Vec<&str> = check["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"lookalike_added_words"), "{codes:?}");
    assert!(codes.contains(&"credential_phrasing"), "{codes:?}");
    let held_event = message["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == "held")
        .expect("a held event");
    assert_eq!(held_event["reason"], "content_check");

    // The reviewer's list.
    let (status, list) = server.call("GET", "/v1/messages?status=held", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [held_id.as_str()]);

    // Released, it is delivered.
    let (status, released) = server
        .call("POST", &format!("/v1/messages/{held_id}/release"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(released["status"], "queued");
    let released = delivered(&server, &held_id).await;
    assert_eq!(released["status"], "delivered", "{released}");
    assert_eq!(received(&server).await.len(), 2);
    let (status, again) = server
        .call("POST", &format!("/v1/messages/{held_id}/release"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
}

#[tokio::test]
async fn a_rejected_held_message_is_final_and_never_sent() {
    let server = bank_server("hold").await;
    let (_, held) = send(
        &server,
        "Vérifiez votre compte sur https://xn--mbanque-2fg.fr/login",
    )
    .await;
    assert_eq!(held["status"], "held", "{held}");
    let id = held["id"].as_str().unwrap();
    let (status, rejected) = server
        .call(
            "POST",
            &format!("/v1/messages/{id}/reject"),
            Some(json!({"reason": "phishing test by marketing"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(rejected["status"], "rejected");
    let last = rejected["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["reason"], "content_check");
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .contains("phishing test by marketing"),
        "{last}"
    );
    let (status, late) = server
        .call("POST", &format!("/v1/messages/{id}/release"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{late}");
    for _ in 0..3 {
        server.dispatcher.run_once().await.unwrap();
    }
    assert!(received(&server).await.is_empty());
    let (status, _) = server.call("POST", "/v1/messages/nope/reject", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_tenant_that_refuses_gets_a_422_naming_the_reasons_and_nothing_is_stored() {
    let server = bank_server("refuse").await;
    let (status, problem) = send(
        &server,
        "Confirmez votre mot de passe : http://192.0.2.7/login",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        problem["type"],
        "https://relais.dev/problems/content-refused"
    );
    let details: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert!(
        details.iter().any(|d| d.starts_with("ip_literal")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.starts_with("credential_phrasing")),
        "{details:?}"
    );
    assert_eq!(problem["errors"][0]["pointer"], "/content");
    let (_, list) = server.call("GET", "/v1/messages", None).await;
    assert_eq!(list["data"], json!([]), "nothing stored");
    // A batch refuses the item, and sends the others.
    let (status, batch) = server
        .call(
            "POST",
            "/v1/messages/batch",
            Some(json!({"messages": [
                {"to": PHONE, "channel": "sim", "content": {"text": "https://secure-mabanque.fr"}},
                {"to": PHONE, "channel": "sim", "content": {"text": "À bientôt sur https://mabanque.fr"}},
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{batch}");
    assert_eq!(
        (batch["accepted"].as_u64(), batch["refused"].as_u64()),
        (Some(1), Some(1)),
        "{batch}"
    );
    assert_eq!(
        batch["results"][0]["error"]["pointer"],
        "/messages/0/content"
    );
}

#[tokio::test]
async fn content_checks_settings_that_cannot_work_are_refused() {
    let server = support::stepped().await;
    let (status, problem) = server
        .call(
            "PATCH",
            "/v1/settings",
            Some(json!({"content_checks": {"allowed_domains": ["https://mabanque.fr/x"]}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        problem["errors"][0]["pointer"],
        "/content_checks/allowed_domains/0"
    );
    let (_, settings) = server.call("GET", "/v1/settings", None).await;
    assert_eq!(settings["content_checks"]["allowed_domains"], json!([]));
    assert_eq!(settings["content_checks"]["action"], "hold");
    assert_eq!(settings["senders"]["require_verified"], false);
}
