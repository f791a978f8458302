//! Journeys end to end on SQLite and on PostgreSQL, with a manual clock and scripted
//! WhatsApp and SMS adapters: customer events enter contacts into journeys, the worker
//! waits, sends through the accept path and the dispatcher, branches on whether the
//! message was read, and a goal event ends a run wherever it stands. PostgreSQL runs get a
//! fresh database each on `RELAIS_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and fail, not skip, without it.

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use relais_core::channel::ChannelKind;
use relais_core::clock::{Clock, ManualClock};
use relais_core::contact::{AddressRules, Identity};
use relais_core::status::MessageStatus;
use relais_engine::dispatch::{
    ChannelAdapter, Dispatcher, DispatcherConfig, OutboundMessage, ProviderAck, SendError,
};
use relais_engine::journeys::{
    EventAnswer, EventError, EventRequest, JourneyWorker, put_geofence, put_journey, record_event,
};
use relais_engine::send::Acceptor;
use relais_engine::sim::SimConfig;
use relais_store::scratch::ScratchDatabase;
use relais_store::{NewContact, RunState, SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

struct World {
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    tenant: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<ScratchDatabase>,
}

/// Saturday 21 November 2026, 10:00 UTC.
fn start() -> Timestamp {
    "2026-11-21T10:00:00Z".parse().unwrap()
}

async fn sqlite_world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let tenant = store.create_tenant("acme", start()).await.unwrap().id;
    World {
        store,
        clock: Arc::new(ManualClock::new(start())),
        tenant,
        _dir: Some(dir),
        pg: None,
    }
}

async fn postgres_world() -> World {
    let database = ScratchDatabase::create("relais_journeys")
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} is required for these tests: {e}",
                relais_store::scratch::admin_url()
            )
        });
    let store: Arc<dyn Store> = database.store.clone();
    let tenant = store.create_tenant("acme", start()).await.unwrap().id;
    World {
        store,
        clock: Arc::new(ManualClock::new(start())),
        tenant,
        _dir: None,
        pg: Some(database),
    }
}

impl World {
    async fn finish(self) {
        if let Some(database) = self.pg {
            drop(self.store);
            database.drop_database().await;
        }
    }
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let w = super::sqlite_world().await;
                    super::$name(&w).await;
                    w.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let w = super::postgres_world().await;
                    super::$name(&w).await;
                    w.finish().await;
                }
            )*
        }
    };
}

on_both_stores!(
    an_unread_cart_reminder_on_whatsapp_is_followed_by_an_sms,
    a_read_cart_reminder_ends_the_journey_without_an_sms,
    a_purchase_ends_the_journey_wherever_it_stands,
    whatsapp_refusing_the_reminder_falls_back_to_sms,
    the_same_event_id_enters_the_journey_once,
    a_restarted_worker_takes_up_a_waiting_run,
    entering_a_geofence_starts_its_journey,
    a_birthday_journey_fires_at_nine_in_the_contacts_time_zone,
    an_event_for_an_unknown_contact_is_refused_or_creates_it_when_asked,
    contacts_who_come_into_a_saved_segment_enter_its_journey,
    the_journey_report_counts_runs_by_step_and_credits_the_purchase_to_the_reminder,
    a_marketing_send_step_respects_the_tenants_frequency_cap,
);

const PHONE: &str = "+33612345678";

/// Kinds the scripted adapters send on without a configured channel.
const SCRIPTED_KINDS: &[ChannelKind] = &[ChannelKind::Sim, ChannelKind::Sms, ChannelKind::Whatsapp];

/// An adapter that answers from a script (then acknowledges), and records what it got.
struct Scripted {
    kind: ChannelKind,
    script: Mutex<Vec<Result<ProviderAck, SendError>>>,
    got: Mutex<Vec<OutboundMessage>>,
}

impl Scripted {
    fn new(kind: ChannelKind) -> Arc<Self> {
        Self::with_script(kind, vec![])
    }
    fn with_script(kind: ChannelKind, script: Vec<Result<ProviderAck, SendError>>) -> Arc<Self> {
        Arc::new(Scripted {
            kind,
            script: Mutex::new(script),
            got: Mutex::new(Vec::new()),
        })
    }
    fn texts(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|m| match &m.content.body {
                relais_core::content::Body::Text(text) => text.clone(),
                other => format!("{other:?}"),
            })
            .collect()
    }
}

