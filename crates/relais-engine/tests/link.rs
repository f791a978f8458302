//! Addresses customers give in flows, on SQLite: a web chat visitor who answers with a
//! known customer's e-mail or phone is merged into that customer and the flow goes on in
//! the customer's thread; an unknown address becomes the visitor's; a turn taken again
//! after a crash merges nothing twice; an answer that is not an address links nothing;
//! two known people are never merged on a typed answer.

use jiff::{SignedDuration, Timestamp};
use relais_core::channel::ChannelKind;
use relais_core::clock::ManualClock;
use relais_core::contact::{AddressRules, Identity, MergeCause};
use relais_core::conversation::ConversationState;
use relais_engine::inbound::{InboundPipeline, NewInbound, Received, UNFINISHED_AFTER};
use relais_engine::nlu::NluService;
use relais_store::{NewContact, PageRequest, SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;

struct World {
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    pipeline: InboundPipeline,
    tenant: String,
    dir: tempfile::TempDir,
}

fn start() -> Timestamp {
    "2026-11-21T10:00:00Z".parse().unwrap()
}

const VISITOR: &str = "v0d4c2b7e1f9a8c3b5d6e7f8091a2b3c";

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
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
    pipeline
        .flows()
        .put(&tenant, "signup", &signup_flow("email"))
        .await
        .unwrap();
    World {
        store,
        clock,
        pipeline,
        tenant,
        dir,
    }
}

/// Web visitors are asked an address (`email` or `phone`), then their order number.
fn signup_flow(kind: &str) -> Value {
    json!({
        "entry": {"new_conversation": true, "channels": ["webchat"]},
        "start": "address",
        "nodes": {
            "address": {"type": "ask", "text": "Votre adresse ?", "attribute": kind,
                        "validate": {"type": kind}, "next": "order"},
            "order": {"type": "ask", "text": "Votre numéro de commande ?", "attribute": "order",
                      "next": "thanks"},
            "thanks": {"type": "handoff", "text": "Merci, un conseiller arrive."}
        }
    })
}

fn web(visitor: &str, text: &str, client_id: &str, tenant: &str) -> NewInbound {
    NewInbound {
        answers: Vec::new(),
        tenant_id: tenant.to_owned(),
        channel: ChannelKind::Webchat,
        channel_id: None,
        from: visitor.to_owned(),
        to: "site".into(),
        text: text.to_owned(),
        payload: None,
        media: None,
        provider_id: Some(format!("{visitor}:{client_id}")),
    }
}

fn identity(channel: ChannelKind, address: &str) -> Identity {
    Identity {
        channel,
        address: address.to_owned(),
    }
}

impl World {
    async fn visitor_writes(&self, text: &str, client_id: &str) -> Received {
        self.pipeline
            .receive(web(VISITOR, text, client_id, &self.tenant))
            .await
            .unwrap()
    }

    /// Ana, a known customer: a phone of her own and an e-mail address.
    async fn ana(&self, phone: ChannelKind) -> String {
        self.store
            .create_contact(
                &self.tenant,
                &NewContact {
                    identities: vec![
                        identity(phone, "+33612345678"),
                        identity(ChannelKind::Email, "ana@example.com"),
                    ],
                    attributes: serde_json::from_value(
                        json!({"first_name": "Ana", "email": "Ana@Example.com"}),
                    )
                    .unwrap(),
                    ..Default::default()
                },
                start(),
            )
            .await
            .unwrap()
            .id
    }

    async fn contacts(&self) -> Vec<relais_core::contact::Contact> {
        self.store
            .list_contacts(
                &self.tenant,
                &PageRequest {
                    after: None,
                    limit: 100,
                },
            )
            .await
            .unwrap()
            .data
    }

