//! Conformance of [`crate::PrivacyStore`]: a contact's export, their erasure from every
//! table (proved by searching every table the database lists), the block on their
//! addresses, and the retention purge.

use super::{attrs, queued_message, secs, t0};
use crate::{
    ContactEvent, EventWrite, FlowAnswer, FlowSession, FlowStep, InboundPlacement, MessageEvent,
    NewContact, NewEvent, NewInboundMessage, NewJourneyRun, NewMedia, NewMessage, NewTrackedLink,
    Period, SimEntry, Store, StoreError,
};
use relais_core::channel::ChannelKind;
use relais_core::consent::{ConsentRecord, ConsentSource, ConsentStatus, Purpose};
use relais_core::contact::Identity;
use relais_core::conversation::ConversationState;
use relais_core::privacy::RetentionPolicy;
use relais_core::status::MessageStatus;

const ZOE_PHONE: &str = "+33698765432";
const ZOE_EMAIL: &str = "zoelle.quibbleton@example.org";
const BOB_PHONE: &str = "+33611111111";

/// Everything that names Zoé or that she wrote or was sent: none of it may be found
/// anywhere once she is erased.
const ZOE_TRACES: &[&str] = &[
    ZOE_PHONE,
    "33698765432",
    ZOE_EMAIL,
    "Zoelle",
    "Quibbleton",
    "CRM-7731-ZQ",
    "Lyon-Croix-Rousse",
    "checkbox-ZQ-proof",
    "ZQ-OUT-SMS-4471",
    "ZQ-OUT-WA-5582",
    "ZQ-OUT-MAIL-6693",
    "ZQ-IDEM-KEY",
    "ZQ-LINK-TOKEN",
    "ZQ-Agent/1.0",
    "ZQ-IN-TEXT-7788",
    "ZQ-IN-TEXT-7788-PAYLOAD",
    "ZQ-IN-TEXT-7788-ENTITY",
    "ZQ-IN-TEXT-7788-LAST",
    "ZQ-NOTE-9911",
    "ZQ-FLOW-VAR",
    "ZQ-ANSWER-3344",
    "ZQ-CART-5566",
    "ZQ-EVENT-ID",
    "ZQ-STREAM",
    "ZQ-HOOK",
    "ZQ-SIM",
    "ZQ-MEDIA-BYTES",
];

const BOB_TRACES: &[&str] = &[
    BOB_PHONE,
    "Bobbington",
    "BOB-OUT-1234",
    "BOB-IN-5678",
    "BOB-IN-5678-PAYLOAD",
    "BOB-IN-5678-ENTITY",
    "BOB-IN-5678-LAST",
];

fn identity(channel: ChannelKind, address: &str) -> Identity {
    Identity {
        channel,
        address: address.to_owned(),
    }
}

/// A delivered message to `contact` on `channel`.
async fn delivered(
    store: &dyn Store,
    tenant: &str,
    contact: &str,
    channel: &str,
    to: &str,
    content: serde_json::Value,
    key: Option<&str>,
) -> NewMessage {
    let m = NewMessage {
        contact_id: Some(contact.to_owned()),
        content,
        idempotency_key: key.map(str::to_owned),
        purpose: "marketing".into(),
        ..queued_message(tenant, channel, to, secs(10))
    };
    store
        .insert_messages(std::slice::from_ref(&m))
        .await
        .unwrap();
    let mut event = MessageEvent::new(MessageStatus::Delivered, secs(20));
    event.detail = Some(format!("handset {to} acknowledged"));
    store.record_status(&m.id, &event).await.unwrap();
    m
}

