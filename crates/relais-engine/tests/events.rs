//! The inbound pipeline on the live event stream: a customer's message is published once
//! it is stored and placed in its conversation, and once only, even when a crash makes the
//! pipeline run it again.

use jiff::{SignedDuration, Timestamp};
use relais_core::channel::ChannelKind;
use relais_core::clock::ManualClock;
use relais_core::contact::AddressRules;
use relais_engine::events::{Delivery, EventKind, Events};
use relais_engine::inbound::{InboundPipeline, NewInbound, UNFINISHED_AFTER};
use relais_engine::nlu::NluService;
use relais_store::{SqliteStore, Store};
use std::sync::Arc;
use std::time::Duration;

fn start() -> Timestamp {
    "2026-11-21T10:00:00Z".parse().unwrap()
}

#[tokio::test]
async fn a_message_run_again_after_a_crash_is_published_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).await.unwrap());
    let tenant = store.create_tenant("acme", start()).await.unwrap().id;
    let clock = Arc::new(ManualClock::new(start()));
    let events = Events::new(store.clone(), clock.clone());
    let pipeline = InboundPipeline::new(
        store.clone(),
        Arc::new(NluService::new(store.clone())),
        clock.clone(),
        AddressRules {
            default_country: None,
        },
        relais_engine::send::SANDBOX_KINDS.to_vec(),
        None,
    )
    .with_events(events.clone());
    let mut reader = events.subscribe(&tenant, None).await.unwrap();

    let received = pipeline
        .receive(NewInbound {
            answers: Vec::new(),
            tenant_id: tenant.clone(),
            channel: ChannelKind::Sms,
            channel_id: None,
            from: "33612345678".into(),
            to: "36180".into(),
            text: "où est mon colis ?".into(),
            payload: None,
            media: None,
            provider_id: Some("mo-1".into()),
        })
        .await
        .unwrap();
    let message = received.message;
    let delivery = tokio::time::timeout(Duration::from_secs(10), reader.next())
        .await
        .unwrap()
        .unwrap();
    let Delivery::Event(event) = delivery else {
        panic!("expected an event, got {delivery:?}")
    };
    assert_eq!(event.kind, "message.received");
    assert_eq!(event.conversation_id, message.conversation_id);
    assert_eq!(event.data["id"], message.id.as_str());
    assert_eq!(event.data["from"], "+33612345678");
    assert_eq!(event.data["text"], "où est mon colis ?");

    // The process died after publishing, before the message was marked processed: the
    // resume sweep runs it again.
    let raw = sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&db))
        .await
        .unwrap();
    sqlx::query("UPDATE inbound_messages SET processed_at = NULL")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
    clock.advance(UNFINISHED_AFTER + SignedDuration::from_secs(1));
    assert_eq!(pipeline.resume_unfinished().await.unwrap(), 1);

    let log = store.events_after(&tenant, 0, 10).await.unwrap();
    assert_eq!(
        log,
        vec![event],
        "one event for the message, however often it runs"
    );
    // The reader's next event is the next one published: it got nothing in between.
    let marker = events
        .publish(&tenant, EventKind::SlaBreached, None, serde_json::json!({}))
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), reader.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next, Delivery::Event(marker));
}