    /// The texts sent to the contact, oldest first.
    async fn sent_texts(&self, contact: &str) -> Vec<String> {
        let mut sent = self
            .store
            .messages_of_contact(&self.tenant, contact, 100)
            .await
            .unwrap();
        sent.reverse();
        sent.iter()
            .map(|m| m.content["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The `message.received` webhook events of the tenant's hook, oldest first.
    async fn received_events(&self, hook: &str) -> Vec<Value> {
        self.store
            .webhook_deliveries(&self.tenant, hook)
            .await
            .unwrap()
            .into_iter()
            .filter(|d| d.event_type == "message.received")
            .map(|d| serde_json::from_str(&d.payload).unwrap())
            .collect()
    }

    /// Runs `statement` on the database behind the store, as a crash would have left it.
    async fn tamper(&self, statement: &str) {
        let raw = sqlx::sqlite::SqlitePoolOptions::new()
            .connect_with(
                sqlx::sqlite::SqliteConnectOptions::new().filename(self.dir.path().join("db")),
            )
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&raw)
            .await
            .unwrap();
        raw.close().await;
    }
}

#[tokio::test]
async fn a_visitor_who_gives_a_customers_email_is_merged_into_them_and_the_flow_goes_on() {
    let w = world().await;
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
    let ana = w.ana(ChannelKind::Sms).await;
    let hello = w.visitor_writes("Bonjour", "c1").await;
    let visitor = hello.message.contact_id.clone().unwrap();
    let conversation = hello.message.conversation_id.clone().unwrap();
    assert_ne!(visitor, ana);
    assert_eq!(w.contacts().await.len(), 2);

    let answer = w.visitor_writes("  ANA@example.com ", "c2").await;

    // One contact, Ana, who now has the visitor's web chat address too; the visitor's
    // conversation, with its messages, is hers.
    let contacts = w.contacts().await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    let merged = &contacts[0];
    assert_eq!(merged.id, ana);
    assert!(
        merged
            .identities
            .contains(&identity(ChannelKind::Webchat, VISITOR))
    );
    assert_eq!(answer.message.contact_id.as_deref(), Some(ana.as_str()));
    assert_eq!(
        answer.message.conversation_id.as_deref(),
        Some(conversation.as_str())
    );
    let thread = w
        .store
        .conversation(&w.tenant, &conversation)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(thread.contact_id, ana);
    assert_eq!(thread.state, ConversationState::Bot);
    // Her own values win; the visitor's answer is on record, now hers.
    assert_eq!(merged.attributes["email"], "Ana@Example.com");
    assert_eq!(merged.attributes["first_name"], "Ana");
    let answers = w.store.flow_answers(&w.tenant, &ana).await.unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].value, "ana@example.com");
    // The merge says how it came about, for an agent to read.
    let merges = w.store.merges(&w.tenant, &ana).await.unwrap();
    assert_eq!(merges.len(), 1);
    assert_eq!(merges[0].merged_id, visitor);
    assert_eq!(
        merges[0].cause,
        MergeCause::FlowAnswer {
            identity: identity(ChannelKind::Email, "ana@example.com"),
            flow: "signup".into(),
            node: "address".into(),
            message_id: answer.message.id.clone(),
            conversation_id: conversation.clone(),
        }
    );
    let events = w.received_events(&hook.id).await;
    let linked = &events[1]["data"];
    assert_eq!(linked["contact_id"], ana.as_str());
    assert_eq!(
        linked["bot"]["links"],
        json!([{"node": "address", "identity": {"channel": "email", "address": "ana@example.com"},
                "outcome": "merged", "merge_id": merges[0].id, "contact_id": ana,
                "merged_contact_id": visitor}])
    );

    // The flow goes on, on Ana: the next answer is hers, the bot answers the visitor.
    let order = w.visitor_writes("Commande 42", "c3").await;
    assert_eq!(order.message.contact_id.as_deref(), Some(ana.as_str()));
    let ana_now = w.store.contact(&w.tenant, &ana).await.unwrap().unwrap();
    assert_eq!(ana_now.attributes["order"], "Commande 42");
    assert_eq!(
        w.sent_texts(&ana).await,
        [
            "Votre adresse ?",
            "Votre numéro de commande ?",
            "Merci, un conseiller arrive."
        ]
    );
    let sent = w
        .store
        .messages_of_contact(&w.tenant, &ana, 100)
        .await
        .unwrap();
    assert!(
        sent.iter().all(|m| m.to_address == VISITOR),
        "the bot answers where the visitor wrote"
    );
    let thread = w
        .store
        .conversation(&w.tenant, &conversation)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(thread.state, ConversationState::Pending);
}