/// An inbound message from `from`, placed in the contact's conversation.
async fn written_in(
    store: &dyn Store,
    tenant: &str,
    contact: &str,
    from: &str,
    text: &str,
) -> (String, String) {
    let received = NewInboundMessage {
        id: crate::new_id(),
        tenant_id: tenant.to_owned(),
        channel: ChannelKind::Sms,
        channel_id: None,
        from_address: from.to_owned(),
        to_address: "36180".into(),
        contact_id: Some(contact.to_owned()),
        text: text.to_owned(),
        payload: Some(format!("{{\"button\":\"{text}-PAYLOAD\"}}")),
        media: None,
        provider_id: Some(format!("mo-{}", crate::new_id())),
        received_at: secs(30),
    };
    let id = store.insert_inbound(&received).await.unwrap().message.id;
    let last = serde_json::json!({"direction": "in", "text": format!("{text}-LAST")});
    let conversation = store
        .place_inbound(&InboundPlacement {
            tenant_id: tenant,
            contact_id: contact,
            message_id: &id,
            channel: ChannelKind::Sms,
            channel_id: None,
            address: from,
            last_message: &last,
            at: secs(30),
            state: ConversationState::Bot,
            reopens: true,
        })
        .await
        .unwrap();
    let annotations =
        serde_json::json!({"intent": "order_status", "entities": [format!("{text}-ENTITY")]});
    store
        .finish_inbound(
            tenant,
            &id,
            Some(contact),
            Some(&conversation.id),
            Some((&annotations, secs(31))),
            secs(31),
        )
        .await
        .unwrap();
    (id, conversation.id)
}

