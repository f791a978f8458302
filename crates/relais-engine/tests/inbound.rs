//! The inbound path on SQLite: what a customer writes on any channel is stored once per
//! provider id, attached to the contact that owns the sender's number, and annotated with
//! language, intent, sentiment and urgency; a failure of NLU loses nothing.

use jiff::{SignedDuration, Timestamp};
use relais_core::channel::ChannelKind;
use relais_core::clock::{Clock, ManualClock};
use relais_core::contact::Identity;
use relais_engine::inbound::{InboundError, NewInbound, receive};
use relais_engine::nlu::NluService;
use relais_nlu::Example;
use relais_store::{InboundFilter, NewContact, PageRequest, SqliteStore, Store};
use std::sync::Arc;

struct World {
    store: Arc<dyn Store>,
    nlu: NluService,
    clock: ManualClock,
    tenant: String,
    _dir: tempfile::TempDir,
}

fn start() -> Timestamp {
    "2026-11-21T10:00:00Z".parse().unwrap()
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let tenant = store.create_tenant("acme", start()).await.unwrap().id;
    World {
        nlu: NluService::new(store.clone()),
        store,
        clock: ManualClock::new(start()),
        tenant,
        _dir: dir,
    }
}

const TRAVEL: &[(&str, &str)] = &[
    ("I still have not received my ticket", "ticket_issue"),
    ("where is my boarding pass", "ticket_issue"),
    ("no ticket in my mailbox for my flight", "ticket_issue"),
    ("my e-ticket never arrived", "ticket_issue"),
    ("je n'ai toujours pas reçu mon billet", "ticket_issue"),
    ("où est ma carte d'embarquement", "ticket_issue"),
    ("I want a refund for my trip", "refund"),
    ("please give me my money back", "refund"),
    ("can I get reimbursed for the cancelled flight", "refund"),
    ("je veux être remboursé", "refund"),
    ("remboursez-moi svp", "refund"),
    ("my suitcase is lost", "baggage"),
    ("my luggage did not arrive", "baggage"),
    ("where is my bag", "baggage"),
    ("ma valise a été perdue", "baggage"),
    ("mes bagages ne sont pas arrivés", "baggage"),
];

async fn train(world: &World) {
    let examples = TRAVEL.iter().map(|(t, i)| Example::new(*t, *i)).collect();
    world
        .nlu
        .train(&world.tenant, examples, world.clock.now())
        .await
        .unwrap();
}

fn sms(from: &str, text: &str, provider_id: Option<&str>, tenant: &str) -> NewInbound {
    NewInbound {
        tenant_id: tenant.to_owned(),
        channel: ChannelKind::Sms,
        channel_id: None,
        from: from.to_owned(),
        to: "36180".into(),
        text: text.to_owned(),
        provider_id: provider_id.map(str::to_owned),
    }
}

#[tokio::test]
async fn an_smpp_mo_is_attributed_annotated_and_stored_once() {
    let w = world().await;
    train(&w).await;
    let alice = w
        .store
        .create_contact(
            &w.tenant,
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
        .unwrap();

    // SMPP writes the sender in international form without the `+`.
    let text = "URGENT my flight leaves today and I still have no ticket!!";
    let got = receive(
        &*w.store,
        &w.nlu,
        &w.clock,
        sms("33612345678", text, Some("smsc-42"), &w.tenant),
    )
    .await
    .unwrap();
    assert!(!got.duplicate);
    let m = &got.message;
    assert_eq!(m.from_address, "+33612345678");
    assert_eq!(m.contact_id.as_deref(), Some(alice.id.as_str()));
    assert_eq!(m.received_at, start());
    let a = m.annotations.as_ref().expect("annotated");
    assert_eq!(a["language"], "en");
    assert_eq!(a["intent"]["best_guess"], "ticket_issue");
    assert_eq!(a["sentiment"]["label"], "negative");
    assert!(a["urgency"]["score"].as_f64().unwrap() > 0.5, "{a}");
    let cues: Vec<&str> = a["urgency"]["cues"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert!(cues.contains(&"keyword:urgent"), "{cues:?}");

    // What was returned is what was stored.
    let stored = w
        .store
        .inbound_message(&w.tenant, &m.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&stored, m);

    // The SMSC did not get our deliver_sm_resp and delivers again, later.
    w.clock.advance(SignedDuration::from_secs(30));
    let again = receive(
        &*w.store,
        &w.nlu,
        &w.clock,
        sms("33612345678", text, Some("smsc-42"), &w.tenant),
    )
    .await
    .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message.id, m.id);
    assert_eq!(again.message.received_at, start());
    let page = w
        .store
        .list_inbound(
            &w.tenant,
            &InboundFilter {
                contact_id: Some(alice.id.clone()),
            },
            &PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.data.len(), 1);
}

#[tokio::test]
async fn an_unknown_sender_is_stored_without_a_contact_and_none_is_created() {
    let w = world().await;
    let got = receive(
        &*w.store,
        &w.nlu,
        &w.clock,
        sms(
            "+33698765432",
            "Bonjour, où est mon billet ?",
            None,
            &w.tenant,
        ),
    )
    .await
    .unwrap();
    assert_eq!(got.message.contact_id, None);
    let contacts = w
        .store
        .list_contacts(
            &w.tenant,
            &PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert!(
        contacts.data.is_empty(),
        "no contact is created for a sender"
    );
    let a = got.message.annotations.expect("annotated without a model");
    assert_eq!(a["language"], "fr");
    assert!(a["intent"].is_null(), "no model, no intent: {a}");

    // A sender that is not a phone number still reaches the tenant, as written.
    let odd = receive(
        &*w.store,
        &w.nlu,
        &w.clock,
        sms("MYBANK", "hello", None, &w.tenant),
    )
    .await
    .unwrap();
    assert_eq!(odd.message.from_address, "MYBANK");
    assert_eq!(odd.message.contact_id, None);
}

#[tokio::test]
async fn a_message_is_kept_when_classification_fails() {
    let w = world().await;
    // A damaged model in the store makes every classification fail.
    w.store
        .save_nlu_model(&w.tenant, b"not a model", "broken", start())
        .await
        .unwrap();
    let got = receive(
        &*w.store,
        &w.nlu,
        &w.clock,
        sms("33612345678", "my bag is lost", Some("mo-1"), &w.tenant),
    )
    .await
    .unwrap();
    assert_eq!(got.message.annotations, None);
    let stored = w
        .store
        .inbound_message(&w.tenant, &got.message.id)
        .await
        .unwrap()
        .expect("the message is stored even though NLU failed");
    assert_eq!(stored.text, "my bag is lost");
    assert_eq!(stored.annotated_at, None);
}

#[tokio::test]
async fn garbage_is_refused_and_nothing_is_stored() {
    let w = world().await;
    let empty_sender = receive(
        &*w.store,
        &w.nlu,
        &w.clock,
        sms("  ", "hello", None, &w.tenant),
    )
    .await;
    assert!(matches!(empty_sender, Err(InboundError::Invalid(_))));
    let huge = "a".repeat(relais_engine::inbound::MAX_TEXT_BYTES + 1);
    let too_long = receive(
        &*w.store,
        &w.nlu,
        &w.clock,
        sms("33612345678", &huge, None, &w.tenant),
    )
    .await;
    assert!(matches!(too_long, Err(InboundError::Invalid(_))));
    let page = w
        .store
        .list_inbound(
            &w.tenant,
            &InboundFilter::default(),
            &PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert!(page.data.is_empty());
}
