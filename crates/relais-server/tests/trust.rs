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
    let mut server = support::stepped().await;
    server.dispatcher = support::sim_dispatcher(
        server.store.clone(),
        std::sync::Arc::new(relais_core::clock::SystemClock),
        support::delivered_at_once(),
    );
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
    // The audit log says who released it, and that the second try was refused.
    let (_, audit) = server
        .call(
            "GET",
            &format!("/v1/audit?action=message.review&resource_id={held_id}"),
            None,
        )
        .await;
    let outcomes: Vec<_> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(outcomes, [200, 409], "{audit}");
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

/// A server whose clock a test moves, sending on simulated phones, and looking domains up
/// through `resolver`.
struct Clocked {
    app: axum::Router,
    key: String,
    clock: std::sync::Arc<relais_core::clock::ManualClock>,
    dispatcher: relais_engine::dispatch::Dispatcher,
    _dir: tempfile::TempDir,
}

impl Clocked {
    async fn new(resolver: std::net::SocketAddr) -> Clocked {
        use relais_core::clock::{Clock, ManualClock};
        use relais_engine::tenants::{Bootstrap, bootstrap};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn relais_store::Store> = Arc::new(
            relais_store::SqliteStore::open(&dir.path().join("db"))
                .await
                .unwrap(),
        );
        let clock = Arc::new(ManualClock::new("2026-12-05T10:00:00Z".parse().unwrap()));
        let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
            panic!("first start")
        };
        let settings = relais_server::HttpSettings {
            dns_resolver: relais_engine::dns::Resolver::new(resolver),
            ..Default::default()
        };
        let state = relais_server::AppState::new(store.clone(), clock.clone(), settings, None);
        let dispatcher =
            support::sim_dispatcher(store, clock.clone(), support::delivered_at_once());
        Clocked {
            app: relais_server::router(state),
            key: key.secret,
            clock,
            dispatcher,
            _dir: dir,
        }
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        support::call(&self.app, &self.key, method, uri, body).await
    }

    /// The last verification code the simulated phone `number` received.
    async fn last_code(&self, number: &str) -> String {
        for _ in 0..5 {
            self.dispatcher.run_once().await.unwrap();
        }
        let (_, phone) = self
            .call("GET", &format!("/v1/sim/phones/{number}/messages"), None)
            .await;
        let text = phone["messages"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|m| m["direction"] == "received")
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no code received: {phone}"));
        let code: String = text
            .split("code is ")
            .nth(1)
            .unwrap_or_default()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        assert_eq!(code.len(), 6, "{text}");
        code
    }
}

/// A DNS server on 127.0.0.1 answering TXT questions from `records` (name → texts); a
/// name it does not hold gets NXDOMAIN.
type Zone = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>>;

async fn fake_dns() -> (std::net::SocketAddr, Zone) {
    let zone: Zone = Default::default();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let served = zone.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let q = &buf[..n];
            let mut at = 12;
            let mut labels = Vec::new();
            while at < n && q[at] != 0 {
                let len = usize::from(q[at]);
                labels.push(String::from_utf8_lossy(&q[at + 1..at + 1 + len]).to_lowercase());
                at += 1 + len;
            }
            let name = labels.join(".");
            let texts = served.lock().unwrap().get(&name).cloned();
            let mut answer = q[..at + 5].to_vec();
            answer[2] = 0x81;
            answer[3] = if texts.is_some() { 0x80 } else { 0x83 };
            let texts = texts.unwrap_or_default();
            answer[6..8].copy_from_slice(&(texts.len() as u16).to_be_bytes());
            answer[8..12].copy_from_slice(&[0, 0, 0, 0]);
            for text in texts {
                let data: Vec<u8> = text
                    .as_bytes()
                    .chunks(255)
                    .flat_map(|chunk| {
                        std::iter::once(chunk.len() as u8).chain(chunk.iter().copied())
                    })
                    .collect();
                answer.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 60]);
                answer.extend_from_slice(&(data.len() as u16).to_be_bytes());
                answer.extend_from_slice(&data);
            }
            let _ = socket.send_to(&answer, peer).await;
        }
    });
    (addr, zone)
}