#[tokio::test]
async fn a_phone_number_given_in_a_flow_finds_the_customer_on_any_phone_channel() {
    let w = world().await;
    w.pipeline
        .flows()
        .put(&w.tenant, "signup", &signup_flow("phone"))
        .await
        .unwrap();
    // Ana wrote from a simulated phone once: her number is a `sim` identity.
    let ana = w.ana(ChannelKind::Sim).await;
    w.visitor_writes("Bonjour", "c1").await;
    let answer = w.visitor_writes("+33 6 12 34 56 78", "c2").await;
    assert_eq!(answer.message.contact_id.as_deref(), Some(ana.as_str()));
    assert_eq!(w.contacts().await.len(), 1);
}

#[tokio::test]
async fn an_unknown_address_becomes_the_visitors_and_their_next_sms_finds_them() {
    let w = world().await;
    w.pipeline
        .flows()
        .put(&w.tenant, "signup", &signup_flow("phone"))
        .await
        .unwrap();
    let hello = w.visitor_writes("Bonjour", "c1").await;
    let visitor = hello.message.contact_id.clone().unwrap();
    w.visitor_writes("+33 6 98 76 54 32", "c2").await;
    let contact = w.store.contact(&w.tenant, &visitor).await.unwrap().unwrap();
    assert!(
        contact
            .identities
            .contains(&identity(ChannelKind::PHONE_NUMBER, "+33698765432")),
        "{contact:?}"
    );
    assert!(
        w.store
            .merges(&w.tenant, &visitor)
            .await
            .unwrap()
            .is_empty()
    );
    // An SMS from that number later is the same person's.
    let sms = w
        .pipeline
        .receive(NewInbound {
            answers: Vec::new(),
            tenant_id: w.tenant.clone(),
            channel: ChannelKind::Sms,
            channel_id: None,
            from: "33698765432".into(),
            to: "36180".into(),
            text: "C'est encore moi".into(),
            payload: None,
            media: None,
            provider_id: Some("mo-1".into()),
        })
        .await
        .unwrap();
    assert_eq!(sms.message.contact_id.as_deref(), Some(visitor.as_str()));

    // An e-mail address nobody has is added the same way.
    let other = w
        .pipeline
        .receive(web("v-other-visitor", "Bonjour", "o1", &w.tenant))
        .await
        .unwrap()
        .message
        .contact_id
        .unwrap();
    w.pipeline
        .flows()
        .put(&w.tenant, "signup", &signup_flow("email"))
        .await
        .unwrap();
    w.pipeline
        .receive(web("v-other-visitor", "Zoe@Example.org", "o2", &w.tenant))
        .await
        .unwrap();
    let zoe = w.store.contact(&w.tenant, &other).await.unwrap().unwrap();
    assert!(
        zoe.identities
            .contains(&identity(ChannelKind::Email, "zoe@example.org"))
    );
    assert_eq!(w.contacts().await.len(), 2);
}