#[async_trait]
impl ChannelAdapter for Scripted {
    fn kind(&self) -> ChannelKind {
        self.kind
    }
    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        let n = {
            let mut got = self.got.lock().unwrap();
            got.push(message.clone());
            got.len()
        };
        let mut script = self.script.lock().unwrap();
        if script.is_empty() {
            Ok(ProviderAck {
                provider_id: format!("{}-{n}", self.kind.as_str()),
            })
        } else {
            script.remove(0)
        }
    }
}

/// The channels of a scenario, and the engine parts that run journeys.
struct Engine {
    whatsapp: Arc<Scripted>,
    sms: Arc<Scripted>,
    dispatcher: Dispatcher,
    worker: JourneyWorker,
}

impl World {
    fn rules(&self) -> AddressRules {
        AddressRules {
            default_country: Some(phonenumber::country::Id::FR),
        }
    }

    fn engine(&self) -> Engine {
        self.engine_with(
            Scripted::new(ChannelKind::Whatsapp),
            Scripted::new(ChannelKind::Sms),
        )
    }

    fn engine_with(&self, whatsapp: Arc<Scripted>, sms: Arc<Scripted>) -> Engine {
        let config = DispatcherConfig {
            lease_owner: "test".into(),
            ..Default::default()
        };
        let dispatcher = Dispatcher::new(self.store.clone(), self.clock.clone(), config)
            .with_adapter(Arc::new(relais_engine::sim::adapter(
                self.store.clone(),
                SimConfig::default(),
            )))
            .with_adapter(whatsapp.clone())
            .with_adapter(sms.clone());
        let acceptor = Acceptor::start(
            self.store.clone(),
            self.clock.clone(),
            self.rules(),
            SCRIPTED_KINDS.to_vec(),
            None,
        );
        let worker = JourneyWorker::new(self.store.clone(), self.clock.clone(), acceptor, "test");
        Engine {
            whatsapp,
            sms,
            dispatcher,
            worker,
        }
    }

    /// A worker round, then the dispatcher until idle.
    async fn step(&self, engine: &Engine) {
        engine.worker.run_once().await.unwrap();
        engine.dispatcher.run_until_idle(10).await.unwrap();
    }

    fn advance(&self, minutes: i64) {
        self.clock.advance(SignedDuration::from_mins(minutes));
    }

    async fn event(&self, body: Value) -> Result<EventAnswer, EventError> {
        let request: EventRequest = serde_json::from_value(body).unwrap();
        record_event(
            &*self.store,
            self.rules(),
            &self.tenant,
            request,
            self.clock.now(),
        )
        .await
    }

    async fn journey(&self, name: &str, document: Value) {
        put_journey(
            &*self.store,
            &self.tenant,
            name,
            &document,
            self.clock.now(),
        )
        .await
        .unwrap();
    }

    /// Ana, who wrote on WhatsApp a moment ago: its customer-service window is open, so
    /// free-form messages may go there.
    async fn ana(&self) -> String {
        let contact = self
            .store
            .create_contact(
                &self.tenant,
                &NewContact {
                    identities: vec![Identity {
                        channel: ChannelKind::Sms,
                        address: PHONE.into(),
                    }],
                    ..Default::default()
                },
                self.clock.now(),
            )
            .await
            .unwrap();
        self.store
            .insert_inbound(&relais_store::NewInboundMessage {
                id: relais_core::ids::new_id(),
                tenant_id: self.tenant.clone(),
                channel: ChannelKind::Whatsapp,
                channel_id: None,
                from_address: PHONE.into(),
                to_address: "15550783881".into(),
                contact_id: Some(contact.id.clone()),
                text: "Bonjour".into(),
                payload: None,
                media: None,
                provider_id: None,
                received_at: self.clock.now(),
            })
            .await
            .unwrap();
        contact.id
    }

    /// A contact with this phone number (an SMS identity), attributes and time zone; its id.
    async fn contact(&self, phone: &str, attributes: Value, timezone: Option<&str>) -> String {
        self.store
            .create_contact(
                &self.tenant,
                &NewContact {
                    identities: vec![Identity {
                        channel: ChannelKind::Sms,
                        address: phone.into(),
                    }],
                    timezone: timezone.map(str::to_owned),
                    attributes: serde_json::from_value(attributes).unwrap(),
                    ..Default::default()
                },
                self.clock.now(),
            )
            .await
            .unwrap()
            .id
    }

