//! The A2P path end to end on SQLite and on PostgreSQL: accept, schedule, dispatch,
//! receipts, fallback, with a manual clock and scripted channel adapters. Every scenario
//! runs on both stores; the PostgreSQL runs get a fresh database each, on the server named
//! by `RELAIS_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! and fail, not skip, when it cannot be reached.

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use relais_core::channel::ChannelKind;
use relais_core::circuit::Circuit;
use relais_core::clock::{Clock, ManualClock};
use relais_core::consent::{ConsentRecord, ConsentSource, ConsentStatus, Purpose};
use relais_core::contact::AddressRules;
use relais_core::status::MessageStatus;
use relais_engine::dispatch::{
    ChannelAdapter, ChannelRegistry, Dispatcher, DispatcherConfig, MESSAGING_LIMIT,
    OutboundMessage, ProviderAck, RecipientLimit, SendError,
};
use relais_engine::send::{
    AcceptContext, AcceptError, Accepted, Idempotency, SANDBOX_KINDS, SendRequest, accept,
};
use relais_engine::sim::SimConfig;
use relais_engine::webhooks::WebhookWorker;
use relais_store::scratch::ScratchDatabase;
use relais_store::{MessageEvent, MessageWithEvents, SqliteStore, Store};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

struct World {
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    tenant: String,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL store and its database, dropped by [`World::finish`].
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
    let database = ScratchDatabase::create("relais_a2p")
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
    /// Drops the PostgreSQL database of the test (a failed test leaves it for inspection).
    async fn finish(self) {
        if let Some(database) = self.pg {
            drop(self.store);
            database.drop_database().await;
        }
    }
}

/// Runs each scenario once per store.
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
    the_sim_phone_receives_the_text_and_reports_delivery,
    an_idempotency_key_returns_the_same_message_or_a_conflict,
    a_marketing_message_without_consent_is_rejected_with_its_reason,
    templates_use_contact_attributes_and_name_missing_variables,
    a_scheduled_message_waits_for_send_at_and_can_be_canceled,
    a_message_past_its_validity_expires_unsent,
    french_marketing_on_a_sunday_waits_for_monday_8am_paris,
    a_transient_error_is_retried_then_succeeds,
    a_permanent_error_fails_at_once,
    a_failed_channel_falls_back_to_the_next_one,
    an_undelivered_step_falls_back_after_its_wait,
    a_delivered_but_unread_step_falls_back_after_its_wait,
    whatsapp_without_a_delivery_in_time_falls_back_to_sms,
    a_whatsapp_window_that_closed_while_an_earlier_step_waited_is_skipped,
    receipts_only_move_status_forward,
    the_rate_limit_spreads_sends_over_time,
    each_sender_is_paced_at_its_own_rate,
    a_bad_sender_is_refused_and_a_good_one_reaches_the_channel,
    a_large_batch_is_stored_and_dispatched,
    status_changes_reach_webhooks_signed_and_retried,
    a_receiver_that_stays_down_is_retried_for_a_day_then_given_up,
    a_dead_endpoint_gets_a_few_probes_not_an_attempt_per_delivery,
    deliveries_an_unreachable_endpoint_never_took_expire_after_a_day,
    refusals_of_single_events_do_not_hold_the_endpoint_back,
    the_delivery_log_keeps_finished_deliveries_for_its_retention,
    an_undelivered_receipt_moves_the_message_to_the_next_channel,
    a_fallback_skips_channels_without_consent,
    a_kind_goes_to_the_channel_its_prefix_names_and_fails_over_when_it_cannot_send,
    a_fallback_step_naming_a_kind_is_routed_by_the_destination,
    business_initiated_templates_wait_for_a_place_under_the_messaging_limit,
);

/// The kinds the scenarios' adapters send on without a configured channel: the sandbox,
/// and the kinds their scripted adapters stand for.
const SCRIPTED_KINDS: &[ChannelKind] = &[ChannelKind::Sim, ChannelKind::Sms, ChannelKind::Whatsapp];

/// An adapter that answers from a script (then acknowledges), and records what it got.
struct Scripted {
    kind: ChannelKind,
    script: Mutex<VecDeque<Result<ProviderAck, SendError>>>,
    got: Mutex<Vec<OutboundMessage>>,
    /// What `is_ready` answers (a configured channel without a live connection).
    ready: std::sync::atomic::AtomicBool,
    /// Distinct recipients of business-initiated messages per 24 h, if limited.
    limit: Option<u64>,
}

impl Scripted {
    fn new(kind: ChannelKind, script: Vec<Result<ProviderAck, SendError>>) -> Arc<Self> {
        Arc::new(Scripted {
            kind,
            script: Mutex::new(script.into()),
            got: Mutex::new(Vec::new()),
            ready: std::sync::atomic::AtomicBool::new(true),
            limit: None,
        })
    }
    /// Acknowledges everything, with a messaging limit of `recipients` per 24 h.
    fn limited(kind: ChannelKind, recipients: u64) -> Arc<Self> {
        Arc::new(Scripted {
            kind,
            script: Mutex::new(VecDeque::new()),
            got: Mutex::new(Vec::new()),
            ready: std::sync::atomic::AtomicBool::new(true),
            limit: Some(recipients),
        })
    }
    fn recipients(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.to.clone())
            .collect()
    }
    fn calls(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

#[async_trait]
impl ChannelAdapter for Scripted {
    fn kind(&self) -> ChannelKind {
        self.kind
    }
    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
    fn recipient_limit(&self) -> Option<RecipientLimit> {
        self.limit.map(|recipients| RecipientLimit {
            recipients,
            window: SignedDuration::from_hours(24),
        })
    }
    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        self.got.lock().unwrap().push(message.clone());
        let n = self.calls();
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(ProviderAck {
                provider_id: format!("prov-{n}"),
            }))
    }
}

impl World {
    fn ctx(&self) -> AcceptContext<'_> {
        AcceptContext {
            store: &self.store,
            rules: AddressRules {
                default_country: Some(phonenumber::country::Id::FR),
            },
            now: self.clock.now(),
            configured: SANDBOX_KINDS,
            built_in: SCRIPTED_KINDS,
            handoff: None,
            links: None,
        }
    }

    async fn send(&self, body: Value) -> Result<Accepted, AcceptError> {
        let request: SendRequest = serde_json::from_value(body).unwrap();
        accept(self.ctx(), &self.tenant, request, None).await
    }

    async fn send_with_key(&self, key: &str, body: Value) -> Result<Accepted, AcceptError> {
        let idem = Idempotency::new(key, &body).expect("a usable key");
        let request: SendRequest = serde_json::from_value(body).unwrap();
        accept(self.ctx(), &self.tenant, request, Some(idem)).await
    }

    fn dispatcher(&self, sim: SimConfig, adapters: Vec<Arc<dyn ChannelAdapter>>) -> Dispatcher {
        let config = DispatcherConfig {
            lease_owner: "test".into(),
            ..Default::default()
        };
        let mut d = Dispatcher::new(self.store.clone(), self.clock.clone(), config).with_adapter(
            Arc::new(relais_engine::sim::adapter(self.store.clone(), sim)),
        );
        for a in adapters {
            d = d.with_adapter(a);
        }
        d
    }

    /// The customer writes on WhatsApp now: its 24-hour customer-service window opens, and
    /// free-form messages may go there.
    async fn customer_wrote_on_whatsapp(&self, phone: &str) {
        let identity = relais_core::contact::Identity {
            channel: ChannelKind::Sms,
            address: phone.into(),
        };
        let (contact, _) = self
            .store
            .resolve_or_create_contacts(&self.tenant, &[identity], self.clock.now())
            .await
            .unwrap()
            .remove(0);
        self.store
            .insert_inbound(&relais_store::NewInboundMessage {
                id: relais_core::ids::new_id(),
                tenant_id: self.tenant.clone(),
                channel: ChannelKind::Whatsapp,
                channel_id: None,
                from_address: phone.into(),
                to_address: "15550783881".into(),
                contact_id: Some(contact.id),
                text: "Bonjour".into(),
                payload: None,
                media: None,
                provider_id: None,
                received_at: self.clock.now(),
            })
            .await
            .unwrap();
    }

    async fn message(&self, id: &str) -> MessageWithEvents {
        self.store.message(&self.tenant, id).await.unwrap().unwrap()
    }

    async fn phone(&self, number: &str) -> Vec<String> {
        self.store
            .sim_messages(&self.tenant, number)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.text)
            .collect()
    }

    fn advance(&self, secs: i64) {
        self.clock.advance(SignedDuration::from_secs(secs));
    }
}