#[tokio::test]
async fn a_turn_taken_again_after_a_crash_makes_no_second_merge() {
    let w = world().await;
    let ana = w.ana(ChannelKind::Sms).await;
    let hello = w.visitor_writes("Bonjour", "c1").await;
    let conversation = hello.message.conversation_id.clone().unwrap();
    let waiting = w
        .store
        .flow_session(&w.tenant, &conversation)
        .await
        .unwrap()
        .expect("the bot waits for the address");
    let answer = w.visitor_writes("ana@example.com", "c2").await;
    // Delivered again by the widget (same client id): stored once, nothing run.
    let again = w.visitor_writes("ana@example.com", "c2").await;
    assert!(again.duplicate);

    // The process died after the merge, before the step was written and the message
    // marked: the bot still waits for the address, the message is unfinished.
    w.store
        .save_flow_step(&relais_store::FlowStep {
            tenant_id: &w.tenant,
            conversation_id: &conversation,
            session: Some(&waiting),
            state: None,
            team: None,
            last_message: None,
            at: start(),
        })
        .await
        .unwrap();
    w.tamper(&format!(
        "UPDATE inbound_messages SET processed_at = NULL WHERE id = '{}'",
        answer.message.id
    ))
    .await;
    w.clock
        .advance(UNFINISHED_AFTER + SignedDuration::from_secs(1));
    assert_eq!(w.pipeline.resume_unfinished().await.unwrap(), 1);

    assert_eq!(w.contacts().await.len(), 1);
    assert_eq!(w.store.merges(&w.tenant, &ana).await.unwrap().len(), 1);
    let ana_now = w.store.contact(&w.tenant, &ana).await.unwrap().unwrap();
    assert_eq!(
        ana_now.attributes["email"], "Ana@Example.com",
        "the answer is not written over her value on the second run"
    );
    assert_eq!(
        w.sent_texts(&ana).await,
        ["Votre adresse ?", "Votre numéro de commande ?"],
        "nothing said twice"
    );
    let session = w
        .store
        .flow_session(&w.tenant, &conversation)
        .await
        .unwrap()
        .expect("the bot waits for the order");
    assert_eq!(session.node, "order");
}

#[tokio::test]
async fn an_answer_that_is_not_an_address_links_nothing() {
    let w = world().await;
    w.ana(ChannelKind::Sms).await;
    let hello = w.visitor_writes("Bonjour", "c1").await;
    let visitor = hello.message.contact_id.clone().unwrap();
    let answer = w.visitor_writes("ana chez example", "c2").await;
    assert_eq!(answer.message.contact_id.as_deref(), Some(visitor.as_str()));
    assert_eq!(w.contacts().await.len(), 2);
    let contact = w.store.contact(&w.tenant, &visitor).await.unwrap().unwrap();
    assert_eq!(
        contact.identities,
        [identity(ChannelKind::Webchat, VISITOR)]
    );
    // Asked again, in the language the answer was written in.
    assert_eq!(
        w.sent_texts(&visitor).await.last().unwrap(),
        "Merci de répondre par une adresse e-mail."
    );
}

#[tokio::test]
async fn a_customer_with_a_phone_of_their_own_is_not_merged_into_another_on_a_typed_email() {
    let w = world().await;
    let ana = w.ana(ChannelKind::Sms).await;
    // Bob writes by SMS into a flow that asks his e-mail, and gives Ana's.
    w.pipeline
        .flows()
        .put(
            &w.tenant,
            "signup",
            &json!({
                "entry": {"new_conversation": true},
                "start": "address",
                "nodes": {
                    "address": {"type": "ask", "text": "Votre e-mail ?", "attribute": "email",
                                "validate": {"type": "email"}, "next": "thanks"},
                    "thanks": {"type": "end", "text": "Merci."}
                }
            }),
        )
        .await
        .unwrap();
    let sms = |text: &str, id: &str| NewInbound {
        answers: Vec::new(),
        tenant_id: w.tenant.clone(),
        channel: ChannelKind::Sms,
        channel_id: None,
        from: "33698765433".into(),
        to: "36180".into(),
        text: text.to_owned(),
        payload: None,
        media: None,
        provider_id: Some(id.to_owned()),
    };
    let bob = w
        .pipeline
        .receive(sms("Bonjour", "mo-1"))
        .await
        .unwrap()
        .message
        .contact_id
        .unwrap();
    w.pipeline
        .receive(sms("ana@example.com", "mo-2"))
        .await
        .unwrap();
    assert_eq!(
        w.contacts().await.len(),
        2,
        "two people, still two contacts"
    );
    assert!(w.store.merges(&w.tenant, &ana).await.unwrap().is_empty());
    let bob_now = w.store.contact(&w.tenant, &bob).await.unwrap().unwrap();
    assert_eq!(bob_now.identities.len(), 1, "{bob_now:?}");
    assert_eq!(bob_now.attributes["email"], "ana@example.com");
    assert_eq!(w.sent_texts(&bob).await.last().unwrap(), "Merci.");
}

