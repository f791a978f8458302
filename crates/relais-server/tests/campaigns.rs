//! Segments and campaigns over the API, with the campaign worker driven step by step
//! under a manual clock: the frequency cap across campaigns, an A/B test whose winner goes
//! to the rest, send-time optimisation at each contact's learned hour in their own time
//! zone, skips counted by reason, and the refusals that come before anything is sent.

mod support;

use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use relais_core::channel::ChannelKind;
use relais_core::clock::{Clock, ManualClock};
use relais_core::consent::{ConsentRecord, ConsentSource, ConsentStatus, Purpose};
use relais_core::contact::Identity;
use relais_core::status::MessageStatus;
use relais_engine::campaigns::CampaignRunner;
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{MessageEvent, NewContact, SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;

struct Api {
    app: axum::Router,
    key: String,
    tenant: String,
    clock: Arc<ManualClock>,
    runner: CampaignRunner,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

/// Monday 7 December 2026, 09:00 UTC (10:00 in Paris, 04:00 in New York).
fn monday() -> Timestamp {
    "2026-12-07T09:00:00Z".parse().unwrap()
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock = Arc::new(ManualClock::new(monday()));
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let tenant = store.tenant_by_name("default").await.unwrap().unwrap().id;
    let state = AppState::new(store.clone(), clock.clone(), HttpSettings::default(), None);
    // One page per turn: a test sees each page's effect.
    let runner = state.campaign_runner.clone().with_pages_per_turn(1);
    Api {
        app: router(state),
        key: key.secret,
        tenant,
        clock,
        runner,
        store,
        _dir: dir,
    }
}

impl Api {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        support::call(&self.app, &self.key, method, uri, body).await
    }

    /// A contact with a French mobile number, opted in (or out) of marketing on every
    /// channel (the sandbox's `sim` included).
    async fn contact(&self, n: usize, attributes: Value, opted: Option<ConsentStatus>) -> String {
        self.contact_with(&format!("+336{n:08}"), attributes, None, opted)
            .await
    }

    async fn contact_with(
        &self,
        phone: &str,
        attributes: Value,
        timezone: Option<&str>,
        opted: Option<ConsentStatus>,
    ) -> String {
        let contact = self
            .store
            .create_contact(
                &self.tenant,
                &NewContact {
                    attributes: serde_json::from_value(attributes).unwrap(),
                    identities: vec![Identity {
                        channel: ChannelKind::Sms,
                        address: phone.to_owned(),
                    }],
                    timezone: timezone.map(str::to_owned),
                    locale: None,
                },
                self.clock.now(),
            )
            .await
            .unwrap();
        if let Some(status) = opted {
            self.store
                .append_consent(
                    &self.tenant,
                    &ConsentRecord {
                        id: relais_core::ids::new_id(),
                        contact_id: contact.id.clone(),
                        channel: None,
                        purpose: Purpose::Marketing,
                        status,
                        source: ConsentSource::Api,
                        proof: Some("checkbox at checkout".into()),
                        recorded_at: self.clock.now(),
                    },
                )
                .await
                .unwrap();
        }
        contact.id
    }

    async fn create(&self, body: Value) -> String {
        let (status, campaign) = self.call("POST", "/v1/campaigns", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{campaign}");
        assert_eq!(campaign["state"], "draft");
        campaign["id"].as_str().unwrap().to_owned()
    }

    async fn start(&self, id: &str) -> Value {
        let (status, campaign) = self
            .call("POST", &format!("/v1/campaigns/{id}/start"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{campaign}");
        campaign
    }

    /// Runs the worker until it has nothing left to do now.
    async fn run(&self) {
        for _ in 0..1000 {
            match self.runner.run_once().await.unwrap() {
                Some(report)
                    if report.enqueued + report.skipped + report.waiting > 0
                        || report.winner.is_some()
                        || report.completed => {}
                _ => return,
            }
        }
        panic!("the campaign worker never ran out of work");
    }

    async fn campaign(&self, id: &str) -> Value {
        let (status, campaign) = self.call("GET", &format!("/v1/campaigns/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{campaign}");
        campaign
    }

    async fn report(&self, id: &str) -> Value {
        let (status, report) = self
            .call("GET", &format!("/v1/campaigns/{id}/report"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        report
    }

    /// The messages a campaign stored, by contact.
    async fn messages_of(&self, name: &str) -> Vec<Value> {
        let (status, page) = self
            .call(
                "GET",
                &format!("/v1/messages?campaign={name}&limit=1000"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["data"].as_array().unwrap().clone()
    }
}

#[tokio::test]
async fn the_frequency_cap_holds_across_campaigns_and_frees_up_after_its_period() {
    let api = api().await;
    let (status, settings) = api
        .call(
            "PATCH",
            "/v1/settings",
            Some(json!({"frequency_cap": {"max": 2, "per": "7d", "purpose": "marketing"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    for n in 0..3 {
        api.contact(n, json!({"city": "Lyon"}), Some(ConsentStatus::OptedIn))
            .await;
    }
    api.contact(3, json!({"city": "Lyon"}), Some(ConsentStatus::OptedOut))
        .await;
    api.contact(4, json!({"city": "Lyon"}), None).await;
    api.contact(5, json!({"city": "Paris"}), Some(ConsentStatus::OptedIn))
        .await;

    let (status, segment) = api
        .call(
            "POST",
            "/v1/segments",
            Some(json!({"name": "lyon", "filter": "attributes.city = 'Lyon'"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{segment}");
    assert_eq!(segment["count"], 5);

    let mut campaigns = Vec::new();
    for (i, name) in ["lundi", "mardi", "mercredi"].iter().enumerate() {
        api.clock.set(
            monday()
                .checked_add(SignedDuration::from_hours(24 * i as i64))
                .unwrap(),
        );
        let id = api
            .create(json!({"name": name, "segment": "lyon", "channel": "sim",
                "content": {"text": "Bonjour {{ city }}, -20 % ce jour"}}))
            .await;
        api.start(&id).await;
        api.run().await;
        campaigns.push(id);
    }
    for (id, enqueued, capped) in [
        (&campaigns[0], 3, 0),
        (&campaigns[1], 3, 0),
        (&campaigns[2], 0, 3),
    ] {
        let campaign = api.campaign(id).await;
        assert_eq!(campaign["state"], "completed", "{campaign}");
        let progress = &campaign["progress"];
        assert_eq!(progress["recipients"], 5, "{campaign}");
        assert_eq!(progress["enqueued"], enqueued, "{campaign}");
        assert_eq!(progress["skipped_by_reason"]["opted_out"], 1, "{campaign}");
        assert_eq!(progress["skipped_by_reason"]["no_opt_in"], 1, "{campaign}");
        if capped > 0 {
            assert_eq!(
                progress["skipped_by_reason"]["frequency_cap"], capped,
                "{campaign}"
            );
        }
    }
    let first = api.messages_of("lundi").await;
    assert_eq!(first.len(), 3);
    assert!(
        first.iter().all(|m| m["purpose"] == "marketing"),
        "{first:?}"
    );
    assert!(api.messages_of("mercredi").await.is_empty());

    // A week after the first, one of its two messages no longer counts.
    api.clock.set(
        monday()
            .checked_add(SignedDuration::from_hours(24 * 7 + 1))
            .unwrap(),
    );
    let id = api
        .create(
            json!({"name": "lundi-suivant", "segment": "lyon", "channel": "sim",
            "content": {"text": "Dernier jour"}}),
        )
        .await;
    api.start(&id).await;
    api.run().await;
    assert_eq!(api.campaign(&id).await["progress"]["enqueued"], 3);
}

#[tokio::test]
async fn an_ab_test_sends_the_variants_to_a_share_then_the_winner_to_the_rest() {
    let api = api().await;
    for n in 0..200 {
        api.contact(
            n,
            json!({"first_name": format!("C{n}")}),
            Some(ConsentStatus::OptedIn),
        )
        .await;
    }
    let id = api
        .create(json!({
            "name": "soldes-ab",
            "filter": "identity.sms exists",
            "channel": "sim",
            "variants": [
                {"name": "A", "content": {"text": "Bonjour {{ first_name }}, -20 %"}},
                {"name": "B", "content": {"text": "{{ first_name }}, vos soldes commencent"}}
            ],
            "ab_test": {"share": 0.2, "metric": "read", "after": "4h"}
        }))
        .await;
    api.start(&id).await;
    api.run().await;

    let campaign = api.campaign(&id).await;
    assert_eq!(campaign["state"], "running");
    assert_eq!(campaign["phase"], "test");
    let tested = campaign["progress"]["enqueued"].as_i64().unwrap();
    let waiting = campaign["progress"]["waiting"].as_i64().unwrap();
    assert_eq!(tested + waiting, 200);
    assert!(
        (20..=60).contains(&tested),
        "about a fifth tested: {campaign}"
    );

    // Variant B's messages are read, A's only delivered.
    let messages = api.messages_of("soldes-ab").await;
    assert_eq!(messages.len() as i64, tested);
    let mut by_variant = std::collections::HashMap::new();
    for m in &messages {
        let text = m["content"]["text"].as_str().unwrap().to_owned();
        let variant = if text.contains("vos soldes") {
            "B"
        } else {
            "A"
        };
        *by_variant.entry(variant).or_insert(0) += 1;
        let status = if variant == "B" {
            MessageStatus::Read
        } else {
            MessageStatus::Delivered
        };
        api.store
            .record_status(
                m["id"].as_str().unwrap(),
                &MessageEvent::new(status, api.clock.now()),
            )
            .await
            .unwrap();
    }
    assert!(by_variant["A"] > 0 && by_variant["B"] > 0, "{by_variant:?}");

    // Before the test's period ends, the rest waits.
    api.clock.advance(SignedDuration::from_hours(3));
    api.run().await;
    assert_eq!(api.campaign(&id).await["progress"]["waiting"], waiting);

    api.clock.advance(SignedDuration::from_hours(1));
    api.run().await;
    let campaign = api.campaign(&id).await;
    assert_eq!(campaign["state"], "completed", "{campaign}");
    assert_eq!(campaign["winner"], "B");
    assert_eq!(campaign["progress"]["enqueued"], 200);
    let messages = api.messages_of("soldes-ab").await;
    assert_eq!(messages.len(), 200);
    let b = messages
        .iter()
        .filter(|m| {
            m["content"]["text"]
                .as_str()
                .unwrap()
                .contains("vos soldes")
        })
        .count();
    assert_eq!(b as i64, by_variant["B"] + waiting, "the rest got B");
    let mut contacts: Vec<&str> = messages
        .iter()
        .map(|m| m["to"].as_str().unwrap_or_default())
        .collect();
    contacts.sort_unstable();
    contacts.dedup();
    assert_eq!(contacts.len(), 200, "one message per contact");

    let report = api.report(&id).await;
    let rows = report["funnel"].as_array().unwrap();
    let row = |v: &str| rows.iter().find(|r| r["variant"] == v).unwrap().clone();
    assert_eq!(row("B")["read"], by_variant["B"]);
    assert_eq!(row("A")["read"], 0);
    assert_eq!(row("A")["delivered"], by_variant["A"]);
    let request = axum::http::Request::get(format!("/v1/campaigns/{id}/report"))
        .header("authorization", format!("Bearer {}", api.key))
        .header("accept", "text/csv")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, body, content_type) = support::respond(&api.app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let csv = body.as_str().unwrap();
    assert!(
        csv.starts_with("variant,channel,accepted,sent,delivered,read"),
        "{csv}"
    );
    assert!(
        csv.contains(&format!("B,sim,{},", by_variant["B"] + waiting)),
        "{csv}"
    );
}

#[tokio::test]
async fn send_time_optimisation_sends_at_each_contacts_learned_hour_in_their_time_zone() {
    let api = api().await;
    // A New Yorker who read and answered around 19:00 their time, on several evenings.
    let ny = api
        .contact_with(
            "+12125550101",
            json!({}),
            Some("America/New_York"),
            Some(ConsentStatus::OptedIn),
        )
        .await;
    for day in 1..=3 {
        let at: Timestamp = format!("2026-11-{:02}T00:{:02}:00Z", day + 10, day * 10)
            .parse()
            .unwrap();
        let mut inbound = relais_store::NewInboundMessage {
            id: relais_core::ids::new_id(),
            tenant_id: api.tenant.clone(),
            channel: ChannelKind::Sms,
            channel_id: None,
            from_address: "+12125550101".into(),
            to_address: "36180".into(),
            contact_id: Some(ny.clone()),
            text: "ok".into(),
            payload: None,
            media: None,
            provider_id: None,
            received_at: at,
        };
        inbound.received_at = at;
        api.store.insert_inbound(&inbound).await.unwrap();
    }
    // A Parisian who asked for 08:00.
    let paris = api
        .contact_with(
            "+33611111111",
            json!({"preferred_hour": 8}),
            Some("Europe/Paris"),
            Some(ConsentStatus::OptedIn),
        )
        .await;
    let id = api
        .create(
            json!({"name": "heure-juste", "filter": "identity.sms exists", "channel": "sim",
            "content": {"text": "Nouveautés"}, "right_time": true}),
        )
        .await;
    api.start(&id).await;
    api.run().await;
    assert_eq!(api.campaign(&id).await["progress"]["enqueued"], 2);

    let due = |contact: &str| {
        let store = api.store.clone();
        let tenant = api.tenant.clone();
        let contact = contact.to_owned();
        async move {
            let page = store
                .list_messages(
                    &tenant,
                    &relais_store::MessageFilter::default(),
                    &relais_store::PageRequest {
                        after: None,
                        limit: 10,
                    },
                )
                .await
                .unwrap();
            let message = page
                .data
                .into_iter()
                .find(|m| m.contact_id.as_deref() == Some(contact.as_str()))
                .unwrap();
            (message.status, message.send_at)
        }
    };
    // 19:00 in New York on the day of the campaign (00:00 UTC the next day).
    let (status, send_at) = due(&ny).await;
    assert_eq!(status, MessageStatus::Scheduled);
    assert_eq!(send_at, Some("2026-12-08T00:00:00Z".parse().unwrap()));
    // 08:00 in Paris is past on Monday at 10:00: Tuesday 08:00 (07:00 UTC).
    let (_, send_at) = due(&paris).await;
    assert_eq!(send_at, Some("2026-12-08T07:00:00Z".parse().unwrap()));
}

#[tokio::test]
async fn a_campaign_that_cannot_reach_anyone_says_why_before_it_starts() {
    let api = api().await;
    let (status, problem) = api
        .call(
            "POST",
            "/v1/segments",
            Some(json!({"name": "typo", "filter": "attributes.city = 'Lyon' and"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["detail"].as_str().unwrap().contains("character 29"),
        "{problem}"
    );
    assert_eq!(problem["errors"][0]["pointer"], "/filter");

    let (status, preview) = api
        .call(
            "POST",
            "/v1/segments/preview",
            Some(json!({"filter": "locale = 'fr'"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["count"], 0);

    // An empty segment.
    let empty = api
        .create(
            json!({"name": "vide", "filter": "locale = 'fr'", "channel": "sim",
            "content": {"text": "x"}}),
        )
        .await;
    let (status, problem) = api
        .call("POST", &format!("/v1/campaigns/{empty}/start"), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("holds no contact"),
        "{problem}"
    );
    assert_eq!(api.campaign(&empty).await["state"], "draft");

    // Contacts only reachable by phone, a campaign by e-mail.
    api.contact(1, json!({}), Some(ConsentStatus::OptedIn))
        .await;
    let email = api
        .create(
            json!({"name": "mail", "filter": "identity.sms exists", "channel": "email",
            "content": {"text": "x"}}),
        )
        .await;
    let (status, problem) = api
        .call("POST", &format!("/v1/campaigns/{email}/start"), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["detail"].as_str().unwrap().contains("email"),
        "{problem}"
    );

    // Its end has passed.
    let late = api
        .create(
            json!({"name": "trop-tard", "filter": "identity.sms exists", "channel": "sim",
            "content": {"text": "x"}, "ends_at": "2026-12-01T00:00:00Z"}),
        )
        .await;
    let (status, problem) = api
        .call("POST", &format!("/v1/campaigns/{late}/start"), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["detail"].as_str().unwrap().contains("ended"),
        "{problem}"
    );

    // A mistake in the campaign itself is refused at creation.
    let (status, problem) = api
        .call(
            "POST",
            "/v1/campaigns",
            Some(json!({"name": "x", "segment": "nope",
            "content": {"text": "x"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/segment", "{problem}");
    let (status, _) = api
        .call(
            "POST",
            "/v1/campaigns",
            Some(json!({"name": "x", "filter": "locale exists", "rate": -1,
            "content": {"text": "x"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        api.runner.run_once().await.unwrap().is_none(),
        "nothing runs"
    );
    assert!(api.messages_of("mail").await.is_empty());
}

#[tokio::test]
async fn a_paused_campaign_sends_nothing_until_resumed_and_a_canceled_one_never_again() {
    let api = api().await;
    for n in 0..1500 {
        api.contact(n, json!({}), Some(ConsentStatus::OptedIn))
            .await;
    }
    let id = api
        .create(
            json!({"name": "pause", "filter": "identity.sms exists", "channel": "sim",
            "content": {"text": "x"}}),
        )
        .await;
    api.start(&id).await;
    let (status, _) = api
        .call("POST", &format!("/v1/campaigns/{id}/start"), None)
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a running campaign does not start twice"
    );
    let (status, paused) = api
        .call("POST", &format!("/v1/campaigns/{id}/pause"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    api.run().await;
    assert_eq!(api.campaign(&id).await["progress"]["enqueued"], 0);

    api.call("POST", &format!("/v1/campaigns/{id}/resume"), None)
        .await;
    // One page, then canceled: the rest is never sent.
    let report = api.runner.run_once().await.unwrap().unwrap();
    assert_eq!(report.enqueued, 1000, "{report:?}");
    let (status, canceled) = api
        .call("POST", &format!("/v1/campaigns/{id}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{canceled}");
    api.run().await;
    let campaign = api.campaign(&id).await;
    assert_eq!(campaign["state"], "canceled");
    assert_eq!(campaign["progress"]["enqueued"], 1000, "{campaign}");
    assert_eq!(campaign["progress"]["canceled"], 500, "{campaign}");
    assert_eq!(api.messages_of("pause").await.len(), 1000);
    let (status, _) = api
        .call("POST", &format!("/v1/campaigns/{id}/resume"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn an_ab_test_on_conversions_credits_purchases_to_the_last_message_and_prices_the_sends() {
    let api = api().await;
    let (status, settings) = api
        .call(
            "PATCH",
            "/v1/settings",
            Some(json!({"prices": [{"channel": "sim", "price": 0.02, "currency": "EUR"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    for n in 0..60 {
        api.contact(n, json!({}), Some(ConsentStatus::OptedIn))
            .await;
    }
    let id = api
        .create(json!({
            "name": "soldes-conv",
            "filter": "identity.sms exists",
            "channel": "sim",
            "variants": [
                {"name": "A", "content": {"text": "Soldes : -20 %"}},
                {"name": "B", "content": {"text": "Vos soldes commencent"}}
            ],
            "ab_test": {"share": 0.5, "metric": "converted", "after": "1d"},
            "conversion": {"event": "purchase", "window": "2d"}
        }))
        .await;
    api.start(&id).await;
    api.run().await;

    // Every test message is delivered; a third of B's recipients buy within the window,
    // one of A's buys three days later (too late to count).
    let messages = api.messages_of("soldes-conv").await;
    let mut bought = 0;
    let mut late = None;
    for (i, m) in messages.iter().enumerate() {
        api.store
            .record_status(
                m["id"].as_str().unwrap(),
                &MessageEvent::new(MessageStatus::Delivered, api.clock.now()),
            )
            .await
            .unwrap();
        let is_b = m["content"]["text"]
            .as_str()
            .unwrap()
            .contains("Vos soldes");
        if is_b && i % 3 == 0 {
            let event = json!({"contact": m["to"], "name": "purchase", "value": 50.0});
            let (status, answer) = api.call("POST", "/v1/events", Some(event)).await;
            assert_eq!(status, StatusCode::CREATED, "{answer}");
            bought += 1;
        } else if !is_b && late.is_none() {
            late = Some(m["to"].clone());
        }
    }
    assert!(bought > 0, "B reached someone");
    api.clock.advance(SignedDuration::from_hours(72));
    let event = json!({"contact": late.unwrap(), "name": "purchase", "value": 80.0});
    let (status, answer) = api.call("POST", "/v1/events", Some(event)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    api.run().await;

    let campaign = api.campaign(&id).await;
    assert_eq!(campaign["winner"], "B", "{campaign}");
    let report = api.report(&id).await;
    let rows = report["funnel"].as_array().unwrap();
    let row = |v: &str| rows.iter().find(|r| r["variant"] == v).unwrap().clone();
    assert_eq!(row("B")["converted"], bought, "{report}");
    assert_eq!(row("B")["conversion_value"], 50.0 * f64::from(bought));
    assert_eq!(row("A")["converted"], 0, "the late purchase is nobody's");
    // Delivered messages are priced; the rest (queued for the winner) not yet.
    let delivered = messages.len() as f64;
    let cost =
        row("A")["cost"]["EUR"].as_f64().unwrap() + row("B")["cost"]["EUR"].as_f64().unwrap();
    assert!((cost - 0.02 * delivered).abs() < 1e-9, "{report}");
}