    async fn runs(&self, contact: &str) -> Vec<relais_store::JourneyRun> {
        self.store
            .journey_runs_of_contact(&self.tenant, contact)
            .await
            .unwrap()
    }
}

/// The journey of `docs/journeys.md`: an hour after the cart is abandoned, a reminder on
/// WhatsApp (SMS if WhatsApp fails); read within 2 hours, the journey ends; otherwise a
/// last reminder by SMS. A purchase ends it at any step.
fn abandoned_cart() -> Value {
    json!({
        "trigger": {"event": "cart_abandoned"},
        "exit_on": ["purchase"],
        "start": "wait_an_hour",
        "steps": {
            "wait_an_hour": {"type": "wait", "for": "1h", "next": "remind"},
            "remind": {
                "type": "send",
                "channels": ["whatsapp", {"channel": "sms", "after": "failed"}],
                "content": {"text": "Your cart is waiting for you"},
                "purpose": "transactional",
                "next": "read_it"
            },
            "read_it": {"type": "branch", "on": "read", "within": "2h", "yes": "done", "no": "last_call"},
            "last_call": {"type": "send", "channel": "sms", "content": {"text": "Last call: your cart expires tonight"}, "purpose": "transactional"},
            "done": {"type": "exit"}
        }
    })
}

async fn an_unread_cart_reminder_on_whatsapp_is_followed_by_an_sms(w: &World) {
    let ana = w.ana().await;
    w.journey("abandoned-cart", abandoned_cart()).await;
    let e = w.engine();
    let answer = w
        .event(json!({"contact": PHONE, "name": "cart_abandoned", "id": "cart-1", "properties": {"cart": "c-1"}}))
        .await
        .unwrap();
    assert_eq!(answer.entered, ["abandoned-cart"]);
    assert_eq!(answer.contact_id, ana);
    w.step(&e).await;
    w.advance(59);
    w.step(&e).await;
    assert!(e.whatsapp.texts().is_empty(), "still within the hour");
    w.advance(1);
    w.step(&e).await;
    assert_eq!(e.whatsapp.texts(), ["Your cart is waiting for you"]);
    assert!(e.sms.texts().is_empty());
    // Not read: at the end of the two hours the SMS goes, not before.
    w.advance(119);
    w.step(&e).await;
    assert!(e.sms.texts().is_empty(), "the two hours are not over");
    w.advance(1);
    w.step(&e).await;
    assert_eq!(e.sms.texts(), ["Last call: your cart expires tonight"]);
    let run = &w.runs(&ana).await[0];
    assert_eq!(run.state, RunState::Completed);
    assert_eq!(run.step, "last_call");
    // Nothing more, ever.
    w.advance(24 * 60);
    w.step(&e).await;
    assert_eq!((e.whatsapp.texts().len(), e.sms.texts().len()), (1, 1));
}

async fn a_read_cart_reminder_ends_the_journey_without_an_sms(w: &World) {
    let ana = w.ana().await;
    w.journey("abandoned-cart", abandoned_cart()).await;
    let e = w.engine();
    w.event(json!({"contact": PHONE, "name": "cart_abandoned", "id": "cart-1"}))
        .await
        .unwrap();
    w.step(&e).await;
    w.advance(60);
    w.step(&e).await;
    assert_eq!(e.whatsapp.texts().len(), 1);
    // Ana reads it 40 minutes later (WhatsApp's `read` status).
    w.advance(40);
    relais_engine::dispatch::apply_provider_receipt(
        &*w.store,
        ChannelKind::Whatsapp,
        "whatsapp-1",
        MessageStatus::Read,
        w.clock.now(),
        None,
    )
    .await
    .unwrap();
    // The branch looks again within five minutes and takes the `yes` way: exit.
    w.advance(5);
    w.step(&e).await;
    let run = &w.runs(&ana).await[0];
    assert_eq!(run.state, RunState::Exited);
    assert_eq!(run.ended_reason.as_deref(), Some("exit step `done`"));
    w.advance(4 * 60);
    w.step(&e).await;
    assert!(e.sms.texts().is_empty(), "a read reminder needs no SMS");
}