#[tokio::test]
async fn a_visitor_merged_into_a_customer_who_waits_for_an_agent_leaves_the_bot() {
    let w = world().await;
    let ana = w.ana(ChannelKind::Sms).await;
    // Ana wrote by SMS: no flow takes it, her conversation waits for an agent.
    let ana_sms = w
        .pipeline
        .receive(NewInbound {
            answers: Vec::new(),
            tenant_id: w.tenant.clone(),
            channel: ChannelKind::Sms,
            channel_id: None,
            from: "33612345678".into(),
            to: "36180".into(),
            text: "Mon colis n'est pas arrivé".into(),
            payload: None,
            media: None,
            provider_id: Some("mo-1".into()),
        })
        .await
        .unwrap();
    let hers = ana_sms.message.conversation_id.clone().unwrap();
    let hello = w.visitor_writes("Bonjour", "c1").await;
    let visitors = hello.message.conversation_id.clone().unwrap();
    let answer = w.visitor_writes("ana@example.com", "c2").await;

    assert_eq!(
        answer.message.conversation_id.as_deref(),
        Some(hers.as_str())
    );
    assert_eq!(
        w.store.conversation(&w.tenant, &visitors).await.unwrap(),
        None,
        "one conversation per contact: the visitor's went into hers"
    );
    assert_eq!(
        w.store.flow_session(&w.tenant, &visitors).await.unwrap(),
        None
    );
    let thread = w
        .store
        .conversation(&w.tenant, &hers)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(thread.state, ConversationState::Pending);
    assert_eq!(
        w.store.flow_session(&w.tenant, &hers).await.unwrap(),
        None,
        "the bot stops where a person has the customer"
    );
    let inbound = w
        .store
        .inbound_of_contact(&w.tenant, &ana, 10)
        .await
        .unwrap();
    assert_eq!(inbound.len(), 3);
    assert!(
        inbound
            .iter()
            .all(|m| m.conversation_id.as_deref() == Some(hers.as_str()))
    );
}

#[tokio::test]
async fn a_visitors_messages_arriving_together_follow_the_merge_their_answer_made() {
    let w = world().await;
    let ana = w.ana(ChannelKind::Sms).await;
    // Delivered at the same instant, they go through as one group, in their order: the
    // answer merges the visitor into Ana, and the message after it is then Ana's.
    let (hello, answer, order) = tokio::join!(
        w.pipeline.receive(web(VISITOR, "Bonjour", "c1", &w.tenant)),
        w.pipeline
            .receive(web(VISITOR, "ana@example.com", "c2", &w.tenant)),
        w.pipeline
            .receive(web(VISITOR, "Commande 42", "c3", &w.tenant)),
    );
    let (hello, answer, order) = (hello.unwrap(), answer.unwrap(), order.unwrap());
    assert_eq!(answer.message.contact_id.as_deref(), Some(ana.as_str()));
    assert_eq!(order.message.contact_id.as_deref(), Some(ana.as_str()));
    assert_eq!(order.message.conversation_id, hello.message.conversation_id);
    assert_eq!(w.contacts().await.len(), 1);
    let ana_now = w.store.contact(&w.tenant, &ana).await.unwrap().unwrap();
    assert_eq!(ana_now.attributes["order"], "Commande 42");
    assert_eq!(
        w.sent_texts(&ana).await,
        [
            "Votre adresse ?",
            "Votre numéro de commande ?",
            "Merci, un conseiller arrive."
        ]
    );
}
