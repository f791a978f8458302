//! The inbound path on SQLite: what a customer writes on any channel is stored once per
//! provider id, attached to the contact that owns the sender's number, and annotated with
//! language, intent, sentiment and urgency; a failure of NLU loses nothing.

use jiff::{SignedDuration, Timestamp};
use relais_core::channel::ChannelKind;
use relais_core::clock::{Clock, ManualClock};
use relais_core::contact::AddressRules;
use relais_core::contact::Identity;
use relais_engine::inbound::{InboundError, InboundPipeline, NewInbound};
use relais_engine::nlu::NluService;
use relais_nlu::Example;
use relais_store::{InboundFilter, NewContact, PageRequest, SqliteStore, Store};
use std::sync::Arc;

struct World {
    store: Arc<dyn Store>,
    nlu: Arc<NluService>,
    clock: Arc<ManualClock>,
    pipeline: InboundPipeline,
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
    let nlu = Arc::new(NluService::new(store.clone()));
    let clock = Arc::new(ManualClock::new(start()));
    let pipeline = InboundPipeline::new(
        store.clone(),
        nlu.clone(),
        clock.clone(),
        AddressRules {
            default_country: None,
        },
        relais_engine::send::SANDBOX_KINDS.to_vec(),
        None,
    );
    World {
        nlu,
        store,
        clock,
        pipeline,
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
        answers: Vec::new(),
        tenant_id: tenant.to_owned(),
        channel: ChannelKind::Sms,
        channel_id: None,
        from: from.to_owned(),
        to: "36180".into(),
        text: text.to_owned(),
        payload: None,
        media: None,
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
    let got = w
        .pipeline
        .receive(sms("33612345678", text, Some("smsc-42"), &w.tenant))
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
    let again = w
        .pipeline
        .receive(sms("33612345678", text, Some("smsc-42"), &w.tenant))
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
async fn an_unknown_sender_becomes_a_contact_with_a_conversation() {
    let w = world().await;
    let got = w
        .pipeline
        .receive(sms(
            "+33698765432",
            "Bonjour, où est mon billet ?",
            None,
            &w.tenant,
        ))
        .await
        .unwrap();
    let contact_id = got
        .message
        .contact_id
        .clone()
        .expect("a contact is created");
    let contact = w
        .store
        .contact(&w.tenant, &contact_id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(contact.identities.len(), 1);
    assert_eq!(contact.identities[0].address, "+33698765432");
    let conversation_id = got.message.conversation_id.clone().expect("placed");
    let conversation = w
        .store
        .conversation(&w.tenant, &conversation_id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(conversation.contact_id, contact_id);
    assert_eq!(
        conversation.state,
        relais_core::conversation::ConversationState::Pending
    );
    assert_eq!(conversation.address, "+33698765432");
    assert!(got.message.processed_at.is_some());
    // The same sender again: the same contact and conversation.
    let again = w
        .pipeline
        .receive(sms("33698765432", "Allô ?", None, &w.tenant))
        .await
        .unwrap();
    assert_eq!(
        again.message.contact_id.as_deref(),
        Some(contact_id.as_str())
    );
    assert_eq!(
        again.message.conversation_id.as_deref(),
        Some(conversation_id.as_str())
    );
    let a = got.message.annotations.expect("annotated without a model");
    assert_eq!(a["language"], "fr");
    assert!(a["intent"].is_null(), "no model, no intent: {a}");

    // A sender that is not a phone number still reaches the tenant, as written.
    let odd = w
        .pipeline
        .receive(sms("MYBANK", "hello", None, &w.tenant))
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
    let got = w
        .pipeline
        .receive(sms(
            "33612345678",
            "my bag is lost",
            Some("mo-1"),
            &w.tenant,
        ))
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
    let empty_sender = w
        .pipeline
        .receive(sms("  ", "hello", None, &w.tenant))
        .await;
    assert!(matches!(empty_sender, Err(InboundError::Invalid(_))));
    let huge = "a".repeat(relais_engine::inbound::MAX_TEXT_BYTES + 1);
    let too_long = w
        .pipeline
        .receive(sms("33612345678", &huge, None, &w.tenant))
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

async fn alice(w: &World) -> String {
    w.store
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
        .unwrap()
        .id
}

/// The texts of the messages sent to the contact, oldest first.
async fn sent_texts(w: &World, contact: &str) -> Vec<String> {
    let mut sent = w
        .store
        .messages_of_contact(&w.tenant, contact, 100)
        .await
        .unwrap();
    sent.reverse();
    sent.iter()
        .map(|m| m.content["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn stop_opts_out_of_marketing_with_the_message_as_proof_and_replies_once() {
    let w = world().await;
    let alice = alice(&w).await;
    let got = w
        .pipeline
        .receive(sms("33612345678", "Arrêtez svp !", Some("mo-1"), &w.tenant))
        .await
        .unwrap();
    let ledger = w.store.consents(&w.tenant, &alice).await.unwrap();
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    let record = &ledger[0];
    assert_eq!(record.channel, Some(ChannelKind::Sms));
    assert_eq!(record.purpose, relais_core::consent::Purpose::Marketing);
    assert_eq!(record.status, relais_core::consent::ConsentStatus::OptedOut);
    assert_eq!(record.source, relais_core::consent::ConsentSource::Keyword);
    let proof = record.proof.as_deref().unwrap_or_default();
    assert!(
        proof.contains("Arrêtez svp !") && proof.contains(&got.message.id),
        "{proof}"
    );
    // Marketing is refused now, transactional messages still go.
    let decision = relais_core::consent::may_send(
        &ledger,
        ChannelKind::Sms,
        &relais_core::consent::Purpose::Marketing,
    );
    assert!(!decision.allowed);
    // One confirmation, in French (the keyword and the words around it are French).
    let sent = sent_texts(&w, &alice).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].starts_with("Vous ne recevrez plus"), "{sent:?}");
    // A keyword does not open a conversation for an agent.
    let conversation = w
        .store
        .conversation(&w.tenant, got.message.conversation_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        conversation.state,
        relais_core::conversation::ConversationState::Resolved
    );

    // The SMSC delivers it again: stored once, answered once.
    let again = w
        .pipeline
        .receive(sms("33612345678", "Arrêtez svp !", Some("mo-1"), &w.tenant))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(sent_texts(&w, &alice).await.len(), 1);
    assert_eq!(w.store.consents(&w.tenant, &alice).await.unwrap().len(), 1);

    // START reverses it, in the tenant's language (English by default) when nothing tells.
    w.clock.advance(SignedDuration::from_secs(60));
    w.pipeline
        .receive(sms("33612345678", "START", Some("mo-2"), &w.tenant))
        .await
        .unwrap();
    let ledger = w.store.consents(&w.tenant, &alice).await.unwrap();
    assert_eq!(ledger.len(), 2);
    let sent = sent_texts(&w, &alice).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent[1].starts_with("You will receive our messages again"),
        "{sent:?}"
    );

    // "oui" from a contact who is not opted out is an answer, not a keyword.
    w.clock.advance(SignedDuration::from_secs(60));
    let yes = w
        .pipeline
        .receive(sms("33612345678", "oui", Some("mo-3"), &w.tenant))
        .await
        .unwrap();
    assert_eq!(w.store.consents(&w.tenant, &alice).await.unwrap().len(), 2);
    assert_eq!(sent_texts(&w, &alice).await.len(), 2);
    let conversation = w
        .store
        .conversation(&w.tenant, yes.message.conversation_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        conversation.state,
        relais_core::conversation::ConversationState::Pending
    );
    assert_eq!(conversation.last_message["text"], "oui");
}

#[tokio::test]
async fn a_sentence_with_a_keyword_in_it_is_a_message_and_help_answers() {
    let w = world().await;
    let alice = alice(&w).await;
    let got = w
        .pipeline
        .receive(sms(
            "33612345678",
            "je ne veux pas que ça s'arrête",
            Some("mo-1"),
            &w.tenant,
        ))
        .await
        .unwrap();
    assert!(
        w.store
            .consents(&w.tenant, &alice)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(sent_texts(&w, &alice).await.is_empty());
    assert!(got.message.conversation_id.is_some());
    w.pipeline
        .receive(sms("33612345678", "AIDE", Some("mo-2"), &w.tenant))
        .await
        .unwrap();
    assert!(
        w.store
            .consents(&w.tenant, &alice)
            .await
            .unwrap()
            .is_empty()
    );
    let sent = sent_texts(&w, &alice).await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0].starts_with("Pour ne plus recevoir"), "{sent:?}");
}

#[tokio::test]
async fn a_message_a_crash_left_midway_is_finished_once_by_the_resume_sweep() {
    let w = world().await;
    let alice = alice(&w).await;
    let hook = w
        .store
        .create_webhook(
            &w.tenant,
            "https://crm.example/hooks",
            "whsec_test",
            start(),
        )
        .await
        .unwrap();
    // Stored, and then the process died before the pipeline went on.
    let stored = w
        .store
        .insert_inbound(&relais_store::NewInboundMessage {
            id: relais_core::ids::new_id(),
            tenant_id: w.tenant.clone(),
            channel: ChannelKind::Sms,
            channel_id: None,
            from_address: "+33612345678".into(),
            to_address: "36180".into(),
            contact_id: Some(alice.clone()),
            text: "STOP".into(),
            payload: None,
            media: None,
            provider_id: Some("mo-9".into()),
            received_at: start(),
        })
        .await
        .unwrap();
    assert!(stored.created);
    // A redelivery while it is unfinished does not run it a second time.
    let again = w
        .pipeline
        .receive(sms("33612345678", "STOP", Some("mo-9"), &w.tenant))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert!(sent_texts(&w, &alice).await.is_empty());
    // Too recent to be taken for a crash: it may still be in progress.
    assert_eq!(w.pipeline.resume_unfinished().await.unwrap(), 0);
    w.clock
        .advance(relais_engine::inbound::UNFINISHED_AFTER + SignedDuration::from_secs(1));
    assert_eq!(w.pipeline.resume_unfinished().await.unwrap(), 1);
    let message = w
        .store
        .inbound_message(&w.tenant, &stored.message.id)
        .await
        .unwrap()
        .unwrap();
    assert!(message.processed_at.is_some());
    assert!(message.conversation_id.is_some());
    assert!(message.annotations.is_some());
    assert_eq!(sent_texts(&w, &alice).await.len(), 1);
    assert_eq!(w.store.consents(&w.tenant, &alice).await.unwrap().len(), 1);
    assert_eq!(w.pipeline.resume_unfinished().await.unwrap(), 0);

    // A crash after the reply and the opt-out, before the message was marked processed:
    // the next run repeats nothing the customer can see.
    let db = w._dir.path().join("db");
    let raw = sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&db))
        .await
        .unwrap();
    sqlx::query("UPDATE inbound_messages SET processed_at = NULL")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
    assert_eq!(w.pipeline.resume_unfinished().await.unwrap(), 1);
    assert_eq!(sent_texts(&w, &alice).await.len(), 1, "one confirmation");
    assert_eq!(w.store.consents(&w.tenant, &alice).await.unwrap().len(), 1);

    // The tenant's application heard of it once, with its contact, conversation and NLU.
    let deliveries = w
        .store
        .webhook_deliveries(&w.tenant, &hook.id)
        .await
        .unwrap();
    let received: Vec<_> = deliveries
        .iter()
        .filter(|d| d.event_type == "message.received")
        .collect();
    assert_eq!(received.len(), 1, "{deliveries:?}");
    let event: serde_json::Value = serde_json::from_str(&received[0].payload).unwrap();
    assert_eq!(event["type"], "message.received");
    assert_eq!(event["data"]["id"], stored.message.id.as_str());
    assert_eq!(event["data"]["contact_id"], alice.as_str());
    assert_eq!(
        event["data"]["conversation_id"],
        message.conversation_id.as_deref().unwrap()
    );
    assert_eq!(event["data"]["keyword"], "stop");
    assert_eq!(event["data"]["text"], "STOP");
    assert!(
        event["data"]["annotations"]["language"].is_string(),
        "{event}"
    );
}

/// A flow that asks a first name, then thanks the customer by it.
fn name_flow() -> serde_json::Value {
    serde_json::json!({
        "entry": {"new_conversation": true},
        "start": "name",
        "nodes": {
            "name": {"type": "ask", "text": "Votre prénom ?", "attribute": "first_name", "next": "thanks"},
            "thanks": {"type": "end", "text": "Merci {{ first_name }}"}
        }
    })
}

#[tokio::test]
async fn a_bot_turn_a_crash_cut_short_is_taken_again_without_a_second_reply() {
    use relais_core::conversation::ConversationState;
    let w = world().await;
    let alice = alice(&w).await;
    w.pipeline
        .flows()
        .put(&w.tenant, "name", &name_flow())
        .await
        .unwrap();
    let hello = w
        .pipeline
        .receive(sms("33612345678", "Bonjour", Some("mo-1"), &w.tenant))
        .await
        .unwrap();
    let conversation = hello.message.conversation_id.clone().unwrap();
    let waiting = w
        .store
        .flow_session(&w.tenant, &conversation)
        .await
        .unwrap()
        .expect("the bot waits for the name");
    w.pipeline
        .receive(sms("33612345678", "Ana", Some("mo-2"), &w.tenant))
        .await
        .unwrap();
    assert_eq!(
        sent_texts(&w, &alice).await,
        ["Votre prénom ?", "Merci Ana"]
    );

    // The process died after the turn's reply and answer, before the step was written
    // and the message marked: the bot still waits for the name, the message unfinished.
    w.store
        .save_flow_step(&relais_store::FlowStep {
            tenant_id: &w.tenant,
            conversation_id: &conversation,
            session: Some(&waiting),
            state: Some(ConversationState::Bot),
            team: None,
            last_message: None,
            at: start(),
        })
        .await
        .unwrap();
    let db = w._dir.path().join("db");
    let raw = sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&db))
        .await
        .unwrap();
    sqlx::query("UPDATE inbound_messages SET processed_at = NULL WHERE provider_id = 'mo-2'")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
    w.clock
        .advance(relais_engine::inbound::UNFINISHED_AFTER + SignedDuration::from_secs(1));
    assert_eq!(w.pipeline.resume_unfinished().await.unwrap(), 1);
    // The turn ran again: nothing said twice, the answer recorded once, the flow ended.
    assert_eq!(
        sent_texts(&w, &alice).await,
        ["Votre prénom ?", "Merci Ana"]
    );
    assert_eq!(
        w.store.flow_answers(&w.tenant, &alice).await.unwrap().len(),
        1
    );
    let after = w
        .store
        .conversation(&w.tenant, &conversation)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.state, ConversationState::Resolved);
    assert_eq!(
        w.store
            .flow_session(&w.tenant, &conversation)
            .await
            .unwrap(),
        None
    );

    // A run of both messages again (marked unfinished) repeats nothing either, and does not
    // reopen the conversation their turns resolved.
    let raw = sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&db))
        .await
        .unwrap();
    sqlx::query("UPDATE inbound_messages SET processed_at = NULL")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
    w.clock
        .advance(relais_engine::inbound::UNFINISHED_AFTER + SignedDuration::from_secs(1));
    assert_eq!(w.pipeline.resume_unfinished().await.unwrap(), 2);
    assert_eq!(
        sent_texts(&w, &alice).await,
        ["Votre prénom ?", "Merci Ana"]
    );
    let after = w
        .store
        .conversation(&w.tenant, &conversation)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.state, ConversationState::Resolved);
}