fn statuses(m: &MessageWithEvents) -> Vec<&'static str> {
    m.events.iter().map(|e| e.status.as_str()).collect()
}

async fn the_sim_phone_receives_the_text_and_reports_delivery(w: &World) {
    let ok = w
        .send(json!({"to": "06 12 34 56 78", "content": {"text": "Votre code est 1234"}}))
        .await
        .unwrap();
    assert_eq!(ok.status, MessageStatus::Queued);
    let d = w.dispatcher(SimConfig::default(), vec![]);
    let report = d.run_once().await.unwrap();
    assert_eq!(report.sent, 1);
    assert_eq!(w.phone("+33612345678").await, ["Votre code est 1234"]);
    let m = w.message(&ok.id).await;
    assert_eq!(m.message.status, MessageStatus::Sent);
    assert_eq!(m.message.channel, "sim");
    assert_eq!(m.message.segments, Some(1));
    assert!(
        m.message
            .provider_id
            .as_deref()
            .unwrap()
            .starts_with("sim-")
    );
    // The delivery receipt comes one second later on the simulated clock.
    w.advance(1);
    d.run_once().await.unwrap();
    let m = w.message(&ok.id).await;
    assert_eq!(m.message.status, MessageStatus::Delivered);
    assert_eq!(
        statuses(&m),
        ["accepted", "queued", "sending", "sent", "delivered"]
    );
    // Sent once, whatever more rounds happen.
    w.advance(3600);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(w.phone("+33612345678").await.len(), 1);
    // The contact was created on the first send.
    let contact = w
        .store
        .contact_by_identity(&w.tenant, None, "+33612345678")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.message.contact_id.as_deref(), Some(contact.id.as_str()));
}