async fn a_purchase_ends_the_journey_wherever_it_stands(w: &World) {
    let ana = w.ana().await;
    w.journey("abandoned-cart", abandoned_cart()).await;
    let e = w.engine();
    w.event(json!({"contact": PHONE, "name": "cart_abandoned", "id": "cart-1"}))
        .await
        .unwrap();
    w.step(&e).await;
    w.advance(30);
    let purchase = w
        .event(json!({"contact": {"contact_id": ana}, "name": "purchase", "id": "order-9", "value": 129.9}))
        .await
        .unwrap();
    assert_eq!(purchase.exited, ["abandoned-cart"]);
    assert!(purchase.entered.is_empty());
    for _ in 0..6 {
        w.advance(60);
        w.step(&e).await;
    }
    assert!(
        e.whatsapp.texts().is_empty() && e.sms.texts().is_empty(),
        "nothing is sent after the purchase"
    );
    let run = &w.runs(&ana).await[0];
    assert_eq!(run.state, RunState::Exited);
    assert_eq!(run.ended_reason.as_deref(), Some("goal event purchase"));
    // The purchase is kept as a conversion, with its value.
    assert_eq!(
        w.store
            .count_contact_events(&w.tenant, &ana, "purchase", start())
            .await
            .unwrap(),
        (1, 129.9)
    );
}

async fn whatsapp_refusing_the_reminder_falls_back_to_sms(w: &World) {
    let ana = w.ana().await;
    w.journey("abandoned-cart", abandoned_cart()).await;
    let refused = Scripted::with_script(
        ChannelKind::Whatsapp,
        vec![Err(SendError::permanent("not_on_whatsapp", "no account"))],
    );
    let e = w.engine_with(refused, Scripted::new(ChannelKind::Sms));
    w.event(json!({"contact": PHONE, "name": "cart_abandoned"}))
        .await
        .unwrap();
    w.step(&e).await;
    w.advance(60);
    w.step(&e).await;
    assert_eq!(e.whatsapp.texts().len(), 1);
    assert_eq!(
        e.sms.texts(),
        ["Your cart is waiting for you"],
        "the fallback step"
    );
    // An SMS is never read: two hours later, the last call.
    w.advance(120);
    w.step(&e).await;
    assert_eq!(e.sms.texts().len(), 2);
    assert_eq!(w.runs(&ana).await[0].state, RunState::Completed);
}

async fn the_same_event_id_enters_the_journey_once(w: &World) {
    let ana = w.ana().await;
    w.journey("abandoned-cart", abandoned_cart()).await;
    let e = w.engine();
    let body = json!({"contact": PHONE, "name": "cart_abandoned", "id": "cart-1"});
    let first = w.event(body.clone()).await.unwrap();
    w.advance(1);
    let again = w.event(body).await.unwrap();
    assert!(again.duplicate && !first.duplicate);
    assert_eq!(
        again.entered,
        ["abandoned-cart"],
        "the first answer, given again"
    );
    assert_eq!(again.at, first.at);
    // Another abandoned cart while the first run is going: the default re-entry rule
    // (`after_exit`) keeps one run at a time.
    let other = w
        .event(json!({"contact": PHONE, "name": "cart_abandoned", "id": "cart-2"}))
        .await
        .unwrap();
    assert!(other.entered.is_empty());
    assert_eq!(w.runs(&ana).await.len(), 1);
    w.advance(60);
    w.step(&e).await;
    w.step(&e).await;
    assert_eq!(e.whatsapp.texts().len(), 1, "one reminder");
    assert_eq!(
        w.store
            .count_contact_events(&w.tenant, &ana, "cart_abandoned", start())
            .await
            .unwrap()
            .0,
        2,
        "the duplicate was not recorded again"
    );
}

async fn a_restarted_worker_takes_up_a_waiting_run(w: &World) {
    let ana = w.ana().await;
    w.journey("abandoned-cart", abandoned_cart()).await;
    let before = w.engine();
    w.event(json!({"contact": PHONE, "name": "cart_abandoned", "id": "cart-1"}))
        .await
        .unwrap();
    w.step(&before).await;
    assert_eq!(w.runs(&ana).await[0].step, "wait_an_hour");
    drop(before);
    // A new process: a new worker, accept path and dispatcher over the same store.
    let after = w.engine();
    w.advance(60);
    w.step(&after).await;
    assert_eq!(after.whatsapp.texts(), ["Your cart is waiting for you"]);
    assert_eq!(w.runs(&ana).await[0].step, "read_it");
}

