//! The Twilio-compatible Messages API (docs/twilio.md).
//!
//! - The official SDKs, PyPI `twilio` (`tests/twilio/sdk.py`) and npm `twilio`
//!   (`tests/twilio/sdk.js`), pointed at a running Relais, send a message, fetch it, list
//!   and page through messages, and receive status callbacks whose `X-Twilio-Signature`
//!   their own validators accept (installed by `scripts/install-twilio-peers.sh`; skipped
//!   when missing unless `RELAIS_REQUIRE_PEERS=1`).
//! - Bad input gets Twilio's error and changes nothing: a wrong auth token (20003), a
//!   `To` that is not a number (21211), an unknown SID (20404), another tenant's message
//!   (20404), a Messaging Service (21701).
//! - Scheduling and cancelling, redaction, deletion, consent (21610), and paging.
//! - Inbound messages posted, signed, to the tenant's URL; a TwiML answer's `<Message>`s
//!   reach the customer; an answer that is not XML sends nothing and is reported.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use relais_core::clock::{Clock, SystemClock};
use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_engine::twilio::callbacks::CallbackWorker;
use relais_engine::twilio::inbound::InboundWorker;
use relais_engine::webhooks::{Destinations, HttpPoster};
use relais_server::{AppState, HttpSettings};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// A Relais serving on 127.0.0.1 with a dispatcher and a callback worker running, and
/// Twilio credentials issued for its first tenant.
struct Relais {
    url: String,
    app: axum::Router,
    key: String,
    store: Arc<dyn Store>,
    sid: String,
    token: String,
    _dir: tempfile::TempDir,
}