/// Zoé: three channels, a conversation with a note and a flow, consent, a click, an
/// event that entered a journey, and traces in the logs that quote her.
async fn zoe(store: &dyn Store, tenant: &str) -> (String, Vec<String>) {
    let zoe = store
        .create_contact(
            tenant,
            &NewContact {
                attributes: attrs(
                    r#"{"first_name":"Zoelle","last_name":"Quibbleton","crm_id":"CRM-7731-ZQ","district":"Lyon-Croix-Rousse"}"#,
                ),
                identities: vec![
                    identity(ChannelKind::Sms, ZOE_PHONE),
                    identity(ChannelKind::Whatsapp, ZOE_PHONE),
                    identity(ChannelKind::Email, ZOE_EMAIL),
                ],
                ..Default::default()
            },
            t0(),
        )
        .await
        .unwrap();
    store
        .append_consent(
            tenant,
            &ConsentRecord {
                id: crate::new_id(),
                contact_id: zoe.id.clone(),
                channel: None,
                purpose: Purpose::Marketing,
                status: ConsentStatus::OptedIn,
                source: ConsentSource::Api,
                proof: Some("checkbox-ZQ-proof on the signup form".into()),
                recorded_at: t0(),
            },
        )
        .await
        .unwrap();
    let sms = delivered(
        store,
        tenant,
        &zoe.id,
        "sms",
        ZOE_PHONE,
        serde_json::json!({"text": "Zoelle, votre code ZQ-OUT-SMS-4471 https://l.example/l/ZQCODE000001"}),
        Some("order-ZQ-IDEM-KEY"),
    )
    .await;
    let wa = delivered(
        store,
        tenant,
        &zoe.id,
        "whatsapp",
        ZOE_PHONE,
        serde_json::json!({"text": "ZQ-OUT-WA-5582"}),
        None,
    )
    .await;
    let mail = delivered(
        store,
        tenant,
        &zoe.id,
        "email",
        ZOE_EMAIL,
        serde_json::json!({"subject": "Bonjour Zoelle", "text": "ZQ-OUT-MAIL-6693"}),
        None,
    )
    .await;
    store
        .insert_tracked_links(&[NewTrackedLink {
            code: "ZQCODE000001".into(),
            tenant_id: tenant.to_owned(),
            message_id: sms.id.clone(),
            url: format!("https://shop.example/cart?email={ZOE_EMAIL}&t=ZQ-LINK-TOKEN"),
            field: "text".into(),
            created_at: secs(10),
        }])
        .await
        .unwrap();
    store
        .record_click("ZQCODE000001", secs(40), Some("ZQ-Agent/1.0"))
        .await
        .unwrap()
        .expect("a stored code");
    let (inbound, conversation) =
        written_in(store, tenant, &zoe.id, ZOE_PHONE, "ZQ-IN-TEXT-7788").await;
    store
        .add_note(
            tenant,
            &conversation,
            None,
            "ZQ-NOTE-9911 called back",
            secs(50),
        )
        .await
        .unwrap();
    let mut vars = serde_json::Map::new();
    vars.insert("size".into(), serde_json::json!("ZQ-FLOW-VAR"));
    let session = FlowSession {
        tenant_id: tenant.to_owned(),
        conversation_id: conversation.clone(),
        flow: "signup".into(),
        revision: 1,
        node: "ask".into(),
        attempts: 0,
        vars,
        last_message_id: inbound.clone(),
        started_at: secs(30),
        updated_at: secs(30),
    };
    store
        .save_flow_step(&FlowStep {
            tenant_id: tenant,
            conversation_id: &conversation,
            session: Some(&session),
            state: None,
            team: None,
            last_message: None,
            at: secs(31),
        })
        .await
        .unwrap();
    store
        .record_flow_answer(&FlowAnswer {
            tenant_id: tenant.to_owned(),
            contact_id: zoe.id.clone(),
            attribute: "shoe_size".into(),
            value: serde_json::json!("ZQ-ANSWER-3344"),
            flow: "signup".into(),
            node: "ask".into(),
            conversation_id: conversation.clone(),
            message_id: inbound.clone(),
            channel: ChannelKind::Sms,
            answered_at: secs(31),
        })
        .await
        .unwrap();
    let event = ContactEvent {
        id: crate::new_id(),
        tenant_id: tenant.to_owned(),
        contact_id: zoe.id.clone(),
        name: "cart_abandoned".into(),
        properties: attrs(r#"{"cart": "ZQ-CART-5566"}"#),
        value: Some(42.5),
        idempotency_id: Some("ZQ-EVENT-ID".into()),
        outcome: Default::default(),
        at: secs(60),
    };
    store
        .record_contact_event(&EventWrite {
            event: &event,
            new_contact: None,
            exits: &[],
            entries: &[NewJourneyRun {
                id: crate::new_id(),
                tenant_id: tenant.to_owned(),
                journey: "winback".into(),
                contact_id: zoe.id.clone(),
                entry_key: "ZQ-EVENT-ID".into(),
                exclusive: true,
                entered_by: None,
                event_properties: attrs(r#"{"cart": "ZQ-CART-5566"}"#),
                step: "wait".into(),
                due_at: secs(60),
            }],
        })
        .await
        .unwrap();
    // The logs that quote her: the live event stream, a queued webhook, the sandbox
    // phone, the channel's reach window, an uploaded picture.
    store
        .append_event(&NewEvent {
            tenant_id: tenant.to_owned(),
            kind: "message.received".into(),
            conversation_id: Some(conversation.clone()),
            team: None,
            data: serde_json::json!({"from": ZOE_PHONE, "text": "ZQ-STREAM"}),
            key: None,
            at: secs(30),
        })
        .await
        .unwrap();
    store
        .create_webhook(tenant, "https://crm.example/hook", "whsec_x", t0())
        .await
        .unwrap();
    let payload = serde_json::json!({"type": "message.received", "data": {"id": inbound, "from": ZOE_PHONE, "text": "ZQ-HOOK"}});
    store
        .queue_webhook_event(
            tenant,
            &inbound,
            "message.received",
            &payload.to_string(),
            secs(30),
        )
        .await
        .unwrap();
    store
        .sim_record(
            tenant,
            &[SimEntry {
                id: crate::new_id(),
                number: ZOE_PHONE.into(),
                direction: "in".into(),
                message_id: Some(sms.id.clone()),
                text: "ZQ-SIM".into(),
                at: secs(10),
            }],
        )
        .await
        .unwrap();
    store
        .record_reach(tenant, "whatsapp", ZOE_PHONE, secs(10), t0())
        .await
        .unwrap();
    store
        .insert_media(&NewMedia {
            id: crate::new_id(),
            tenant_id: tenant.to_owned(),
            channel_id: "widget".into(),
            owner_address: ZOE_EMAIL.into(),
            mime_type: "image/png".into(),
            bytes: b"\x89PNG ZQ-MEDIA-BYTES".to_vec(),
            created_at: secs(30),
        })
        .await
        .unwrap();
    (zoe.id, vec![sms.id, wa.id, mail.id, inbound])
}

async fn bob(store: &dyn Store, tenant: &str) -> String {
    let bob = store
        .create_contact(
            tenant,
            &NewContact {
                attributes: attrs(r#"{"last_name":"Bobbington"}"#),
                identities: vec![identity(ChannelKind::Sms, BOB_PHONE)],
                ..Default::default()
            },
            t0(),
        )
        .await
        .unwrap();
    delivered(
        store,
        tenant,
        &bob.id,
        "sms",
        BOB_PHONE,
        serde_json::json!({"text": "BOB-OUT-1234"}),
        None,
    )
    .await;
    written_in(store, tenant, &bob.id, BOB_PHONE, "BOB-IN-5678").await;
    bob.id
}

fn needles(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn rows_of<'a>(
    export: &'a crate::ContactExport,
    kind: &str,
) -> &'a [serde_json::Map<String, serde_json::Value>] {
    export
        .sections
        .iter()
        .find(|s| s.kind == kind)
        .map(|s| s.rows.as_slice())
        .unwrap_or_default()
}

pub async fn an_export_holds_everything_about_a_contact_and_only_in_its_tenant(store: &dyn Store) {
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let other = store.create_tenant("globex", t0()).await.unwrap().id;
    let (zoe, _) = zoe(store, &tenant).await;
    bob(store, &tenant).await;
    let export = store
        .export_contact(&tenant, &zoe)
        .await
        .unwrap()
        .expect("her export");
    let count = |kind: &str| rows_of(&export, kind).len();
    assert_eq!(count("profile"), 1);
    assert_eq!(
        rows_of(&export, "profile")[0]["attributes"]["crm_id"],
        "CRM-7731-ZQ"
    );
    assert_eq!(count("identities"), 3);
    assert_eq!(count("consents"), 1);
    assert_eq!(
        rows_of(&export, "consents")[0]["proof"],
        "checkbox-ZQ-proof on the signup form"
    );
    assert_eq!(count("messages_out"), 3, "sms, whatsapp and email");
    assert_eq!(count("messages_in"), 1);
    assert_eq!(count("nlu_annotations"), 1);
    assert_eq!(count("conversations"), 1);
    assert_eq!(count("conversation_notes"), 1);
    assert_eq!(count("flow_answers"), 1);
    assert_eq!(count("flow_sessions"), 1);
    assert_eq!(count("link_clicks"), 1);
    assert_eq!(
        rows_of(&export, "link_clicks")[0]["user_agent"],
        "ZQ-Agent/1.0"
    );
    assert_eq!(count("contact_events"), 1);
    assert_eq!(count("journeys"), 1);
    assert_eq!(count("media"), 1);
    let text = serde_json::to_string(&export).unwrap();
    assert!(text.contains("ZQ-OUT-MAIL-6693") && text.contains("ZQ-IN-TEXT-7788"));
    assert!(!text.contains("BOB-"), "nobody else's data: {text}");
    let at = &rows_of(&export, "messages_out")[0]["created_at"];
    assert!(
        at.as_str().is_some_and(|s| s.ends_with('Z')),
        "times are RFC 3339: {at}"
    );
    assert_eq!(store.export_contact(&other, &zoe).await.unwrap(), None);
    assert_eq!(store.export_contact(&tenant, "nobody").await.unwrap(), None);
}

pub async fn an_erased_contact_is_found_in_no_table_and_counts_still_add_up(store: &dyn Store) {
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let other = store.create_tenant("globex", t0()).await.unwrap().id;
    let (zoe, ids) = zoe(store, &tenant).await;
    let bob = bob(store, &tenant).await;
    let mut everything = needles(ZOE_TRACES);
    everything.push(zoe.clone());
    let before = store.find_traces(&everything).await.unwrap();
    for needle in ZOE_TRACES {
        assert!(
            before.iter().any(|t| t.needle == *needle),
            "the test must be able to fail: {needle} is stored somewhere before the erasure"
        );
    }
    let period = Period {
        since: t0(),
        until: secs(3600),
        bucket: jiff::SignedDuration::from_secs(3600),
    };
    let counts_before = store.period_counts(&tenant, &period).await.unwrap();
    let clicks_before = store
        .clicked_counts(&tenant, t0(), secs(3600))
        .await
        .unwrap();
    let bob_before = store.export_contact(&tenant, &bob).await.unwrap();
    let bob_traces = store.find_traces(&needles(BOB_TRACES)).await.unwrap();
    for needle in BOB_TRACES {
        assert!(
            bob_traces.iter().any(|t| t.needle == *needle),
            "{needle} is stored"
        );
    }

    // Another tenant cannot erase her; an unknown contact is not found. Nothing changes.
    assert!(matches!(
        store.erase_contact(&other, &zoe, secs(100)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.erase_contact(&tenant, "nobody", secs(100)).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.find_traces(&everything).await.unwrap(), before);

    let report = store.erase_contact(&tenant, &zoe, secs(100)).await.unwrap();
    assert_eq!(report.suppressed_addresses, 3);
    assert_eq!(report.anonymised.get("messages"), Some(&3));

    let left = store.find_traces(&everything).await.unwrap();
    assert!(
        left.is_empty(),
        "traces of the erased contact remain: {left:#?}"
    );
    assert_eq!(store.contact(&tenant, &zoe).await.unwrap(), None);
    assert_eq!(store.export_contact(&tenant, &zoe).await.unwrap(), None);
    // Her messages are still counted, by channel, status and time; so are clicks.
    assert_eq!(
        store.period_counts(&tenant, &period).await.unwrap(),
        counts_before
    );
    assert_eq!(
        store
            .clicked_counts(&tenant, t0(), secs(3600))
            .await
            .unwrap(),
        clicks_before
    );
    let kept = store
        .message(&tenant, &ids[0])
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(kept.message.status, MessageStatus::Delivered);
    assert_eq!(
        kept.message.content,
        serde_json::json!({"text": "[erased]"})
    );
    assert!(
        store
            .inbound_message(&tenant, &ids[3])
            .await
            .unwrap()
            .is_some()
    );
    // Bob is untouched.
    assert_eq!(
        store.export_contact(&tenant, &bob).await.unwrap(),
        bob_before
    );
    assert_eq!(
        store.find_traces(&needles(BOB_TRACES)).await.unwrap(),
        bob_traces
    );
    // Erasing twice: she is gone.
    assert!(matches!(
        store.erase_contact(&tenant, &zoe, secs(101)).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn erased_addresses_are_blocked_until_lifted_and_only_in_their_tenant(store: &dyn Store) {
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let other = store.create_tenant("globex", t0()).await.unwrap().id;
    let asked = needles(&[ZOE_PHONE, ZOE_EMAIL, BOB_PHONE]);
    assert!(
        store
            .suppressed_addresses(&tenant, &asked)
            .await
            .unwrap()
            .is_empty()
    );
    let (zoe, _) = zoe(store, &tenant).await;
    store.erase_contact(&tenant, &zoe, secs(100)).await.unwrap();
    let mut blocked = store.suppressed_addresses(&tenant, &asked).await.unwrap();
    blocked.sort();
    assert_eq!(blocked, [ZOE_PHONE, ZOE_EMAIL]);
    assert_eq!(
        store
            .suppressed_addresses(&tenant, &needles(&["Zoelle.Quibbleton@Example.org"]))
            .await
            .unwrap()
            .len(),
        1,
        "an address is compared in its normal form"
    );
    assert!(
        store
            .suppressed_addresses(&other, &asked)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .lift_suppression(&tenant, &needles(&[ZOE_EMAIL]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.suppressed_addresses(&tenant, &asked).await.unwrap(),
        [ZOE_PHONE]
    );
}

pub async fn retention_purges_old_content_only_and_counts_it(store: &dyn Store) {
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let other = store.create_tenant("globex", t0()).await.unwrap().id;
    let day = |d: i64| secs(d * 86_400);
    let c = store
        .create_contact(
            &tenant,
            &NewContact {
                identities: vec![identity(ChannelKind::Sms, BOB_PHONE)],
                ..Default::default()
            },
            t0(),
        )
        .await
        .unwrap();
    let message = |tenant: &str, at: i64, text: &str| NewMessage {
        contact_id: Some(c.id.clone()),
        content: serde_json::json!({ "text": text }),
        ..queued_message(tenant, "sms", BOB_PHONE, day(at))
    };
    let (old, new, pending, theirs) = (
        message(&tenant, 0, "old body"),
        message(&tenant, 50, "new body"),
        message(&tenant, 0, "still queued"),
        message(&other, 0, "another tenant's"),
    );
    store
        .insert_messages(&[old.clone(), new.clone(), pending.clone(), theirs.clone()])
        .await
        .unwrap();
    for m in [&old, &new, &theirs] {
        store
            .record_status(&m.id, &MessageEvent::new(MessageStatus::Delivered, day(1)))
            .await
            .unwrap();
    }
    let inbound = |at: i64, text: &str| NewInboundMessage {
        id: crate::new_id(),
        tenant_id: tenant.clone(),
        channel: ChannelKind::Sms,
        channel_id: None,
        from_address: BOB_PHONE.into(),
        to_address: "36180".into(),
        contact_id: Some(c.id.clone()),
        text: text.to_owned(),
        payload: None,
        media: None,
        provider_id: None,
        received_at: day(at),
    };
    let (old_in, new_in) = (inbound(0, "old reply"), inbound(50, "new reply"));
    for m in [&old_in, &new_in] {
        store.insert_inbound(m).await.unwrap();
        store
            .finish_inbound(&tenant, &m.id, None, None, None, m.received_at)
            .await
            .unwrap();
    }
    for (at, id) in [(0, "media-old"), (50, "media-new")] {
        store
            .insert_media(&NewMedia {
                id: id.into(),
                tenant_id: tenant.clone(),
                channel_id: "widget".into(),
                owner_address: "visitor".into(),
                mime_type: "image/png".into(),
                bytes: vec![1, 2, 3],
                created_at: day(at),
            })
            .await
            .unwrap();
    }
    let policy: RetentionPolicy = serde_json::from_str(
        r#"{"outbound_bodies_days": 30, "inbound_content_days": 30, "attachments_days": 30}"#,
    )
    .unwrap();
    let now = day(60);
    let counts = store
        .purge_expired(&tenant, &policy.cutoffs(now))
        .await
        .unwrap();
    assert_eq!(
        (
            counts.outbound_bodies,
            counts.inbound_contents,
            counts.attachments
        ),
        (1, 1, 1)
    );
    for (m, t, expected) in [
        (&old, &tenant, "[erased]"),
        (&new, &tenant, "new body"),
        (&pending, &tenant, "still queued"),
        (&theirs, &other, "another tenant's"),
    ] {
        let read = store.message(t, &m.id).await.unwrap().unwrap();
        assert_eq!(read.message.content["text"], expected);
    }
    for (m, expected) in [(&old_in, "[erased]"), (&new_in, "new reply")] {
        let read = store
            .inbound_message(&tenant, &m.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.text, expected);
    }
    assert!(store.media(&tenant, "media-old").await.unwrap().is_none());
    assert!(store.media(&tenant, "media-new").await.unwrap().is_some());
    let again = store
        .purge_expired(&tenant, &policy.cutoffs(now))
        .await
        .unwrap();
    assert_eq!(again.total(), 0, "what was purged is not counted twice");
    let kept_forever = store
        .purge_expired(&tenant, &RetentionPolicy::default().cutoffs(day(10_000)))
        .await
        .unwrap();
    assert_eq!(kept_forever.total(), 0, "the default keeps everything");
}