async fn entering_a_geofence_starts_its_journey(w: &World) {
    let ana = w.ana().await;
    put_geofence(
        &*w.store,
        &w.tenant,
        "shop-lyon",
        45.7640,
        4.8357,
        150.0,
        w.clock.now(),
    )
    .await
    .unwrap();
    w.journey(
        "walk-in",
        json!({
            "trigger": {"geofence": "shop-lyon"},
            "start": "hello",
            "steps": {"hello": {"type": "send", "channel": "sms", "purpose": "transactional",
                "content": {"text": "You are next to our Lyon shop: 10% off today"}}}
        }),
    )
    .await;
    let e = w.engine();
    // A kilometre away: no area, no journey.
    let far = w
        .event(json!({"contact": PHONE, "name": "entered_area", "properties": {"lat": 45.7640, "lon": 4.8486}}))
        .await
        .unwrap();
    assert!(far.geofences.is_empty() && far.entered.is_empty());
    // A hundred metres from the shop.
    let near = w
        .event(json!({"contact": PHONE, "name": "entered_area", "properties": {"lat": 45.7649, "lon": 4.8357}}))
        .await
        .unwrap();
    assert_eq!(near.geofences, ["shop-lyon"]);
    assert_eq!(near.entered, ["walk-in"]);
    w.step(&e).await;
    assert_eq!(
        e.sms.texts(),
        ["You are next to our Lyon shop: 10% off today"]
    );
    assert_eq!(
        w.runs(&ana).await[0].event_properties["geofence"],
        "shop-lyon"
    );
    // A position out of range is refused and changes nothing.
    let bad = w
        .event(json!({"contact": PHONE, "name": "entered_area", "properties": {"lat": 95.0, "lon": 4.8}}))
        .await;
    assert!(
        matches!(bad, Err(EventError::Invalid { ref pointer, .. }) if pointer == "/properties/lat"),
        "{bad:?}"
    );
}

async fn a_birthday_journey_fires_at_nine_in_the_contacts_time_zone(w: &World) {
    let contact = w
        .contact(
            "+12125550123",
            json!({"birthday": "1990-11-22", "first_name": "Ana"}),
            Some("America/New_York"),
        )
        .await;
    w.journey(
        "birthday",
        json!({
            "trigger": {"anniversary": "birthday", "at": "09:00"},
            "start": "wish",
            "steps": {"wish": {"type": "send", "channel": "sim", "purpose": "transactional",
                "template": "Happy birthday {{ first_name }}!"}}
        }),
    )
    .await;
    let e = w.engine();
    w.step(&e).await;
    // 22 November, 08:55 in New York (UTC-5): not yet.
    w.clock.set("2026-11-22T13:55:00Z".parse().unwrap());
    w.step(&e).await;
    assert!(w.runs(&contact).await.is_empty());
    // 09:05 in New York: wished (dates are looked at every ten minutes).
    w.clock.set("2026-11-22T14:05:00Z".parse().unwrap());
    w.step(&e).await;
    let runs = w.runs(&contact).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].state, RunState::Completed);
    let texts: Vec<String> = w
        .store
        .sim_messages(&w.tenant, "+12125550123")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["Happy birthday Ana!"]);
    // Looking again the same day wishes nothing more.
    w.clock.set("2026-11-22T16:00:00Z".parse().unwrap());
    w.step(&e).await;
    assert_eq!(w.runs(&contact).await.len(), 1);
}

async fn an_event_for_an_unknown_contact_is_refused_or_creates_it_when_asked(w: &World) {
    w.journey("abandoned-cart", abandoned_cart()).await;
    let refused = w
        .event(json!({"contact": "+33699999999", "name": "cart_abandoned", "id": "x-1"}))
        .await;
    assert!(
        matches!(refused, Err(EventError::UnknownContact(_))),
        "{refused:?}"
    );
    assert!(
        w.store
            .contact_by_identity(&w.tenant, None, "+33699999999")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        w.store
            .contact_event_by_idempotency_id(&w.tenant, "x-1")
            .await
            .unwrap()
            .is_none(),
        "nothing recorded"
    );
    let created = w
        .event(json!({"contact": "06 99 99 99 99", "name": "cart_abandoned", "id": "x-1", "create_contact": true}))
        .await
        .unwrap();
    assert!(created.created_contact);
    assert_eq!(created.entered, ["abandoned-cart"]);
    let contact = w
        .store
        .contact_by_identity(&w.tenant, None, "+33699999999")
        .await
        .unwrap()
        .expect("created with the event");
    assert_eq!(contact.id, created.contact_id);
    let unknown_id = w
        .event(json!({"contact": {"contact_id": "nobody"}, "name": "purchase", "create_contact": true}))
        .await;
    assert!(matches!(unknown_id, Err(EventError::UnknownContact(_))));
}