async fn relais() -> Relais {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let settings = HttpSettings {
        webhook_destinations: Destinations::Any,
        ..Default::default()
    };
    let state = AppState::new(store.clone(), clock.clone(), settings, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(relais_server::serve(
        listener,
        state.clone(),
        std::future::pending::<()>(),
    ));
    let dispatcher = Dispatcher::new(
        store.clone(),
        clock.clone(),
        DispatcherConfig {
            lease_owner: "test".into(),
            ..Default::default()
        },
    )
    .with_registry(state.channels.registry())
    .with_adapter(Arc::new(relais_engine::sim::adapter(
        store.clone(),
        relais_engine::sim::SimConfig::default(),
    )));
    tokio::spawn(async move {
        loop {
            let _ = dispatcher.run_once().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let poster = Arc::new(HttpPoster::with_destinations(Destinations::Any).unwrap());
    tokio::spawn(
        CallbackWorker::new(
            store.clone(),
            clock.clone(),
            poster.clone(),
            "callbacks".into(),
        )
        .run_forever(Duration::from_millis(50)),
    );
    tokio::spawn(
        InboundWorker::new(
            store.clone(),
            clock,
            poster,
            state.acceptor.clone(),
            "inbound".into(),
        )
        .run_forever(Duration::from_millis(50)),
    );
    let app = relais_server::router(state);
    let (status, account) =
        support::call(&app, &key.secret, "POST", "/v1/twilio/account", None).await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    Relais {
        url: format!("http://{addr}"),
        app,
        key: key.secret,
        store,
        sid: account["account_sid"].as_str().unwrap().to_owned(),
        token: account["auth_token"].as_str().unwrap().to_owned(),
        _dir: dir,
    }
}

fn basic(sid: &str, token: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{sid}:{token}"))
    )
}

impl Relais {
    /// A Twilio API call as `sid`:`token`, with `form` as the body (or the query of a GET).
    async fn twilio_as(
        &self,
        (sid, token): (&str, &str),
        method: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let encoded = {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in form {
                s.append_pair(k, v);
            }
            s.finish()
        };
        let base = format!("/2010-04-01/Accounts/{sid}");
        let (uri, body) = if method == "GET" && !encoded.is_empty() {
            (format!("{base}{path}?{encoded}"), Body::empty())
        } else {
            (format!("{base}{path}"), Body::from(encoded))
        };
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, basic(sid, token))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .unwrap();
        let (status, value, _) = support::respond(&self.app, request).await;
        (status, value)
    }

    async fn twilio(&self, method: &str, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        self.twilio_as((&self.sid, &self.token), method, path, form)
            .await
    }

    async fn send(&self, to: &str, body: &str) -> Value {
        let (status, message) = self
            .twilio(
                "POST",
                "/Messages.json",
                &[("To", to), ("From", "+15005550006"), ("Body", body)],
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{message}");
        message
    }

    /// A native API call with the tenant's admin key.
    async fn native(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        support::call(&self.app, &self.key, method, uri, body).await
    }

    /// A message scheduled with `SendAt` (`ScheduleType=fixed`).
    async fn schedule(&self, body: &str, send_at: &str) -> (StatusCode, Value) {
        let form = [
            ("To", "+33612345678"),
            ("From", "Shop"),
            ("Body", body),
            ("SendAt", send_at),
            ("ScheduleType", "fixed"),
        ];
        self.twilio("POST", "/Messages.json", &form).await
    }

    /// How many messages the tenant has, as the native API lists them.
    async fn native_count(&self) -> usize {
        let (_, page) = self.native("GET", "/v1/messages?limit=1000", None).await;
        page["data"].as_array().map_or(0, Vec::len)
    }

    /// Waits until the message is `status` (Twilio's name).
    async fn wait_for(&self, sid: &str, status: &str) -> Value {
        let mut message = Value::Null;
        for _ in 0..500 {
            message = self
                .twilio("GET", &format!("/Messages/{sid}.json"), &[])
                .await
                .1;
            if message["status"] == status {
                return message;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("message {sid} never got {status}: {message}");
    }
}

fn assert_twilio_error(status: StatusCode, body: &Value, http: u16, code: u64) {
    assert_eq!(status.as_u16(), http, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], http, "{body}");
    assert_eq!(
        body["more_info"],
        format!("https://www.twilio.com/docs/errors/{code}")
    );
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn a_message_sent_through_the_twilio_api_is_a_relais_message_with_twilio_fields() {
    let relais = relais().await;
    let sent = relais.send("+33612345678", "Votre code : 123456").await;
    let sid = sent["sid"].as_str().unwrap();
    assert!(sid.starts_with("SM") && sid.len() == 34, "{sent}");
    assert_eq!(sent["status"], "queued");
    assert_eq!(sent["account_sid"], relais.sid.as_str());
    assert_eq!(sent["num_segments"], "1");
    assert_eq!(sent["direction"], "outbound-api");
    assert_eq!(
        sent["uri"],
        format!("/2010-04-01/Accounts/{}/Messages/{sid}.json", relais.sid)
    );
    assert!(sent["date_created"].as_str().unwrap().ends_with(" +0000"));
    assert!(sent["subresource_uris"]["media"].is_string());
    // The same message, seen through the native API: its SID is its id.
    let id = relais_core::twilio::message_id_of_sid(sid).unwrap();
    let (status, native) = relais
        .native("GET", &format!("/v1/messages/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{native}");
    assert_eq!(native["to"], "+33612345678");
    assert_eq!(native["from"], "+15005550006");
    let delivered = relais.wait_for(sid, "delivered").await;
    assert_eq!(delivered["body"], "Votre code : 123456");
    assert!(delivered["date_sent"].is_string());
}

#[tokio::test]
async fn a_wrong_auth_token_is_20003_and_sends_nothing() {
    let relais = relais().await;
    let wrong = "0".repeat(32);
    let form = [("To", "+33612345678"), ("From", "Shop"), ("Body", "x")];
    let (status, body) = relais
        .twilio_as((&relais.sid, &wrong), "POST", "/Messages.json", &form)
        .await;
    assert_twilio_error(status, &body, 401, 20003);
    // No credentials at all, and a SID that is not the path's.
    let request = Request::builder()
        .method("GET")
        .uri(format!("/2010-04-01/Accounts/{}/Messages.json", relais.sid))
        .body(Body::empty())
        .unwrap();
    let (status, body, _) = support::respond(&relais.app, request).await;
    assert_twilio_error(status, &body, 401, 20003);
    let other = "AC00000000000000000000000000000000";
    let (status, body) = relais
        .twilio_as((other, &relais.token), "POST", "/Messages.json", &form)
        .await;
    assert_twilio_error(status, &body, 401, 20003);
    assert_eq!(relais.native_count().await, 0);
}

#[tokio::test]
async fn a_to_that_is_not_a_number_is_21211_and_sends_nothing() {
    let relais = relais().await;
    for to in ["bonjour", "+33 6 12 ab", "+"] {
        let (status, body) = relais
            .twilio(
                "POST",
                "/Messages.json",
                &[("To", to), ("From", "Shop"), ("Body", "x")],
            )
            .await;
        assert_twilio_error(status, &body, 400, 21211);
    }
    // A number the accept path finds invalid (too short for any country).
    let (status, body) = relais
        .twilio(
            "POST",
            "/Messages.json",
            &[("To", "+1"), ("From", "Shop"), ("Body", "x")],
        )
        .await;
    assert_twilio_error(status, &body, 400, 21211);
    let (status, body) = relais
        .twilio("POST", "/Messages.json", &[("From", "Shop"), ("Body", "x")])
        .await;
    assert_twilio_error(status, &body, 400, 21604);
    let (status, body) = relais
        .twilio(
            "POST",
            "/Messages.json",
            &[
                ("To", "+33612345678"),
                ("MessagingServiceSid", "MG00000000000000000000000000000000"),
                ("Body", "x"),
            ],
        )
        .await;
    assert_twilio_error(status, &body, 400, 21701);
    assert_eq!(relais.native_count().await, 0);
}

#[tokio::test]
async fn an_unknown_sid_is_20404() {
    let relais = relais().await;
    for sid in [
        "SM0123456789abcdef0123456789abcdef",
        "SMnot-a-sid",
        "whatever",
    ] {
        for method in ["GET", "POST", "DELETE"] {
            let form: &[(&str, &str)] = if method == "POST" {
                &[("Body", "")]
            } else {
                &[]
            };
            let (status, body) = relais
                .twilio(method, &format!("/Messages/{sid}.json"), form)
                .await;
            assert_twilio_error(status, &body, 404, 20404);
        }
    }
}

#[tokio::test]
async fn another_tenants_message_is_not_found_and_stays_as_it_was() {
    let relais = relais().await;
    let sent = relais.send("+33612345678", "Pour Acme").await;
    let sid = sent["sid"].as_str().unwrap();
    relais.wait_for(sid, "delivered").await;
    let (status, globex) = relais
        .native("POST", "/v1/tenants", Some(json!({"name": "globex"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{globex}");
    let globex_key = globex["api_key"].as_str().unwrap();
    let (_, account) =
        support::call(&relais.app, globex_key, "POST", "/v1/twilio/account", None).await;
    let creds = (
        account["account_sid"].as_str().unwrap(),
        account["auth_token"].as_str().unwrap(),
    );
    let path = format!("/Messages/{sid}.json");
    let (status, body) = relais.twilio_as(creds, "GET", &path, &[]).await;
    assert_twilio_error(status, &body, 404, 20404);
    let (status, body) = relais
        .twilio_as(creds, "POST", &path, &[("Body", "")])
        .await;
    assert_twilio_error(status, &body, 404, 20404);
    let (status, body) = relais.twilio_as(creds, "DELETE", &path, &[]).await;
    assert_twilio_error(status, &body, 404, 20404);
    let (_, listed) = relais.twilio_as(creds, "GET", "/Messages.json", &[]).await;
    assert_eq!(listed["messages"], json!([]));
    // Globex's credentials on Acme's path: not authenticated.
    let (status, body) = relais
        .twilio_as((&relais.sid, creds.1), "GET", "/Messages.json", &[])
        .await;
    assert_twilio_error(status, &body, 401, 20003);
    let (_, still) = relais.twilio("GET", &path, &[]).await;
    assert_eq!(still["body"], "Pour Acme");
    assert_eq!(still["status"], "delivered");
}

#[tokio::test]
async fn a_scheduled_message_is_canceled_and_a_sent_one_cannot_be() {
    let relais = relais().await;
    let at = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2)).to_string();
    let (status, scheduled) = relais.schedule("Rappel", &at).await;
    assert_eq!(status, StatusCode::CREATED, "{scheduled}");
    assert_eq!(scheduled["status"], "scheduled");
    let path = format!("/Messages/{}.json", scheduled["sid"].as_str().unwrap());
    let (status, canceled) = relais
        .twilio("POST", &path, &[("Status", "canceled")])
        .await;
    assert_eq!(status, StatusCode::OK, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    let (status, body) = relais
        .twilio("POST", &path, &[("Status", "canceled")])
        .await;
    assert_twilio_error(status, &body, 400, 30409);
    let (status, body) = relais.schedule("x", "demain").await;
    assert_twilio_error(status, &body, 400, 35111);
}

#[tokio::test]
async fn a_finished_message_is_redacted_then_deleted_and_one_on_its_way_is_not() {
    let relais = relais().await;
    let at = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2)).to_string();
    let (_, later) = relais.schedule("Plus tard", &at).await;
    let later = format!("/Messages/{}.json", later["sid"].as_str().unwrap());
    let (status, body) = relais.twilio("POST", &later, &[("Body", "")]).await;
    assert_twilio_error(status, &body, 400, 20009);
    let (status, body) = relais.twilio("DELETE", &later, &[]).await;
    assert_twilio_error(status, &body, 400, 20009);
    assert_eq!(
        relais.twilio("GET", &later, &[]).await.1["body"],
        "Plus tard"
    );

    let sent = relais.send("+33612345678", "Votre code : 987654").await;
    let sid = sent["sid"].as_str().unwrap();
    relais.wait_for(sid, "delivered").await;
    let path = format!("/Messages/{sid}.json");
    let (status, body) = relais
        .twilio("POST", &path, &[("Body", "autre chose")])
        .await;
    assert_twilio_error(status, &body, 400, 20001);
    let (status, redacted) = relais.twilio("POST", &path, &[("Body", "")]).await;
    assert_eq!(status, StatusCode::OK, "{redacted}");
    assert_eq!(redacted["body"], "");
    let id = relais_core::twilio::message_id_of_sid(sid).unwrap();
    let stored = relais
        .store
        .message(&relais_tenant(&relais).await, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.message.content, json!({"text": ""}));
    let (status, _) = relais.twilio("DELETE", &path, &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = relais.twilio("GET", &path, &[]).await;
    assert_twilio_error(status, &body, 404, 20404);
}

async fn relais_tenant(relais: &Relais) -> String {
    relais.store.list_tenants().await.unwrap()[0].id.clone()
}

#[tokio::test]
async fn a_recipient_who_opted_out_is_21610() {
    let relais = relais().await;
    let (_, contact) = relais
        .native(
            "POST",
            "/v1/contacts",
            Some(json!({"identities": [{"channel": "sms", "address": "+33612345678"}]})),
        )
        .await;
    let id = contact["id"].as_str().unwrap();
    let (status, _) = relais.native("POST",
        &format!("/v1/contacts/{id}/consents"),
        Some(
            json!({"purpose": "all", "status": "opted_out", "source": "keyword", "proof": "STOP"}),
        ),
    )
    .await;
    assert!(status.is_success());
    let (status, body) = relais
        .twilio(
            "POST",
            "/Messages.json",
            &[("To", "+33612345678"), ("From", "Shop"), ("Body", "Promo")],
        )
        .await;
    assert_twilio_error(status, &body, 400, 21610);
}

#[tokio::test]
async fn messages_are_listed_newest_first_with_twilio_paging_and_filters() {
    let relais = relais().await;
    let mut sids = Vec::new();
    for n in 0..5 {
        let to = if n % 2 == 0 {
            "+33612345678"
        } else {
            "+33698765432"
        };
        sids.push(
            relais.send(to, &format!("n°{n}")).await["sid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (status, first) = relais
        .twilio("GET", "/Messages.json", &[("PageSize", "2")])
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let page_sids = |page: &Value| -> Vec<String> {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["sid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(page_sids(&first), [sids[4].clone(), sids[3].clone()]);
    assert_eq!(
        (
            first["page"].clone(),
            first["page_size"].clone(),
            first["start"].clone(),
            first["end"].clone()
        ),
        (json!(0), json!(2), json!(0), json!(1))
    );
    let base = format!("/2010-04-01/Accounts/{}/Messages.json", relais.sid);
    assert!(first["uri"].as_str().unwrap().starts_with(&base));
    assert!(first["first_page_uri"].as_str().unwrap().contains("Page=0"));
    // Following next_page_uri, as the SDKs do, walks every message once.
    let mut seen = page_sids(&first);
    let mut next = first["next_page_uri"].as_str().map(str::to_owned);
    while let Some(uri) = next {
        let request = Request::builder()
            .uri(uri)
            .header(header::AUTHORIZATION, basic(&relais.sid, &relais.token))
            .body(Body::empty())
            .unwrap();
        let (status, page, _) = support::respond(&relais.app, request).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(page_sids(&page));
        next = page["next_page_uri"].as_str().map(str::to_owned);
    }
    let mut newest_first = sids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    // `Page` alone skips to the page.
    let (_, third) = relais
        .twilio("GET", "/Messages.json", &[("PageSize", "2"), ("Page", "2")])
        .await;
    assert_eq!(page_sids(&third), [sids[0].clone()]);
    assert_eq!(third["next_page_uri"], Value::Null);
    // Filters.
    let (_, to) = relais
        .twilio("GET", "/Messages.json", &[("To", "+33698765432")])
        .await;
    assert_eq!(page_sids(&to), [sids[3].clone(), sids[1].clone()]);
    let (_, from) = relais
        .twilio("GET", "/Messages.json", &[("From", "Nobody")])
        .await;
    assert_eq!(page_sids(&from), Vec::<String>::new());
    let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    let (_, dated) = relais
        .twilio("GET", "/Messages.json", &[("DateSent", &today)])
        .await;
    assert_eq!(page_sids(&dated).len(), 5);
    let (_, before) = relais
        .twilio("GET", "/Messages.json", &[("DateSent<", "2020-01-01")])
        .await;
    assert_eq!(page_sids(&before).len(), 0);
    let (status, body) = relais
        .twilio("GET", "/Messages.json", &[("PageToken", "PAnope")])
        .await;
    assert_twilio_error(status, &body, 400, 20001);
}

/// Whether the SDK's runtime and package are installed; with `RELAIS_REQUIRE_PEERS=1`
/// their absence fails the test.
fn peer_present(what: &str, check: &mut std::process::Command) -> bool {
    if check.output().is_ok_and(|out| out.status.success()) {
        return true;
    }
    if std::env::var("RELAIS_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!(
            "{what} is missing and RELAIS_REQUIRE_PEERS=1 (run scripts/install-twilio-peers.sh)"
        );
    }
    eprintln!("SKIP: {what} is missing (run scripts/install-twilio-peers.sh)");
    false
}

const NODE_PEERS: &str = "/opt/relais-twilio-peers/node_modules";

fn node_peers() -> String {
    std::env::var("RELAIS_TWILIO_NODE_PEERS").map_or_else(
        |_| NODE_PEERS.to_owned(),
        |dir| format!("{dir}/node_modules"),
    )
}

/// Runs an SDK script against a fresh Relais (with two earlier messages, so that paging
/// by one crosses pages) and checks what it saw.
async fn sdk_round_trip(program: &str, script: &str, to: &str, body: &str) {
    let relais = relais().await;
    relais.send("+33600000001", "avant 1").await;
    relais.send("+33600000002", "avant 2").await;
    let script = format!("{}/tests/twilio/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new(program)
        .arg(&script)
        .env("RELAIS_URL", &relais.url)
        .env("TWILIO_ACCOUNT_SID", &relais.sid)
        .env("TWILIO_AUTH_TOKEN", &relais.token)
        .env("NODE_PATH", node_peers())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} failed: {stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stderr}"));
    let sid = seen["sent"]["sid"].as_str().unwrap();
    assert!(sid.starts_with("SM"), "{seen}");
    assert_eq!(seen["sent"]["status"], "queued");
    assert_eq!(seen["sent"]["body"], body);
    assert_eq!(seen["sent"]["to"], to);
    assert_eq!(seen["sent"]["num_segments"], "1");
    assert_eq!(seen["fetched"]["sid"], sid);
    assert_eq!(seen["fetched"]["body"], body);
    assert_eq!(seen["fetched"]["account_sid"], relais.sid.as_str());
    assert_eq!(seen["listed"], json!([sid]));
    assert_eq!(seen["paged"].as_array().map(Vec::len), Some(3), "{seen}");
    assert_eq!(seen["paged"][0], sid);
    let callbacks = seen["callbacks"].as_array().unwrap();
    let delivered = callbacks
        .iter()
        .find(|c| c["params"]["MessageStatus"] == "delivered")
        .unwrap_or_else(|| panic!("no delivered callback: {seen}"));
    for callback in callbacks {
        assert_eq!(callback["valid"], true, "{callback}");
        assert_eq!(callback["forged_valid"], false, "{callback}");
        assert_eq!(callback["params"]["MessageSid"], sid);
        assert_eq!(callback["params"]["AccountSid"], relais.sid.as_str());
    }
    assert_eq!(delivered["params"]["To"], to);
    assert_eq!(delivered["params"]["From"], "+15005550006");
    assert_eq!(seen["error"], json!({"code": 21211, "status": 400}));
}

#[tokio::test]
async fn the_pypi_twilio_sdk_sends_fetches_lists_and_validates_callbacks() {
    if !peer_present(
        "python3 with the PyPI twilio package",
        std::process::Command::new("python3")
            .args(["-c", "import twilio.rest, twilio.request_validator"]),
    ) {
        return;
    }
    sdk_round_trip("python3", "sdk.py", "+33612345678", "Bonjour de Python").await;
}

#[tokio::test]
async fn the_npm_twilio_sdk_sends_fetches_lists_and_validates_callbacks() {
    if !peer_present(
        "node with the npm twilio package",
        std::process::Command::new("node")
            .args(["-e", "require('twilio')"])
            .env("NODE_PATH", node_peers()),
    ) {
        return;
    }
    sdk_round_trip("node", "sdk.js", "+33612345679", "Bonjour de Node").await;
}

/// The forms posted to a [`TwimlServer`], each with whether its signature checks out.
type Posted = Arc<std::sync::Mutex<Vec<(Vec<(String, String)>, bool)>>>;

/// A tenant's inbound URL: what it was posted (form and whether its signature checks out
/// against `token`), answering `answer`.
struct TwimlServer {
    url: String,
    posted: Posted,
    answer: Arc<std::sync::Mutex<String>>,
}

async fn twiml_server(token: &str) -> TwimlServer {
    use axum::extract::State;
    type Shared = (Posted, Arc<std::sync::Mutex<String>>, String, String);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sms?tenant=acme", listener.local_addr().unwrap());
    let posted = Arc::new(std::sync::Mutex::new(Vec::new()));
    let answer = Arc::new(std::sync::Mutex::new(String::new()));
    let shared: Shared = (
        posted.clone(),
        answer.clone(),
        url.clone(),
        token.to_owned(),
    );
    let app = axum::Router::new()
        .route(
            "/sms",
            axum::routing::post(
                |State((posted, answer, url, token)): State<Shared>,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    let params: Vec<(String, String)> =
                        form_urlencoded::parse(&body).into_owned().collect();
                    let signature = headers
                        .get("x-twilio-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    let valid =
                        relais_engine::twilio::signature::sign(&token, &url, &params) == signature;
                    posted.lock().unwrap().push((params, valid));
                    let answer = answer.lock().unwrap().clone();
                    ([(header::CONTENT_TYPE, "text/xml")], answer)
                },
            ),
        )
        .with_state(shared);
    tokio::spawn(async move { axum::serve(listener, app).await });
    TwimlServer {
        url,
        posted,
        answer,
    }
}

impl Relais {
    /// A customer's sim phone writes `text` in.
    async fn customer_writes(&self, phone: &str, text: &str) {
        let (status, body) = self
            .native(
                "POST",
                &format!("/v1/sim/phones/{phone}/reply"),
                Some(json!({"text": text})),
            )
            .await;
        assert!(status.is_success(), "{body}");
    }

    /// What the sim phone received from the tenant, once it received something.
    async fn wait_received(&self, phone: &str) -> Vec<String> {
        for _ in 0..300 {
            let received = self.received_by(phone).await;
            if !received.is_empty() {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Vec::new()
    }

    /// What the sim phone received from the tenant, oldest first.
    async fn received_by(&self, phone: &str) -> Vec<String> {
        let (_, log) = self
            .native("GET", &format!("/v1/sim/phones/{phone}/messages"), None)
            .await;
        log["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["direction"] == "received")
            .map(|m| m["text"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

#[tokio::test]
async fn an_inbound_message_is_posted_signed_and_its_twiml_answer_is_sent_back() {
    let relais = relais().await;
    let phone = "+33611112222";
    // Written before the URL was set: not posted.
    relais.customer_writes(phone, "Avant").await;
    let server = twiml_server(&relais.token).await;
    *server.answer.lock().unwrap() =
        "<?xml version=\"1.0\"?><Response><Message>Bien reçu &amp; merci</Message></Response>"
            .into();
    let (status, account) = relais
        .native(
            "PUT",
            "/v1/twilio/account/inbound",
            Some(json!({"url": server.url})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{account}");
    assert_eq!(account["inbound_url"], server.url.as_str());
    relais.customer_writes(phone, "Où est mon colis ?").await;
    let received = relais.wait_received(phone).await;
    assert!(
        received.contains(&"Bien reçu & merci".to_owned()),
        "{received:?}"
    );
    let posted = server.posted.lock().unwrap().clone();
    assert_eq!(posted.len(), 1, "{posted:?}");
    let (params, valid) = &posted[0];
    assert!(valid, "the signature does not check out: {params:?}");
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("Body"), Some("Où est mon colis ?"));
    assert_eq!(get("From"), Some(phone));
    assert_eq!(get("AccountSid"), Some(relais.sid.as_str()));
    assert!(get("MessageSid").is_some_and(|s| s.starts_with("SM")));
}

#[tokio::test]
async fn a_twiml_answer_that_is_not_xml_sends_nothing_and_is_reported() {
    let relais = relais().await;
    let phone = "+33633334444";
    let server = twiml_server(&relais.token).await;
    *server.answer.lock().unwrap() = "<Response><Message>Oups</Response>".into();
    let (status, _) = relais
        .native(
            "PUT",
            "/v1/twilio/account/inbound",
            Some(json!({"url": server.url})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    relais.customer_writes(phone, "Bonjour").await;
    let mut account = Value::Null;
    for _ in 0..300 {
        account = relais.native("GET", "/v1/twilio/account", None).await.1;
        if account["inbound_error"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        account["inbound_error"]
            .as_str()
            .is_some_and(|e| e.contains("12100")),
        "{account}"
    );
    assert_eq!(server.posted.lock().unwrap().len(), 1);
    assert_eq!(relais.received_by(phone).await, Vec::<String>::new());
    // The next message is posted as usual.
    *server.answer.lock().unwrap() = "<Response><Message>Re-bonjour</Message></Response>".into();
    relais.customer_writes(phone, "Encore moi").await;
    let received = relais.wait_received(phone).await;
    assert_eq!(received, ["Re-bonjour"]);
}

#[tokio::test]
async fn an_inbound_url_must_be_a_url_and_needs_an_account() {
    let relais = relais().await;
    let (status, body) = relais
        .native(
            "PUT",
            "/v1/twilio/account/inbound",
            Some(json!({"url": "ftp://nope"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, globex) = relais
        .native("POST", "/v1/tenants", Some(json!({"name": "globex"})))
        .await;
    let (status, body) = support::call(
        &relais.app,
        globex["api_key"].as_str().unwrap(),
        "PUT",
        "/v1/twilio/account/inbound",
        Some(json!({"url": "https://example.com/sms"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, account) = relais.native("GET", "/v1/twilio/account", None).await;
    assert_eq!(account["inbound_url"], Value::Null);
}

#[tokio::test]
async fn a_messaging_service_gives_each_recipient_the_same_sender_of_its_pool() {
    let relais = relais().await;
    let pool = json!({"name": "alertes", "senders": ["+15005550006", "+15005550007"]});
    let (status, service) = relais
        .native("POST", "/v1/twilio/services", Some(pool))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{service}");
    let sid = service["sid"].as_str().unwrap();
    assert!(sid.starts_with("MG") && sid.len() == 34, "{service}");
    let via_service = |to: String| {
        let relais = &relais;
        async move {
            let form = [
                ("To", to.as_str()),
                ("MessagingServiceSid", sid),
                ("Body", "Alerte"),
            ];
            let (status, sent) = relais.twilio("POST", "/Messages.json", &form).await;
            assert_eq!(status, StatusCode::CREATED, "{sent}");
            assert_eq!(sent["messaging_service_sid"], sid);
            sent["from"].as_str().unwrap().to_owned()
        }
    };
    let first = via_service("+33612345678".into()).await;
    assert_eq!(via_service("+33612345678".into()).await, first);
    let mut used = std::collections::HashSet::new();
    for n in 0..20 {
        used.insert(via_service(format!("+336000000{n:02}")).await);
    }
    assert_eq!(used.len(), 2, "{used:?}");
    // A From of its own wins over the pool.
    let form = [
        ("To", "+33612345678"),
        ("From", "Shop"),
        ("MessagingServiceSid", sid),
        ("Body", "x"),
    ];
    assert_eq!(
        relais.twilio("POST", "/Messages.json", &form).await.1["from"],
        "Shop"
    );
    let (_, listed) = relais.native("GET", "/v1/twilio/services", None).await;
    assert_eq!(
        listed[0]["senders"],
        json!(["+15005550006", "+15005550007"])
    );
    // Another tenant's service is unknown to this one, and nothing is sent.
    let (_, globex) = relais
        .native("POST", "/v1/tenants", Some(json!({"name": "globex"})))
        .await;
    let globex_key = globex["api_key"].as_str().unwrap();
    let (_, account) =
        support::call(&relais.app, globex_key, "POST", "/v1/twilio/account", None).await;
    let creds = (
        account["account_sid"].as_str().unwrap(),
        account["auth_token"].as_str().unwrap(),
    );
    let form = [
        ("To", "+33612345678"),
        ("MessagingServiceSid", sid),
        ("Body", "x"),
    ];
    let (status, body) = relais
        .twilio_as(creds, "POST", "/Messages.json", &form)
        .await;
    assert_twilio_error(status, &body, 400, 21701);
    let (_, globex_messages) =
        support::call(&relais.app, globex_key, "GET", "/v1/messages", None).await;
    assert_eq!(globex_messages["data"], json!([]));
    for bad in [
        json!({"name": "vide", "senders": []}),
        json!({"name": "x", "senders": ["+1 not a sender !!"]}),
    ] {
        let (status, body) = relais
            .native("POST", "/v1/twilio/services", Some(bad))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
}
