//! Conformance of [`crate::TwilioStore`]: accounts, status callbacks, redaction and
//! deletion of a message, inbound messages to post.

use super::{queued_message, secs, t0};
use crate::{
    DeleteOutcome, MessageEvent, NewTwilioCallback, Store, StoreError, TwilioAccount,
    TwilioCallbackOutcome, TwilioInboundOutcome,
};
use relais_core::status::MessageStatus::*;

fn account(tenant: &str, sid: &str, token_hash: &str) -> TwilioAccount {
    TwilioAccount {
        tenant_id: tenant.to_owned(),
        account_sid: sid.to_owned(),
        token_hash: token_hash.to_owned(),
        auth_token: "sealed".to_owned(),
        created_at: t0(),
        updated_at: t0(),
        inbound_url: None,
        inbound_error: None,
    }
}

const SID_A: &str = "AC0123456789abcdef0123456789abcdef";
const SID_B: &str = "ACfedcba9876543210fedcba9876543210";

pub async fn a_twilio_account_is_one_per_tenant_and_its_sid_is_unique(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let globex = store.create_tenant("globex", t0()).await.unwrap();
    assert_eq!(store.twilio_account(&acme.id).await.unwrap(), None);
    store
        .put_twilio_account(&account(&acme.id, SID_A, "h1"))
        .await
        .unwrap();
    // A new token replaces the old one.
    store
        .put_twilio_account(&account(&acme.id, SID_A, "h2"))
        .await
        .unwrap();
    let found = store.twilio_account_by_sid(SID_A).await.unwrap().unwrap();
    assert_eq!(
        (found.tenant_id.as_str(), found.token_hash.as_str()),
        (acme.id.as_str(), "h2")
    );
    assert_eq!(store.twilio_account(&acme.id).await.unwrap(), Some(found));
    assert!(matches!(
        store
            .put_twilio_account(&account(&globex.id, SID_A, "h3"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.twilio_account(&globex.id).await.unwrap(), None);
    assert_eq!(store.twilio_account_by_sid(SID_B).await.unwrap(), None);
}

pub async fn a_status_callback_is_due_once_per_status_change_until_a_final_one(store: &dyn Store) {
    let lease = jiff::SignedDuration::from_secs(60);
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let m = queued_message(&acme.id, "sim", "+33612345678", t0());
    let quiet = queued_message(&acme.id, "sim", "+33612345679", t0());
    store
        .insert_messages(&[m.clone(), quiet.clone()])
        .await
        .unwrap();
    let callback = NewTwilioCallback {
        message_id: m.id.clone(),
        tenant_id: acme.id.clone(),
        url: "https://example.com/cb".into(),
        created_at: t0(),
    };
    store.insert_twilio_callback(&callback).await.unwrap();
    store.insert_twilio_callback(&callback).await.unwrap();
    let due = store
        .claim_twilio_callbacks(secs(1), 10, "w1", lease)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].status, due[0].url.as_str(), due[0].attempts),
        (Queued, "https://example.com/cb", 0)
    );
    // Leased: no one else takes it meanwhile.
    assert!(
        store
            .claim_twilio_callbacks(secs(2), 10, "w2", lease)
            .await
            .unwrap()
            .is_empty()
    );
    // A failure is retried when due, by whoever claims it then.
    let retry = TwilioCallbackOutcome::Retry {
        due_at: secs(10),
        error: "503".into(),
    };
    assert!(
        !store
            .finish_twilio_callback(&m.id, "w2", &retry, secs(2))
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_twilio_callback(&m.id, "w1", &retry, secs(2))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_twilio_callbacks(secs(9), 10, "w2", lease)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store
        .claim_twilio_callbacks(secs(10), 10, "w2", lease)
        .await
        .unwrap();
    assert_eq!((due.len(), due[0].attempts), (1, 1));
    let called = TwilioCallbackOutcome::Called {
        status: Queued,
        done: false,
        error: None,
    };
    assert!(
        store
            .finish_twilio_callback(&m.id, "w2", &called, secs(10))
            .await
            .unwrap()
    );
    // Nothing new until the status changes.
    assert!(
        store
            .claim_twilio_callbacks(secs(11), 10, "w1", lease)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .record_status(&m.id, &MessageEvent::new(Delivered, secs(12)))
        .await
        .unwrap();
    let due = store
        .claim_twilio_callbacks(secs(12), 10, "w1", lease)
        .await
        .unwrap();
    assert_eq!(
        (due.len(), due[0].status, due[0].attempts),
        (1, Delivered, 0)
    );
    let done = TwilioCallbackOutcome::Called {
        status: Delivered,
        done: true,
        error: None,
    };
    assert!(
        store
            .finish_twilio_callback(&m.id, "w1", &done, secs(12))
            .await
            .unwrap()
    );
    store
        .record_status(&m.id, &MessageEvent::new(Read, secs(13)))
        .await
        .unwrap();
    assert!(
        store
            .claim_twilio_callbacks(secs(14), 10, "w1", lease)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_redacted_or_deleted_message_is_its_tenants_and_finished(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let globex = store.create_tenant("globex", t0()).await.unwrap();
    let m = queued_message(&acme.id, "sim", "+33612345678", t0());
    store
        .insert_messages(std::slice::from_ref(&m))
        .await
        .unwrap();
    let empty = serde_json::json!({"text": ""});
    assert!(
        !store
            .replace_message_content(&globex.id, &m.id, &empty, secs(1))
            .await
            .unwrap()
    );
    assert!(
        store
            .replace_message_content(&acme.id, &m.id, &empty, secs(1))
            .await
            .unwrap()
    );
    let found = store.message(&acme.id, &m.id).await.unwrap().unwrap();
    assert_eq!(
        (found.message.content, found.message.updated_at),
        (empty, secs(1))
    );
    assert_eq!(
        store
            .delete_finished_message(&acme.id, &m.id)
            .await
            .unwrap(),
        DeleteOutcome::InProgress(Queued)
    );
    store
        .record_status(&m.id, &MessageEvent::new(Delivered, secs(2)))
        .await
        .unwrap();
    assert_eq!(
        store
            .delete_finished_message(&globex.id, &m.id)
            .await
            .unwrap(),
        DeleteOutcome::NotFound
    );
    assert!(store.message(&acme.id, &m.id).await.unwrap().is_some());
    assert_eq!(
        store
            .delete_finished_message(&acme.id, &m.id)
            .await
            .unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(store.message(&acme.id, &m.id).await.unwrap(), None);
}

pub async fn messages_are_listed_by_sender(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let mut shop = queued_message(&acme.id, "sim", "+33612345678", t0());
    shop.sender = Some("Shop".into());
    shop.campaign = relais_core::campaign::CampaignLabel::parse("soldes").ok();
    let bank = crate::NewMessage {
        sender: Some("Bank".into()),
        ..queued_message(&acme.id, "sim", "+33612345678", t0())
    };
    store.insert_messages(&[shop.clone(), bank]).await.unwrap();
    let tenant = acme.id.as_str();
    let list = |filter: crate::MessageFilter| async move {
        let page = crate::PageRequest {
            after: None,
            limit: 10,
        };
        store
            .list_messages(tenant, &filter, &page)
            .await
            .unwrap()
            .data
    };
    let by_sender = list(crate::MessageFilter {
        sender: Some("Shop".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        by_sender.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [shop.id.as_str()]
    );
    let both = list(crate::MessageFilter {
        sender: Some("Shop".into()),
        campaign: shop.campaign.clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(both.len(), 1);
    assert!(
        list(crate::MessageFilter {
            sender: Some("Nobody".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
}

fn inbound(tenant: &str, n: i64) -> crate::NewInboundMessage {
    crate::NewInboundMessage {
        id: crate::new_id(),
        tenant_id: tenant.to_owned(),
        channel: relais_core::channel::ChannelKind::Sim,
        channel_id: None,
        from_address: "+33612345678".into(),
        to_address: "+15005550006".into(),
        contact_id: None,
        text: format!("message {n}"),
        payload: None,
        media: None,
        provider_id: Some(format!("p{n}")),
        received_at: secs(n),
    }
}

pub async fn inbound_messages_are_due_after_the_cursor_of_an_account_with_an_inbound_url(
    store: &dyn Store,
) {
    let lease = jiff::SignedDuration::from_secs(60);
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let globex = store.create_tenant("globex", t0()).await.unwrap();
    let url = "https://example.com/sms";
    assert!(
        !store
            .set_twilio_inbound(&acme.id, Some(url), "", t0())
            .await
            .unwrap()
    );
    store
        .put_twilio_account(&account(&acme.id, SID_A, "h1"))
        .await
        .unwrap();
    store
        .put_twilio_account(&account(&globex.id, SID_B, "h2"))
        .await
        .unwrap();
    let before = store
        .insert_inbound(&inbound(&acme.id, 1))
        .await
        .unwrap()
        .message;
    // Set after the first message: only those after it are posted.
    assert!(
        store
            .set_twilio_inbound(&acme.id, Some(url), &before.id, secs(1))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_twilio_inbound(secs(2), 10, "w1", lease)
            .await
            .unwrap()
            .is_empty()
    );
    let after = store
        .insert_inbound(&inbound(&acme.id, 2))
        .await
        .unwrap()
        .message;
    store.insert_inbound(&inbound(&globex.id, 3)).await.unwrap();
    let due = store
        .claim_twilio_inbound(secs(3), 10, "w1", lease)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (
            due[0].account.tenant_id.as_str(),
            due[0].url.as_str(),
            due[0].cursor.as_str(),
            due[0].attempts
        ),
        (acme.id.as_str(), url, before.id.as_str(), 0)
    );
    assert!(
        store
            .claim_twilio_inbound(secs(3), 10, "w2", lease)
            .await
            .unwrap()
            .is_empty()
    );
    let retry = TwilioInboundOutcome::Retry {
        cursor: before.id.clone(),
        due_at: secs(10),
        attempts: 1,
        error: "503".into(),
    };
    assert!(
        !store
            .finish_twilio_inbound(&acme.id, "w2", &retry)
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_twilio_inbound(&acme.id, "w1", &retry)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_twilio_inbound(secs(9), 10, "w2", lease)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store
        .claim_twilio_inbound(secs(10), 10, "w2", lease)
        .await
        .unwrap();
    assert_eq!(due[0].attempts, 1);
    let advanced = TwilioInboundOutcome::Advanced {
        cursor: after.id.clone(),
        error: Some("12100".into()),
    };
    assert!(
        store
            .finish_twilio_inbound(&acme.id, "w2", &advanced)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_twilio_inbound(secs(11), 10, "w1", lease)
            .await
            .unwrap()
            .is_empty()
    );
    let shown = store.twilio_account(&acme.id).await.unwrap().unwrap();
    assert_eq!(
        (shown.inbound_url.as_deref(), shown.inbound_error.as_deref()),
        (Some(url), Some("12100"))
    );
    // No URL, nothing due.
    assert!(
        store
            .set_twilio_inbound(&acme.id, None, &before.id, secs(12))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_twilio_inbound(secs(13), 10, "w1", lease)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_messaging_service_is_its_tenants(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let globex = store.create_tenant("globex", t0()).await.unwrap();
    let service = crate::TwilioService {
        sid: "MG0123456789abcdef0123456789abcdef".into(),
        tenant_id: acme.id.clone(),
        name: "alerts".into(),
        senders: vec!["+15005550006".into(), "+15005550007".into()],
        created_at: t0(),
    };
    store.insert_twilio_service(&service).await.unwrap();
    assert_eq!(
        store.twilio_service(&acme.id, &service.sid).await.unwrap(),
        Some(service.clone())
    );
    assert_eq!(
        store
            .twilio_service(&globex.id, &service.sid)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.twilio_services(&acme.id).await.unwrap(),
        vec![service]
    );
    assert!(store.twilio_services(&globex.id).await.unwrap().is_empty());
}