#[tokio::test]
async fn a_number_is_verified_by_the_code_it_received_not_a_wrong_or_expired_one() {
    let (dns, _) = fake_dns().await;
    let server = Clocked::new(dns).await;
    let (status, sender) = server
        .call(
            "POST",
            "/v1/senders",
            Some(json!({"kind": "phone_number", "value": "+33 6 11 22 33 44"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sender}");
    assert_eq!(
        (sender["state"].as_str(), sender["method"].as_str()),
        (Some("pending"), Some("code"))
    );
    assert_eq!(sender["value"], "+33611223344");
    let id = sender["id"].as_str().unwrap();
    let verify = |code: &str| {
        let body = json!({"code": code});
        let uri = format!("/v1/senders/{id}/verify");
        let server = &server;
        async move { server.call("POST", &uri, Some(body)).await }
    };
    let (status, problem) = verify("123456").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["type"], "https://relais.dev/problems/code-refused");

    let (status, sent) = server
        .call("POST", &format!("/v1/senders/{id}/code"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let code = server.last_code("+33611223344").await;
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let (status, problem) = verify(wrong).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("wrong code"),
        "{problem}"
    );

    // Eleven minutes later the right code has expired.
    server.clock.advance(jiff::SignedDuration::from_mins(11));
    let (status, problem) = verify(&code).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("expired"),
        "{problem}"
    );

    server
        .call("POST", &format!("/v1/senders/{id}/code"), None)
        .await;
    let code = server.last_code("+33611223344").await;
    let (status, verified) = verify(&code).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["state"], "verified");
    assert!(verified["verified_at"].is_string());
}

#[tokio::test]
async fn a_code_allows_five_tries() {
    let (dns, _) = fake_dns().await;
    let server = Clocked::new(dns).await;
    let (_, sender) = server
        .call(
            "POST",
            "/v1/senders",
            Some(json!({"kind": "phone_number", "value": "+33611223355"})),
        )
        .await;
    let id = sender["id"].as_str().unwrap();
    server
        .call("POST", &format!("/v1/senders/{id}/code"), None)
        .await;
    let code = server.last_code("+33611223355").await;
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for _ in 0..5 {
        let (status, _) = server
            .call(
                "POST",
                &format!("/v1/senders/{id}/verify"),
                Some(json!({"code": wrong})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (status, problem) = server
        .call(
            "POST",
            &format!("/v1/senders/{id}/verify"),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("too many"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_domain_is_verified_by_its_txt_record_through_the_configured_resolver() {
    let (dns, zone) = fake_dns().await;
    let server = Clocked::new(dns).await;
    let (status, sender) = server
        .call(
            "POST",
            "/v1/senders",
            Some(json!({"kind": "email_domain", "value": "MaBanque.fr", "dkim_selector": "s1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sender}");
    assert_eq!(sender["method"], "dns_txt");
    assert_eq!(sender["txt_record"]["name"], "mabanque.fr");
    let record = sender["txt_record"]["value"].as_str().unwrap().to_owned();
    assert!(record.starts_with("relais-verification="), "{record}");
    let id = sender["id"].as_str().unwrap();
    let uri = format!("/v1/senders/{id}/verify");

    let (status, problem) = server.call("POST", &uri, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["type"], "https://relais.dev/problems/not-verified");

    zone.lock().unwrap().insert(
        "mabanque.fr".into(),
        vec!["v=spf1 include:_spf.example -all".into(), record],
    );
    let (status, problem) = server.call("POST", &uri, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("s1._domainkey.mabanque.fr"),
        "{problem}"
    );

    zone.lock().unwrap().insert(
        "s1._domainkey.mabanque.fr".into(),
        vec![format!("v=DKIM1; k=rsa; p={}", "A".repeat(300))],
    );
    let (status, verified) = server.call("POST", &uri, None).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["state"], "verified");
    assert!(verified.get("txt_record").is_none());
}

#[tokio::test]
async fn an_unverified_from_is_refused_when_the_tenant_requires_verified_senders() {
    let (dns, _) = fake_dns().await;
    let server = Clocked::new(dns).await;
    let message = |from: Option<&str>| {
        let mut body = json!({"to": PHONE, "channel": "sim", "content": {"text": "Bonjour"}});
        if let Some(from) = from {
            body["from"] = json!(from);
        }
        body
    };
    // Off by default: the sandbox sends from anything.
    let (status, sent) = server
        .call("POST", "/v1/messages", Some(message(Some("MaBanque"))))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");

    let (status, settings) = server
        .call(
            "PATCH",
            "/v1/settings",
            Some(json!({"senders": {"require_verified": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    let (_, before) = server.call("GET", "/v1/messages", None).await;
    let (status, problem) = server
        .call("POST", "/v1/messages", Some(message(Some("MaBanque"))))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/from");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not a verified sender"),
        "{problem}"
    );
    let (_, after) = server.call("GET", "/v1/messages", None).await;
    assert_eq!(
        before["data"].as_array().unwrap().len(),
        after["data"].as_array().unwrap().len()
    );

    // Registered, it is not enough; approved by an admin, it is.
    let (_, sender) = server
        .call(
            "POST",
            "/v1/senders",
            Some(json!({"kind": "alphanumeric_id", "value": "MaBanque"})),
        )
        .await;
    assert_eq!(sender["method"], "approval", "{sender}");
    let (status, _) = server
        .call("POST", "/v1/messages", Some(message(Some("MaBanque"))))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let id = sender["id"].as_str().unwrap();
    let (status, approved) = server
        .call("POST", &format!("/v1/senders/{id}/verify"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    let (status, sent) = server
        .call("POST", "/v1/messages", Some(message(Some("MaBanque"))))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    // No `from`: the channel's own sender, not the tenant's to verify.
    let (status, _) = server
        .call("POST", "/v1/messages", Some(message(None)))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Another number is still refused.
    let (status, _) = server
        .call("POST", "/v1/messages", Some(message(Some("+33699999999"))))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