async fn an_idempotency_key_returns_the_same_message_or_a_conflict(w: &World) {
    let body = json!({"to": "+33612345678", "content": {"text": "Commande 42 expédiée"}});
    let first = w.send_with_key("order-42", body.clone()).await.unwrap();
    let again = w.send_with_key("order-42", body.clone()).await.unwrap();
    assert_eq!(again.id, first.id);
    assert!(again.replayed && !first.replayed);
    let other = json!({"to": "+33612345678", "content": {"text": "Commande 43 expédiée"}});
    match w.send_with_key("order-42", other).await {
        Err(AcceptError::IdempotencyConflict { message_id }) => assert_eq!(message_id, first.id),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let d = w.dispatcher(SimConfig::default(), vec![]);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(w.phone("+33612345678").await, ["Commande 42 expédiée"]);
}

async fn a_marketing_message_without_consent_is_rejected_with_its_reason(w: &World) {
    let ok = w
        .send(
            json!({"to": "+33612345678", "purpose": "marketing", "content": {"text": "Soldes !"}}),
        )
        .await
        .unwrap();
    assert_eq!(ok.status, MessageStatus::Rejected);
    let m = w.message(&ok.id).await;
    assert_eq!(statuses(&m), ["accepted", "rejected"]);
    assert_eq!(m.events[1].reason.as_deref(), Some("no_opt_in"));
    let d = w.dispatcher(SimConfig::default(), vec![]);
    assert_eq!(d.run_until_idle(5).await.unwrap().claimed, 0);
    assert!(w.phone("+33612345678").await.is_empty());
}

async fn templates_use_contact_attributes_and_name_missing_variables(w: &World) {
    w.store
        .create_contact(
            &w.tenant,
            &relais_store::NewContact {
                attributes: serde_json::from_value(json!({"first_name": "Camille"})).unwrap(),
                identities: vec![relais_core::contact::Identity {
                    channel: ChannelKind::Sms,
                    address: "+33612345678".into(),
                }],
                ..Default::default()
            },
            start(),
        )
        .await
        .unwrap();
    let ok = w
        .send(json!({"to": "+33612345678", "template": "Bonjour {{ first_name }}, RDV à {{ hour }}", "variables": {"hour": "14h"}}))
        .await
        .unwrap();
    w.dispatcher(SimConfig::default(), vec![])
        .run_once()
        .await
        .unwrap();
    assert_eq!(
        w.phone("+33612345678").await,
        ["Bonjour Camille, RDV à 14h"]
    );
    assert_eq!(w.message(&ok.id).await.message.status, MessageStatus::Sent);
    match w
        .send(json!({"to": "+33612345678", "template": "Bonjour {{ last_name }}"}))
        .await
    {
        Err(AcceptError::Invalid { pointer, detail }) => {
            assert_eq!(pointer, "/template");
            assert!(
                detail.contains("last_name") && detail.contains("line 1"),
                "{detail}"
            );
        }
        other => panic!("expected a template error, got {other:?}"),
    }
}

async fn a_scheduled_message_waits_for_send_at_and_can_be_canceled(w: &World) {
    let at = start().checked_add(SignedDuration::from_hours(1)).unwrap();
    let later = w
        .send(
            json!({"to": "+33612345678", "content": {"text": "Rappel"}, "send_at": at.to_string()}),
        )
        .await
        .unwrap();
    let canceled = w
        .send(
            json!({"to": "+33612345679", "content": {"text": "Annulé"}, "send_at": at.to_string()}),
        )
        .await
        .unwrap();
    assert_eq!(later.status, MessageStatus::Scheduled);
    let d = w.dispatcher(SimConfig::default(), vec![]);
    assert_eq!(d.run_once().await.unwrap().claimed, 0);
    assert_eq!(
        w.store
            .cancel(&w.tenant, &canceled.id, w.clock.now())
            .await
            .unwrap(),
        relais_store::CancelOutcome::Canceled
    );
    w.advance(3599);
    assert_eq!(d.run_once().await.unwrap().claimed, 0);
    w.advance(1);
    assert_eq!(d.run_once().await.unwrap().sent, 1);
    assert_eq!(w.phone("+33612345678").await, ["Rappel"]);
    assert!(w.phone("+33612345679").await.is_empty());
    assert_eq!(
        w.message(&canceled.id).await.message.status,
        MessageStatus::Canceled
    );
    // Too late to cancel a sent message.
    assert_eq!(
        w.store
            .cancel(&w.tenant, &later.id, w.clock.now())
            .await
            .unwrap(),
        relais_store::CancelOutcome::TooLate(MessageStatus::Sent)
    );
}

async fn a_message_past_its_validity_expires_unsent(w: &World) {
    let at = start().checked_add(SignedDuration::from_mins(30)).unwrap();
    let ok = w
        .send(json!({"to": "+33612345678", "content": {"text": "Code 1234"}, "validity": "10m", "send_at": at.to_string()}))
        .await
        .unwrap();
    w.advance(30 * 60);
    let d = w.dispatcher(SimConfig::default(), vec![]);
    assert_eq!(d.run_once().await.unwrap().expired, 1);
    let m = w.message(&ok.id).await;
    assert_eq!(m.message.status, MessageStatus::Expired);
    assert_eq!(m.events.last().unwrap().reason.as_deref(), Some("validity"));
    assert!(w.phone("+33612345678").await.is_empty());
}

async fn french_marketing_on_a_sunday_waits_for_monday_8am_paris(w: &World) {
    // Sunday 22 November 2026, 15:00 in Paris (UTC+1).
    w.clock.set("2026-11-22T14:00:00Z".parse().unwrap());
    let contact = w
        .store
        .create_contact(
            &w.tenant,
            &relais_store::NewContact {
                identities: vec![relais_core::contact::Identity {
                    channel: ChannelKind::Sms,
                    address: "+33612345678".into(),
                }],
                ..Default::default()
            },
            start(),
        )
        .await
        .unwrap();
    w.store
        .append_consent(
            &w.tenant,
            &ConsentRecord {
                id: relais_core::ids::new_id(),
                contact_id: contact.id.clone(),
                channel: None,
                purpose: Purpose::Marketing,
                status: ConsentStatus::OptedIn,
                source: ConsentSource::Api,
                proof: Some("checkbox".into()),
                recorded_at: start(),
            },
        )
        .await
        .unwrap();
    let ok = w
        .send(json!({"to": "+33612345678", "purpose": "marketing", "content": {"text": "-20% ce lundi"}}))
        .await
        .unwrap();
    assert_eq!(ok.status, MessageStatus::Scheduled);
    let m = w.message(&ok.id).await;
    assert_eq!(
        m.events.last().unwrap().reason.as_deref(),
        Some("quiet_hours")
    );
    let d = w.dispatcher(SimConfig::default(), vec![]);
    w.clock.set("2026-11-23T06:59:59Z".parse().unwrap());
    assert_eq!(
        d.run_once().await.unwrap().claimed,
        0,
        "still quiet at 07:59:59 Paris"
    );
    w.clock.set("2026-11-23T07:00:00Z".parse().unwrap());
    assert_eq!(d.run_once().await.unwrap().sent, 1, "sent at 08:00 Paris");
    assert_eq!(w.phone("+33612345678").await, ["-20% ce lundi"]);
}

async fn a_transient_error_is_retried_then_succeeds(w: &World) {
    let sms = Scripted::new(
        ChannelKind::Sms,
        vec![Err(SendError::transient("throttled", "provider said 429"))],
    );
    let ok = w
        .send(json!({"to": "+33612345678", "channel": "sms", "content": {"text": "Bonjour"}}))
        .await
        .unwrap();
    let d = w.dispatcher(SimConfig::default(), vec![sms.clone()]);
    assert_eq!(d.run_once().await.unwrap().retried, 1);
    let m = w.message(&ok.id).await;
    assert_eq!(m.message.status, MessageStatus::Sending);
    assert_eq!(
        m.events.last().unwrap().reason.as_deref(),
        Some("throttled")
    );
    // The first retry comes within the base delay (2 s) of the default policy.
    w.advance(2);
    assert_eq!(d.run_once().await.unwrap().sent, 1);
    assert_eq!(sms.calls(), 2);
    let m = w.message(&ok.id).await;
    assert_eq!(m.message.status, MessageStatus::Sent);
    assert_eq!(m.message.provider_id.as_deref(), Some("prov-2"));
    assert_eq!(m.events.last().unwrap().attempt, Some(2));
    w.advance(3600);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(
        sms.calls(),
        2,
        "an acknowledged message is never sent again"
    );
}

async fn a_permanent_error_fails_at_once(w: &World) {
    let sms = Scripted::new(
        ChannelKind::Sms,
        vec![Err(SendError::permanent(
            "invalid_number",
            "unknown subscriber",
        ))],
    );
    let ok = w
        .send(json!({"to": "+33612345678", "channel": "sms", "content": {"text": "Bonjour"}}))
        .await
        .unwrap();
    let d = w.dispatcher(SimConfig::default(), vec![sms.clone()]);
    assert_eq!(d.run_once().await.unwrap().failed, 1);
    w.advance(3600);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(sms.calls(), 1);
    let m = w.message(&ok.id).await;
    assert_eq!(m.message.status, MessageStatus::Failed);
    let last = m.events.last().unwrap();
    assert_eq!(last.reason.as_deref(), Some("invalid_number"));
    assert_eq!(last.channel.as_deref(), Some("sms"));
}

async fn a_failed_channel_falls_back_to_the_next_one(w: &World) {
    let whatsapp = Scripted::new(
        ChannelKind::Whatsapp,
        vec![Err(SendError::permanent(
            "not_on_whatsapp",
            "no WhatsApp account",
        ))],
    );
    // The customer wrote on WhatsApp a moment ago: its window is open.
    w.customer_wrote_on_whatsapp("+33612345678").await;
    let ok = w
        .send(json!({"to": "+33612345678", "channels": ["whatsapp", "sim"], "content": {"text": "Votre colis arrive"}}))
        .await
        .unwrap();
    let d = w.dispatcher(SimConfig::default(), vec![whatsapp.clone()]);
    let report = d.run_until_idle(5).await.unwrap();
    assert_eq!(report.fallbacks, 1);
    assert_eq!(whatsapp.calls(), 1);
    assert_eq!(w.phone("+33612345678").await, ["Votre colis arrive"]);
    let m = w.message(&ok.id).await;
    assert_eq!(m.message.channel, "sim");
    assert_eq!(m.message.status, MessageStatus::Sent);
    let failed = m
        .events
        .iter()
        .find(|e| e.status == MessageStatus::Failed)
        .unwrap();
    assert_eq!(failed.channel.as_deref(), Some("whatsapp"));
    assert_eq!(failed.reason.as_deref(), Some("not_on_whatsapp"));
}

async fn an_undelivered_step_falls_back_after_its_wait(w: &World) {
    let sms = Scripted::new(ChannelKind::Sms, vec![]);
    let ok = w
        .send(json!({"to": "+33612345678", "channels": ["sim", {"channel": "sms", "after": "not_delivered", "within": "10m"}], "content": {"text": "Alerte"}}))
        .await
        .unwrap();
    // The simulated phone is off: no receipt ever comes.
    let silent = SimConfig {
        delivered_after: None,
        read_after: None,
    };
    let d = w.dispatcher(silent, vec![sms.clone()]);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(sms.calls(), 0);
    w.advance(9 * 60);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(sms.calls(), 0, "still within the wait");
    w.advance(60);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(sms.calls(), 1);
    assert_eq!(w.message(&ok.id).await.message.channel, "sms");
}

async fn a_delivered_but_unread_step_falls_back_after_its_wait(w: &World) {
    let sms = Scripted::new(ChannelKind::Sms, vec![]);
    let ok = w
        .send(json!({"to": "+33612345678", "channels": ["sim", {"channel": "sms", "after": "not_read", "within": "10m"}], "content": {"text": "Alerte"}}))
        .await
        .unwrap();
    // The phone receives it at once, and nobody reads it.
    let unread = SimConfig {
        delivered_after: Some(SignedDuration::ZERO),
        read_after: None,
    };
    let d = w.dispatcher(unread, vec![sms.clone()]);
    d.run_until_idle(5).await.unwrap();
    w.advance(1);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(
        w.message(&ok.id).await.message.status,
        MessageStatus::Delivered
    );
    w.advance(9 * 60);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(sms.calls(), 0, "still within the wait");
    w.advance(60);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(sms.calls(), 1, "delivered is not read: the chain moves on");
    assert_eq!(w.message(&ok.id).await.message.channel, "sms");
}

async fn whatsapp_without_a_delivery_in_time_falls_back_to_sms(w: &World) {
    // Meta takes the message, and no `delivered` status ever comes.
    let whatsapp = Scripted::new(ChannelKind::Whatsapp, vec![]);
    let sms = Scripted::new(ChannelKind::Sms, vec![]);
    // The customer wrote on WhatsApp a moment ago: its window is open.
    w.customer_wrote_on_whatsapp("+33612345678").await;
    let ok = w
        .send(json!({"to": "+33612345678", "channels": ["whatsapp", {"channel": "sms", "after": "not_delivered", "within": "5m"}], "content": {"text": "Votre code : 482913"}}))
        .await
        .unwrap();
    let d = w.dispatcher(SimConfig::default(), vec![whatsapp.clone(), sms.clone()]);
    d.run_until_idle(5).await.unwrap();
    assert_eq!((whatsapp.calls(), sms.calls()), (1, 0));
    w.advance(4 * 60 + 59);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(sms.calls(), 0, "still within the wait");
    w.advance(1);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(sms.calls(), 1);
    let m = w.message(&ok.id).await;
    assert_eq!(m.message.channel, "sms");
    let timeout = m
        .events
        .iter()
        .find(|e| e.reason.as_deref() == Some("fallback_timeout"))
        .expect("the wait that ran out is in the message's events");
    assert_eq!(timeout.channel.as_deref(), Some("whatsapp"));
    assert_eq!(timeout.detail.as_deref(), Some("not delivered within 5m"));
}

async fn a_whatsapp_window_that_closed_while_an_earlier_step_waited_is_skipped(w: &World) {
    // The customer wrote on WhatsApp 23 h 50 ago: open at accept, closed 10 minutes later.
    w.customer_wrote_on_whatsapp("+33612345678").await;
    w.advance(23 * 3600 + 50 * 60);
    let whatsapp = Scripted::new(ChannelKind::Whatsapp, vec![]);
    let sms = Scripted::new(ChannelKind::Sms, vec![]);
    let ok = w
        .send(json!({"to": "+33612345678", "channels": ["sim",
            {"channel": "whatsapp", "after": "not_delivered", "within": "15m"},
            {"channel": "sms", "after": "not_delivered", "within": "15m"}],
            "content": {"text": "Votre colis arrive"}}))
        .await
        .unwrap();
    // The simulated phone is off: no receipt ever comes.
    let silent = SimConfig {
        delivered_after: None,
        read_after: None,
    };
    let d = w.dispatcher(silent, vec![whatsapp.clone(), sms.clone()]);
    d.run_until_idle(5).await.unwrap();
    w.advance(15 * 60);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(whatsapp.calls(), 0, "the window closed meanwhile");
    assert_eq!(sms.calls(), 1, "the next step is tried");
    let m = w.message(&ok.id).await;
    assert_eq!(m.message.channel, "sms");
    let skipped = m
        .events
        .iter()
        .find(|e| e.reason.as_deref() == Some("window_closed"))
        .expect("the skip is in the message's events");
    assert_eq!(skipped.channel.as_deref(), Some("whatsapp"));
    assert!(
        skipped
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("closed")
    );
}

async fn receipts_only_move_status_forward(w: &World) {
    let ok = w
        .send(json!({"to": "+33612345678", "content": {"text": "Bonjour"}}))
        .await
        .unwrap();
    let sim = SimConfig {
        delivered_after: Some(SignedDuration::from_secs(5)),
        read_after: Some(SignedDuration::from_secs(2)),
    };
    let d = w.dispatcher(sim, vec![]);
    d.run_once().await.unwrap();
    // `read` arrives before `delivered`; the late `delivered` is ignored.
    w.advance(3);
    d.run_once().await.unwrap();
    assert_eq!(w.message(&ok.id).await.message.status, MessageStatus::Read);
    w.advance(3);
    d.run_once().await.unwrap();
    let m = w.message(&ok.id).await;
    assert_eq!(m.message.status, MessageStatus::Read);
    assert_eq!(
        statuses(&m),
        ["accepted", "queued", "sending", "sent", "read"]
    );
    let late = MessageEvent::new(MessageStatus::Sent, w.clock.now());
    assert_eq!(w.store.record_status(&ok.id, &late).await.unwrap(), None);
    // A provider's late `undelivered` receipt, found by its id, changes nothing either.
    let provider_id = w.message(&ok.id).await.message.provider_id.unwrap();
    let undelivered = relais_engine::dispatch::apply_provider_receipt(
        &*w.store,
        ChannelKind::Sim,
        &provider_id,
        MessageStatus::Undelivered,
        w.clock.now(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(undelivered, None);
    assert_eq!(w.message(&ok.id).await.message.status, MessageStatus::Read);
}

async fn the_rate_limit_spreads_sends_over_time(w: &World) {
    for n in 0..3 {
        w.send(json!({"to": format!("+3361234567{n}"), "content": {"text": "Hi"}}))
            .await
            .unwrap();
    }
    let config = DispatcherConfig {
        lease_owner: "test".into(),
        default_rate: 1.0,
        ..Default::default()
    };
    let d = Dispatcher::new(w.store.clone(), w.clock.clone(), config).with_adapter(Arc::new(
        relais_engine::sim::adapter(w.store.clone(), SimConfig::default()),
    ));
    // Only what the bucket allows is claimed: the other two wait in the outbox, neither
    // claimed nor rescheduled.
    let first = d.run_once().await.unwrap();
    assert_eq!((first.claimed, first.sent, first.throttled), (1, 1, 0));
    w.advance(1);
    assert_eq!(d.run_once().await.unwrap().sent, 1);
    w.advance(1);
    assert_eq!(d.run_once().await.unwrap().sent, 1);
}

async fn each_sender_is_paced_at_its_own_rate(w: &World) {
    // Three messages from each of two senders, one without a sender; the channel itself
    // is not limiting.
    let mut ids: HashMap<&str, Vec<String>> = HashMap::new();
    for n in 0..3 {
        for from in ["MyShop", "Promo"] {
            let accepted = w
                .send(json!({"to": format!("+3361234560{n}"), "from": from, "content": {"text": "Hi"}}))
                .await
                .unwrap();
            ids.entry(from).or_default().push(accepted.id);
        }
    }
    let unpaced = w
        .send(json!({"to": "+33612345699", "content": {"text": "Hi"}}))
        .await
        .unwrap();
    let config = DispatcherConfig {
        lease_owner: "test".into(),
        default_rate: 1000.0,
        sender_rate: Some(1.0),
        sender_rates: HashMap::from([("Promo".to_owned(), 2.0)]),
        ..Default::default()
    };
    let d = Dispatcher::new(w.store.clone(), w.clock.clone(), config).with_adapter(Arc::new(
        relais_engine::sim::adapter(w.store.clone(), SimConfig::default()),
    ));
    let sent_of = |from: &'static str| {
        let ids = ids[from].clone();
        async move {
            let mut n = 0;
            for id in &ids {
                let status = w.message(id).await.message.status;
                if matches!(
                    status,
                    MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read
                ) {
                    n += 1;
                }
            }
            n
        }
    };
    // MyShop has 1 token, Promo its override of 2; the message without a sender goes.
    let first = d.run_once().await.unwrap();
    assert_eq!((first.sent, first.throttled), (4, 3));
    assert_eq!(sent_of("MyShop").await, 1);
    assert_eq!(sent_of("Promo").await, 2);
    assert_eq!(
        w.message(&unpaced.id).await.message.status,
        MessageStatus::Sent
    );
    // The throttled wait in the outbox, and go when their sender's next token comes.
    w.advance(1);
    let second = d.run_once().await.unwrap();
    assert_eq!(second.sent, 2);
    assert_eq!(sent_of("MyShop").await, 2);
    assert_eq!(sent_of("Promo").await, 3);
    w.advance(1);
    d.run_once().await.unwrap();
    assert_eq!(sent_of("MyShop").await, 3);
    let message = w.message(&ids["MyShop"][2]).await;
    assert_eq!(message.message.sender.as_deref(), Some("MyShop"));
}

async fn a_bad_sender_is_refused_and_a_good_one_reaches_the_channel(w: &World) {
    for (from, says) in [
        ("MyShopIsTooLong", "at most 11 characters"),
        ("Café", "letters, digits"),
        ("12", "3 to 15 digits"),
    ] {
        let e = w
            .send(json!({"to": "+33612345678", "from": from, "content": {"text": "Hi"}}))
            .await
            .unwrap_err();
        match e {
            AcceptError::Invalid { pointer, detail } => {
                assert_eq!(pointer, "/from");
                assert!(detail.contains(says), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }
    let scripted = Scripted::new(ChannelKind::Sim, vec![]);
    let accepted = w
        .send(json!({"to": "+33612345678", "from": " 38200 ", "content": {"text": "Hi"}}))
        .await
        .unwrap();
    let d = Dispatcher::new(
        w.store.clone(),
        w.clock.clone(),
        DispatcherConfig::default(),
    )
    .with_adapter(scripted.clone());
    d.run_once().await.unwrap();
    let got = scripted.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "only the valid message was stored");
    assert_eq!(got[0].message_id, accepted.id);
    assert_eq!(got[0].from.as_deref(), Some("38200"));
}

async fn a_large_batch_is_stored_and_dispatched(w: &World) {
    let requests: Vec<Value> = (0..3_000)
        .map(|n| json!({"to": format!("+336{:08}", 10_000_000 + n), "content": {"text": "Flash info {{ n }}"}, "variables": {"n": n}}))
        .collect();
    let started = std::time::Instant::now();
    let requests = requests
        .iter()
        .map(|r| serde_json::value::to_raw_value(r).unwrap())
        .collect();
    let items = relais_engine::send::accept_batch(w.ctx(), &w.tenant, requests)
        .await
        .unwrap();
    eprintln!("accepted 3,000 in {:?}", started.elapsed());
    assert_eq!(items.len(), 3_000);
    assert!(
        items
            .iter()
            .all(|i| matches!(i, relais_engine::send::BatchItem::Accepted(_)))
    );
    let config = DispatcherConfig {
        lease_owner: "test".into(),
        batch: 1000,
        default_rate: 100_000.0,
        ..Default::default()
    };
    let d = Dispatcher::new(w.store.clone(), w.clock.clone(), config).with_adapter(Arc::new(
        relais_engine::sim::adapter(w.store.clone(), SimConfig::default()),
    ));
    let started = std::time::Instant::now();
    let report = d.run_until_idle(20).await.unwrap();
    eprintln!("dispatched 3,000 in {:?}", started.elapsed());
    assert_eq!(report.sent, 3_000);
    assert_eq!(w.phone("+33610002999").await, ["Flash info 2999"]);
}

/// Headers and body of one webhook post.
type Post = (Vec<(String, String)>, String);

/// Records webhook posts and answers with scripted status codes (then 200).
struct Receiver {
    codes: Mutex<VecDeque<u16>>,
    got: Mutex<Vec<Post>>,
}

#[async_trait]
impl relais_engine::webhooks::WebhookPoster for Receiver {
    async fn post(&self, url: &str, headers: &[(&str, String)], body: &str) -> Result<u16, String> {
        assert_eq!(url, "https://example.com/hooks");
        self.got.lock().unwrap().push((
            headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            body.to_owned(),
        ));
        Ok(self.codes.lock().unwrap().pop_front().unwrap_or(200))
    }
}

async fn status_changes_reach_webhooks_signed_and_retried(w: &World) {
    use relais_engine::webhooks::{generate_secret, sign};
    let secret = generate_secret();
    let hook = w
        .store
        .create_webhook(&w.tenant, "https://example.com/hooks", &secret, start())
        .await
        .unwrap();
    let receiver = Arc::new(Receiver {
        codes: Mutex::new(VecDeque::from([503])),
        got: Mutex::new(Vec::new()),
    });
    let silent = SimConfig {
        delivered_after: None,
        read_after: None,
    };
    let d = w.dispatcher(silent, vec![]).with_webhooks(receiver.clone());
    let ok = w
        .send(json!({"to": "+33612345678", "content": {"text": "Bonjour"}}))
        .await
        .unwrap();
    let report = d.run_once().await.unwrap();
    assert_eq!(report.webhooks, 2, "`sending` and `sent`");
    let got = receiver.got.lock().unwrap().clone();
    let header = |h: &[(String, String)], name: &str| {
        h.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    for (headers, body) in &got {
        let id = header(headers, "webhook-id");
        let ts: i64 = header(headers, "webhook-timestamp").parse().unwrap();
        assert_eq!(ts, w.clock.now().as_second());
        assert_eq!(
            header(headers, "webhook-signature"),
            sign(&secret, &id, ts, body).unwrap()
        );
        let event: Value = serde_json::from_str(body).unwrap();
        assert_eq!(event["data"]["id"], ok.id.as_str());
    }
    let first: Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(first["data"]["status"], "sending");
    // The first answer was 503: it comes again (within the first backoff, 5 s), with the
    // same webhook-id.
    w.advance(5);
    assert_eq!(d.run_once().await.unwrap().webhooks, 1);
    let got = receiver.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    assert_eq!(
        header(&got[2].0, "webhook-id"),
        header(&got[0].0, "webhook-id")
    );
    let log = w
        .store
        .webhook_deliveries(&w.tenant, &hook.id)
        .await
        .unwrap();
    let states: Vec<(&str, i64)> = log
        .iter()
        .map(|d| (d.status.as_str(), d.attempts))
        .collect();
    assert_eq!(states, [("delivered", 2), ("delivered", 1)]);
    assert_eq!(log[0].last_code, Some(200));
}

async fn a_receiver_that_stays_down_is_retried_for_a_day_then_given_up(w: &World) {
    let secret = relais_engine::webhooks::generate_secret();
    let hook = w
        .store
        .create_webhook(&w.tenant, "https://example.com/hooks", &secret, start())
        .await
        .unwrap();
    let receiver = Arc::new(Receiver {
        codes: Mutex::new(VecDeque::from(vec![503; 100_000])),
        got: Mutex::new(Vec::new()),
    });
    let silent = SimConfig {
        delivered_after: None,
        read_after: None,
    };
    let d = w.dispatcher(silent, vec![]).with_webhooks(receiver.clone());
    w.send(json!({"to": "+33612345678", "content": {"text": "Bonjour"}}))
        .await
        .unwrap();
    d.run_once().await.unwrap();
    let first_attempt = w.clock.now();
    let mut last_attempt = first_attempt;
    // Jump from one due retry to the next until nothing is pending any more.
    for _ in 0..10_000 {
        let log = w
            .store
            .webhook_deliveries(&w.tenant, &hook.id)
            .await
            .unwrap();
        let Some(next) = log
            .iter()
            .filter(|x| x.status == "pending")
            .map(|x| x.due_at)
            .min()
        else {
            break;
        };
        // While the endpoint's circuit is open, only its next probe goes.
        let hooks = w.store.webhooks(&w.tenant).await.unwrap();
        let next = hooks[0]
            .circuit
            .retry_at
            .map_or(next, |probe| probe.max(next));
        w.clock.set(next);
        if d.run_once().await.unwrap().webhooks > 0 {
            last_attempt = next;
        }
    }
    let log = w
        .store
        .webhook_deliveries(&w.tenant, &hook.id)
        .await
        .unwrap();
    assert_eq!(log.len(), 2, "`sending` and `sent`");
    for delivery in &log {
        assert_eq!(delivery.status, "failed", "{delivery:?}");
        assert_eq!(delivery.last_code, Some(503));
        assert!(
            delivery.attempts > 20,
            "backs off, but keeps trying: {delivery:?}"
        );
    }
    let span = last_attempt.duration_since(first_attempt);
    assert!(
        span >= SignedDuration::from_hours(23) && span <= SignedDuration::from_hours(24),
        "the last retry comes within the last hour of the day: {span:#}"
    );
}

/// The endpoint that refuses connections, until told otherwise.
const DEAD: &str = "https://dead.example.com/hooks";
/// The endpoint that answers 200.
const ALIVE: &str = "https://alive.example.com/hooks";

/// Answers posts to [`ALIVE`] with 200 and those to [`DEAD`] with `dead` (a refused
/// connection at first); counts the posts to each.
struct TwoEndpoints {
    dead: Mutex<Result<u16, String>>,
    to_dead: AtomicUsize,
    to_alive: AtomicUsize,
}

impl TwoEndpoints {
    fn new() -> Arc<Self> {
        Arc::new(TwoEndpoints {
            dead: Mutex::new(Err("connection refused".into())),
            to_dead: AtomicUsize::new(0),
            to_alive: AtomicUsize::new(0),
        })
    }
    fn answer_dead_with(&self, answer: Result<u16, String>) {
        *self.dead.lock().unwrap() = answer;
    }
    fn to_dead(&self) -> usize {
        self.to_dead.load(Ordering::SeqCst)
    }
    fn to_alive(&self) -> usize {
        self.to_alive.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl relais_engine::webhooks::WebhookPoster for TwoEndpoints {
    async fn post(&self, url: &str, _: &[(&str, String)], _: &str) -> Result<u16, String> {
        if url == DEAD {
            self.to_dead.fetch_add(1, Ordering::SeqCst);
            self.dead.lock().unwrap().clone()
        } else {
            assert_eq!(url, ALIVE);
            self.to_alive.fetch_add(1, Ordering::SeqCst);
            Ok(200)
        }
    }
}

impl World {
    /// The tenant's two webhooks, [`DEAD`] then [`ALIVE`], and a worker delivering to them
    /// through `endpoints`.
    async fn two_webhooks(
        &self,
        endpoints: &Arc<TwoEndpoints>,
    ) -> (relais_store::Webhook, relais_store::Webhook, WebhookWorker) {
        let secret = relais_engine::webhooks::generate_secret();
        let mut hooks = Vec::new();
        for url in [DEAD, ALIVE] {
            hooks.push(
                self.store
                    .create_webhook(&self.tenant, url, &secret, start())
                    .await
                    .unwrap(),
            );
        }
        let worker = WebhookWorker::new(
            self.store.clone(),
            self.clock.clone(),
            endpoints.clone(),
            relais_core::retry::RetryPolicy::WEBHOOKS,
            "test".into(),
        );
        let alive = hooks.pop().unwrap();
        (hooks.pop().unwrap(), alive, worker)
    }

    /// Sends `n` messages through a dispatcher without webhooks: each queues two events
    /// (`sending`, `sent`) for every webhook of the tenant.
    async fn queue_events(&self, n: usize) {
        for i in 0..n {
            self.send(json!({"to": format!("+3361100{i:04}"), "content": {"text": "Bonjour"}}))
                .await
                .unwrap();
        }
        let silent = SimConfig {
            delivered_after: None,
            read_after: None,
        };
        // Not paced: all of them are sent now.
        let config = DispatcherConfig {
            lease_owner: "test".into(),
            default_rate: 1e6,
            ..Default::default()
        };
        let report = Dispatcher::new(self.store.clone(), self.clock.clone(), config)
            .with_adapter(Arc::new(relais_engine::sim::adapter(
                self.store.clone(),
                silent,
            )))
            .run_until_idle(1_000)
            .await
            .unwrap();
        assert_eq!(report.sent, n);
    }

    async fn deliveries(&self, hook: &relais_store::Webhook) -> Vec<relais_store::WebhookDelivery> {
        self.store
            .webhook_deliveries(&self.tenant, &hook.id)
            .await
            .unwrap()
    }
}

async fn a_dead_endpoint_gets_a_few_probes_not_an_attempt_per_delivery(w: &World) {
    let endpoints = TwoEndpoints::new();
    let (dead, alive, worker) = w.two_webhooks(&endpoints).await;
    w.queue_events(250).await;
    let mut events = 500;
    // Two hours, a round every 10 seconds, a new message every 10 minutes.
    for round in 0..720 {
        if round % 60 == 59 {
            w.queue_events(1).await;
            events += 2;
        }
        worker.run_once().await.unwrap();
        if round >= 10 {
            assert_eq!(
                endpoints.to_alive(),
                events,
                "the live endpoint is not held back (round {round})"
            );
        }
        w.advance(10);
    }
    // 5 failures open the circuit; then one probe per open period: 30 s, doubling up to
    // 10 minutes (less jitter), so at most 20 in two hours.
    let attempts = endpoints.to_dead();
    assert!(
        (5 + 10..=5 + 20).contains(&attempts),
        "{attempts} attempts for {events} events to a dead endpoint"
    );
    eprintln!("{attempts} attempts to a dead endpoint in two hours, for {events} events");
    let log = w.deliveries(&dead).await;
    assert!(
        log.iter().all(|d| d.status == "pending"),
        "nothing given up yet"
    );
    let hooks = w.store.webhooks(&w.tenant).await.unwrap();
    let circuit = |id: &str| hooks.iter().find(|h| h.id == id).unwrap().circuit;
    let open = circuit(&dead.id);
    // The last round ran 10 s ago and left the circuit open; jitter may put the next
    // probe anywhere after that round, including before now.
    let last_round = w.clock.now() - SignedDuration::from_secs(10);
    assert!(open.retry_at.is_some_and(|at| at > last_round), "{open:?}");
    assert_eq!(open.failing_since, Some(start()));
    assert_eq!(circuit(&alive.id), Circuit::default());
    // It comes back: the next probe closes the circuit and every event follows at once.
    endpoints.answer_dead_with(Ok(200));
    for _ in 0..70 {
        worker.run_once().await.unwrap();
        w.advance(10);
    }
    assert_eq!(
        endpoints.to_dead(),
        attempts + events,
        "each event reached it once"
    );
    assert!(
        w.deliveries(&dead)
            .await
            .iter()
            .all(|d| d.status == "delivered")
    );
    let hooks = w.store.webhooks(&w.tenant).await.unwrap();
    assert!(hooks.iter().all(|h| h.circuit == Circuit::default()));
}

async fn deliveries_an_unreachable_endpoint_never_took_expire_after_a_day(w: &World) {
    let endpoints = TwoEndpoints::new();
    let (dead, alive, worker) = w.two_webhooks(&endpoints).await;
    w.queue_events(250).await;
    // A day and twenty minutes, a round every ten minutes: each round, one probe.
    let mut expired = 0;
    for _ in 0..24 * 6 + 2 {
        expired += worker.run_once().await.unwrap().expired;
        w.advance(600);
    }
    let probes = endpoints.to_dead();
    assert!(probes <= 5 + 24 * 6 + 2, "{probes} attempts");
    assert!(expired >= 500 - 150, "{expired} expired");
    let lease = SignedDuration::from_secs(60);
    let later = w.clock.now() + SignedDuration::from_hours(1);
    assert!(
        w.store
            .claim_webhook_deliveries(later, 1_000, "other", lease)
            .await
            .unwrap()
            .is_empty(),
        "nothing left pending"
    );
    let log = w.deliveries(&dead).await;
    assert!(log.iter().all(|d| d.status == "failed"), "{log:#?}");
    let never_tried: Vec<_> = log.iter().filter(|d| d.attempts == 0).collect();
    assert!(!never_tried.is_empty());
    for d in never_tried {
        let error = d.last_error.as_deref().unwrap_or_default();
        assert!(
            error.starts_with("expired") && error.contains("unreachable"),
            "{error}"
        );
    }
    assert_eq!(endpoints.to_alive(), 500);
    assert!(
        w.deliveries(&alive)
            .await
            .iter()
            .all(|d| d.status == "delivered")
    );
}

async fn refusals_of_single_events_do_not_hold_the_endpoint_back(w: &World) {
    let endpoints = TwoEndpoints::new();
    let (refusing, _, worker) = w.two_webhooks(&endpoints).await;
    endpoints.answer_dead_with(Ok(400));
    w.queue_events(10).await;
    worker.run_once().await.unwrap();
    assert_eq!(endpoints.to_dead(), 20, "every event was offered");
    let log = w.deliveries(&refusing).await;
    assert!(
        log.iter()
            .all(|d| (d.status.as_str(), d.attempts, d.last_code) == ("failed", 1, Some(400)))
    );
    let hooks = w.store.webhooks(&w.tenant).await.unwrap();
    assert!(hooks.iter().all(|h| h.circuit == Circuit::default()));
    // "Too many requests" is another matter: the endpoint asks to be left alone, and is.
    endpoints.answer_dead_with(Ok(429));
    w.queue_events(10).await;
    worker.run_once().await.unwrap();
    assert_eq!(endpoints.to_dead(), 20 + 5);
    let hooks = w.store.webhooks(&w.tenant).await.unwrap();
    let circuit = hooks.iter().find(|h| h.id == refusing.id).unwrap().circuit;
    assert!(!circuit.is_closed(), "{circuit:?}");
}

async fn the_delivery_log_keeps_finished_deliveries_for_its_retention(w: &World) {
    let endpoints = TwoEndpoints::new();
    let (dead, alive, worker) = w.two_webhooks(&endpoints).await;
    let worker = worker.with_log_retention(Some(SignedDuration::from_hours(24)));
    // Ten messages: 20 events each refused by one endpoint (failed) and taken by the other.
    endpoints.answer_dead_with(Ok(400));
    w.queue_events(10).await;
    assert_eq!(worker.run_once().await.unwrap().pruned, 0);
    // Half a day later, one more message, while the first endpoint is down: its two events
    // wait for a retry.
    w.advance(12 * 3600);
    endpoints.answer_dead_with(Err("connection refused".into()));
    w.queue_events(1).await;
    worker.run_once().await.unwrap();
    let statuses = |log: Vec<relais_store::WebhookDelivery>| {
        let mut s: Vec<String> = log.into_iter().map(|d| d.status).collect();
        s.sort();
        s
    };
    assert_eq!(w.deliveries(&dead).await.len(), 22);
    assert_eq!(w.deliveries(&alive).await.len(), 22);
    // Past a day from the first events: they go, delivered or failed; the newer stay, and
    // so do the pending ones.
    w.advance(13 * 3600);
    let round = worker.run_once().await.unwrap();
    assert_eq!(round.pruned, 40);
    assert_eq!(statuses(w.deliveries(&dead).await), ["pending", "pending"]);
    assert_eq!(
        statuses(w.deliveries(&alive).await),
        ["delivered", "delivered"]
    );
    // Without a retention, nothing is pruned, however old.
    w.advance(40 * 24 * 3600);
    let keeper = w.two_webhooks(&endpoints).await.2.with_log_retention(None);
    assert_eq!(keeper.run_once().await.unwrap().pruned, 0);
    assert_eq!(w.deliveries(&alive).await.len(), 2);
}

async fn an_undelivered_receipt_moves_the_message_to_the_next_channel(w: &World) {
    let sms = Scripted::new(ChannelKind::Sms, vec![]);
    let ok = w
        .send(json!({"to": "+33612345678", "channels": ["sms", "sim"], "content": {"text": "Votre RDV demain"}}))
        .await
        .unwrap();
    let d = w.dispatcher(SimConfig::default(), vec![sms.clone()]);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(sms.calls(), 1);
    assert_eq!(w.message(&ok.id).await.message.status, MessageStatus::Sent);
    // The SMSC reports the SMS undelivered: the chain moves on to the simulated phone.
    let receipt = |status| {
        relais_engine::dispatch::apply_provider_receipt(
            &*w.store,
            ChannelKind::Sms,
            "prov-1",
            status,
            w.clock.now(),
            Some("absent subscriber".into()),
        )
    };
    assert_eq!(receipt(MessageStatus::Undelivered).await.unwrap(), None);
    // The same receipt again finds no message on that step any more.
    assert_eq!(receipt(MessageStatus::Undelivered).await.unwrap(), None);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(w.phone("+33612345678").await, ["Votre RDV demain"]);
    w.advance(1);
    d.run_until_idle(5).await.unwrap();
    let m = w.message(&ok.id).await;
    assert_eq!(m.message.channel, "sim");
    assert_eq!(m.message.status, MessageStatus::Delivered);
    let undelivered: Vec<_> = m
        .events
        .iter()
        .filter(|e| e.status == MessageStatus::Undelivered)
        .collect();
    assert_eq!(undelivered.len(), 1);
    assert_eq!(undelivered[0].channel.as_deref(), Some("sms"));
    assert_eq!(sms.calls(), 1);
}

async fn a_fallback_skips_channels_without_consent(w: &World) {
    let contact = w
        .store
        .create_contact(
            &w.tenant,
            &relais_store::NewContact {
                identities: vec![relais_core::contact::Identity {
                    channel: ChannelKind::Sms,
                    address: "+33612345678".into(),
                }],
                ..Default::default()
            },
            start(),
        )
        .await
        .unwrap();
    // Marketing opt-ins on WhatsApp and on the sim channel, none on SMS.
    for channel in [ChannelKind::Whatsapp, ChannelKind::Sim] {
        w.store
            .append_consent(
                &w.tenant,
                &ConsentRecord {
                    id: relais_core::ids::new_id(),
                    contact_id: contact.id.clone(),
                    channel: Some(channel),
                    purpose: Purpose::Marketing,
                    status: ConsentStatus::OptedIn,
                    source: ConsentSource::Api,
                    proof: None,
                    recorded_at: start(),
                },
            )
            .await
            .unwrap();
    }
    let whatsapp = Scripted::new(
        ChannelKind::Whatsapp,
        vec![Err(SendError::permanent("not_on_whatsapp", "no account"))],
    );
    let sms = Scripted::new(ChannelKind::Sms, vec![]);
    // The customer wrote on WhatsApp a moment ago: its window is open.
    w.customer_wrote_on_whatsapp("+33612345678").await;
    let ok = w
        .send(json!({"to": "+33612345678", "purpose": "marketing", "channels": ["whatsapp", "sms", "sim"], "content": {"text": "Nouveautés"}}))
        .await
        .unwrap();
    let d = w.dispatcher(SimConfig::default(), vec![whatsapp.clone(), sms.clone()]);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(whatsapp.calls(), 1);
    assert_eq!(sms.calls(), 0, "no marketing SMS without an SMS opt-in");
    assert_eq!(w.phone("+33612345678").await, ["Nouveautés"]);
    let m = w.message(&ok.id).await;
    assert_eq!(m.message.channel, "sim");
    let skipped = m
        .events
        .iter()
        .find(|e| e.status == MessageStatus::Rejected)
        .unwrap();
    assert_eq!(skipped.channel.as_deref(), Some("sms"));
    assert_eq!(skipped.reason.as_deref(), Some("no_opt_in"));
}

impl World {
    /// Configures an SMPP channel of the tenant with these routing keys, sent through
    /// `adapter` by `registry` (no SMSC: the adapter stands for it); its id.
    async fn smpp_channel(
        &self,
        registry: &ChannelRegistry,
        name: &str,
        routing: Value,
        adapter: Arc<Scripted>,
    ) -> String {
        let mut config = json!({"host": "127.0.0.1", "system_id": "acme", "password": "secret"});
        for (key, value) in routing.as_object().unwrap() {
            config[key] = value.clone();
        }
        let record = self
            .store
            .create_channel(
                &relais_store::NewChannel {
                    tenant_id: self.tenant.clone(),
                    kind: "smpp".into(),
                    name: name.into(),
                    config,
                },
                self.clock.now(),
            )
            .await
            .unwrap();
        registry.insert(&record.id, adapter);
        record.id
    }
}

async fn a_kind_goes_to_the_channel_its_prefix_names_and_fails_over_when_it_cannot_send(w: &World) {
    let registry = ChannelRegistry::default();
    let preferred = Scripted::new(
        ChannelKind::Sms,
        vec![Err(SendError::transient("smpp_link", "connection reset"))],
    );
    let backup = Scripted::new(ChannelKind::Sms, vec![]);
    let first = w
        .smpp_channel(
            &registry,
            "preferred",
            json!({"prefixes": ["+336"]}),
            preferred.clone(),
        )
        .await;
    let second = w
        .smpp_channel(&registry, "backup", json!({}), backup.clone())
        .await;
    let ok = w
        .send(json!({"to": "+33612345678", "channel": "sms", "content": {"text": "Code 1234"}}))
        .await
        .unwrap();
    assert_eq!(
        w.message(&ok.id).await.message.channel,
        first,
        "the prefix wins"
    );
    let d = w
        .dispatcher(SimConfig::default(), vec![])
        .with_registry(registry);
    let report = d.run_until_idle(5).await.unwrap();
    assert_eq!(report.failovers, 1, "{report:?}");
    assert_eq!((preferred.calls(), backup.calls()), (1, 1));
    let m = w.message(&ok.id).await;
    assert_eq!(m.message.channel, second);
    assert_eq!(m.message.status, MessageStatus::Sent);
    let left = m
        .events
        .iter()
        .find(|e| e.reason.as_deref() == Some("smpp_link"))
        .expect("the failed attempt is logged");
    assert_eq!(left.channel.as_deref(), Some(first.as_str()));
    let hop = m
        .events
        .iter()
        .find(|e| e.reason.as_deref() == Some("failover"))
        .expect("the hop is logged");
    assert_eq!(hop.channel.as_deref(), Some(second.as_str()));

    // A channel without a live connection: its messages move without a call to it.
    preferred.ready.store(false, Ordering::Relaxed);
    let ok = w
        .send(json!({"to": "+33612345679", "channel": "sms", "content": {"text": "Code 5678"}}))
        .await
        .unwrap();
    d.run_until_idle(5).await.unwrap();
    assert_eq!((preferred.calls(), backup.calls()), (1, 2));
    let m = w.message(&ok.id).await;
    assert_eq!(m.message.channel, second);
    assert_eq!(m.message.status, MessageStatus::Sent);
    let left = m
        .events
        .iter()
        .find(|e| e.reason.as_deref() == Some("channel_unavailable"))
        .expect("why it left is logged");
    assert_eq!(left.channel.as_deref(), Some(first.as_str()));

    // With no other channel able to send, it waits for its own, no attempt spent.
    backup.ready.store(false, Ordering::Relaxed);
    let ok = w
        .send(json!({"to": "+33612345670", "channel": "sms", "content": {"text": "Code 9012"}}))
        .await
        .unwrap();
    d.run_until_idle(5).await.unwrap();
    let m = w.message(&ok.id).await;
    assert_eq!(m.message.channel, first);
    assert_eq!(m.message.status, MessageStatus::Queued);
    preferred.ready.store(true, Ordering::Relaxed);
    w.advance(3600);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(w.message(&ok.id).await.message.status, MessageStatus::Sent);
    assert_eq!(
        (preferred.calls(), backup.calls()),
        (2, 2),
        "each sent once"
    );
}

async fn a_fallback_step_naming_a_kind_is_routed_by_the_destination(w: &World) {
    let registry = ChannelRegistry::default();
    let whatsapp = Scripted::new(
        ChannelKind::Whatsapp,
        vec![Err(SendError::permanent("not_on_whatsapp", "no account"))],
    );
    let sevens = Scripted::new(ChannelKind::Sms, vec![]);
    let sixes = Scripted::new(ChannelKind::Sms, vec![]);
    w.smpp_channel(
        &registry,
        "sevens",
        json!({"prefixes": ["+337"]}),
        sevens.clone(),
    )
    .await;
    let six = w
        .smpp_channel(
            &registry,
            "sixes",
            json!({"prefixes": ["+336"]}),
            sixes.clone(),
        )
        .await;
    w.customer_wrote_on_whatsapp("+33612345678").await;
    let ok = w
        .send(json!({"to": "+33612345678", "channels": ["whatsapp", "sms"], "content": {"text": "Colis"}}))
        .await
        .unwrap();
    let d = w
        .dispatcher(SimConfig::default(), vec![whatsapp.clone()])
        .with_registry(registry);
    d.run_until_idle(5).await.unwrap();
    assert_eq!((whatsapp.calls(), sixes.calls(), sevens.calls()), (1, 1, 0));
    let m = w.message(&ok.id).await;
    assert_eq!(m.message.channel, six);
    assert_eq!(m.message.status, MessageStatus::Sent);
}

async fn business_initiated_templates_wait_for_a_place_under_the_messaging_limit(w: &World) {
    let template = |to: &str| {
        json!({"to": to, "channel": "whatsapp", "purpose": "transactional",
               "content": {"template": "order_shipped", "language": "fr"}})
    };
    let first: Vec<String> = (1..=5).map(|n| format!("+3361234560{n}")).collect();
    let mut ids = Vec::new();
    for to in &first {
        ids.push(w.send(template(to)).await.unwrap().id);
    }
    let whatsapp = Scripted::limited(ChannelKind::Whatsapp, 3);
    let d = w.dispatcher(SimConfig::default(), vec![whatsapp.clone()]);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(whatsapp.calls(), 3, "three new customers fit the limit");
    let mut waiting = Vec::new();
    for id in &ids {
        let m = w.message(id).await;
        assert_ne!(m.message.status, MessageStatus::Failed);
        match m.message.status {
            MessageStatus::Sent => {}
            MessageStatus::Queued => {
                let why = m
                    .events
                    .iter()
                    .find(|e| e.reason.as_deref() == Some(MESSAGING_LIMIT))
                    .expect("the wait is in the message's events");
                assert!(
                    why.detail
                        .as_deref()
                        .unwrap_or_default()
                        .contains("3 of its 3"),
                    "{why:?}"
                );
                waiting.push(m.message.to_address.clone());
            }
            other => panic!("{id} is {other}"),
        }
    }
    assert_eq!(waiting.len(), 2, "two wait, none failed");
    let reached = whatsapp.recipients();
    // A customer already messaged in the last 24 h is not counted again: it goes at once.
    w.send(template(&reached[0])).await.unwrap();
    // So does a template to a customer inside their customer-service window.
    w.customer_wrote_on_whatsapp("+33612345699").await;
    w.send(template("+33612345699")).await.unwrap();
    d.run_until_idle(5).await.unwrap();
    assert_eq!(whatsapp.calls(), 5);
    assert_eq!(
        &whatsapp.recipients()[3..],
        [reached[0].clone(), "+33612345699".into()]
    );

    // A restart: a new dispatcher on the same store still counts the three.
    drop(d);
    let after = Scripted::limited(ChannelKind::Whatsapp, 3);
    let d = w.dispatcher(SimConfig::default(), vec![after.clone()]);
    let late = w.send(template("+33612345607")).await.unwrap();
    d.run_until_idle(5).await.unwrap();
    assert_eq!(after.calls(), 0, "the count survived the restart");
    assert_eq!(
        w.message(&late.id).await.message.status,
        MessageStatus::Queued
    );

    // A day later the three leave the window: the waiting ones go out.
    w.advance(24 * 3600 - 1);
    d.run_until_idle(5).await.unwrap();
    assert_eq!(after.calls(), 0, "not before the first place frees");
    w.advance(1);
    d.run_until_idle(5).await.unwrap();
    let mut sent = after.recipients();
    sent.sort();
    let mut expected = waiting.clone();
    expected.push("+33612345607".into());
    expected.sort();
    assert_eq!(sent, expected);
    for id in ids.iter().chain([&late.id]) {
        assert_eq!(
            w.message(id).await.message.status,
            MessageStatus::Sent,
            "{id}"
        );
    }
}