/// The worker looks at a journey's saved segment every ten minutes: contacts already in
/// it at the first look do not enter, one who comes in does (once), and one who leaves
/// and comes back enters again.
async fn contacts_who_come_into_a_saved_segment_enter_its_journey(w: &World) {
    let mut people = Vec::new();
    for (phone, tier) in [("+33611111111", "gold"), ("+33622222222", "silver")] {
        let id = w.contact(phone, json!({"tier": tier}), None).await;
        people.push((id, phone));
    }
    let set_tier = |id: String, tier: &'static str| {
        let store = w.store.clone();
        let tenant = w.tenant.clone();
        let now = w.clock.now();
        async move {
            let patch = relais_store::ContactPatch {
                attributes: Some(serde_json::from_value(json!({"tier": tier})).unwrap()),
                ..Default::default()
            };
            store
                .update_contact(&tenant, &id, &patch, now)
                .await
                .unwrap();
        }
    };
    w.store
        .insert_segment(&w.tenant, "gold", "attributes.tier = 'gold'", w.clock.now())
        .await
        .unwrap();
    w.journey(
        "welcome_gold",
        json!({
            "trigger": {"segment": "gold"},
            "start": "welcome",
            "steps": {"welcome": {"type": "send", "channel": "sim", "purpose": "transactional",
                "content": {"text": "Welcome to Gold"}}}
        }),
    )
    .await;
    let e = w.engine();
    let texts = |phone: &'static str| {
        let store = w.store.clone();
        let tenant = w.tenant.clone();
        async move {
            store
                .sim_messages(&tenant, phone)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.text)
                .collect::<Vec<_>>()
        }
    };
    // The first look records who is in: nobody enters.
    w.step(&e).await;
    assert!(w.runs(&people[0].0).await.is_empty());
    // The silver contact becomes gold: the next look (ten minutes on) enters them.
    set_tier(people[1].0.clone(), "gold").await;
    w.step(&e).await;
    assert!(
        w.runs(&people[1].0).await.is_empty(),
        "looked at every 10 minutes"
    );
    w.advance(11);
    w.step(&e).await;
    assert_eq!(w.runs(&people[1].0).await.len(), 1);
    assert_eq!(texts("+33622222222").await, ["Welcome to Gold"]);
    assert!(w.runs(&people[0].0).await.is_empty());
    assert!(texts("+33611111111").await.is_empty());
    // Still gold at the next look: nothing more.
    w.advance(11);
    w.step(&e).await;
    assert_eq!(w.runs(&people[1].0).await.len(), 1);
    // Out, then back in: welcomed again.
    set_tier(people[1].0.clone(), "silver").await;
    w.advance(11);
    w.step(&e).await;
    set_tier(people[1].0.clone(), "gold").await;
    w.advance(11);
    w.step(&e).await;
    assert_eq!(w.runs(&people[1].0).await.len(), 2);
    assert_eq!(
        texts("+33622222222").await,
        ["Welcome to Gold", "Welcome to Gold"]
    );
}