#[tokio::test]
async fn a_flow_branches_on_the_intent_of_the_message() {
    let w = world().await;
    train(&w).await;
    let alice = alice(&w).await;
    w.pipeline
        .flows()
        .put(
            &w.tenant,
            "desk",
            &serde_json::json!({
                "entry": {"new_conversation": true},
                "start": "route",
                "nodes": {
                    "route": {"type": "branch", "cases": [
                        {"when": {"intent": "refund"}, "next": "refund"},
                        {"when": {"intent": ["ticket_issue", "baggage"]}, "next": "travel"}
                    ], "default": "other"},
                    "refund": {"type": "end", "text": "Remboursements : sous 7 jours."},
                    "travel": {"type": "end", "text": "Un conseiller voyage arrive."},
                    "other": {"type": "end", "text": "Bonjour !"}
                }
            }),
        )
        .await
        .unwrap();
    // Each message opens the conversation again (the previous one resolved it).
    for text in ["je veux être remboursé", "where is my bag", "bonjour"] {
        w.pipeline
            .receive(sms("33612345678", text, None, &w.tenant))
            .await
            .unwrap();
    }
    assert_eq!(
        sent_texts(&w, &alice).await,
        [
            "Remboursements : sous 7 jours.",
            "Un conseiller voyage arrive.",
            "Bonjour !"
        ]
    );
}

