//! CRM webhook events on SQLite: a keyword's `consent.changed` is queued once per consent
//! record, also when a crash cut the pipeline short between the record and the event.

use jiff::{SignedDuration, Timestamp};
use relais_core::channel::ChannelKind;
use relais_core::clock::ManualClock;
use relais_core::consent::ConsentStatus;
use relais_core::contact::{AddressRules, Identity};
use relais_engine::inbound::{InboundPipeline, NewInbound, UNFINISHED_AFTER};
use relais_engine::nlu::NluService;
use relais_store::{NewContact, SqliteStore, Store};
use std::sync::Arc;

fn start() -> Timestamp {
    "2026-11-21T10:00:00Z".parse().unwrap()
}

fn sms(from: &str, text: &str, provider_id: &str, tenant: &str) -> NewInbound {
    NewInbound {
        answers: Vec::new(),
        tenant_id: tenant.to_owned(),
        channel: ChannelKind::Sms,
        channel_id: None,
        from: from.to_owned(),
        to: "36180".into(),
        text: text.to_owned(),
        payload: None,
        media: None,
        provider_id: Some(provider_id.to_owned()),
    }
}

/// Runs `statement` on the database behind the store, as a crash would have left it.
async fn tamper(db: &std::path::Path, statement: &str) {
    let raw = sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(db))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
}

#[tokio::test]
async fn a_start_whose_event_a_crash_lost_is_announced_once_and_stays_a_keyword() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).await.unwrap());
    let tenant = store.create_tenant("acme", start()).await.unwrap().id;
    let clock = Arc::new(ManualClock::new(start()));
    let pipeline = InboundPipeline::new(
        store.clone(),
        Arc::new(NluService::new(store.clone())),
        clock.clone(),
        AddressRules {
            default_country: None,
        },
        relais_engine::send::SANDBOX_KINDS.to_vec(),
        None,
    );
    let hook = store
        .create_webhook(&tenant, "https://crm.example/hooks", "whsec_test", start())
        .await
        .unwrap();
    let alice = store
        .create_contact(
            &tenant,
            &NewContact {
                identities: vec![Identity {
                    channel: ChannelKind::Sms,
                    address: "+33612345678".into(),
                }],
                ..Default::default()
            },
            start(),
        )
        .await
        .unwrap()
        .id;

    pipeline
        .receive(sms("33612345678", "STOP", "mo-1", &tenant))
        .await
        .unwrap();
    let start_again = pipeline
        .receive(sms("33612345678", "START", "mo-2", &tenant))
        .await
        .unwrap();
    let consent_events = || async {
        store
            .webhook_deliveries(&tenant, &hook.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|d| d.event_type == "consent.changed")
            .map(|d| serde_json::from_str::<serde_json::Value>(&d.payload).unwrap())
            .collect::<Vec<_>>()
    };
    let events = consent_events().await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["data"]["status"], "opted_out");
    assert_eq!(events[1]["data"]["status"], "opted_in");
    assert_eq!(
        events[1]["data"]["message_id"],
        start_again.message.id.as_str()
    );

    // A crash after START's opt-in was written, before its event was queued and the
    // message marked processed.
    tamper(
        &db,
        "DELETE FROM webhook_deliveries WHERE event_type = 'consent.changed' AND id LIKE 'consent_%' \
         AND payload LIKE '%opted_in%'",
    )
    .await;
    tamper(
        &db,
        &format!(
            "UPDATE inbound_messages SET processed_at = NULL WHERE id = '{}'",
            start_again.message.id
        ),
    )
    .await;
    clock.advance(UNFINISHED_AFTER + SignedDuration::from_secs(1));
    assert_eq!(pipeline.resume_unfinished().await.unwrap(), 1);
    assert_eq!(pipeline.resume_unfinished().await.unwrap(), 0);

    let events = consent_events().await;
    assert_eq!(events.len(), 2, "the lost event, once: {events:?}");
    assert_eq!(events[1]["data"]["status"], "opted_in");
    let ledger = store.consents(&tenant, &alice).await.unwrap();
    assert_eq!(ledger.len(), 2, "no second opt-in: {ledger:?}");
    assert_eq!(ledger[1].status, ConsentStatus::OptedIn);
    assert_eq!(events[1]["data"]["consent_id"], ledger[1].id.as_str());
    let resumed = store
        .inbound_message(&tenant, &start_again.message.id)
        .await
        .unwrap()
        .unwrap();
    let conversation = store
        .conversation(&tenant, resumed.conversation_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        conversation.state,
        relais_core::conversation::ConversationState::Resolved,
        "START run again is still a keyword: it does not reopen the conversation"
    );
}
