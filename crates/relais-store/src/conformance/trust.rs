//! Conformance of what trust adds to the stores: the content checks' findings
//! ([`crate::ContentCheckStore`]) and the review of held messages
//! ([`crate::MessageStore::review_held`]).

use super::{queued_message, secs, t0};
use crate::{ContentCheckRecord, MessageEvent, Review, ReviewOutcome, Store, StoreError};
use relais_core::content_check::{Reason, ReasonCode};
use relais_core::status::MessageStatus::*;

/// A message the content checks held: no outbox row.
fn held_message(tenant: &str, to: &str) -> crate::NewMessage {
    let mut m = queued_message(tenant, "sim", to, t0());
    m.status = Held;
    m.events = vec![
        MessageEvent::new(Accepted, t0()),
        MessageEvent::new(Held, t0()).reason("content_check"),
    ];
    m.due_at = None;
    m
}

pub async fn content_checks_are_read_back_within_their_tenant(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let globex = store.create_tenant("globex", t0()).await.unwrap().id;
    let record = ContentCheckRecord {
        message_id: "m-1".into(),
        tenant_id: acme.clone(),
        score: 90,
        reasons: vec![
            Reason {
                code: ReasonCode::LookalikeAddedWords,
                weight: 60,
                detail: "`ma-banque-securite.com` adds words to the brand `mabanque.fr`".into(),
            },
            Reason {
                code: ReasonCode::DomainNotAllowed,
                weight: 30,
                detail: "«ç'est» \"quoted\"".into(),
            },
        ],
        verdict: "hold".into(),
        created_at: t0(),
    };
    store
        .insert_content_checks(std::slice::from_ref(&record))
        .await
        .unwrap();
    assert_eq!(
        store.content_check(&acme, "m-1").await.unwrap(),
        Some(record)
    );
    assert_eq!(store.content_check(&globex, "m-1").await.unwrap(), None);
    assert_eq!(store.content_check(&acme, "m-2").await.unwrap(), None);
}

pub async fn a_held_message_is_released_into_the_outbox_or_rejected_for_good(store: &dyn Store) {
    let lease = jiff::SignedDuration::from_secs(30);
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let globex = store.create_tenant("globex", t0()).await.unwrap().id;
    let released = held_message(&acme, "+33612345678");
    let rejected = held_message(&acme, "+33612345679");
    store
        .insert_messages(&[released.clone(), rejected.clone()])
        .await
        .unwrap();
    assert!(
        store
            .claim_due(secs(5), 10, "w1", lease)
            .await
            .unwrap()
            .is_empty(),
        "a held message has no work in the outbox"
    );
    let release = Review::Release {
        status: Queued,
        due_at: secs(6),
        detail: "released by a reviewer".into(),
    };
    // Another tenant's reviewer finds nothing.
    assert!(matches!(
        store
            .review_held(&globex, &released.id, &release, secs(6))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store
            .review_held(&acme, &released.id, &release, secs(6))
            .await
            .unwrap(),
        ReviewOutcome::Done(Queued)
    );
    let claimed = store.claim_due(secs(7), 10, "w1", lease).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].message.id, released.id);
    // Reviewed twice: nothing changes.
    assert_eq!(
        store
            .review_held(&acme, &released.id, &release, secs(8))
            .await
            .unwrap(),
        ReviewOutcome::NotHeld(Queued)
    );

    let reject = Review::Reject {
        detail: "rejected by a reviewer: phishing".into(),
    };
    assert_eq!(
        store
            .review_held(&acme, &rejected.id, &reject, secs(9))
            .await
            .unwrap(),
        ReviewOutcome::Done(Rejected)
    );
    let stored = store.message(&acme, &rejected.id).await.unwrap().unwrap();
    assert_eq!(stored.message.status, Rejected);
    let last = stored.events.last().unwrap();
    assert_eq!(
        (last.reason.as_deref(), last.detail.as_deref()),
        (
            Some("content_check"),
            Some("rejected by a reviewer: phishing")
        )
    );
    assert_eq!(
        store
            .review_held(&acme, &rejected.id, &release, secs(10))
            .await
            .unwrap(),
        ReviewOutcome::NotHeld(Rejected)
    );
    assert!(
        store
            .claim_due(secs(20), 10, "w2", lease)
            .await
            .unwrap()
            .is_empty(),
        "a rejected message is never sent (the released one is still leased to w1)"
    );
}

fn sender(
    tenant: &str,
    id: &str,
    kind: relais_core::verified_sender::SenderKind,
    value: &str,
) -> crate::SenderRecord {
    crate::SenderRecord {
        id: id.to_owned(),
        tenant_id: tenant.to_owned(),
        kind,
        value: value.to_owned(),
        verified: false,
        dkim_selector: None,
        token: None,
        code: None,
        verified_at: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

pub async fn senders_are_registered_once_per_tenant_and_verified_within_their_tries(
    store: &dyn Store,
) {
    use relais_core::verified_sender::SenderKind;
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let globex = store.create_tenant("globex", t0()).await.unwrap().id;
    let phone = sender(&acme, "s-1", SenderKind::PhoneNumber, "+33611223344");
    store.create_sender(&phone).await.unwrap();
    assert!(matches!(
        store
            .create_sender(&sender(
                &acme,
                "s-2",
                SenderKind::PhoneNumber,
                "+33611223344"
            ))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // The same value in another tenant, or as another kind, is another sender.
    store
        .create_sender(&sender(
            &globex,
            "s-3",
            SenderKind::PhoneNumber,
            "+33611223344",
        ))
        .await
        .unwrap();
    let mut domain = sender(&acme, "s-4", SenderKind::EmailDomain, "mabanque.fr");
    domain.dkim_selector = Some("s1".into());
    domain.token = Some("abc".into());
    store.create_sender(&domain).await.unwrap();
    assert_eq!(
        store.senders(&acme).await.unwrap(),
        vec![phone.clone(), domain.clone()]
    );
    assert_eq!(store.sender(&globex, "s-1").await.unwrap(), None);

    assert!(
        store
            .set_sender_code(&acme, "s-1", "digest", secs(600), secs(1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_sender_code(&globex, "s-1", "digest", secs(600), secs(1))
            .await
            .unwrap()
    );
    for _ in 0..3 {
        assert!(
            store
                .take_code_attempt(&acme, "s-1", 3, secs(2))
                .await
                .unwrap()
        );
    }
    assert!(
        !store
            .take_code_attempt(&acme, "s-1", 3, secs(3))
            .await
            .unwrap()
    );
    let pending = store
        .sender(&acme, "s-1")
        .await
        .unwrap()
        .unwrap()
        .code
        .unwrap();
    assert_eq!(
        (
            pending.digest.as_str(),
            pending.expires_at,
            pending.attempts
        ),
        ("digest", secs(600), 3)
    );
    // A new code starts its tries again.
    store
        .set_sender_code(&acme, "s-1", "other", secs(700), secs(4))
        .await
        .unwrap();
    assert!(
        store
            .take_code_attempt(&acme, "s-1", 3, secs(5))
            .await
            .unwrap()
    );

    assert!(
        store
            .mark_sender_verified(&acme, "s-1", secs(6))
            .await
            .unwrap()
    );
    let verified = store.sender(&acme, "s-1").await.unwrap().unwrap();
    assert!(verified.verified);
    assert_eq!((verified.code, verified.verified_at), (None, Some(secs(6))));
    assert!(!store.delete_sender(&globex, "s-1").await.unwrap());
    assert!(store.delete_sender(&acme, "s-1").await.unwrap());
    assert_eq!(store.senders(&acme).await.unwrap(), vec![domain]);
}