/// Two carts abandoned: one customer buys after the WhatsApp reminder, the other never
/// reads it and gets the SMS. The report counts the runs where they ended, each send
/// step's messages by channel, and credits the purchase to the reminder.
async fn the_journey_report_counts_runs_by_step_and_credits_the_purchase_to_the_reminder(
    w: &World,
) {
    let ana = w.ana().await;
    let bob = w.contact("+33698765432", json!({}), None).await;
    w.journey("abandoned-cart", abandoned_cart()).await;
    let e = w.engine();
    for (who, cart) in [(&ana, "cart-1"), (&bob, "cart-2")] {
        w.event(json!({"contact": {"contact_id": who}, "name": "cart_abandoned", "id": cart}))
            .await
            .unwrap();
    }
    w.step(&e).await;
    w.advance(60);
    w.step(&e).await;
    w.advance(30);
    w.event(json!({"contact": {"contact_id": ana}, "name": "purchase", "id": "order-1", "value": 129.9}))
        .await
        .unwrap();
    w.advance(90);
    w.step(&e).await;
    let report = relais_engine::journeys::journey_analytics(&*w.store, &w.tenant, "abandoned-cart")
        .await
        .unwrap()
        .expect("the journey exists");
    assert_eq!(report.conversion_events, ["purchase"]);
    let step = |name: &str| {
        report
            .steps
            .iter()
            .find(|s| s.step == name)
            .unwrap()
            .clone()
    };
    assert_eq!(step("read_it").runs.get("exited"), Some(&1), "{report:?}");
    assert_eq!(
        step("last_call").runs.get("completed"),
        Some(&1),
        "{report:?}"
    );
    assert_eq!(step("remind").kind, Some("send"));
    // Ana's reminder went on WhatsApp; Bob has no WhatsApp window, so his went by SMS.
    let remind = step("remind").funnel;
    let converted: i64 = remind.iter().map(|r| r.converted).sum();
    let accepted: i64 = remind.iter().map(|r| r.accepted).sum();
    assert_eq!((accepted, converted), (2, 1), "{remind:?}");
    let value: f64 = remind.iter().map(|r| r.conversion_value).sum();
    assert!((value - 129.9).abs() < 1e-9);
    let last_call = step("last_call").funnel;
    assert_eq!(last_call.len(), 1);
    assert_eq!(
        (
            last_call[0].channel.as_str(),
            last_call[0].accepted,
            last_call[0].converted
        ),
        ("sms", 1, 0)
    );
    let csv = report.to_csv();
    assert!(csv.starts_with("step,channel,accepted,"), "{csv}");
    assert!(csv.contains("\nlast_call,sms,1,"), "{csv}");
    // Unknown journeys have no report.
    assert!(
        relais_engine::journeys::journey_analytics(&*w.store, &w.tenant, "nope")
            .await
            .unwrap()
            .is_none()
    );
}

/// The tenant's frequency cap (one marketing message per 7 days) holds back a journey's
/// marketing message as it holds a campaign's: the run goes on without sending, and once
/// the week has passed the next one goes.
async fn a_marketing_send_step_respects_the_tenants_frequency_cap(w: &World) {
    let ana = w.ana().await;
    w.store
        .append_consent(
            &w.tenant,
            &relais_core::consent::ConsentRecord {
                id: relais_core::ids::new_id(),
                contact_id: ana.clone(),
                channel: None,
                purpose: relais_core::consent::Purpose::Marketing,
                status: relais_core::consent::ConsentStatus::OptedIn,
                source: relais_core::consent::ConsentSource::Api,
                proof: Some("newsletter form".into()),
                recorded_at: w.clock.now(),
            },
        )
        .await
        .unwrap();
    let patch: relais_core::settings::SettingsPatch = serde_json::from_value(json!({
        "frequency_cap": {"max": 1, "per": "7d", "purpose": "marketing"}
    }))
    .unwrap();
    relais_engine::settings::patch(&*w.store, &w.tenant, patch, w.clock.now())
        .await
        .unwrap();
    w.journey(
        "promo",
        json!({
            "trigger": {"event": "browsed"},
            "reentry": "always",
            "start": "offer",
            "steps": {"offer": {"type": "send", "channel": "sim", "purpose": "marketing",
                "content": {"text": "-15 % on what you looked at"}}}
        }),
    )
    .await;
    let e = w.engine();
    let offers = || async {
        w.store
            .sim_messages(&w.tenant, PHONE)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.text.starts_with("-15 %"))
            .count()
    };
    for id in ["b-1", "b-2"] {
        w.event(json!({"contact": PHONE, "name": "browsed", "id": id}))
            .await
            .unwrap();
        w.step(&e).await;
        w.advance(1);
    }
    assert_eq!(
        offers().await,
        1,
        "the second offer is held back by the cap"
    );
    let runs = w.runs(&ana).await;
    assert_eq!(runs.len(), 2);
    assert!(
        runs.iter().all(|r| r.state == RunState::Completed),
        "{runs:?}"
    );
    // Nine days later (a Monday: no quiet hours), the cap lets one more through.
    w.advance(9 * 24 * 60);
    w.event(json!({"contact": PHONE, "name": "browsed", "id": "b-3"}))
        .await
        .unwrap();
    w.step(&e).await;
    assert_eq!(offers().await, 2);
}