#[tokio::test]
async fn a_customers_messages_arriving_together_are_answered_in_their_order() {
    let w = world().await;
    let alice = alice(&w).await;
    w.pipeline
        .flows()
        .put(&w.tenant, "name", &name_flow())
        .await
        .unwrap();
    // Delivered at the same instant (one SMSC window): they go through as one group, the
    // greeting first, so "Ana" answers the question the greeting starts.
    let (hello, name) = tokio::join!(
        w.pipeline
            .receive(sms("33612345678", "Bonjour", Some("mo-1"), &w.tenant)),
        w.pipeline
            .receive(sms("33612345678", "Ana", Some("mo-2"), &w.tenant)),
    );
    let (hello, name) = (hello.unwrap(), name.unwrap());
    assert_eq!(hello.message.conversation_id, name.message.conversation_id);
    assert!(name.message.processed_at.is_some());
    assert_eq!(
        sent_texts(&w, &alice).await,
        ["Votre prénom ?", "Merci Ana"]
    );
    let answers = w.store.flow_answers(&w.tenant, &alice).await.unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].value, "Ana");
}

#[tokio::test]
async fn a_redelivery_arriving_with_the_original_is_stored_and_answered_once() {
    let w = world().await;
    let alice = alice(&w).await;
    w.pipeline
        .flows()
        .put(&w.tenant, "name", &name_flow())
        .await
        .unwrap();
    let (first, again) = tokio::join!(
        w.pipeline
            .receive(sms("33612345678", "Bonjour", Some("mo-1"), &w.tenant)),
        w.pipeline
            .receive(sms("33612345678", "Bonjour", Some("mo-1"), &w.tenant)),
    );
    let (first, again) = (first.unwrap(), again.unwrap());
    // One of them is stored and answered, the other is told it is a duplicate.
    assert_ne!(first.duplicate, again.duplicate);
    assert_eq!(first.message.id, again.message.id);
    let stored = w
        .store
        .list_inbound(
            &w.tenant,
            &InboundFilter::default(),
            &PageRequest {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(stored.data.len(), 1);
    assert_eq!(sent_texts(&w, &alice).await, ["Votre prénom ?"]);
}

#[tokio::test]
async fn many_customers_writing_at_once_each_get_one_conversation_and_one_answer() {
    let w = Arc::new(world().await);
    w.pipeline
        .flows()
        .put(&w.tenant, "name", &name_flow())
        .await
        .unwrap();
    let senders: Vec<String> = (0..120)
        .map(|i| format!("3361{:07}", 1_000_000 + i))
        .collect();
    let tasks: Vec<_> = senders
        .iter()
        .enumerate()
        .map(|(i, from)| {
            let (w, from) = (w.clone(), from.clone());
            tokio::spawn(async move {
                w.pipeline
                    .receive(sms(&from, "Bonjour", Some(&format!("mo-{i}")), &w.tenant))
                    .await
            })
        })
        .collect();
    let mut conversations = std::collections::HashSet::new();
    for task in tasks {
        let received = task.await.unwrap().unwrap();
        assert!(!received.duplicate);
        assert!(received.message.processed_at.is_some());
        conversations.insert(received.message.conversation_id.unwrap());
    }
    assert_eq!(conversations.len(), senders.len());
    for from in &senders {
        let contact = w
            .store
            .contact_by_identity(&w.tenant, None, &format!("+{from}"))
            .await
            .unwrap()
            .expect("each sender became a contact");
        assert_eq!(sent_texts(&w, &contact.id).await, ["Votre prénom ?"]);
    }
}
