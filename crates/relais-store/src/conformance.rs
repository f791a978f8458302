//! The conformance suite every backend must pass. Each check takes a fresh, empty store;
//! `tests/sqlite.rs` and `tests/postgres.rs` run all of them through [`conformance_suite!`].

use crate::{
    ContactPatch, ImportConsent, ImportOutcome, ImportRow, NewApiKey, NewContact, PageRequest,
    SimEntry, Store, StoreError,
};
use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::consent::{ConsentRecord, ConsentSource, ConsentStatus, Purpose, may_send};
use relais_core::contact::{Attributes, Identity, MergeCause};
use relais_core::tenant::{Scope, Scopes, generate_api_key, hash_api_key};

mod audit;
mod twilio;
pub use audit::*;
mod privacy;
pub use privacy::*;
mod trust;
pub use trust::*;
pub use twilio::*;

fn t0() -> Timestamp {
    Timestamp::from_second(1_790_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn sms(n: &str) -> Identity {
    Identity {
        channel: ChannelKind::Sms,
        address: n.to_owned(),
    }
}

fn attrs(json: &str) -> Attributes {
    serde_json::from_str(json).unwrap_or_default()
}

fn contact(identities: Vec<Identity>, json: &str) -> NewContact {
    NewContact {
        attributes: attrs(json),
        identities,
        ..Default::default()
    }
}

fn consent(
    contact_id: &str,
    secs: i64,
    channel: Option<ChannelKind>,
    purpose: Purpose,
    status: ConsentStatus,
) -> ConsentRecord {
    ConsentRecord {
        id: crate::new_id(),
        contact_id: contact_id.to_owned(),
        channel,
        purpose,
        status,
        source: ConsentSource::Api,
        proof: Some("Yes, send me offers".into()),
        recorded_at: t0()
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap_or(t0()),
    }
}

pub async fn a_store_that_takes_writes_says_so(store: &dyn Store) {
    store
        .check_writable()
        .await
        .expect("a fresh store takes writes");
    store
        .check_writable()
        .await
        .expect("and again: the probe rewrites its one row");
}

pub async fn tenants_have_unique_names(store: &dyn Store) {
    let a = store.create_tenant("acme", t0()).await.unwrap();
    assert_eq!(store.tenant_by_name("acme").await.unwrap(), Some(a.clone()));
    assert_eq!(store.tenant(&a.id).await.unwrap(), Some(a.clone()));
    assert!(matches!(
        store.create_tenant("acme", t0()).await,
        Err(StoreError::Conflict(_))
    ));
    store.create_tenant("globex", t0()).await.unwrap();
    let names: Vec<String> = store
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["acme", "globex"]);
    assert_eq!(store.tenant_by_name("nobody").await.unwrap(), None);
}

pub async fn api_keys_are_found_by_hash_only(store: &dyn Store) {
    let tenant = store.create_tenant("acme", t0()).await.unwrap();
    let key = generate_api_key();
    let record = store
        .insert_api_key(
            &NewApiKey {
                tenant_id: tenant.id.clone(),
                key_hash: key.hash.clone(),
                prefix: key.prefix.clone(),
                scopes: Scopes::new([Scope::Send]),
                label: Some("ci".into()),
            },
            t0(),
        )
        .await
        .unwrap();
    let found = store
        .api_key_by_hash(&hash_api_key(&key.secret))
        .await
        .unwrap()
        .expect("key by hash");
    assert_eq!(found, record);
    assert!(found.scopes.allows(Scope::Send) && !found.scopes.allows(Scope::Admin));
    // The secret itself is not what is stored.
    assert_eq!(store.api_key_by_hash(&key.secret).await.unwrap(), None);
    assert_eq!(
        store
            .api_key_by_hash(&hash_api_key("rl_guess"))
            .await
            .unwrap(),
        None
    );
}

pub async fn contacts_round_trip_and_patch(store: &dyn Store) {
    let t = store.create_tenant("acme", t0()).await.unwrap().id;
    let mut new = contact(
        vec![sms("+33612345678")],
        r#"{"first_name":"Ana","tier":"gold"}"#,
    );
    new.timezone = Some("Europe/Paris".into());
    new.locale = Some("fr-FR".into());
    let c = store.create_contact(&t, &new, t0()).await.unwrap();
    assert_eq!(c.identities, vec![sms("+33612345678")]);
    assert_eq!(c.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(store.contact(&t, &c.id).await.unwrap(), Some(c.clone()));
    let patch = ContactPatch {
        attributes: Some(attrs(r#"{"tier":null,"city":"Lyon"}"#)),
        locale: Some(None),
        ..Default::default()
    };
    let later = t0()
        .checked_add(jiff::SignedDuration::from_secs(5))
        .unwrap_or(t0());
    let patched = store
        .update_contact(&t, &c.id, &patch, later)
        .await
        .unwrap();
    assert_eq!(
        patched.attributes,
        attrs(r#"{"first_name":"Ana","city":"Lyon"}"#)
    );
    assert_eq!(patched.locale, None);
    assert_eq!(patched.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(patched.updated_at, later);
    let by_identity = store
        .contact_by_identity(&t, None, "+33612345678")
        .await
        .unwrap();
    assert_eq!(by_identity.map(|c| c.id), Some(c.id.clone()));
    assert_eq!(
        store
            .contact_by_identity(&t, Some(ChannelKind::Email), "+33612345678")
            .await
            .unwrap(),
        None
    );
    assert!(store.delete_contact(&t, &c.id).await.unwrap());
    assert_eq!(store.contact(&t, &c.id).await.unwrap(), None);
    assert!(!store.delete_contact(&t, &c.id).await.unwrap());
    assert!(matches!(
        store.update_contact(&t, &c.id, &patch, later).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn contacts_are_read_by_id_with_their_identities(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let globex = store.create_tenant("globex", t0()).await.unwrap().id;
    let email = Identity {
        channel: ChannelKind::Email,
        address: "ana@example.com".into(),
    };
    let ana = store
        .create_contact(
            &acme,
            &contact(vec![sms("+33612345678"), email], r#"{"first_name":"Ana"}"#),
            t0(),
        )
        .await
        .unwrap();
    let bob = store
        .create_contact(&acme, &contact(vec![sms("+33612345679")], "{}"), t0())
        .await
        .unwrap();
    let nobody = store
        .create_contact(&acme, &contact(vec![], "{}"), t0())
        .await
        .unwrap();
    let theirs = store
        .create_contact(&globex, &contact(vec![sms("+33612345670")], "{}"), t0())
        .await
        .unwrap();
    let mut found = store
        .contacts_by_ids(
            &acme,
            &[&bob.id, "unknown", &ana.id, &theirs.id, &ana.id, &nobody.id],
        )
        .await
        .unwrap();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected = Vec::new();
    for id in [&ana.id, &bob.id, &nobody.id] {
        expected.push(store.contact(&acme, id).await.unwrap().expect("stored"));
    }
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(found, expected, "each once, with its identities");
    assert_eq!(
        found
            .iter()
            .find(|c| c.id == ana.id)
            .map(|c| c.identities.len()),
        Some(2)
    );
    assert!(store.contacts_by_ids(&acme, &[]).await.unwrap().is_empty());
    assert!(
        store
            .contacts_by_ids(&globex, &[&ana.id, &bob.id])
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn an_identity_belongs_to_one_contact_per_tenant(store: &dyn Store) {
    let a = store.create_tenant("acme", t0()).await.unwrap().id;
    let b = store.create_tenant("globex", t0()).await.unwrap().id;
    let first = store
        .create_contact(&a, &contact(vec![sms("+33612345678")], "{}"), t0())
        .await
        .unwrap();
    let dup = store
        .create_contact(&a, &contact(vec![sms("+33612345678")], "{}"), t0())
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    // The failed create left nothing behind.
    assert_eq!(
        store
            .list_contacts(
                &a,
                &PageRequest {
                    after: None,
                    limit: 10
                }
            )
            .await
            .unwrap()
            .data
            .len(),
        1
    );
    // Another tenant may know the same person.
    store
        .create_contact(&b, &contact(vec![sms("+33612345678")], "{}"), t0())
        .await
        .unwrap();
    let second = store
        .create_contact(&a, &contact(vec![sms("+33700000000")], "{}"), t0())
        .await
        .unwrap();
    assert!(matches!(
        store
            .add_identity(&a, &second.id, &sms("+33612345678"), t0())
            .await,
        Err(StoreError::Conflict(_))
    ));
    let email = Identity {
        channel: ChannelKind::Email,
        address: "ana@example.com".into(),
    };
    let with_email = store
        .add_identity(&a, &first.id, &email, t0())
        .await
        .unwrap();
    assert_eq!(with_email.identities.len(), 2);
    // Adding an identity the contact already has is a no-op.
    assert_eq!(
        store
            .add_identity(&a, &first.id, &email, t0())
            .await
            .unwrap()
            .identities
            .len(),
        2
    );
    assert!(store.remove_identity(&a, &first.id, &email).await.unwrap());
    assert!(!store.remove_identity(&a, &first.id, &email).await.unwrap());
}

pub async fn tenants_never_see_each_other(store: &dyn Store) {
    let a = store.create_tenant("acme", t0()).await.unwrap().id;
    let b = store.create_tenant("globex", t0()).await.unwrap().id;
    let c = store
        .create_contact(
            &a,
            &contact(vec![sms("+33612345678")], r#"{"secret":"a"}"#),
            t0(),
        )
        .await
        .unwrap();
    store
        .append_consent(
            &a,
            &consent(&c.id, 1, None, Purpose::Marketing, ConsentStatus::OptedIn),
        )
        .await
        .unwrap();
    assert_eq!(store.contact(&b, &c.id).await.unwrap(), None);
    assert!(
        store
            .list_contacts(
                &b,
                &PageRequest {
                    after: None,
                    limit: 100
                }
            )
            .await
            .unwrap()
            .data
            .is_empty()
    );
    assert_eq!(
        store
            .contact_by_identity(&b, None, "+33612345678")
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        store
            .update_contact(&b, &c.id, &ContactPatch::default(), t0())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(!store.delete_contact(&b, &c.id).await.unwrap());
    assert!(store.consents(&b, &c.id).await.unwrap().is_empty());
    assert!(matches!(
        store
            .append_consent(
                &b,
                &consent(&c.id, 2, None, Purpose::All, ConsentStatus::OptedOut)
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .add_identity(&b, &c.id, &sms("+33700000000"), t0())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        !store
            .remove_identity(&b, &c.id, &sms("+33612345678"))
            .await
            .unwrap()
    );
    let other = store
        .create_contact(&b, &contact(vec![], "{}"), t0())
        .await
        .unwrap();
    assert!(matches!(
        store
            .merge_contacts(&b, &other.id, &c.id, &MergeCause::Api, t0())
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Nothing of tenant A changed.
    let still = store
        .contact(&a, &c.id)
        .await
        .unwrap()
        .expect("A's contact");
    assert_eq!(still, c);
    assert_eq!(store.consents(&a, &c.id).await.unwrap().len(), 1);
}

pub async fn pages_walk_every_contact_once(store: &dyn Store) {
    let t = store.create_tenant("acme", t0()).await.unwrap().id;
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(
            store
                .create_contact(&t, &contact(vec![], &format!(r#"{{"n":{i}}}"#)), t0())
                .await
                .unwrap()
                .id,
        );
    }
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_contacts(
                &t,
                &PageRequest {
                    after: after.clone(),
                    limit: 10,
                },
            )
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.data.into_iter().map(|c| c.id));
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);
}

pub async fn merge_moves_everything_to_the_survivor(store: &dyn Store) {
    let t = store.create_tenant("acme", t0()).await.unwrap().id;
    let keep = store
        .create_contact(
            &t,
            &contact(
                vec![sms("+33612345678")],
                r#"{"first_name":"Ana","tier":"gold"}"#,
            ),
            t0(),
        )
        .await
        .unwrap();
    let mut dup = contact(
        vec![Identity {
            channel: ChannelKind::Email,
            address: "ana@example.com".into(),
        }],
        r#"{"first_name":"Anna","city":"Lyon"}"#,
    );
    dup.timezone = Some("Europe/Paris".into());
    let gone = store.create_contact(&t, &dup, t0()).await.unwrap();
    store
        .append_consent(
            &t,
            &consent(
                &gone.id,
                1,
                Some(ChannelKind::Email),
                Purpose::Marketing,
                ConsentStatus::OptedIn,
            ),
        )
        .await
        .unwrap();
    let mut written = inbound(&t, "ana@example.com", "where is my order?", None);
    written.channel = ChannelKind::Email;
    written.contact_id = Some(gone.id.clone());
    store.insert_inbound(&written).await.unwrap();
    let cause = MergeCause::FlowAnswer {
        identity: sms("+33612345678"),
        flow: "signup".into(),
        node: "ask_phone".into(),
        message_id: written.id.clone(),
        conversation_id: "conv-1".into(),
    };
    let record = store
        .merge_contacts(&t, &keep.id, &gone.id, &cause, t0())
        .await
        .unwrap();
    assert_eq!(record.merged_snapshot, gone);
    assert_eq!(record.cause, cause, "the cause is kept with the merge");
    let theirs = crate::InboundFilter {
        contact_id: Some(keep.id.clone()),
    };
    let moved = store
        .list_inbound(
            &t,
            &theirs,
            &crate::PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        moved
            .data
            .iter()
            .map(|m| m.text.as_str())
            .collect::<Vec<_>>(),
        vec!["where is my order?"],
        "what the merged contact wrote moves to the survivor"
    );
    let survivor = store
        .contact(&t, &keep.id)
        .await
        .unwrap()
        .expect("survivor");
    assert_eq!(survivor.identities.len(), 2);
    assert_eq!(
        survivor.attributes,
        attrs(r#"{"first_name":"Ana","tier":"gold","city":"Lyon"}"#)
    );
    assert_eq!(survivor.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(store.contact(&t, &gone.id).await.unwrap(), None);
    let ledger = store.consents(&t, &keep.id).await.unwrap();
    assert!(may_send(&ledger, ChannelKind::Email, &Purpose::Marketing).allowed);
    let by_email = store
        .contact_by_identity(&t, Some(ChannelKind::Email), "ana@example.com")
        .await
        .unwrap();
    assert_eq!(by_email.map(|c| c.id), Some(keep.id.clone()));
    assert_eq!(store.merges(&t, &keep.id).await.unwrap(), vec![record]);
    assert!(matches!(
        store
            .merge_contacts(&t, &keep.id, &keep.id, &MergeCause::Api, t0())
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .merge_contacts(&t, &keep.id, &gone.id, &MergeCause::Api, t0())
            .await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn import_creates_updates_and_rejects(store: &dyn Store) {
    let t = store.create_tenant("acme", t0()).await.unwrap().id;
    let existing = store
        .create_contact(
            &t,
            &contact(
                vec![sms("+33612345678")],
                r#"{"first_name":"Ana","tier":"gold"}"#,
            ),
            t0(),
        )
        .await
        .unwrap();
    let other = store
        .create_contact(&t, &contact(vec![sms("+33700000001")], "{}"), t0())
        .await
        .unwrap();
    let email = |a: &str| Identity {
        channel: ChannelKind::Email,
        address: a.into(),
    };
    let rows = vec![
        // Updates Ana and gives her an email.
        ImportRow {
            identities: vec![sms("+33612345678"), email("ana@example.com")],
            attributes: attrs(r#"{"first_name":"Ana-Maria"}"#),
            ..Default::default()
        },
        // New person, opted in to marketing.
        ImportRow {
            identities: vec![sms("+33699999999")],
            attributes: attrs(r#"{"first_name":"Bob"}"#),
            timezone: Some("Europe/Paris".into()),
            consents: vec![ImportConsent {
                purpose: Purpose::Marketing,
                status: ConsentStatus::OptedIn,
                proof: None,
            }],
            ..Default::default()
        },
        // Same new person again, later in the file: updates, never duplicates.
        ImportRow {
            identities: vec![sms("+33699999999")],
            attributes: attrs(r#"{"city":"Nantes"}"#),
            ..Default::default()
        },
        // Identities of two different people.
        ImportRow {
            identities: vec![sms("+33612345678"), sms("+33700000001")],
            ..Default::default()
        },
    ];
    let outcomes = store.import_contacts(&t, &rows, t0()).await.unwrap();
    assert_eq!(
        outcomes[0],
        ImportOutcome::Updated {
            contact_id: existing.id.clone()
        }
    );
    let ImportOutcome::Created { contact_id: bob } = &outcomes[1] else {
        panic!("{:?}", outcomes[1])
    };
    assert_eq!(
        outcomes[2],
        ImportOutcome::Updated {
            contact_id: bob.clone()
        }
    );
    let ImportOutcome::Rejected { reason } = &outcomes[3] else {
        panic!("{:?}", outcomes[3])
    };
    assert!(reason.contains("2 different contacts"), "{reason}");
    let ana = store.contact(&t, &existing.id).await.unwrap().expect("ana");
    assert_eq!(
        ana.attributes,
        attrs(r#"{"first_name":"Ana-Maria","tier":"gold"}"#)
    );
    assert_eq!(ana.identities.len(), 2);
    let bob = store.contact(&t, bob).await.unwrap().expect("bob");
    assert_eq!(
        bob.attributes,
        attrs(r#"{"first_name":"Bob","city":"Nantes"}"#)
    );
    assert_eq!(bob.timezone.as_deref(), Some("Europe/Paris"));
    let ledger = store.consents(&t, &bob.id).await.unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].source, ConsentSource::Import);
    assert!(may_send(&ledger, ChannelKind::Sms, &Purpose::Marketing).allowed);
    assert_eq!(
        store
            .contact(&t, &other.id)
            .await
            .unwrap()
            .expect("other")
            .identities
            .len(),
        1
    );
    assert_eq!(
        store
            .list_contacts(
                &t,
                &PageRequest {
                    after: None,
                    limit: 100
                }
            )
            .await
            .unwrap()
            .data
            .len(),
        3
    );
}

pub async fn consent_ledger_is_append_only_and_decides(store: &dyn Store) {
    let t = store.create_tenant("acme", t0()).await.unwrap().id;
    let c = store
        .create_contact(&t, &contact(vec![sms("+33612345678")], "{}"), t0())
        .await
        .unwrap();
    assert!(
        !may_send(
            &store.consents(&t, &c.id).await.unwrap(),
            ChannelKind::Sms,
            &Purpose::Marketing
        )
        .allowed
    );
    store
        .append_consent(
            &t,
            &consent(
                &c.id,
                1,
                Some(ChannelKind::Sms),
                Purpose::Marketing,
                ConsentStatus::OptedIn,
            ),
        )
        .await
        .unwrap();
    store
        .append_consent(
            &t,
            &consent(&c.id, 2, None, Purpose::All, ConsentStatus::OptedOut),
        )
        .await
        .unwrap();
    let ledger = store.consents(&t, &c.id).await.unwrap();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[0].status, ConsentStatus::OptedIn);
    assert_eq!(ledger[0].proof.as_deref(), Some("Yes, send me offers"));
    let d = may_send(&ledger, ChannelKind::Sms, &Purpose::Transactional);
    assert!(!d.allowed);
    assert_eq!(d.record_id.as_deref(), Some(ledger[1].id.as_str()));
    assert!(matches!(
        store
            .append_consent(
                &t,
                &consent("missing", 3, None, Purpose::All, ConsentStatus::OptedIn)
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// Contacts planned for new recipients are written with the messages, in their
/// transaction; an identity another contact took meanwhile refuses all of it.
pub async fn planned_contacts_are_written_with_the_messages_or_not_at_all(store: &dyn Store) {
    let t = store.create_tenant("acme", t0()).await.unwrap().id;
    let wanted = vec![sms("+33633333333"), sms("+33644444444")];
    let planned = store.plan_contacts(&t, &wanted, t0()).await.unwrap();
    assert_eq!(planned.new.len(), 2);
    assert!(planned.resolved.iter().all(|(_, created)| *created));
    // Nothing is written by planning.
    let before = store.plan_contacts(&t, &wanted, t0()).await.unwrap();
    assert_eq!(before.new.len(), 2, "planning wrote a contact");

    let mut message = new_message(&t, None, Some(0));
    message.contact_id = Some(planned.resolved[0].0.id.clone());
    message.to_address = "+33633333333".into();
    store
        .insert_accepted(std::slice::from_ref(&message), None, &[], &planned.new)
        .await
        .unwrap();
    let stored = store
        .contact(&t, &planned.resolved[0].0.id)
        .await
        .unwrap()
        .expect("the planned contact is stored with the message");
    assert_eq!(stored.identities, vec![sms("+33633333333")]);
    let again = store.plan_contacts(&t, &wanted, t0()).await.unwrap();
    assert!(again.new.is_empty(), "{:?}", again.new);
    assert_eq!(again.resolved[1].0.id, planned.resolved[1].0.id);

    // A plan made before another request created the same recipient: refused, and its
    // message with it.
    let stale = before;
    let mut late = new_message(&t, None, Some(0));
    late.contact_id = Some(stale.resolved[0].0.id.clone());
    let refused = store
        .insert_accepted(std::slice::from_ref(&late), None, &[], &stale.new)
        .await;
    assert!(
        matches!(refused, Err(StoreError::IdentityTaken(_))),
        "{refused:?}"
    );
    assert!(
        store.message(&t, &late.id).await.unwrap().is_none(),
        "the message of a refused plan was stored"
    );
    assert!(
        store
            .contact(&t, &stale.resolved[0].0.id)
            .await
            .unwrap()
            .is_none(),
        "the refused plan's contact was stored"
    );
}

pub async fn recipients_are_resolved_and_created_in_bulk(store: &dyn Store) {
    let t = store.create_tenant("acme", t0()).await.unwrap().id;
    let other = store.create_tenant("globex", t0()).await.unwrap().id;
    let known = store
        .create_contact(
            &t,
            &contact(vec![sms("+33612345678")], r#"{"first_name":"Ana"}"#),
            t0(),
        )
        .await
        .unwrap();
    // The same number in another tenant is someone else.
    store
        .create_contact(&other, &contact(vec![sms("+33611111111")], "{}"), t0())
        .await
        .unwrap();
    let whatsapp = Identity {
        channel: ChannelKind::Whatsapp,
        address: "+33612345678".to_owned(),
    };
    let wanted = vec![
        sms("+33611111111"),
        whatsapp,
        sms("+33622222222"),
        sms("+33611111111"),
    ];
    let resolved = store
        .resolve_or_create_contacts(&t, &wanted, t0())
        .await
        .unwrap();
    let created: Vec<bool> = resolved.iter().map(|(_, created)| *created).collect();
    assert_eq!(
        created,
        [true, false, true, true],
        "the known contact was not created"
    );
    let resolved: Vec<relais_core::contact::Contact> =
        resolved.into_iter().map(|(contact, _)| contact).collect();
    assert_eq!(resolved.len(), 4);
    // A phone-addressed identity finds its number on any channel, with the attributes.
    assert_eq!(resolved[1].id, known.id);
    assert_eq!(resolved[1].attributes, known.attributes);
    // Unknown numbers get one new contact each, even when listed twice.
    assert_ne!(resolved[0].id, resolved[2].id);
    assert_eq!(resolved[0].id, resolved[3].id);
    assert_eq!(resolved[0].identities, vec![sms("+33611111111")]);
    let stored = store.contact(&t, &resolved[2].id).await.unwrap().unwrap();
    assert_eq!(stored.identities, vec![sms("+33622222222")]);
    // Again: nothing new is created.
    let again = store
        .resolve_or_create_contacts(&t, &wanted, t0())
        .await
        .unwrap();
    assert!(again.iter().all(|(_, created)| !created));
    let again: Vec<relais_core::contact::Contact> =
        again.into_iter().map(|(contact, _)| contact).collect();
    let ids =
        |v: &[relais_core::contact::Contact]| v.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&resolved));

    store
        .append_consent(
            &t,
            &consent(&known.id, 2, None, Purpose::All, ConsentStatus::OptedOut),
        )
        .await
        .unwrap();
    store
        .append_consent(
            &t,
            &consent(
                &known.id,
                1,
                Some(ChannelKind::Sms),
                Purpose::Marketing,
                ConsentStatus::OptedIn,
            ),
        )
        .await
        .unwrap();
    let ledgers = store
        .consents_of(&t, &[known.id.clone(), resolved[0].id.clone()])
        .await
        .unwrap();
    assert_eq!(ledgers.len(), 1);
    assert_eq!(
        ledgers[&known.id],
        store.consents(&t, &known.id).await.unwrap()
    );
    assert_eq!(ledgers[&known.id][0].status, ConsentStatus::OptedIn);
    assert!(
        store
            .consents_of(&other, std::slice::from_ref(&known.id))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Two requests creating the same new recipients at once never make two contacts of one
/// identity: one of them may be told to retry (a conflict, nothing written), and the retry
/// finds what the other created.
pub async fn recipients_created_at_once_by_two_requests_are_one_contact(store: &dyn Store) {
    let t = store.create_tenant("acme", t0()).await.unwrap().id;
    for round in 0..20 {
        let wanted: Vec<Identity> = (0..50)
            .map(|i| sms(&format!("+336{round:02}{i:06}")))
            .collect();
        let resolve = || async {
            for _ in 0..5 {
                match store.resolve_or_create_contacts(&t, &wanted, t0()).await {
                    Err(StoreError::Conflict(_)) => continue,
                    other => return other.unwrap(),
                }
            }
            panic!("still a conflict after five tries");
        };
        let (a, b) = tokio::join!(resolve(), resolve());
        let ids = |c: &[(relais_core::contact::Contact, bool)]| {
            c.iter().map(|(c, _)| c.id.clone()).collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b), "round {round}");
        assert!(
            a.iter().zip(&b).all(|((_, x), (_, y))| !(*x && *y)),
            "round {round}: one request created each contact"
        );
        let again = store
            .resolve_or_create_contacts(&t, &wanted, t0())
            .await
            .unwrap();
        assert_eq!(ids(&again), ids(&a));
    }
}

pub async fn settings_and_models_are_per_tenant(store: &dyn Store) {
    let a = store.create_tenant("acme", t0()).await.unwrap().id;
    let b = store.create_tenant("globex", t0()).await.unwrap().id;
    assert_eq!(store.setting(&a, "kb").await.unwrap(), None);
    store
        .put_setting(&a, "kb", &serde_json::json!([{"q": "hours"}]), t0())
        .await
        .unwrap();
    store
        .put_setting(&a, "kb", &serde_json::json!([{"q": "prices"}]), t0())
        .await
        .unwrap();
    assert_eq!(
        store.setting(&a, "kb").await.unwrap(),
        Some(serde_json::json!([{"q": "prices"}]))
    );
    assert_eq!(store.setting(&b, "kb").await.unwrap(), None);
    assert_eq!(store.nlu_model_version(&a).await.unwrap(), None);
    assert_eq!(
        store
            .save_nlu_model(&a, &[1, 2, 3], "v1", t0())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .save_nlu_model(&a, &[4, 5, 0, 255], "v2", t0())
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.nlu_model_version(&a).await.unwrap(), Some(2));
    let live = store.nlu_model(&a).await.unwrap().expect("model");
    assert_eq!(
        (live.version, live.model.as_slice(), live.summary.as_str()),
        (2, &[4u8, 5, 0, 255][..], "v2")
    );
    assert_eq!(store.nlu_model(&b).await.unwrap(), None);
    assert_eq!(store.nlu_model_version(&b).await.unwrap(), None);
}

/// A transactional text to `to` on `channel`, queued at `at` and due then: what tests of
/// the store and of its callers start from (change fields with `..`).
pub fn queued_message(tenant: &str, channel: &str, to: &str, at: Timestamp) -> crate::NewMessage {
    use relais_core::status::MessageStatus;
    crate::NewMessage {
        id: crate::new_id(),
        tenant_id: tenant.to_owned(),
        contact_id: None,
        to_address: to.to_owned(),
        channel: channel.to_owned(),
        step: 0,
        chain: serde_json::json!([channel]),
        content: serde_json::json!({"text": "Bonjour"}),
        purpose: "transactional".into(),
        sender: None,
        campaign: None,
        human_agent_since: None,
        status: MessageStatus::Queued,
        segments: Some(1),
        idempotency_key: None,
        request_hash: None,
        send_at: None,
        expires_at: None,
        created_at: at,
        events: vec![crate::MessageEvent::new(MessageStatus::Queued, at)],
        due_at: Some(at),
    }
}

fn new_message(tenant: &str, key: Option<&str>, due_secs: Option<i64>) -> crate::NewMessage {
    use relais_core::status::MessageStatus;
    crate::NewMessage {
        idempotency_key: key.map(str::to_owned),
        request_hash: key.map(|_| "hash".to_owned()),
        events: vec![
            crate::MessageEvent::new(MessageStatus::Accepted, t0()),
            crate::MessageEvent::new(MessageStatus::Queued, t0()),
        ],
        due_at: due_secs.map(secs),
        ..queued_message(tenant, "sim", "+33612345678", t0())
    }
}

fn secs(s: i64) -> Timestamp {
    t0().checked_add(jiff::SignedDuration::from_secs(s))
        .unwrap_or(t0())
}

pub async fn messages_are_isolated_per_tenant(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let globex = store.create_tenant("globex", t0()).await.unwrap();
    let m = new_message(&acme.id, Some("k1"), Some(0));
    store
        .insert_messages(std::slice::from_ref(&m))
        .await
        .unwrap();
    let found = store.message(&acme.id, &m.id).await.unwrap().unwrap();
    assert_eq!(found.message.to_address, "+33612345678");
    assert_eq!(
        found.message.content,
        serde_json::json!({"text": "Bonjour"})
    );
    let statuses: Vec<_> = found.events.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(statuses, ["accepted", "queued"]);
    assert_eq!(store.message(&globex.id, &m.id).await.unwrap(), None);
    assert!(
        store
            .message_by_idempotency_key(&globex.id, "k1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.cancel(&globex.id, &m.id, t0()).await,
        Err(StoreError::NotFound(_))
    ));
    // The same key in another tenant is another message.
    store
        .insert_messages(&[new_message(&globex.id, Some("k1"), Some(0))])
        .await
        .unwrap();
    assert_eq!(
        store
            .sim_messages(&globex.id, "+33612345678")
            .await
            .unwrap(),
        vec![]
    );
}

pub async fn sim_phones_are_listed_per_tenant_most_recent_first(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let globex = store.create_tenant("globex", t0()).await.unwrap();
    let entry = |id: &str, number: &str, direction: &str, s: i64| SimEntry {
        id: id.into(),
        number: number.into(),
        direction: direction.into(),
        message_id: None,
        text: format!("text {id}"),
        at: secs(s),
    };
    store
        .sim_record(
            &acme.id,
            &[
                entry("s1", "+33611111111", "received", 1),
                entry("s2", "+33622222222", "received", 2),
                entry("s3", "+33611111111", "sent", 3),
                entry("s4", "+33633333333", "received", 0),
            ],
        )
        .await
        .unwrap();
    store
        .sim_record(&globex.id, &[entry("s5", "+33644444444", "received", 9)])
        .await
        .unwrap();
    let phones = store.sim_phones(&acme.id, 10).await.unwrap();
    let listed: Vec<_> = phones
        .iter()
        .map(|p| (p.number.as_str(), p.messages, p.last_at))
        .collect();
    assert_eq!(
        listed,
        [
            ("+33611111111", 2, secs(3)),
            ("+33622222222", 1, secs(2)),
            ("+33633333333", 1, secs(0)),
        ]
    );
    assert_eq!(store.sim_phones(&acme.id, 2).await.unwrap().len(), 2);
    let other: Vec<_> = store
        .sim_phones(&globex.id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.number)
        .collect();
    assert_eq!(other, ["+33644444444"]);
}

pub async fn a_period_is_counted_by_channel_status_bucket_and_reply(store: &dyn Store) {
    use relais_core::status::MessageStatus;
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let globex = store.create_tenant("globex", t0()).await.unwrap();
    let message =
        |channel: &str, contact: &str, at: i64, campaign: Option<&str>| crate::NewMessage {
            contact_id: Some(contact.to_owned()),
            campaign: campaign.map(|c| relais_core::campaign::CampaignLabel::parse(c).unwrap()),
            ..queued_message(&acme.id, channel, "+33612345678", secs(at))
        };
    let delivered = message("sim", "c1", 0, None);
    let read = message("sim", "c2", 100, None);
    let failed = message("wa", "c1", 3700, Some("soldes"));
    let before = message("sim", "c3", -100, None);
    let elsewhere = crate::NewMessage {
        tenant_id: globex.id.clone(),
        ..message("sim", "c9", 10, None)
    };
    store
        .insert_messages(&[
            delivered.clone(),
            read.clone(),
            failed.clone(),
            before,
            elsewhere,
        ])
        .await
        .unwrap();
    for (m, status) in [
        (&delivered, MessageStatus::Delivered),
        (&read, MessageStatus::Read),
        (&failed, MessageStatus::Failed),
    ] {
        let event = crate::MessageEvent::new(status, secs(4000));
        store.record_status(&m.id, &event).await.unwrap();
    }
    // c2 writes back after its message; c1 wrote only before its first one.
    for (contact, at) in [("c2", 200), ("c1", -50)] {
        let written = crate::NewInboundMessage {
            contact_id: Some(contact.to_owned()),
            received_at: secs(at),
            ..inbound(&acme.id, "+33612345678", "Merci", None)
        };
        store.insert_inbound(&written).await.unwrap();
    }
    let period = crate::Period {
        since: t0(),
        until: secs(7200),
        bucket: jiff::SignedDuration::from_secs(3600),
    };
    let counts = store.period_counts(&acme.id, &period).await.unwrap();
    let mut messages: Vec<_> = counts
        .messages
        .iter()
        .map(|c| {
            (
                c.channel.as_str(),
                c.campaign.as_deref(),
                c.status.as_str(),
                c.bucket,
                c.count,
            )
        })
        .collect();
    messages.sort();
    assert_eq!(
        messages,
        [
            ("sim", None, "delivered", 0, 1),
            ("sim", None, "read", 0, 1),
            ("wa", Some("soldes"), "failed", 1, 1),
        ]
    );
    assert_eq!(counts.inbound, [(0, 1)]);
    assert_eq!((counts.contacts_reached, counts.contacts_replied), (2, 1));
    assert_eq!(counts.desk, crate::DeskCounts::default());
    let other = store.period_counts(&globex.id, &period).await.unwrap();
    assert_eq!(other.messages.len(), 1);
    assert_eq!(other.contacts_replied, 0);
}

pub async fn idempotency_keys_are_unique_per_tenant(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let first = new_message(&acme.id, Some("order-42"), Some(0));
    store
        .insert_messages(std::slice::from_ref(&first))
        .await
        .unwrap();
    let second = new_message(&acme.id, Some("order-42"), Some(0));
    assert!(matches!(
        store.insert_messages(std::slice::from_ref(&second)).await,
        Err(StoreError::Conflict(_))
    ));
    // Nothing of the refused batch was written, not even its outbox row.
    assert_eq!(store.message(&acme.id, &second.id).await.unwrap(), None);
    let by_key = store
        .message_by_idempotency_key(&acme.id, "order-42")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_key.id, first.id);
    let claimed = store
        .claim_due(secs(1), 10, "w1", jiff::SignedDuration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // Messages without a key never collide.
    store
        .insert_messages(&[
            new_message(&acme.id, None, None),
            new_message(&acme.id, None, None),
        ])
        .await
        .unwrap();
}

pub async fn a_groups_idempotency_keys_are_looked_up_at_once_within_the_tenant(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let globex = store.create_tenant("globex", t0()).await.unwrap();
    let a = new_message(&acme.id, Some("a"), Some(0));
    let b = new_message(&acme.id, Some("b"), Some(0));
    let other = new_message(&globex.id, Some("c"), Some(0));
    store
        .insert_messages(&[a.clone(), b.clone()])
        .await
        .unwrap();
    store.insert_messages(&[other]).await.unwrap();
    let mut found: Vec<(String, String)> = store
        .messages_by_idempotency_keys(&acme.id, &["a", "b", "c", "unknown"])
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.idempotency_key.unwrap_or_default(), m.id))
        .collect();
    found.sort();
    // Another tenant's key is not found, nor one nobody used.
    assert_eq!(found, [("a".to_owned(), a.id), ("b".to_owned(), b.id)]);
    assert!(
        store
            .messages_by_idempotency_keys(&acme.id, &[])
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn message_status_only_moves_forward(store: &dyn Store) {
    use crate::MessageEvent;
    use relais_core::status::MessageStatus::*;
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let m = new_message(&acme.id, None, Some(0));
    store
        .insert_messages(std::slice::from_ref(&m))
        .await
        .unwrap();
    assert_eq!(
        store
            .record_status(&m.id, &MessageEvent::new(Sent, secs(1)))
            .await
            .unwrap(),
        Some(Sent)
    );
    assert_eq!(
        store
            .record_status(&m.id, &MessageEvent::new(Delivered, secs(2)))
            .await
            .unwrap(),
        Some(Delivered)
    );
    // A late `sent` and a duplicate `delivered` change nothing and log nothing.
    assert_eq!(
        store
            .record_status(&m.id, &MessageEvent::new(Sent, secs(3)))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .record_status(&m.id, &MessageEvent::new(Delivered, secs(4)))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.cancel(&acme.id, &m.id, secs(5)).await.unwrap(),
        crate::CancelOutcome::TooLate(Delivered)
    );
    let found = store.message(&acme.id, &m.id).await.unwrap().unwrap();
    assert_eq!(found.message.status, Delivered);
    let statuses: Vec<_> = found.events.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [Accepted, Queued, Sent, Delivered]);
    assert!(matches!(
        store
            .record_status("nope", &MessageEvent::new(Sent, secs(1)))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn a_claimed_message_is_not_claimed_twice_before_its_lease_expires(store: &dyn Store) {
    use crate::{MessageEvent, OutboxNext, OutboxPhase, Settlement};
    use relais_core::status::MessageStatus::*;
    let lease = jiff::SignedDuration::from_secs(30);
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let batch: Vec<_> = (0..5)
        .map(|_| new_message(&acme.id, None, Some(10)))
        .collect();
    store.insert_messages(&batch).await.unwrap();
    assert!(
        store
            .claim_due(secs(9), 10, "w1", lease)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let first = store.claim_due(secs(10), 3, "w1", lease).await.unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(first[0].phase, OutboxPhase::Send);
    let second = store.claim_due(secs(11), 10, "w2", lease).await.unwrap();
    assert_eq!(second.len(), 2);
    let mut ids: Vec<_> = first
        .iter()
        .chain(&second)
        .map(|i| i.message.id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "every message claimed exactly once");
    assert!(
        store
            .claim_due(secs(20), 10, "w3", lease)
            .await
            .unwrap()
            .is_empty()
    );
    // w1 acknowledges its first message: the row is gone for good.
    let mut ack = Settlement::new(OutboxNext::Done);
    ack.status = Some(MessageEvent::new(Sent, secs(12)));
    ack.provider_id = Some("prov-1".into());
    assert!(
        store
            .settle(&first[0].message.id, "w1", &ack, secs(12))
            .await
            .unwrap()
    );
    // w1 stalls past its lease: w3 takes over its other two rows.
    let retaken = store.claim_due(secs(41), 10, "w3", lease).await.unwrap();
    let retaken_ids: Vec<_> = retaken.iter().map(|i| i.message.id.clone()).collect();
    assert_eq!(retaken.len(), 4, "{retaken_ids:?}");
    assert!(
        !retaken_ids.contains(&first[0].message.id),
        "an acknowledged message is never claimed again"
    );
    // The stale owner can no longer settle what it lost.
    assert!(
        !store
            .settle(&first[1].message.id, "w1", &ack, secs(42))
            .await
            .unwrap()
    );
    let m = store
        .message(&acme.id, &first[1].message.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.message.provider_id, None);
    let acked = store
        .message(&acme.id, &first[0].message.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(acked.message.provider_id.as_deref(), Some("prov-1"));
    assert_eq!(acked.message.status, Sent);
    let by_provider = store
        .message_by_provider_id("sim", "prov-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_provider.id, first[0].message.id);
    assert_eq!(
        store.message_by_provider_id("sms", "prov-1").await.unwrap(),
        None
    );
    // A rescheduled row comes back when due, with its attempts counted.
    let retry = Settlement::new(OutboxNext::Reschedule {
        due_at: secs(100),
        phase: OutboxPhase::Send,
        attempts: 1,
    });
    assert!(
        store
            .settle(&retaken[0].message.id, "w3", &retry, secs(42))
            .await
            .unwrap()
    );
    for item in &retaken[1..] {
        assert!(
            store
                .settle(
                    &item.message.id,
                    "w3",
                    &Settlement::new(OutboxNext::Done),
                    secs(42)
                )
                .await
                .unwrap()
        );
    }
    let again = store.claim_due(secs(100), 10, "w4", lease).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    assert!(
        store
            .settle(
                &again[0].message.id,
                "w4",
                &Settlement::new(OutboxNext::Done),
                secs(100)
            )
            .await
            .unwrap()
    );
    // A canceled message leaves the outbox.
    let queued = new_message(&acme.id, None, Some(500));
    store
        .insert_messages(std::slice::from_ref(&queued))
        .await
        .unwrap();
    assert_eq!(
        store.cancel(&acme.id, &queued.id, secs(200)).await.unwrap(),
        crate::CancelOutcome::Canceled
    );
    assert!(
        store
            .claim_due(secs(600), 10, "w5", lease)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Messages stored with a lease (handed straight to a dispatcher) are not claimed by
/// anyone until the lease runs out or is given up, and the item built in memory is the one
/// a claim would load.
pub async fn messages_leased_on_insert_skip_the_claim(store: &dyn Store) {
    let lease_for = jiff::SignedDuration::from_secs(30);
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let lease = crate::Lease {
        owner: "w1".into(),
        until: secs(35),
        due_by: secs(5),
        closed: vec!["chan-down".into()],
    };
    let mut now_due = new_message(&acme.id, None, Some(5));
    // A timestamp finer than the store's microseconds is stored rounded.
    now_due.created_at = t0()
        .checked_add(jiff::SignedDuration::from_nanos(1_500))
        .unwrap();
    now_due.sender = Some("Shop".into());
    let handed = now_due
        .to_outbox_item(&lease)
        .expect("it has an outbox row");
    let later = new_message(&acme.id, None, Some(30));
    assert!(later.to_outbox_item(&lease).is_none() && !lease.covers(later.due_at, "sim"));
    // A message for a lane that cannot take work now is stored unleased, for a claim.
    let mut down = new_message(&acme.id, None, Some(5));
    down.channel = "chan-down".into();
    assert!(down.to_outbox_item(&lease).is_none());
    store
        .insert_messages_leased(
            &[now_due.clone(), later.clone(), down.clone()],
            Some(&lease),
        )
        .await
        .unwrap();
    let down_claimed = store
        .claim_lane("chan-down", secs(6), secs(6), 10, "w2", lease_for)
        .await
        .unwrap();
    assert_eq!(down_claimed.len(), 1);
    assert_eq!(down_claimed[0].message.id, down.id);
    assert!(
        store
            .claim_due(secs(20), 10, "w2", lease_for)
            .await
            .unwrap()
            .is_empty(),
        "the leased row is w1's"
    );
    // The message due later was not covered by the lease: claimed as usual when due.
    let claimed = store
        .claim_due(secs(30), 10, "w2", lease_for)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].message.id, later.id);
    // Once w1 gives the lease up, the row is claimed at once, and the claim loads what
    // the accept path built in memory.
    store
        .release_leases("w1", std::slice::from_ref(&now_due.id))
        .await
        .unwrap();
    let retaken = store
        .claim_due(secs(31), 10, "w2", lease_for)
        .await
        .unwrap();
    assert_eq!(retaken.len(), 1);
    let retaken = &retaken[0];
    assert_eq!(retaken.message, handed.message);
    assert_eq!(
        (retaken.due_at, retaken.attempts, retaken.phase),
        (handed.due_at, handed.attempts, handed.phase)
    );
    assert_eq!(handed.lease_until, secs(35));
    // Giving up a lease one does not hold changes nothing.
    store
        .release_leases("w1", std::slice::from_ref(&now_due.id))
        .await
        .unwrap();
    assert!(
        store
            .claim_due(secs(32), 10, "w3", lease_for)
            .await
            .unwrap()
            .is_empty(),
        "w2 holds it now"
    );
}

/// A lane's claim takes only that channel's rows (and fallback timers have a lane of their
/// own); the stray claim takes the rows of lanes nobody named; a heartbeat keeps a lease.
pub async fn claims_by_lane_take_only_their_channel(store: &dyn Store) {
    let lease_for = jiff::SignedDuration::from_secs(30);
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let sim = new_message(&acme.id, None, Some(1));
    let mut smsc = new_message(&acme.id, None, Some(0));
    smsc.channel = "chan-orange".into();
    let mut gone = new_message(&acme.id, None, Some(2));
    gone.channel = "chan-deleted".into();
    store
        .insert_messages(&[sim.clone(), smsc.clone(), gone.clone()])
        .await
        .unwrap();
    let orange = store
        .claim_lane("chan-orange", secs(10), secs(10), 10, "w1", lease_for)
        .await
        .unwrap();
    assert_eq!(orange.len(), 1);
    assert_eq!(orange[0].message.id, smsc.id);
    assert_eq!(orange[0].lane(), "chan-orange");
    let strays = store
        .claim_strays(
            &["sim".into(), "chan-orange".into()],
            secs(10),
            10,
            "w1",
            lease_for,
        )
        .await
        .unwrap();
    let ids: Vec<&str> = strays.iter().map(|i| i.message.id.as_str()).collect();
    assert_eq!(ids, [gone.id.as_str()], "only the lane nobody named");
    let sims = store
        .claim_lane("sim", secs(10), secs(10), 10, "w1", lease_for)
        .await
        .unwrap();
    assert_eq!(sims.len(), 1);
    assert_eq!(sims[0].message.id, sim.id);

    // A fallback timer waits in the watch lane, whatever its channel.
    let mut settlement = crate::Settlement::new(crate::OutboxNext::Reschedule {
        due_at: secs(20),
        phase: crate::OutboxPhase::Watch,
        attempts: 0,
    });
    settlement.status = None;
    store
        .settle(
            "chan-orange-msg-does-not-exist",
            "w1",
            &settlement,
            secs(10),
        )
        .await
        .unwrap();
    assert!(
        store
            .settle(&smsc.id, "w1", &settlement, secs(10))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_lane("chan-orange", secs(25), secs(25), 10, "w2", lease_for)
            .await
            .unwrap()
            .is_empty()
    );
    let timers = store
        .claim_lane(crate::WATCH_LANE, secs(25), secs(25), 10, "w2", lease_for)
        .await
        .unwrap();
    assert_eq!(timers.len(), 1);
    assert_eq!(timers[0].lane(), crate::WATCH_LANE);

    // w1 still holds `sim`'s row (leased until 40 s): its heartbeat extends that lease, not
    // the one w2 now holds.
    let kept = store
        .extend_leases("w1", &[sim.id.clone(), smsc.id.clone()], secs(70))
        .await
        .unwrap();
    assert_eq!(kept, std::slice::from_ref(&sim.id));
    assert!(
        store
            .claim_lane("sim", secs(50), secs(50), 10, "w3", lease_for)
            .await
            .unwrap()
            .is_empty(),
        "the extended lease still holds at 50 s"
    );
    assert_eq!(
        store
            .claim_lane("sim", secs(71), secs(71), 10, "w3", lease_for)
            .await
            .unwrap()
            .len(),
        1,
        "and runs out at 70 s"
    );
}

/// A batch request's answer is stored with its messages, found again by its key, and a
/// second batch with the same key is refused as a whole.
pub async fn a_batch_answer_is_kept_with_its_messages(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let globex = store.create_tenant("globex", t0()).await.unwrap();
    let record = |tenant: &str, response: &str| crate::BatchRequest {
        tenant_id: tenant.to_owned(),
        idempotency_key: "batch-1".into(),
        request_hash: "h1".into(),
        response: response.into(),
        created_at: t0(),
    };
    let first = new_message(&acme.id, None, Some(0));
    store
        .insert_accepted(
            std::slice::from_ref(&first),
            None,
            &[record(&acme.id, "[1]")],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        store.batch_request(&acme.id, "batch-1").await.unwrap(),
        Some(record(&acme.id, "[1]"))
    );
    assert_eq!(
        store.batch_request(&globex.id, "batch-1").await.unwrap(),
        None
    );
    let again = new_message(&acme.id, None, Some(0));
    let e = store
        .insert_accepted(
            std::slice::from_ref(&again),
            None,
            &[record(&acme.id, "[2]")],
            &[],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, crate::StoreError::Conflict(_)), "{e}");
    assert!(
        store.message(&acme.id, &again.id).await.unwrap().is_none(),
        "nothing of the refused batch was written"
    );
    store
        .insert_accepted(&[], None, &[record(&globex.id, "[3]")], &[])
        .await
        .expect("keys are per tenant");
}

/// A claim bounded by `due_by` takes only what was due by then, oldest first.
pub async fn a_claim_due_by_takes_only_older_rows(store: &dyn Store) {
    let lease_for = jiff::SignedDuration::from_secs(30);
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let batch: Vec<_> = [3, 1, 2]
        .into_iter()
        .map(|due| new_message(&acme.id, None, Some(due)))
        .collect();
    store.insert_messages(&batch).await.unwrap();
    let older = store
        .claim_due_by(secs(10), secs(2), 10, "w1", lease_for)
        .await
        .unwrap();
    let ids: Vec<&str> = older.iter().map(|i| i.message.id.as_str()).collect();
    assert_eq!(ids, [batch[1].id.as_str(), batch[2].id.as_str()]);
    assert!(older.iter().all(|i| i.lease_until == secs(40)));
    let rest = store
        .claim_due(secs(10), 10, "w1", lease_for)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].message.id, batch[0].id);
}

pub async fn status_changes_queue_signed_webhook_deliveries(store: &dyn Store) {
    use crate::{DeliveryOutcome, MessageEvent};
    use relais_core::circuit::Reachability::*;
    use relais_core::status::MessageStatus::*;
    let lease = jiff::SignedDuration::from_secs(30);
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let globex = store.create_tenant("globex", t0()).await.unwrap();
    let hook = store
        .create_webhook(&acme.id, "https://example.com/hook", "whsec_c2VjcmV0", t0())
        .await
        .unwrap();
    assert_eq!(store.webhooks(&acme.id).await.unwrap(), vec![hook.clone()]);
    assert!(store.webhooks(&globex.id).await.unwrap().is_empty());
    // A secret is replaced in place, by its own tenant only.
    assert!(
        !store
            .set_webhook_secret(&globex.id, &hook.id, "whsec_b3RoZXI=")
            .await
            .unwrap()
    );
    assert!(
        store
            .set_webhook_secret(&acme.id, &hook.id, "whsec_c2VjcmV0")
            .await
            .unwrap()
    );
    assert_eq!(store.webhooks(&acme.id).await.unwrap(), vec![hook.clone()]);
    let m = new_message(&acme.id, None, Some(0));
    let other = new_message(&globex.id, None, Some(0));
    store
        .insert_messages(&[m.clone(), other.clone()])
        .await
        .unwrap();
    store
        .record_status(&m.id, &MessageEvent::new(Sent, secs(1)))
        .await
        .unwrap();
    store
        .record_status(&m.id, &MessageEvent::new(Sent, secs(2)))
        .await
        .unwrap();
    store
        .record_status(&other.id, &MessageEvent::new(Sent, secs(1)))
        .await
        .unwrap();
    let due = store
        .claim_webhook_deliveries(secs(5), 10, "w1", lease)
        .await
        .unwrap();
    assert_eq!(
        due.len(),
        1,
        "one change, one webhook: the duplicate and the other tenant queue nothing"
    );
    assert_eq!(due[0].url, "https://example.com/hook");
    let payload: serde_json::Value = serde_json::from_str(&due[0].delivery.payload).unwrap();
    assert_eq!(payload["type"], "message.status");
    assert_eq!(payload["data"]["status"], "sent");
    assert_eq!(payload["data"]["id"], m.id.as_str());
    assert!(
        store
            .claim_webhook_deliveries(secs(6), 10, "w2", lease)
            .await
            .unwrap()
            .is_empty()
    );
    let retry = DeliveryOutcome::Retry {
        due_at: secs(60),
        code: Some(503),
        error: "HTTP 503".into(),
    };
    assert!(
        store
            .finish_webhook_delivery(&due[0].delivery, "w1", &retry, &news(Down), secs(6))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .claim_webhook_deliveries(secs(59), 10, "w2", lease)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .claim_webhook_deliveries(secs(60), 10, "w2", lease)
        .await
        .unwrap();
    assert_eq!(
        again[0].delivery.id, due[0].delivery.id,
        "the same webhook-id on every retry"
    );
    assert!(
        store
            .finish_webhook_delivery(
                &again[0].delivery,
                "w1",
                &DeliveryOutcome::Delivered { code: 200 },
                &news(Answered),
                secs(61)
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .finish_webhook_delivery(
                &again[0].delivery,
                "w2",
                &DeliveryOutcome::Delivered { code: 200 },
                &news(Answered),
                secs(61)
            )
            .await
            .unwrap()
            .is_some()
    );
    let log = store.webhook_deliveries(&acme.id, &hook.id).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].status.as_str(), log[0].attempts, log[0].last_code),
        ("delivered", 2, Some(200))
    );
    assert!(
        store
            .webhook_deliveries(&globex.id, &hook.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .claim_webhook_deliveries(secs(999), 10, "w3", lease)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_deleted_webhook_is_never_attempted_again(store: &dyn Store) {
    use crate::MessageEvent;
    use relais_core::status::MessageStatus::*;
    let lease = jiff::SignedDuration::from_secs(30);
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let globex = store.create_tenant("globex", t0()).await.unwrap();
    let hook = store
        .create_webhook(&acme.id, "https://example.com/hook", "whsec_c2VjcmV0", t0())
        .await
        .unwrap();
    let kept = store
        .create_webhook(&acme.id, "https://example.com/kept", "whsec_c2VjcmV0", t0())
        .await
        .unwrap();
    let m = new_message(&acme.id, None, Some(0));
    store
        .insert_messages(std::slice::from_ref(&m))
        .await
        .unwrap();
    store
        .record_status(&m.id, &MessageEvent::new(Sent, secs(1)))
        .await
        .unwrap();
    assert!(
        !store.delete_webhook(&globex.id, &hook.id).await.unwrap(),
        "another tenant's webhook is not found"
    );
    assert!(!store.delete_webhook(&acme.id, "nope").await.unwrap());
    assert_eq!(store.webhooks(&acme.id).await.unwrap().len(), 2);
    assert!(store.delete_webhook(&acme.id, &hook.id).await.unwrap());
    assert!(!store.delete_webhook(&acme.id, &hook.id).await.unwrap());
    assert_eq!(store.webhooks(&acme.id).await.unwrap(), vec![kept.clone()]);
    assert!(
        store
            .webhook_deliveries(&acme.id, &hook.id)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .record_status(&m.id, &MessageEvent::new(Delivered, secs(2)))
        .await
        .unwrap();
    let due = store
        .claim_webhook_deliveries(secs(5), 10, "w1", lease)
        .await
        .unwrap();
    let urls: Vec<&str> = due.iter().map(|d| d.url.as_str()).collect();
    assert_eq!(
        urls,
        ["https://example.com/kept", "https://example.com/kept"],
        "the pending and the later events go to the remaining webhook only"
    );
}

/// What an attempt told about an endpoint, with the webhooks' breaker and no jitter (an
/// open period is then exactly 30 s, doubling).
fn news(reachability: relais_core::circuit::Reachability) -> crate::EndpointNews {
    crate::EndpointNews {
        reachability,
        breaker: relais_core::circuit::CircuitBreaker::WEBHOOKS,
        jitter: 0.0,
    }
}

pub async fn an_open_circuit_holds_back_its_webhook_until_a_probe_gets_through(store: &dyn Store) {
    use crate::{DeliveryOutcome, MessageEvent};
    use relais_core::circuit::Circuit;
    use relais_core::circuit::Reachability::*;
    use relais_core::status::MessageStatus::*;
    let lease = jiff::SignedDuration::from_secs(30);
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let dead = store
        .create_webhook(&acme.id, "https://example.com/dead", "whsec_c2VjcmV0", t0())
        .await
        .unwrap();
    let alive = store
        .create_webhook(
            &acme.id,
            "https://example.com/alive",
            "whsec_c2VjcmV0",
            t0(),
        )
        .await
        .unwrap();
    let messages: Vec<_> = (0..8)
        .map(|_| new_message(&acme.id, None, Some(0)))
        .collect();
    store.insert_messages(&messages).await.unwrap();
    for m in &messages {
        store
            .record_status(&m.id, &MessageEvent::new(Sent, secs(1)))
            .await
            .unwrap();
    }
    let refused = |at| DeliveryOutcome::Retry {
        due_at: secs(at),
        code: None,
        error: "connection refused".into(),
    };
    let delivered = DeliveryOutcome::Delivered { code: 200 };
    let first = store
        .claim_webhook_deliveries(secs(2), 100, "w1", lease)
        .await
        .unwrap();
    assert_eq!(first.len(), 16, "8 events, 2 webhooks");
    let (to_dead, to_alive): (Vec<_>, Vec<_>) =
        first.iter().partition(|d| d.delivery.webhook_id == dead.id);
    // Four failures leave it closed; the fifth opens it for 30 s.
    for d in &to_dead[..4] {
        let circuit = store
            .finish_webhook_delivery(&d.delivery, "w1", &refused(3), &news(Down), secs(2))
            .await
            .unwrap()
            .unwrap();
        assert!(circuit.is_closed());
    }
    let open = store
        .finish_webhook_delivery(
            &to_dead[4].delivery,
            "w1",
            &refused(3),
            &news(Down),
            secs(2),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        open,
        Circuit {
            failures: 5,
            opens: 1,
            failing_since: Some(secs(2)),
            retry_at: Some(secs(32)),
        }
    );
    let unattempted: Vec<String> = to_dead[5..].iter().map(|d| d.delivery.id.clone()).collect();
    store
        .release_webhook_deliveries(&unattempted, "w1")
        .await
        .unwrap();
    for d in &to_alive {
        store
            .finish_webhook_delivery(&d.delivery, "w1", &delivered, &news(Answered), secs(2))
            .await
            .unwrap();
    }
    let hooks = store.webhooks(&acme.id).await.unwrap();
    let circuit_of = |id: &str| hooks.iter().find(|h| h.id == id).map(|h| h.circuit);
    assert_eq!(circuit_of(&dead.id), Some(open));
    assert_eq!(circuit_of(&alive.id), Some(Circuit::default()));
    // While it is open, the other webhook's new events go at once; none of its rows is
    // claimed, nor written.
    store
        .record_status(&messages[0].id, &MessageEvent::new(Delivered, secs(10)))
        .await
        .unwrap();
    let held = store.webhook_deliveries(&acme.id, &dead.id).await.unwrap();
    let claimed = store
        .claim_webhook_deliveries(secs(31), 100, "w2", lease)
        .await
        .unwrap();
    let urls: Vec<&str> = claimed.iter().map(|d| d.url.as_str()).collect();
    assert_eq!(urls, ["https://example.com/alive"]);
    store
        .finish_webhook_delivery(
            &claimed[0].delivery,
            "w2",
            &delivered,
            &news(Answered),
            secs(31),
        )
        .await
        .unwrap();
    assert_eq!(
        store.webhook_deliveries(&acme.id, &dead.id).await.unwrap(),
        held,
        "an open circuit's deliveries are not written"
    );
    // When it is due, one delivery goes as a probe, one only, whoever claims.
    let probe = store
        .claim_webhook_deliveries(secs(32), 100, "w2", lease)
        .await
        .unwrap();
    assert_eq!(probe.len(), 1);
    assert_eq!(probe[0].delivery.webhook_id, dead.id);
    assert!(
        store
            .claim_webhook_deliveries(secs(33), 100, "w3", lease)
            .await
            .unwrap()
            .is_empty(),
        "half-open: one probe at a time"
    );
    // The probe fails: open again, twice as long.
    let again = store
        .finish_webhook_delivery(
            &probe[0].delivery,
            "w2",
            &refused(40),
            &news(Down),
            secs(33),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.failures, again.opens), (6, 2));
    assert_eq!(again.retry_at, Some(secs(93)));
    assert_eq!(again.failing_since, Some(secs(2)));
    assert!(
        store
            .claim_webhook_deliveries(secs(92), 100, "w3", lease)
            .await
            .unwrap()
            .is_empty()
    );
    let probe = store
        .claim_webhook_deliveries(secs(93), 100, "w3", lease)
        .await
        .unwrap();
    assert_eq!(probe.len(), 1);
    // It answers: the circuit closes and everything held back is claimable at once.
    let closed = store
        .finish_webhook_delivery(
            &probe[0].delivery,
            "w3",
            &delivered,
            &news(Answered),
            secs(94),
        )
        .await
        .unwrap();
    assert_eq!(closed, Some(Circuit::default()));
    let rest = store
        .claim_webhook_deliveries(secs(94), 100, "w4", lease)
        .await
        .unwrap();
    assert_eq!(rest.len(), 8, "the 9 events but the probe that got through");
    assert!(rest.iter().all(|d| d.delivery.webhook_id == dead.id));
    let hooks = store.webhooks(&acme.id).await.unwrap();
    assert!(hooks.iter().all(|h| h.circuit == Circuit::default()));
}

pub async fn a_probe_whose_worker_died_is_claimed_again_after_its_lease(store: &dyn Store) {
    use crate::{DeliveryOutcome, MessageEvent};
    use relais_core::circuit::Reachability::*;
    use relais_core::status::MessageStatus::*;
    let lease = jiff::SignedDuration::from_secs(30);
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    store
        .create_webhook(&acme.id, "https://example.com/dead", "whsec_c2VjcmV0", t0())
        .await
        .unwrap();
    let messages: Vec<_> = (0..6)
        .map(|_| new_message(&acme.id, None, Some(0)))
        .collect();
    store.insert_messages(&messages).await.unwrap();
    for m in &messages {
        store
            .record_status(&m.id, &MessageEvent::new(Sent, secs(1)))
            .await
            .unwrap();
    }
    let due = store
        .claim_webhook_deliveries(secs(2), 5, "w1", lease)
        .await
        .unwrap();
    for d in &due {
        let refused = DeliveryOutcome::Retry {
            due_at: secs(3),
            code: Some(503),
            error: "HTTP 503".into(),
        };
        store
            .finish_webhook_delivery(&d.delivery, "w1", &refused, &news(Down), secs(2))
            .await
            .unwrap();
    }
    let hooks = store.webhooks(&acme.id).await.unwrap();
    assert_eq!(hooks[0].circuit.retry_at, Some(secs(32)));
    let probe = store
        .claim_webhook_deliveries(secs(32), 10, "w1", lease)
        .await
        .unwrap();
    assert_eq!(probe.len(), 1);
    // A failure that says nothing of the endpoint (its secret did not open) leaves the
    // circuit half-open until the probe's lease would have run out.
    let unopened = DeliveryOutcome::Failed {
        code: None,
        error: "the webhook secret cannot be read".into(),
    };
    let circuit = store
        .finish_webhook_delivery(&probe[0].delivery, "w1", &unopened, &news(Untold), secs(33))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(circuit.retry_at, Some(secs(62)));
    // The next probe's node dies with it: its lease lapses, and so does the half-open state.
    let lost = store
        .claim_webhook_deliveries(secs(62), 10, "w2", lease)
        .await
        .unwrap();
    assert_eq!(lost.len(), 1);
    assert!(
        store
            .claim_webhook_deliveries(secs(91), 10, "w3", lease)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .claim_webhook_deliveries(secs(92), 10, "w3", lease)
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|d| &d.delivery.id).collect::<Vec<_>>(),
        [&lost[0].delivery.id],
        "the oldest due, again"
    );
    // The dead node's late report finds its lease gone and writes nothing.
    let late = store
        .finish_webhook_delivery(
            &lost[0].delivery,
            "w2",
            &DeliveryOutcome::Delivered { code: 200 },
            &news(Answered),
            secs(93),
        )
        .await
        .unwrap();
    assert_eq!(late, None);
    let hooks = store.webhooks(&acme.id).await.unwrap();
    assert_eq!(
        hooks[0].circuit.retry_at,
        Some(secs(122)),
        "still half-open"
    );
}

/// Tenant `acme` with one webhook and `n` stored messages, due now.
async fn webhook_and_messages(
    store: &dyn Store,
    n: usize,
) -> (crate::Tenant, crate::Webhook, Vec<crate::NewMessage>) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let hook = store
        .create_webhook(&acme.id, "https://example.com/hook", "whsec_c2VjcmV0", t0())
        .await
        .unwrap();
    let messages: Vec<_> = (0..n)
        .map(|_| new_message(&acme.id, None, Some(0)))
        .collect();
    store.insert_messages(&messages).await.unwrap();
    (acme, hook, messages)
}

pub async fn pending_deliveries_past_the_retry_window_expire_in_one_sweep(store: &dyn Store) {
    use crate::{DeliveryOutcome, MessageEvent};
    use relais_core::circuit::Reachability::*;
    use relais_core::status::MessageStatus::*;
    let (acme, hook, messages) = webhook_and_messages(store, 4).await;
    for m in &messages[..3] {
        store
            .record_status(&m.id, &MessageEvent::new(Sent, secs(1)))
            .await
            .unwrap();
    }
    store
        .record_status(&messages[3].id, &MessageEvent::new(Sent, secs(100)))
        .await
        .unwrap();
    // Of the three old events, one is delivered, one waits for a retry, one is in flight.
    let due = store
        .claim_webhook_deliveries(secs(2), 10, "w1", jiff::SignedDuration::from_secs(1_000))
        .await
        .unwrap();
    assert_eq!(due.len(), 3);
    store
        .finish_webhook_delivery(
            &due[0].delivery,
            "w1",
            &DeliveryOutcome::Delivered { code: 200 },
            &news(Answered),
            secs(2),
        )
        .await
        .unwrap();
    let retry = DeliveryOutcome::Retry {
        due_at: secs(500),
        code: Some(503),
        error: "HTTP 503".into(),
    };
    store
        .finish_webhook_delivery(&due[1].delivery, "w1", &retry, &news(Down), secs(2))
        .await
        .unwrap();
    let error = "expired while the endpoint was unreachable";
    assert_eq!(
        store
            .expire_webhook_deliveries(secs(50), error, secs(200))
            .await
            .unwrap(),
        1,
        "neither the delivered, the one in flight nor the newer one"
    );
    let log = store.webhook_deliveries(&acme.id, &hook.id).await.unwrap();
    let by_id = |id: &str| log.iter().find(|d| d.id == id).unwrap();
    let expired = by_id(&due[1].delivery.id);
    assert_eq!(
        (
            expired.status.as_str(),
            expired.last_error.as_deref(),
            expired.last_code,
            expired.attempts,
            expired.updated_at
        ),
        ("failed", Some(error), Some(503), 1, secs(200)),
        "the last answer is kept"
    );
    assert_eq!(by_id(&due[0].delivery.id).status, "delivered");
    assert_eq!(by_id(&due[2].delivery.id).status, "pending");
    // Once the lease of the one in flight has lapsed, it expires too, with the newer one.
    assert_eq!(
        store
            .expire_webhook_deliveries(secs(1_500), error, secs(2_000))
            .await
            .unwrap(),
        2
    );
    assert!(
        store
            .claim_webhook_deliveries(secs(3_000), 10, "w2", jiff::SignedDuration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    let log = store.webhook_deliveries(&acme.id, &hook.id).await.unwrap();
    let statuses: Vec<&str> = log.iter().map(|d| d.status.as_str()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "failed").count(),
        3,
        "{statuses:?}"
    );
}

pub async fn finished_deliveries_past_the_retention_are_pruned_oldest_first(store: &dyn Store) {
    use crate::{DeliveryOutcome, MessageEvent};
    use relais_core::circuit::Reachability::*;
    use relais_core::status::MessageStatus::*;
    let (acme, hook, messages) = webhook_and_messages(store, 5).await;
    // Events at 1, 2, 3 and 4 s (old) and at 100 s (recent).
    for (m, at) in messages.iter().zip([1, 2, 3, 4, 100]) {
        store
            .record_status(&m.id, &MessageEvent::new(Sent, secs(at)))
            .await
            .unwrap();
    }
    let due = store
        .claim_webhook_deliveries(secs(200), 10, "w1", jiff::SignedDuration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(due.len(), 5);
    let created = |at: i64| {
        due.iter()
            .find(|d| d.delivery.created_at == secs(at))
            .map(|d| d.delivery.clone())
            .unwrap()
    };
    let delivered = DeliveryOutcome::Delivered { code: 200 };
    let failed = DeliveryOutcome::Failed {
        code: Some(410),
        error: "HTTP 410".into(),
    };
    for (at, outcome) in [
        (1, &delivered),
        (2, &failed),
        (3, &delivered),
        (100, &delivered),
    ] {
        store
            .finish_webhook_delivery(&created(at), "w1", outcome, &news(Answered), secs(200))
            .await
            .unwrap();
    }
    // The one at 4 s stays pending (given back unattempted).
    store
        .release_webhook_deliveries(&[created(4).id], "w1")
        .await
        .unwrap();
    let left = |log: Vec<crate::WebhookDelivery>| {
        let mut at: Vec<i64> = log
            .iter()
            .map(|d| d.created_at.duration_since(t0()).as_secs())
            .collect();
        at.sort();
        at
    };
    assert_eq!(
        store.prune_webhook_deliveries(secs(50), 2).await.unwrap(),
        2,
        "at most the limit"
    );
    let log = store.webhook_deliveries(&acme.id, &hook.id).await.unwrap();
    assert_eq!(left(log), vec![3, 4, 100], "the oldest went first");
    assert_eq!(
        store.prune_webhook_deliveries(secs(50), 2).await.unwrap(),
        1
    );
    assert_eq!(
        store.prune_webhook_deliveries(secs(50), 2).await.unwrap(),
        0
    );
    let log = store.webhook_deliveries(&acme.id, &hook.id).await.unwrap();
    assert_eq!(
        left(log),
        vec![4, 100],
        "a pending delivery stays whatever its age, a recent one stays"
    );
    // The pending one is still delivered.
    let due = store
        .claim_webhook_deliveries(secs(300), 10, "w2", jiff::SignedDuration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].delivery.created_at, secs(4));
}

pub async fn a_failed_step_falls_back_once(store: &dyn Store) {
    use crate::{MessageEvent, OutboxNext, Settlement, StepMove};
    use relais_core::status::MessageStatus::*;
    let lease = jiff::SignedDuration::from_secs(30);
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let m = new_message(&acme.id, None, Some(0));
    store
        .insert_messages(std::slice::from_ref(&m))
        .await
        .unwrap();
    let claimed = store.claim_due(secs(0), 10, "w1", lease).await.unwrap();
    let mut ack = Settlement::new(OutboxNext::Done);
    ack.status = Some(MessageEvent::new(Sent, secs(1)));
    ack.provider_id = Some("p-1".into());
    assert!(
        store
            .settle(&claimed[0].message.id, "w1", &ack, secs(1))
            .await
            .unwrap()
    );
    let to = StepMove {
        step: 1,
        channel: "sms".into(),
        // Another address than the first step's, as a push subscription's fallback to SMS.
        to_address: "+33699999999".into(),
        content: serde_json::json!({"text": "Bonjour"}),
        segments: Some(1),
    };
    let events = [MessageEvent::new(Undelivered, secs(5)).channel("sim")];
    assert!(
        store
            .fall_back(&m.id, 0, &events, &to, secs(5))
            .await
            .unwrap()
    );
    assert!(
        !store
            .fall_back(&m.id, 0, &events, &to, secs(6))
            .await
            .unwrap(),
        "a duplicate receipt moves nothing"
    );
    let again = store.claim_due(secs(5), 10, "w2", lease).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (
            again[0].message.step,
            again[0].message.channel.as_str(),
            again[0].message.to_address.as_str()
        ),
        (1, "sms", "+33699999999"),
        "the next step goes to its own address"
    );
    assert_ne!(m.to_address, "+33699999999");
    assert_eq!(again[0].message.provider_id, None);
    assert_eq!(
        again[0].message.status, Sent,
        "the failure of a step is an event, not the status"
    );
    let found = store.message(&acme.id, &m.id).await.unwrap().unwrap();
    assert_eq!(
        found
            .events
            .iter()
            .filter(|e| e.status == Undelivered)
            .count(),
        1
    );
}

pub async fn a_dead_address_leaves_its_contact_with_the_failure(store: &dyn Store) {
    use crate::{MessageEvent, OutboxNext, Settlement};
    use relais_core::status::MessageStatus::*;
    let lease = jiff::SignedDuration::from_secs(30);
    let push = |address: &str| Identity {
        channel: ChannelKind::Webpush,
        address: address.to_owned(),
    };
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let globex = store.create_tenant("globex", t0()).await.unwrap().id;
    let ana = store
        .create_contact(
            &acme,
            &contact(vec![sms("+33612345678"), push("sub-ana")], "{}"),
            t0(),
        )
        .await
        .unwrap();
    let bob = store
        .create_contact(&acme, &contact(vec![push("sub-bob")], "{}"), t0())
        .await
        .unwrap();
    let theirs = store
        .create_contact(&globex, &contact(vec![push("sub-ana")], "{}"), t0())
        .await
        .unwrap();
    let to_ana = |address: &str| crate::NewMessage {
        contact_id: Some(ana.id.clone()),
        due_at: Some(secs(0)),
        ..queued_message(&acme, "webpush", address, t0())
    };
    let (gone, wrong) = (to_ana("sub-ana"), to_ana("sub-ana"));
    store
        .insert_messages(&[gone.clone(), wrong.clone()])
        .await
        .unwrap();
    let claimed = store.claim_due(secs(1), 10, "w1", lease).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let failed = |address: &str| {
        let mut s = Settlement::new(OutboxNext::Done);
        s.status = Some(
            MessageEvent::new(Failed, secs(1))
                .reason("subscription_gone")
                .detail("the address was removed"),
        );
        s.drop_identity = Some(push(address));
        s
    };
    // The second names another contact's identity: it must not reach it.
    let kept = store
        .settle_all(
            "w1",
            &[
                (gone.id.clone(), failed("sub-ana")),
                (wrong.id.clone(), failed("sub-bob")),
            ],
            secs(1),
        )
        .await
        .unwrap();
    assert_eq!(kept, vec![true, true]);

    let ana_now = store.contact(&acme, &ana.id).await.unwrap().unwrap();
    assert_eq!(ana_now.identities, vec![sms("+33612345678")]);
    let bob_now = store.contact(&acme, &bob.id).await.unwrap().unwrap();
    assert_eq!(bob_now.identities, vec![push("sub-bob")]);
    let theirs_now = store.contact(&globex, &theirs.id).await.unwrap().unwrap();
    assert_eq!(
        theirs_now.identities,
        vec![push("sub-ana")],
        "another tenant's identity of the same address stays"
    );
    let found = store.message(&acme, &gone.id).await.unwrap().unwrap();
    assert_eq!(found.message.status, Failed);
    assert_eq!(
        found.events.last().and_then(|e| e.reason.as_deref()),
        Some("subscription_gone")
    );
    assert!(
        store
            .claim_due(secs(100), 10, "w2", lease)
            .await
            .unwrap()
            .is_empty(),
        "a dead address is not tried again"
    );
}

pub async fn concurrent_claims_never_share_a_row(store: &dyn Store) {
    let lease = jiff::SignedDuration::from_secs(30);
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let batch: Vec<_> = (0..60)
        .map(|_| new_message(&acme.id, None, Some(0)))
        .collect();
    store.insert_messages(&batch).await.unwrap();
    // Four nodes claim at once.
    let (a, b, c, d) = tokio::join!(
        store.claim_due(secs(1), 20, "n1", lease),
        store.claim_due(secs(1), 20, "n2", lease),
        store.claim_due(secs(1), 20, "n3", lease),
        store.claim_due(secs(1), 20, "n4", lease),
    );
    let mut ids: Vec<String> = [a, b, c, d]
        .into_iter()
        .flat_map(|r| r.unwrap())
        .map(|item| item.message.id)
        .collect();
    let claimed = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), claimed, "a row was claimed by two nodes");
    assert_eq!(claimed, 60, "every due row was claimed");
}

/// Owed SMPP receipts: due once the message is final, postponed while the ESME is away,
/// gone once sent; a second watch of a message is ignored.
pub async fn owed_smpp_receipts_wait_for_a_final_status_and_survive_until_sent(store: &dyn Store) {
    use relais_core::status::MessageStatus;
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let messages: Vec<_> = (0..2)
        .map(|_| new_message(&acme.id, None, Some(0)))
        .collect();
    store.insert_messages(&messages).await.unwrap();
    let watch = |id: &str| crate::ReceiptWatch {
        receipt_id: id.to_owned(),
        message_id: id.to_owned(),
        tenant_id: acme.id.clone(),
        system_id: "shop".into(),
        source: "MyShop".into(),
        destination: "33612345678".into(),
        submitted: "2611211000".into(),
        text: "Bonjour".into(),
        created_at: t0(),
    };
    for m in &messages {
        store.watch_receipt(&watch(&m.id)).await.unwrap();
    }
    store.watch_receipt(&watch(&messages[0].id)).await.unwrap();
    assert!(
        store.due_receipts(secs(1), 10).await.unwrap().is_empty(),
        "not final yet"
    );
    store
        .record_status(
            &messages[0].id,
            &crate::MessageEvent::new(MessageStatus::Delivered, secs(1)),
        )
        .await
        .unwrap();
    store
        .record_status(
            &messages[1].id,
            &crate::MessageEvent::new(MessageStatus::Sent, secs(1)),
        )
        .await
        .unwrap();
    let due = store.due_receipts(secs(2), 10).await.unwrap();
    assert_eq!(
        due,
        vec![(watch(&messages[0].id), MessageStatus::Delivered)]
    );
    // The ESME is not bound: the receipt waits for its next try.
    let ids = vec![messages[0].id.clone()];
    store.postpone_receipts(&ids, secs(60)).await.unwrap();
    assert!(store.due_receipts(secs(2), 10).await.unwrap().is_empty());
    assert_eq!(store.due_receipts(secs(60), 10).await.unwrap().len(), 1);
    store.forget_receipts(&ids).await.unwrap();
    assert!(store.due_receipts(secs(60), 10).await.unwrap().is_empty());
}

/// Two messages of a new tenant, inserted due at once and claimed by `n1` at `secs(1)` for
/// 30 s.
async fn two_claimed_messages(store: &dyn Store) -> (String, crate::NewMessage, crate::NewMessage) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let (one, two) = (
        new_message(&acme.id, None, Some(0)),
        new_message(&acme.id, None, Some(0)),
    );
    store
        .insert_messages(&[one.clone(), two.clone()])
        .await
        .unwrap();
    let lease = jiff::SignedDuration::from_secs(30);
    assert_eq!(
        store
            .claim_due(secs(1), 10, "n1", lease)
            .await
            .unwrap()
            .len(),
        2
    );
    (acme.id, one, two)
}

/// A round's settlement and the receipts that came in meanwhile go in one transaction: the
/// acknowledgement first, then the receipt, whatever order they were offered in by the
/// provider; a receipt for an unknown message changes nothing.
pub async fn a_round_settles_with_the_receipts_that_came_meanwhile(store: &dyn Store) {
    use relais_core::status::MessageStatus::{self, Accepted, Delivered, Queued, Sending, Sent};
    let (acme, one, two) = two_claimed_messages(store).await;
    let lease = jiff::SignedDuration::from_secs(30);
    let event = |status| crate::MessageEvent::new(status, secs(1));
    let sending: Vec<_> = [&one, &two]
        .iter()
        .map(|m| (m.id.clone(), event(Sending)))
        .collect();
    store.record_statuses(&sending).await.unwrap();
    let settlements: Vec<(String, crate::Settlement)> = [&one, &two]
        .iter()
        .map(|m| {
            let mut ack = crate::Settlement::new(crate::OutboxNext::Done);
            ack.status = Some(event(Sent));
            ack.provider_id = Some(format!("smsc-{}", m.id));
            (m.id.clone(), ack)
        })
        .collect();
    let receipts = vec![
        (one.id.clone(), event(Delivered).reason("receipt")),
        ("no-such-message".to_owned(), event(Delivered)),
    ];
    let kept = store
        .settle_round("n1", &settlements, &receipts, secs(2))
        .await
        .unwrap();
    assert_eq!(kept, [true, true]);
    let statuses = |m: &crate::MessageWithEvents| -> Vec<MessageStatus> {
        m.events.iter().map(|e| e.status).collect()
    };
    let one = store.message(&acme, &one.id).await.unwrap().unwrap();
    assert_eq!(one.message.status, Delivered);
    assert_eq!(
        one.message.provider_id,
        Some(format!("smsc-{}", one.message.id))
    );
    assert_eq!(statuses(&one), [Accepted, Queued, Sending, Sent, Delivered]);
    let two = store.message(&acme, &two.id).await.unwrap().unwrap();
    assert_eq!(two.message.status, Sent);
    assert_eq!(statuses(&two), [Accepted, Queued, Sending, Sent]);
    assert!(
        store
            .claim_due(secs(60), 10, "n2", lease)
            .await
            .unwrap()
            .is_empty(),
        "both outbox rows are done"
    );
}

/// A message a dispatcher holds (its outbox row leased) is on its way to the provider: a
/// cancel is refused as too late for `sending`, and the settlement writes the attempt's
/// `sending` mark before its outcome. Once the lease has run out (the dispatcher died), the
/// message is queued again and may be canceled.
pub async fn a_message_being_sent_cannot_be_canceled(store: &dyn Store) {
    use relais_core::status::MessageStatus::{Accepted, Canceled, Queued, Sending, Sent};
    let (acme, held, dropped) = two_claimed_messages(store).await;
    for m in [&held, &dropped] {
        assert_eq!(
            store.cancel(&acme, &m.id, secs(2)).await.unwrap(),
            crate::CancelOutcome::TooLate(Sending)
        );
    }
    let mut ack = crate::Settlement::new(crate::OutboxNext::Done);
    ack.sending = Some(crate::MessageEvent::new(Sending, secs(1)).attempt(1));
    ack.status = Some(crate::MessageEvent::new(Sent, secs(3)));
    assert!(store.settle(&held.id, "n1", &ack, secs(3)).await.unwrap());
    let found = store.message(&acme, &held.id).await.unwrap().unwrap();
    let statuses: Vec<_> = found.events.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [Accepted, Queued, Sending, Sent]);
    assert_eq!(
        found.events[2].at,
        secs(1),
        "stamped when the attempt started"
    );
    assert_eq!(
        store.cancel(&acme, &held.id, secs(4)).await.unwrap(),
        crate::CancelOutcome::TooLate(Sent)
    );
    // The other one's lease ran out: nobody is sending it.
    assert_eq!(
        store.cancel(&acme, &dropped.id, secs(40)).await.unwrap(),
        crate::CancelOutcome::Canceled
    );
    let found = store.message(&acme, &dropped.id).await.unwrap().unwrap();
    assert_eq!(found.message.status, Canceled);
}

/// Parts of a concatenated SMPP submit are held until the message is whole: a repeated
/// part keeps its first text and id, release forgets a message's parts, expiry the old ones.
pub async fn held_smpp_parts_wait_for_their_message(store: &dyn Store) {
    use crate::HeldPart;
    let part = |key: &str, seq: i64, text: &str, at: i64| HeldPart {
        key: key.to_owned(),
        tenant_id: "t1".into(),
        total: 3,
        seq,
        text: text.to_owned(),
        part_id: format!("{key}-{seq}-{text}"),
        held_at: secs(at),
    };
    let texts =
        |parts: &[HeldPart]| -> Vec<String> { parts.iter().map(|p| p.text.clone()).collect() };
    assert_eq!(
        texts(&store.hold_part(&part("a", 2, "lo ", 0)).await.unwrap()),
        ["lo "]
    );
    assert_eq!(
        texts(&store.hold_part(&part("a", 1, "Hel", 1)).await.unwrap()),
        ["Hel", "lo "],
        "in part order"
    );
    let again = store.hold_part(&part("a", 1, "XXX", 2)).await.unwrap();
    assert_eq!(
        texts(&again),
        ["Hel", "lo "],
        "a repeated part keeps its first text"
    );
    assert_eq!(again[0].part_id, "a-1-Hel");
    store.hold_part(&part("b", 1, "old", 0)).await.unwrap();
    let whole = store.hold_part(&part("a", 3, "you", 3)).await.unwrap();
    assert_eq!(texts(&whole).concat(), "Hello you");
    store.release_parts("a").await.unwrap();
    assert_eq!(
        texts(&store.hold_part(&part("a", 3, "new", 4)).await.unwrap()),
        ["new"],
        "released: a new message may reuse the key"
    );
    assert_eq!(
        store.expire_parts(secs(1)).await.unwrap(),
        1,
        "b's part is old"
    );
    assert_eq!(
        texts(&store.hold_part(&part("b", 2, "x", 5)).await.unwrap()),
        ["x"]
    );
}

/// A channel's reach counts each recipient once, at their latest message, within the
/// window asked about; recording forgets recipients from before the window it is given.
pub async fn a_channels_reach_counts_distinct_recipients_in_the_window(store: &dyn Store) {
    use crate::Reach;
    let day = 86_400;
    store
        .record_reach("t1", "wa", "+331", secs(10), secs(0))
        .await
        .unwrap();
    store
        .record_reach("t1", "wa", "+332", secs(20), secs(0))
        .await
        .unwrap();
    store
        .record_reach("t1", "wa", "+331", secs(30), secs(0))
        .await
        .unwrap();
    store
        .record_reach("t1", "wa", "+331", secs(5), secs(0))
        .await
        .unwrap();
    store
        .record_reach("t1", "other", "+333", secs(40), secs(0))
        .await
        .unwrap();
    store
        .record_reach("t2", "wa", "+334", secs(40), secs(0))
        .await
        .unwrap();
    assert_eq!(
        store
            .reach_since("t1", "wa", "+331", secs(0))
            .await
            .unwrap(),
        Reach {
            recipients: 2,
            oldest: Some(secs(20)),
            recipient: Some(secs(30)),
        },
        "one count per recipient, at their latest message; other channels and tenants apart"
    );
    assert_eq!(
        store
            .reach_since("t1", "wa", "+339", secs(20))
            .await
            .unwrap(),
        Reach {
            recipients: 1,
            oldest: Some(secs(30)),
            recipient: None,
        },
        "a recipient messaged at the window's start is out of it"
    );
    store
        .record_reach("t1", "wa", "+335", secs(day + 25), secs(25))
        .await
        .unwrap();
    assert_eq!(
        store
            .reach_since("t1", "wa", "+332", secs(0))
            .await
            .unwrap(),
        Reach {
            recipients: 2,
            oldest: Some(secs(30)),
            recipient: None,
        },
        "+332 was forgotten"
    );
}

/// An upload is read back byte for byte, by its tenant only; the uploads of an owner are
/// counted over a window, apart from other owners and tenants.
pub async fn media_is_stored_whole_and_read_within_its_tenant(store: &dyn Store) {
    // Every byte value, and a NUL early, so that no backend treats the bytes as text.
    let bytes: Vec<u8> = (0..=255u8).chain([0, 0, 0xFF]).collect();
    let upload = |tenant: &str, owner: &str, at: i64| crate::NewMedia {
        id: crate::new_id(),
        tenant_id: tenant.to_owned(),
        channel_id: "ch_web".into(),
        owner_address: owner.to_owned(),
        mime_type: "image/png".into(),
        bytes: bytes.clone(),
        created_at: secs(at),
    };
    let first = upload("t1", "vana", 10);
    let stored = store.insert_media(&first).await.unwrap();
    assert_eq!(stored.size, bytes.len() as u64);
    let read = store.media("t1", &first.id).await.unwrap().unwrap();
    assert_eq!(read, stored);
    assert_eq!(read.bytes, bytes, "the exact bytes");
    assert_eq!(
        (read.owner_address.as_str(), read.channel_id.as_str()),
        ("vana", "ch_web")
    );
    assert_eq!(
        read.reference(),
        relais_core::media::MediaRef {
            id: first.id.clone(),
            mime_type: "image/png".into(),
            size: bytes.len() as u64,
        }
    );
    assert_eq!(
        store.media("t2", &first.id).await.unwrap(),
        None,
        "another tenant's upload is not found"
    );
    assert!(matches!(
        store.insert_media(&first).await,
        Err(crate::StoreError::Conflict(_))
    ));
    store.insert_media(&upload("t1", "vana", 30)).await.unwrap();
    store.insert_media(&upload("t1", "vbob", 40)).await.unwrap();
    store.insert_media(&upload("t2", "vana", 40)).await.unwrap();
    assert_eq!(
        store.uploads_since("t1", "vana", secs(0)).await.unwrap(),
        crate::RecentUploads {
            count: 2,
            oldest: Some(secs(10)),
        }
    );
    assert_eq!(
        store.uploads_since("t1", "vana", secs(10)).await.unwrap(),
        crate::RecentUploads {
            count: 1,
            oldest: Some(secs(30)),
        },
        "an upload at the window's start is out of it"
    );
    assert_eq!(
        store.uploads_since("t1", "vcid", secs(0)).await.unwrap(),
        crate::RecentUploads::default()
    );
}

/// An inbound message with an image keeps its reference, with or without text.
pub async fn an_inbound_message_keeps_the_media_it_carries(store: &dyn Store) {
    let media = relais_core::media::MediaRef {
        id: crate::new_id(),
        mime_type: "image/webp".into(),
        size: 1234,
    };
    let with_image = crate::NewInboundMessage {
        channel: ChannelKind::Webchat,
        media: Some(media.clone()),
        ..inbound("t1", "vana", "", Some("vana:c1"))
    };
    let stored = store.insert_inbound(&with_image).await.unwrap().message;
    assert_eq!(stored.media.as_ref(), Some(&media));
    assert_eq!(stored.text, "");
    let read = store
        .inbound_message("t1", &with_image.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.media, Some(media));
    let plain = inbound("t1", "+33612345678", "Bonjour", None);
    store.insert_inbound(&plain).await.unwrap();
    let read = store
        .inbound_message("t1", &plain.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.media, None);
}

/// An SMSC may send its receipt before the dispatcher settles the acknowledgement: the
/// status stays `delivered`, the `sent` event and the provider id are still recorded.
pub async fn an_acknowledgement_overtaken_by_its_receipt_is_still_logged(store: &dyn Store) {
    use relais_core::status::MessageStatus;
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let message = new_message(&acme.id, None, Some(0));
    store
        .insert_messages(std::slice::from_ref(&message))
        .await
        .unwrap();
    let lease = jiff::SignedDuration::from_secs(30);
    store.claim_due(secs(1), 10, "n1", lease).await.unwrap();
    let event = |status| crate::MessageEvent::new(status, secs(1));
    store
        .record_status(&message.id, &event(MessageStatus::Sending))
        .await
        .unwrap();
    store
        .record_status(&message.id, &event(MessageStatus::Delivered))
        .await
        .unwrap();
    let mut ack = crate::Settlement::new(crate::OutboxNext::Done);
    ack.status = Some(event(MessageStatus::Sent).detail("provider id smsc-7"));
    ack.provider_id = Some("smsc-7".into());
    assert!(
        store
            .settle(&message.id, "n1", &ack, secs(1))
            .await
            .unwrap()
    );
    let stored = store.message(&acme.id, &message.id).await.unwrap().unwrap();
    assert_eq!(stored.message.status, MessageStatus::Delivered);
    assert_eq!(stored.message.provider_id.as_deref(), Some("smsc-7"));
    let statuses: Vec<MessageStatus> = stored.events.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [
            MessageStatus::Accepted,
            MessageStatus::Queued,
            MessageStatus::Sending,
            MessageStatus::Delivered,
            MessageStatus::Sent
        ]
    );
    // A late `sent` receipt (not an acknowledgement) is still ignored.
    assert_eq!(
        store
            .record_status(&message.id, &event(MessageStatus::Sent))
            .await
            .unwrap(),
        None
    );
    let again = store.message(&acme.id, &message.id).await.unwrap().unwrap();
    assert_eq!(again.events.len(), 5);
}

/// The messages waiting to be sent on a configured channel, which its deletion would fail.
pub async fn messages_waiting_on_a_channel_are_counted_per_tenant(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let other = store.create_tenant("other", t0()).await.unwrap();
    let on = |tenant: &str, channel: &str| crate::NewMessage {
        channel: channel.to_owned(),
        ..new_message(tenant, None, Some(0))
    };
    let batch = vec![
        on(&acme.id, "chan-1"),
        on(&acme.id, "chan-1"),
        on(&acme.id, "sim"),
        on(&other.id, "chan-1"),
    ];
    store.insert_messages(&batch).await.unwrap();
    assert_eq!(
        store.queued_on_channel(&acme.id, "chan-1").await.unwrap(),
        2
    );
    assert_eq!(
        store.queued_on_channel(&other.id, "chan-1").await.unwrap(),
        1
    );
    assert_eq!(
        store.queued_on_channel(&acme.id, "chan-2").await.unwrap(),
        0
    );
    // Once sent, a message no longer waits.
    let lease = jiff::SignedDuration::from_secs(30);
    let claimed = store.claim_due(secs(1), 10, "n1", lease).await.unwrap();
    let first = claimed
        .iter()
        .find(|item| item.message.id == batch[0].id)
        .expect("the first message is due");
    let done = crate::Settlement::new(crate::OutboxNext::Done);
    assert!(
        store
            .settle(&first.message.id, "n1", &done, secs(1))
            .await
            .unwrap()
    );
    assert_eq!(
        store.queued_on_channel(&acme.id, "chan-1").await.unwrap(),
        1
    );
}

/// Channels: names unique per tenant, found by name or id, invisible to other tenants.
pub async fn channels_are_named_per_tenant(store: &dyn Store) {
    use crate::NewChannel;
    let a = store.create_tenant("a", t0()).await.unwrap();
    let b = store.create_tenant("b", t0()).await.unwrap();
    let new = |tenant: &str, name: &str| NewChannel {
        tenant_id: tenant.to_owned(),
        kind: "smpp".into(),
        name: name.to_owned(),
        config: serde_json::json!({"host": "127.0.0.1", "port": 2775, "password": "secret"}),
    };
    let orange = store
        .create_channel(&new(&a.id, "orange"), t0())
        .await
        .unwrap();
    assert_eq!(orange.config["password"], "secret");
    assert!(matches!(
        store.create_channel(&new(&a.id, "orange"), t0()).await,
        Err(StoreError::Conflict(_))
    ));
    // Another tenant may use the same name.
    let other = store
        .create_channel(&new(&b.id, "orange"), t0())
        .await
        .unwrap();
    let by_name = store.channel_by_name_or_id(&a.id, "orange").await.unwrap();
    assert_eq!(
        by_name.as_ref().map(|c| c.id.as_str()),
        Some(orange.id.as_str())
    );
    let by_id = store
        .channel_by_name_or_id(&a.id, &orange.id)
        .await
        .unwrap();
    assert_eq!(by_id, Some(orange.clone()));
    // A channel named like another's id: the id wins, the name finds the named one.
    let namesake = store
        .create_channel(&new(&a.id, &orange.id), t0())
        .await
        .unwrap();
    assert_eq!(
        store
            .channel_by_name_or_id(&a.id, &orange.id)
            .await
            .unwrap(),
        Some(orange.clone())
    );
    assert_eq!(
        store
            .channel_by_name_or_id(&a.id, &namesake.id)
            .await
            .unwrap()
            .map(|c| c.name),
        Some(orange.id.clone())
    );
    assert!(store.delete_channel(&a.id, &namesake.id).await.unwrap());
    assert_eq!(store.channel(&b.id, &orange.id).await.unwrap(), None);
    assert_eq!(
        store
            .channel_by_name_or_id(&b.id, &orange.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.channels(&a.id).await.unwrap(), vec![orange.clone()]);
    assert_eq!(store.channels_of_kind("smpp").await.unwrap().len(), 2);
    // A config is replaced by its own tenant only.
    let sealed = serde_json::json!({"host": "127.0.0.1", "port": 2775, "password": "enc:v1:x"});
    assert!(
        !store
            .update_channel_config(&b.id, &orange.id, &sealed)
            .await
            .unwrap()
    );
    assert!(
        store
            .update_channel_config(&a.id, &orange.id, &sealed)
            .await
            .unwrap()
    );
    let orange = store.channel(&a.id, &orange.id).await.unwrap().unwrap();
    assert_eq!(orange.config, sealed);
    assert_eq!(
        store
            .channel(&b.id, &other.id)
            .await
            .unwrap()
            .unwrap()
            .config["password"],
        "secret"
    );
    assert!(store.channels_of_kind("whatsapp").await.unwrap().is_empty());
    assert!(!store.delete_channel(&a.id, &other.id).await.unwrap());
    assert!(store.delete_channel(&a.id, &orange.id).await.unwrap());
    assert_eq!(store.channel(&a.id, &orange.id).await.unwrap(), None);
    assert_eq!(store.channels(&b.id).await.unwrap(), vec![other]);
}

/// Deleting a contact keeps its messages, sent and received, detached from it.
pub async fn a_deleted_contact_leaves_its_messages_without_a_contact(store: &dyn Store) {
    let t = store.create_tenant("acme", t0()).await.unwrap().id;
    let phone = Identity {
        channel: ChannelKind::Sms,
        address: "+33612345678".into(),
    };
    let c = store
        .create_contact(&t, &contact(vec![phone], "{}"), t0())
        .await
        .unwrap();
    let sent = crate::NewMessage {
        contact_id: Some(c.id.clone()),
        ..new_message(&t, None, None)
    };
    store
        .insert_messages(std::slice::from_ref(&sent))
        .await
        .unwrap();
    let received = crate::NewInboundMessage {
        contact_id: Some(c.id.clone()),
        ..inbound(&t, "+33612345678", "Merci", Some("mo-1"))
    };
    store.insert_inbound(&received).await.unwrap();
    assert!(store.delete_contact(&t, &c.id).await.unwrap());
    let message = store.message(&t, &sent.id).await.unwrap().unwrap();
    assert_eq!(message.message.contact_id, None);
    let reply = store
        .inbound_message(&t, &received.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.contact_id, None);
    assert_eq!(reply.text, "Merci", "the message itself stays");
}

fn inbound(
    tenant: &str,
    from: &str,
    text: &str,
    provider_id: Option<&str>,
) -> crate::NewInboundMessage {
    crate::NewInboundMessage {
        id: crate::new_id(),
        tenant_id: tenant.to_owned(),
        channel: ChannelKind::Sms,
        channel_id: None,
        from_address: from.to_owned(),
        to_address: "36180".into(),
        contact_id: None,
        text: text.to_owned(),
        payload: None,
        media: None,
        provider_id: provider_id.map(str::to_owned),
        received_at: t0(),
    }
}

pub async fn a_redelivered_inbound_message_is_stored_once(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let first = store
        .insert_inbound(&inbound(
            &acme.id,
            "+33612345678",
            "where is my parcel",
            Some("mo-1"),
        ))
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.message.text, "where is my parcel");
    assert_eq!(first.message.channel, ChannelKind::Sms);
    assert_eq!(first.message.annotations, None);

    // The provider missed our acknowledgement and delivers the same message again.
    let again = store
        .insert_inbound(&inbound(
            &acme.id,
            "+33612345678",
            "where is my parcel",
            Some("mo-1"),
        ))
        .await
        .unwrap();
    assert!(!again.created, "a redelivery is not a new message");
    assert_eq!(again.message.id, first.message.id);

    // A tapped button's payload is kept beside the text.
    let tapped = store
        .insert_inbound(&crate::NewInboundMessage {
            payload: Some("CONFIRM".into()),
            media: None,
            ..inbound(&acme.id, "+33612345678", "Je confirme", Some("mo-tap"))
        })
        .await
        .unwrap();
    assert_eq!(tapped.message.payload.as_deref(), Some("CONFIRM"));
    let read = store
        .inbound_message(&acme.id, &tapped.message.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.payload.as_deref(), Some("CONFIRM"));
    assert_eq!(first.message.payload, None);

    // The same provider id on another channel, or without provider id, is another message.
    let mut on_whatsapp = inbound(&acme.id, "+33612345678", "hello", Some("mo-1"));
    on_whatsapp.channel = ChannelKind::Whatsapp;
    assert!(store.insert_inbound(&on_whatsapp).await.unwrap().created);
    for _ in 0..2 {
        let no_id = inbound(&acme.id, "+33612345678", "hello again", None);
        assert!(store.insert_inbound(&no_id).await.unwrap().created);
    }
    let all = store
        .list_inbound(
            &acme.id,
            &crate::InboundFilter::default(),
            &PageRequest {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(all.data.len(), 5);

    let annotations = serde_json::json!({"language": "en", "urgency": {"score": 0.8}});
    let later = t0()
        .checked_add(jiff::SignedDuration::from_secs(1))
        .unwrap();
    assert!(
        store
            .set_inbound_annotations(&acme.id, &first.message.id, &annotations, later)
            .await
            .unwrap()
    );
    let stored = store
        .inbound_message(&acme.id, &first.message.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.annotations, Some(annotations));
    assert_eq!(stored.annotated_at, Some(later));
    assert_eq!(stored.received_at, t0());
}

pub async fn inbound_messages_are_isolated_per_tenant(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let globex = store.create_tenant("globex", t0()).await.unwrap();
    let mine = store
        .insert_inbound(&inbound(&acme.id, "+33612345678", "acme's", Some("mo-1")))
        .await
        .unwrap();
    // Two tenants behind one aggregator may see the same provider id: both are stored.
    let theirs = store
        .insert_inbound(&inbound(
            &globex.id,
            "+33612345678",
            "globex's",
            Some("mo-1"),
        ))
        .await
        .unwrap();
    assert!(theirs.created);
    assert_ne!(theirs.message.id, mine.message.id);

    assert_eq!(
        store
            .inbound_message(&globex.id, &mine.message.id)
            .await
            .unwrap(),
        None
    );
    assert!(
        !store
            .set_inbound_annotations(&globex.id, &mine.message.id, &serde_json::json!({}), t0())
            .await
            .unwrap(),
        "a tenant cannot annotate another's message"
    );
    let page = store
        .list_inbound(
            &globex.id,
            &crate::InboundFilter::default(),
            &PageRequest {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    let texts: Vec<_> = page.data.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["globex's"]);
}

pub async fn inbound_pages_walk_every_message_once(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let alice = store
        .create_contact(&acme.id, &contact(vec![sms("+33612345678")], "{}"), t0())
        .await
        .unwrap();
    let mut written = Vec::new();
    for i in 0..7 {
        let mut m = inbound(
            &acme.id,
            "+33612345678",
            &format!("message {i}"),
            Some(&format!("mo-{i}")),
        );
        if i % 2 == 0 {
            m.contact_id = Some(alice.id.clone());
        }
        written.push(store.insert_inbound(&m).await.unwrap().message.id);
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_inbound(
                &acme.id,
                &crate::InboundFilter::default(),
                &PageRequest {
                    after: after.clone(),
                    limit: 3,
                },
            )
            .await
            .unwrap();
        assert!(page.data.len() <= 3);
        seen.extend(page.data.into_iter().map(|m| m.id));
        match page.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    let mut expected = written.clone();
    expected.sort();
    assert_eq!(seen, expected, "every message once, in id order");

    let alices = store
        .list_inbound(
            &acme.id,
            &crate::InboundFilter {
                contact_id: Some(alice.id.clone()),
            },
            &PageRequest {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    let texts: Vec<_> = alices.data.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["message 0", "message 2", "message 4", "message 6"]);
    assert_eq!(alices.next_cursor, None);
}

fn placement<'a>(
    tenant: &'a str,
    contact: &'a str,
    last: &'a serde_json::Value,
    secs: i64,
    reopens: bool,
) -> crate::InboundPlacement<'a> {
    crate::InboundPlacement {
        tenant_id: tenant,
        contact_id: contact,
        message_id: match secs {
            1 => "in-1",
            2 => "in-2",
            3 => "in-3",
            _ => "in-other",
        },
        channel: ChannelKind::Sms,
        channel_id: None,
        address: "+33612345678",
        last_message: last,
        at: t0()
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap_or(t0()),
        state: if reopens {
            relais_core::conversation::ConversationState::Pending
        } else {
            relais_core::conversation::ConversationState::Resolved
        },
        reopens,
    }
}

pub async fn a_contact_has_one_conversation_that_a_message_reopens(store: &dyn Store) {
    use relais_core::conversation::ConversationState;
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let ana = store
        .create_contact(&tenant, &contact(vec![sms("+33612345678")], "{}"), t0())
        .await
        .unwrap();
    let hello = serde_json::json!({"direction": "in", "text": "hello"});
    let first = store
        .place_inbound(&placement(&tenant, &ana.id, &hello, 1, true))
        .await
        .unwrap();
    assert_eq!(first.state, ConversationState::Pending);
    assert_eq!(first.contact_id, ana.id);
    assert_eq!(first.last_message, hello);
    let resolved = store
        .set_conversation_state(&tenant, &first.id, ConversationState::Resolved, t0())
        .await
        .unwrap()
        .expect("found");
    assert_eq!(resolved.state, ConversationState::Resolved);
    assert!(resolved.resolved_at.is_some());
    // A keyword does not reopen it, but it is the latest message.
    let stop = serde_json::json!({"direction": "in", "text": "STOP"});
    let after_keyword = store
        .place_inbound(&placement(&tenant, &ana.id, &stop, 2, false))
        .await
        .unwrap();
    assert_eq!(after_keyword.id, first.id, "one conversation per contact");
    assert_eq!(after_keyword.state, ConversationState::Resolved);
    assert_eq!(after_keyword.last_message, stop);
    // Any other message does.
    let again = serde_json::json!({"direction": "in", "text": "are you there?"});
    let reopened = store
        .place_inbound(&placement(&tenant, &ana.id, &again, 3, true))
        .await
        .unwrap();
    assert_eq!(reopened.id, first.id);
    assert_eq!(reopened.state, ConversationState::Pending);
    assert_eq!(reopened.resolved_at, None);
    // The same message placed again (its run taken up after a crash) reopens nothing.
    store
        .set_conversation_state(&tenant, &first.id, ConversationState::Resolved, t0())
        .await
        .unwrap();
    let replaced = store
        .place_inbound(&placement(&tenant, &ana.id, &again, 3, true))
        .await
        .unwrap();
    assert_eq!(replaced.state, ConversationState::Resolved);
    store
        .set_conversation_state(&tenant, &first.id, ConversationState::Pending, t0())
        .await
        .unwrap();
    // A reply becomes the latest message; other tenants see nothing.
    let out = serde_json::json!({"direction": "out", "text": "yes!"});
    store
        .note_conversation_reply(&tenant, &first.id, &out, t0())
        .await
        .unwrap();
    let read = store
        .conversation(&tenant, &first.id)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(read.last_message, out);
    let other = store.create_tenant("globex", t0()).await.unwrap().id;
    assert_eq!(store.conversation(&other, &first.id).await.unwrap(), None);
    assert!(
        store
            .set_conversation_state(&other, &first.id, ConversationState::Open, t0())
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn conversations_are_listed_latest_first_by_cursor(store: &dyn Store) {
    use relais_core::conversation::ConversationState;
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let mut ids = Vec::new();
    for i in 0..5 {
        let c = store
            .create_contact(
                &tenant,
                &contact(vec![sms(&format!("+3361234567{i}"))], "{}"),
                t0(),
            )
            .await
            .unwrap();
        let text = serde_json::json!({"text": i});
        let placed = store
            .place_inbound(&placement(&tenant, &c.id, &text, i, true))
            .await
            .unwrap();
        ids.push(placed.id);
    }
    store
        .set_conversation_state(&tenant, &ids[1], ConversationState::Resolved, t0())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_conversations(
                &tenant,
                &crate::ConversationFilter::default(),
                &PageRequest { after, limit: 2 },
            )
            .await
            .unwrap();
        seen.extend(page.data.into_iter().map(|c| c.id));
        match page.next_cursor {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut latest_first = ids.clone();
    latest_first.reverse();
    assert_eq!(seen, latest_first);
    let resolved = store
        .list_conversations(
            &tenant,
            &crate::ConversationFilter {
                states: vec![ConversationState::Resolved],
                ..Default::default()
            },
            &PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        resolved
            .data
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        vec![ids[1].as_str()]
    );
    assert!(matches!(
        store
            .list_conversations(
                &tenant,
                &crate::ConversationFilter::default(),
                &PageRequest {
                    after: Some("garbage".into()),
                    limit: 10,
                },
            )
            .await,
        Err(StoreError::Invalid(_))
    ));
}

pub async fn a_merge_keeps_one_conversation_and_a_delete_removes_it(store: &dyn Store) {
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let keep = store
        .create_contact(&tenant, &contact(vec![sms("+33612345678")], "{}"), t0())
        .await
        .unwrap();
    let gone = store
        .create_contact(&tenant, &contact(vec![sms("+33612345679")], "{}"), t0())
        .await
        .unwrap();
    let text = serde_json::json!({"text": "hi"});
    let kept = store
        .place_inbound(&placement(&tenant, &keep.id, &text, 1, true))
        .await
        .unwrap();
    let merged = store
        .place_inbound(&placement(&tenant, &gone.id, &text, 2, true))
        .await
        .unwrap();
    let inbound = store
        .insert_inbound(&crate::NewInboundMessage {
            id: crate::new_id(),
            tenant_id: tenant.clone(),
            channel: ChannelKind::Sms,
            channel_id: None,
            from_address: "+33612345679".into(),
            to_address: "36180".into(),
            contact_id: Some(gone.id.clone()),
            text: "hi".into(),
            payload: None,
            media: None,
            provider_id: None,
            received_at: t0(),
        })
        .await
        .unwrap()
        .message;
    store
        .finish_inbound(&tenant, &inbound.id, None, Some(&merged.id), None, t0())
        .await
        .unwrap();
    // Both conversations run a flow.
    let session = |conversation: &str| crate::FlowSession {
        tenant_id: tenant.clone(),
        conversation_id: conversation.to_owned(),
        flow: "signup".into(),
        revision: 1,
        node: "ask".into(),
        attempts: 0,
        vars: serde_json::Map::new(),
        last_message_id: inbound.id.clone(),
        started_at: t0(),
        updated_at: t0(),
    };
    for conversation in [&kept.id, &merged.id] {
        let waiting = session(conversation);
        store
            .save_flow_step(&crate::FlowStep {
                tenant_id: &tenant,
                conversation_id: conversation,
                session: Some(&waiting),
                state: None,
                team: None,
                last_message: None,
                at: t0(),
            })
            .await
            .unwrap();
    }
    store
        .merge_contacts(&tenant, &keep.id, &gone.id, &MergeCause::Api, t0())
        .await
        .unwrap();
    assert_eq!(store.conversation(&tenant, &merged.id).await.unwrap(), None);
    assert_eq!(
        store.flow_session(&tenant, &merged.id).await.unwrap(),
        None,
        "the session of the conversation that went, went with it"
    );
    assert_eq!(
        store.flow_session(&tenant, &kept.id).await.unwrap(),
        Some(session(&kept.id))
    );
    let moved = store
        .inbound_message(&tenant, &inbound.id)
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(moved.contact_id.as_deref(), Some(keep.id.as_str()));
    assert_eq!(moved.conversation_id.as_deref(), Some(kept.id.as_str()));
    let of_survivor = store
        .inbound_of_contact(&tenant, &keep.id, 10)
        .await
        .unwrap();
    assert_eq!(
        of_survivor
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        [inbound.id.as_str()]
    );
    assert!(store.delete_contact(&tenant, &keep.id).await.unwrap());
    assert_eq!(store.conversation(&tenant, &kept.id).await.unwrap(), None);
}

pub async fn one_addresss_messages_are_read_among_a_contacts_many(store: &dyn Store) {
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let ana = store
        .create_contact(&tenant, &contact(vec![sms("+33612345678")], "{}"), t0())
        .await
        .unwrap();
    // Two web chat visitors merged into Ana, and Ana's own SMS, in and out.
    let mut ids = std::collections::HashMap::<&str, Vec<String>>::new();
    for (from, channel_id, count) in [
        ("v-one", Some("web"), 3),
        ("v-two", Some("web"), 1),
        ("+33612345678", None, 5),
    ] {
        for n in 0..count {
            let mut m = inbound(&tenant, from, &format!("{from} {n}"), None);
            m.channel_id = channel_id.map(str::to_owned);
            m.contact_id = Some(ana.id.clone());
            let stored = store.insert_inbound(&m).await.unwrap().message;
            ids.entry(from).or_default().push(stored.id);
        }
    }
    let mut sent = Vec::new();
    for (to, channel, count) in [
        ("v-one", "web", 2),
        ("v-two", "web", 1),
        ("+33612345678", "sim", 5),
    ] {
        for _ in 0..count {
            let mut m = queued_message(&tenant, channel, to, t0());
            m.contact_id = Some(ana.id.clone());
            sent.push(m);
        }
    }
    store.insert_messages(&sent).await.unwrap();

    let from_one = store
        .inbound_from_address(&tenant, &ana.id, "web", "v-one", 10)
        .await
        .unwrap();
    let mut got: Vec<String> = from_one.iter().map(|m| m.id.clone()).collect();
    got.sort();
    let mut expected = ids["v-one"].clone();
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(
        store
            .inbound_from_address(&tenant, &ana.id, "web", "v-one", 2)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        store
            .inbound_from_address(&tenant, &ana.id, "other", "v-one", 10)
            .await
            .unwrap()
            .is_empty()
    );
    let to_one = store
        .messages_to_address(&tenant, &ana.id, "web", "v-one", 10)
        .await
        .unwrap();
    assert_eq!(to_one.len(), 2);
    assert!(
        to_one
            .iter()
            .all(|m| m.to_address == "v-one" && m.channel == "web")
    );
    let to_two = store
        .messages_to_address(&tenant, &ana.id, "web", "v-two", 10)
        .await
        .unwrap();
    assert_eq!(to_two.len(), 1);
    let other = store.create_tenant("globex", t0()).await.unwrap().id;
    assert!(
        store
            .messages_to_address(&other, &ana.id, "web", "v-one", 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn unfinished_inbound_messages_are_found_until_finished(store: &dyn Store) {
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let stored = store
        .insert_inbound(&crate::NewInboundMessage {
            id: crate::new_id(),
            tenant_id: tenant.clone(),
            channel: ChannelKind::Sms,
            channel_id: None,
            from_address: "+33612345678".into(),
            to_address: "36180".into(),
            contact_id: None,
            text: "hello".into(),
            payload: None,
            media: None,
            provider_id: Some("mo-1".into()),
            received_at: t0(),
        })
        .await
        .unwrap()
        .message;
    assert_eq!(stored.processed_at, None);
    let later = t0()
        .checked_add(jiff::SignedDuration::from_secs(60))
        .unwrap_or(t0());
    assert!(
        store.unfinished_inbound(t0(), 10).await.unwrap().is_empty(),
        "received at t0, not before"
    );
    let found = store.unfinished_inbound(later, 10).await.unwrap();
    assert_eq!(
        found.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        vec![stored.id.as_str()]
    );
    store
        .finish_inbound(
            &tenant,
            &stored.id,
            Some("contact-1"),
            None,
            Some((&serde_json::json!({"language": "en"}), later)),
            later,
        )
        .await
        .unwrap();
    assert!(
        store
            .unfinished_inbound(later, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let finished = store
        .inbound_message(&tenant, &stored.id)
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(finished.processed_at, Some(later));
    assert_eq!(finished.contact_id.as_deref(), Some("contact-1"));
    assert_eq!(
        finished.annotations,
        Some(serde_json::json!({"language": "en"}))
    );
    assert_eq!(finished.annotated_at, Some(later));
}

pub async fn a_group_of_inbound_messages_is_stored_once_each_with_outcomes_in_order(
    store: &dyn Store,
) {
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let globex = store.create_tenant("globex", t0()).await.unwrap().id;
    assert!(store.insert_inbound_many(&[]).await.unwrap().is_empty());
    let earlier = store
        .insert_inbound(&inbound(&acme, "+33612345678", "first", Some("mo-1")))
        .await
        .unwrap()
        .message;
    let mut on_whatsapp = inbound(&acme, "+33612345678", "on whatsapp", Some("mo-1"));
    on_whatsapp.channel = ChannelKind::Whatsapp;
    let group = [
        inbound(&acme, "+33612345678", "new", Some("mo-2")),
        inbound(&acme, "+33612345678", "first, redelivered", Some("mo-1")),
        inbound(
            &acme,
            "+33612345678",
            "new, twice in the group",
            Some("mo-2"),
        ),
        inbound(&acme, "+33612345678", "no provider id", None),
        inbound(&globex, "+33612345678", "globex's", Some("mo-1")),
        on_whatsapp,
    ];
    let outcomes = store.insert_inbound_many(&group).await.unwrap();
    let created: Vec<bool> = outcomes.iter().map(|o| o.created).collect();
    assert_eq!(created, [true, false, false, true, true, true]);
    let ids: Vec<&str> = outcomes.iter().map(|o| o.message.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            group[0].id.as_str(),
            earlier.id.as_str(),
            group[0].id.as_str(),
            group[3].id.as_str(),
            group[4].id.as_str(),
            group[5].id.as_str(),
        ],
        "a known provider id gets the stored row, a repeated one the group's first"
    );
    assert_eq!(outcomes[1].message, earlier);
    assert_eq!(outcomes[2].message, outcomes[0].message);
    assert_eq!(outcomes[2].message.text, "new");
    assert_eq!(outcomes[4].message.tenant_id, globex);
    assert_eq!(outcomes[5].message.channel, ChannelKind::Whatsapp);
    for outcome in outcomes.iter().filter(|o| o.created) {
        assert_eq!(
            store
                .inbound_message(&outcome.message.tenant_id, &outcome.message.id)
                .await
                .unwrap()
                .as_ref(),
            Some(&outcome.message)
        );
    }
    // As the one-by-one insert answers.
    assert_eq!(
        store.insert_inbound(&group[2]).await.unwrap(),
        outcomes[2].clone()
    );
    let page = PageRequest {
        after: None,
        limit: 100,
    };
    let filter = crate::InboundFilter::default();
    let stored = store.list_inbound(&acme, &filter, &page).await.unwrap();
    assert_eq!(
        stored.data.len(),
        4,
        "first, new, no provider id, on whatsapp"
    );
    // A message without provider id whose id is taken is a caller's bug.
    let mut taken = inbound(&acme, "+33612345678", "again", None);
    taken.id = group[3].id.clone();
    let refused = store
        .insert_inbound_many(&[inbound(&acme, "+33612345678", "fine", Some("mo-9")), taken])
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    let mut taken = inbound(&acme, "+33612345678", "again", None);
    taken.id = group[3].id.clone();
    assert!(matches!(
        store.insert_inbound(&taken).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .list_inbound(&acme, &filter, &page)
            .await
            .unwrap()
            .data
            .len(),
        4,
        "nothing of a refused group is stored"
    );
}

pub async fn a_group_of_inbound_messages_is_finished_at_once(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let globex = store.create_tenant("globex", t0()).await.unwrap().id;
    store.finish_inbound_many(&[]).await.unwrap();
    let group: Vec<crate::NewInboundMessage> = (0..4)
        .map(|i| {
            inbound(
                &acme,
                "+33612345678",
                &format!("m{i}"),
                Some(&format!("mo-{i}")),
            )
        })
        .collect();
    store.insert_inbound_many(&group).await.unwrap();
    let read = serde_json::json!({"language": "fr"});
    assert!(
        store
            .set_inbound_annotations(&acme, &group[1].id, &read, secs(1))
            .await
            .unwrap()
    );
    let english = serde_json::json!({"language": "en"});
    let urgent = serde_json::json!({"urgency": {"score": 0.9}});
    let finish = |id, contact_id, conversation_id, annotations, at| crate::InboundFinish {
        tenant_id: &acme,
        id,
        contact_id,
        conversation_id,
        annotations,
        at,
    };
    store
        .finish_inbound_many(&[
            finish(
                &group[0].id,
                Some("contact-0"),
                Some("conv-0"),
                Some((&english, secs(2))),
                secs(3),
            ),
            // No annotations: those it has stay.
            finish(&group[1].id, None, Some("conv-1"), None, secs(3)),
            // Twice: as if finished twice in a row.
            finish(
                &group[2].id,
                Some("contact-2"),
                Some("conv-2"),
                Some((&urgent, secs(2))),
                secs(3),
            ),
            finish(&group[2].id, None, Some("conv-2b"), None, secs(4)),
            // Another tenant's message is not theirs to finish.
            crate::InboundFinish {
                tenant_id: &globex,
                ..finish(&group[3].id, Some("x"), Some("x"), None, secs(3))
            },
        ])
        .await
        .unwrap();
    let get = |id: &str| {
        let (acme, id) = (acme.clone(), id.to_owned());
        async move { store.inbound_message(&acme, &id).await.unwrap().unwrap() }
    };
    let first = get(&group[0].id).await;
    assert_eq!(first.contact_id.as_deref(), Some("contact-0"));
    assert_eq!(first.conversation_id.as_deref(), Some("conv-0"));
    assert_eq!(first.processed_at, Some(secs(3)));
    assert_eq!(first.annotations, Some(english.clone()));
    assert_eq!(first.annotated_at, Some(secs(2)));
    let second = get(&group[1].id).await;
    assert_eq!(second.contact_id, None);
    assert_eq!(second.conversation_id.as_deref(), Some("conv-1"));
    assert_eq!(second.processed_at, Some(secs(3)));
    assert_eq!(second.annotations, Some(read), "kept when none are given");
    assert_eq!(second.annotated_at, Some(secs(1)));
    let third = get(&group[2].id).await;
    assert_eq!(third.contact_id.as_deref(), Some("contact-2"));
    assert_eq!(third.conversation_id.as_deref(), Some("conv-2b"));
    assert_eq!(third.processed_at, Some(secs(4)));
    assert_eq!(third.annotations, Some(urgent));
    assert_eq!(third.annotated_at, Some(secs(2)));
    let untouched = get(&group[3].id).await;
    assert_eq!(
        (
            untouched.contact_id,
            untouched.conversation_id,
            untouched.processed_at
        ),
        (None, None, None)
    );
    let unfinished = store.unfinished_inbound(secs(60), 10).await.unwrap();
    assert_eq!(
        unfinished.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [group[3].id.as_str()]
    );
}

/// The same customer messages, in two tenants holding the same conversations: placed one
/// by one in the first, as one group in the second, they leave the same conversations.
pub async fn a_group_of_messages_is_placed_in_conversations_as_one_by_one(store: &dyn Store) {
    use crate::{Conversation, InboundPlacement};
    use relais_core::conversation::ConversationState;
    let hello = serde_json::json!({"direction": "in", "text": "hello"});
    let later = serde_json::json!({"direction": "in", "text": "me again"});
    let stop = serde_json::json!({"direction": "in", "text": "STOP"});
    // Per contact: how its conversation stands before, and the message placed.
    #[derive(Clone, Copy)]
    enum Before {
        Nothing,
        Waiting,
        Resolved,
        ResolvedWithTeam,
    }
    let cases: [(Before, bool, &'static str); 7] = [
        (Before::Nothing, true, "m-new"),
        (Before::Nothing, false, "m-keyword-new"),
        (Before::Waiting, true, "m-waiting"),
        (Before::Resolved, true, "m-reopen"),
        (Before::ResolvedWithTeam, true, "m-reopen-team"),
        (Before::Resolved, false, "m-keyword"),
        // Placed again after a crash: the message that is already its latest.
        (Before::Resolved, true, "m-before"),
    ];
    let mut tenants = Vec::new();
    for name in ["one-by-one", "group"] {
        let tenant = store.create_tenant(name, t0()).await.unwrap().id;
        let mut contacts = Vec::new();
        for (i, (before, _, _)) in cases.iter().enumerate() {
            let c = store
                .create_contact(
                    &tenant,
                    &contact(vec![sms(&format!("+3361234560{i}"))], "{}"),
                    t0(),
                )
                .await
                .unwrap();
            let first = InboundPlacement {
                tenant_id: &tenant,
                contact_id: &c.id,
                message_id: "m-before",
                channel: ChannelKind::Sms,
                channel_id: None,
                address: "+33612345678",
                last_message: &hello,
                at: secs(1),
                state: ConversationState::Pending,
                reopens: true,
            };
            match before {
                Before::Nothing => {}
                Before::Waiting => {
                    store.place_inbound(&first).await.unwrap();
                }
                Before::Resolved | Before::ResolvedWithTeam => {
                    let placed = store.place_inbound(&first).await.unwrap();
                    if matches!(before, Before::ResolvedWithTeam) {
                        store
                            .save_flow_step(&crate::FlowStep {
                                tenant_id: &tenant,
                                conversation_id: &placed.id,
                                session: None,
                                state: Some(ConversationState::Pending),
                                team: Some("baggage"),
                                last_message: None,
                                at: secs(2),
                            })
                            .await
                            .unwrap();
                    }
                    store
                        .set_conversation_state(
                            &tenant,
                            &placed.id,
                            ConversationState::Resolved,
                            secs(3),
                        )
                        .await
                        .unwrap();
                }
            }
            contacts.push(c.id);
        }
        tenants.push((tenant, contacts));
    }
    // (tenant, contact, reopens, message id) of each placement.
    let rows = |(tenant, contacts): &(String, Vec<String>)| -> Vec<(String, String, bool, &str)> {
        cases
            .iter()
            .zip(contacts)
            .map(|((_, reopens, message), c)| (tenant.clone(), c.clone(), *reopens, *message))
            .collect()
    };
    let one_by_one_rows = rows(&tenants[0]);
    let group_rows = rows(&tenants[1]);
    fn to_placement<'a>(
        (tenant, contact_id, reopens, message): &'a (String, String, bool, &'static str),
        later: &'a serde_json::Value,
        stop: &'a serde_json::Value,
    ) -> InboundPlacement<'a> {
        InboundPlacement {
            tenant_id: tenant.as_str(),
            contact_id: contact_id.as_str(),
            message_id: message,
            channel: ChannelKind::Whatsapp,
            channel_id: Some("wa-1"),
            address: "+33612345678",
            last_message: if *reopens { later } else { stop },
            at: secs(10),
            state: if *reopens {
                ConversationState::Pending
            } else {
                ConversationState::Resolved
            },
            reopens: *reopens,
        }
    }
    let mut one_by_one = Vec::new();
    for row in &one_by_one_rows {
        let p = to_placement(row, &later, &stop);
        one_by_one.push(store.place_inbound(&p).await.unwrap());
    }
    let group: Vec<InboundPlacement<'_>> = group_rows
        .iter()
        .map(|row| to_placement(row, &later, &stop))
        .collect();
    let placed = store.place_inbound_many(&group).await.unwrap();
    assert_eq!(
        placed
            .iter()
            .map(|c| c.contact_id.as_str())
            .collect::<Vec<_>>(),
        tenants[1].1.iter().map(String::as_str).collect::<Vec<_>>(),
        "in the order of the group"
    );
    // Alike but for what names them.
    let anonymous = |c: &Conversation| Conversation {
        id: String::new(),
        tenant_id: String::new(),
        contact_id: String::new(),
        ..c.clone()
    };
    for (i, (single, many)) in one_by_one.iter().zip(&placed).enumerate() {
        assert_eq!(anonymous(single), anonymous(many), "case {i}");
        let read = store
            .conversation(&tenants[1].0, &many.id)
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(&read, many);
    }
    let states: Vec<ConversationState> = placed.iter().map(|c| c.state).collect();
    assert_eq!(
        states,
        [
            ConversationState::Pending,
            ConversationState::Resolved,
            ConversationState::Pending,
            ConversationState::Pending,
            ConversationState::Pending,
            ConversationState::Resolved,
            ConversationState::Resolved,
        ]
    );
    assert_eq!(placed[1].resolved_at, Some(secs(10)), "created resolved");
    assert_eq!(placed[3].resolved_at, None, "reopened");
    assert_eq!(placed[3].opened_at, secs(10));
    assert_eq!(placed[4].team, None, "a new episode has no team yet");
    assert_eq!(
        placed[5].resolved_at,
        Some(secs(3)),
        "a keyword reopens nothing"
    );
    assert_eq!(placed[5].last_message, stop);
    assert_eq!(
        placed[6].opened_at,
        secs(1),
        "placed again, reopens nothing"
    );
    assert_eq!(placed[2].opened_at, secs(1));
    assert!(placed.iter().all(|c| c.channel == ChannelKind::Whatsapp
        && c.channel_id.as_deref() == Some("wa-1")
        && c.last_inbound_at == secs(10)));

    // A contact twice in one group is refused, and nothing is written.
    let tenant = &tenants[1].0;
    let twice = [
        InboundPlacement {
            message_id: "m-twice-1",
            at: secs(20),
            ..group[0].clone()
        },
        InboundPlacement {
            message_id: "m-twice-2",
            at: secs(21),
            ..group[0].clone()
        },
    ];
    assert!(matches!(
        store.place_inbound_many(&twice).await,
        Err(StoreError::Invalid(_))
    ));
    let unchanged = store
        .conversation(tenant, &placed[0].id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(unchanged, placed[0]);
    assert!(store.place_inbound_many(&[]).await.unwrap().is_empty());
}

pub async fn an_event_is_queued_once_for_each_webhook_of_its_tenant(store: &dyn Store) {
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let other = store.create_tenant("globex", t0()).await.unwrap().id;
    let a = store
        .create_webhook(&tenant, "https://a.example/hook", "whsec_a", t0())
        .await
        .unwrap();
    let b = store
        .create_webhook(&tenant, "https://b.example/hook", "whsec_b", t0())
        .await
        .unwrap();
    let theirs = store
        .create_webhook(&other, "https://c.example/hook", "whsec_c", t0())
        .await
        .unwrap();
    let payload = r#"{"type":"message.received"}"#;
    let queued = store
        .queue_webhook_event(&tenant, "in_1", "message.received", payload, t0())
        .await
        .unwrap();
    assert_eq!(queued, 2);
    let again = store
        .queue_webhook_event(&tenant, "in_1", "message.received", payload, t0())
        .await
        .unwrap();
    assert_eq!(again, 0, "the same key queues nothing twice");
    for hook in [&a, &b] {
        let deliveries = store.webhook_deliveries(&tenant, &hook.id).await.unwrap();
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].id, format!("in_1_{}", hook.id));
        assert_eq!(deliveries[0].event_type, "message.received");
        assert_eq!(deliveries[0].payload, payload);
    }
    assert!(
        store
            .webhook_deliveries(&other, &theirs.id)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn messages_are_listed_newest_first_with_filters(store: &dyn Store) {
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let other = store.create_tenant("globex", t0()).await.unwrap().id;
    let at = |secs: i64| {
        t0().checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap_or(t0())
    };
    let mut batch = Vec::new();
    for (i, (channel, to)) in [
        ("sim", "+33600000001"),
        ("sms", "+33600000002"),
        ("sim", "+33600000001"),
    ]
    .into_iter()
    .enumerate()
    {
        batch.push(queued_message(&tenant, channel, to, at(i as i64 * 60)));
    }
    batch.push(queued_message(&other, "sim", "+33600000001", at(0)));
    store.insert_messages(&batch).await.unwrap();
    let ids: Vec<String> = batch.iter().map(|m| m.id.clone()).collect();
    let tenant = tenant.as_str();
    let list = |filter: crate::MessageFilter, after: Option<String>, limit: u32| async move {
        store
            .list_messages(tenant, &filter, &PageRequest { after, limit })
            .await
            .unwrap()
    };
    let all = list(crate::MessageFilter::default(), None, 10).await;
    assert_eq!(
        all.data.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]
    );
    let first = list(crate::MessageFilter::default(), None, 2).await;
    assert_eq!(first.data.len(), 2);
    let rest = list(
        crate::MessageFilter::default(),
        first.next_cursor.clone(),
        2,
    )
    .await;
    assert_eq!(
        rest.data.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [ids[0].as_str()]
    );
    assert_eq!(rest.next_cursor, None);
    let to_one = list(
        crate::MessageFilter {
            to: Some("+33600000001".into()),
            channel: Some("sim".into()),
            status: Some(relais_core::status::MessageStatus::Queued),
            ..Default::default()
        },
        None,
        10,
    )
    .await;
    assert_eq!(to_one.data.len(), 2);
    let in_window = list(
        crate::MessageFilter {
            created_from: Some(at(60)),
            created_before: Some(at(120)),
            ..Default::default()
        },
        None,
        10,
    )
    .await;
    assert_eq!(
        in_window
            .data
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        [ids[1].as_str()]
    );
    let delivered = list(
        crate::MessageFilter {
            status: Some(relais_core::status::MessageStatus::Delivered),
            ..Default::default()
        },
        None,
        10,
    )
    .await;
    assert!(delivered.data.is_empty());
}

/// A human agent's reply keeps when the customer last wrote (migration 0032), read back
/// by id and with its outbox item; other messages have none.
pub async fn a_human_agents_reply_keeps_when_the_customer_last_wrote(store: &dyn Store) {
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let wrote = secs(-2 * 24 * 3600);
    let reply = crate::NewMessage {
        human_agent_since: Some(wrote),
        ..queued_message(&tenant, "messenger", "6789012345678901", t0())
    };
    let other = queued_message(&tenant, "messenger", "6789012345678901", t0());
    store
        .insert_messages(&[reply.clone(), other.clone()])
        .await
        .unwrap();
    let read = |id: String| {
        let tenant = tenant.clone();
        async move {
            store
                .message(&tenant, &id)
                .await
                .unwrap()
                .expect("stored")
                .message
        }
    };
    assert_eq!(read(reply.id.clone()).await.human_agent_since, Some(wrote));
    assert_eq!(read(other.id.clone()).await.human_agent_since, None);
}

/// A message keeps the campaign label it was sent with, and `list_messages` finds a
/// campaign's messages of the tenant, newest first, by cursor, with the other filters.
pub async fn messages_are_listed_by_campaign(store: &dyn Store) {
    use relais_core::campaign::CampaignLabel;
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let other = store.create_tenant("globex", t0()).await.unwrap().id;
    let label = |l: &str| CampaignLabel::parse(l).unwrap();
    let at = |s: i64| secs(s);
    let in_campaign = |tenant: &str, campaign: Option<&str>, s: i64| crate::NewMessage {
        campaign: campaign.map(label),
        ..queued_message(tenant, "sim", "+33600000001", at(s))
    };
    let batch = vec![
        in_campaign(&tenant, Some("soldes-2026"), 0),
        in_campaign(&tenant, Some("rappel_rdv.v2"), 60),
        in_campaign(&tenant, Some("soldes-2026"), 120),
        in_campaign(&tenant, None, 180),
        in_campaign(&tenant, Some("soldes-2026"), 240),
        in_campaign(&other, Some("soldes-2026"), 0),
    ];
    store.insert_messages(&batch).await.unwrap();
    let ids: Vec<&str> = batch.iter().map(|m| m.id.as_str()).collect();
    let tenant = tenant.as_str();
    let list = |campaign: Option<&str>, after: Option<String>, limit: u32| {
        let filter = crate::MessageFilter {
            campaign: campaign.map(label),
            ..Default::default()
        };
        async move {
            store
                .list_messages(tenant, &filter, &PageRequest { after, limit })
                .await
                .unwrap()
        }
    };
    let names = |page: &crate::Page<crate::Message>| -> Vec<String> {
        page.data.iter().map(|m| m.id.clone()).collect()
    };

    let soldes = list(Some("soldes-2026"), None, 10).await;
    assert_eq!(names(&soldes), [ids[4], ids[2], ids[0]]);
    assert!(
        soldes
            .data
            .iter()
            .all(|m| m.campaign.as_ref().map(CampaignLabel::as_str) == Some("soldes-2026"))
    );
    let first = list(Some("soldes-2026"), None, 2).await;
    assert_eq!(names(&first), [ids[4], ids[2]]);
    let rest = list(Some("soldes-2026"), first.next_cursor.clone(), 2).await;
    assert_eq!(names(&rest), [ids[0]]);
    assert_eq!(rest.next_cursor, None);
    assert_eq!(
        names(&list(Some("rappel_rdv.v2"), None, 10).await),
        [ids[1]]
    );
    assert!(
        list(Some("Soldes-2026"), None, 10).await.data.is_empty(),
        "case is kept"
    );
    assert_eq!(
        list(None, None, 10).await.data.len(),
        5,
        "no campaign asked: all"
    );

    let window = crate::MessageFilter {
        campaign: Some(label("soldes-2026")),
        created_from: Some(at(60)),
        created_before: Some(at(240)),
        ..Default::default()
    };
    let windowed = store
        .list_messages(
            tenant,
            &window,
            &PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(names(&windowed), [ids[2]]);

    let one = store
        .message(tenant, ids[1])
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(one.message.campaign, Some(label("rappel_rdv.v2")));
    let none = store
        .message(tenant, ids[3])
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(none.message.campaign, None);
}

pub async fn flows_keep_revisions_sessions_and_answers(store: &dyn Store) {
    use relais_core::conversation::ConversationState;
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let other = store.create_tenant("globex", t0()).await.unwrap().id;
    let v1 = serde_json::json!({"start": "a", "nodes": {"a": {"type": "end"}}});
    let first = store.put_flow(&tenant, "bags", &v1, t0()).await.unwrap();
    assert_eq!(first.revision, 1);
    let v2 = serde_json::json!({"start": "b", "nodes": {"b": {"type": "end"}}});
    let later = t0() + jiff::SignedDuration::from_secs(5);
    let second = store.put_flow(&tenant, "bags", &v2, later).await.unwrap();
    assert_eq!(second.revision, 2);
    assert_eq!(second.definition, v2);
    assert_eq!(second.created_at, t0());
    assert_eq!(second.updated_at, later);
    store.put_flow(&tenant, "aaa", &v1, t0()).await.unwrap();
    let names: Vec<String> = store
        .list_flows(&tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, ["aaa", "bags"]);
    assert_eq!(
        store.flow_revisions(&tenant).await.unwrap(),
        [("aaa".to_owned(), 1), ("bags".to_owned(), 2)]
    );
    assert!(store.flow_revisions(&other).await.unwrap().is_empty());
    assert!(store.list_flows(&other).await.unwrap().is_empty());
    assert_eq!(store.flow(&other, "bags").await.unwrap(), None);
    assert!(!store.delete_flow(&other, "bags").await.unwrap());
    assert!(store.delete_flow(&tenant, "aaa").await.unwrap());
    assert_eq!(store.flow(&tenant, "aaa").await.unwrap(), None);

    // A session waits at a question; the conversation stays with the bot.
    let ana = store
        .create_contact(&tenant, &contact(vec![sms("+33612345678")], "{}"), t0())
        .await
        .unwrap();
    let hello = serde_json::json!({"direction": "in", "text": "bag"});
    let mut placed = placement(&tenant, &ana.id, &hello, 1, true);
    placed.state = ConversationState::Bot;
    let conversation = store.place_inbound(&placed).await.unwrap();
    assert_eq!(conversation.state, ConversationState::Bot);
    let mut vars = serde_json::Map::new();
    vars.insert("bag".into(), serde_json::json!({"status": "delayed"}));
    let session = crate::FlowSession {
        tenant_id: tenant.clone(),
        conversation_id: conversation.id.clone(),
        flow: "bags".into(),
        revision: 2,
        node: "ask_ref".into(),
        attempts: 1,
        vars,
        last_message_id: "in-1".into(),
        started_at: t0(),
        updated_at: t0(),
    };
    let step = |session, state, team| crate::FlowStep {
        tenant_id: &tenant,
        conversation_id: &conversation.id,
        session,
        state,
        team,
        last_message: None,
        at: later,
    };
    store
        .save_flow_step(&step(Some(&session), None, None))
        .await
        .unwrap();
    let read = store
        .flow_session(&tenant, &conversation.id)
        .await
        .unwrap()
        .expect("saved");
    assert_eq!(read, session);
    assert_eq!(
        store.flow_session(&other, &conversation.id).await.unwrap(),
        None
    );
    // A handoff ends it and the conversation waits for the team, with the bot's last words.
    let said = serde_json::json!({"direction": "out", "text": "Un conseiller arrive"});
    let mut handoff = step(None, Some(ConversationState::Pending), Some("baggage"));
    handoff.last_message = Some(&said);
    store.save_flow_step(&handoff).await.unwrap();
    assert_eq!(
        store.flow_session(&tenant, &conversation.id).await.unwrap(),
        None
    );
    let waiting = store
        .conversation(&tenant, &conversation.id)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(waiting.state, ConversationState::Pending);
    assert_eq!(waiting.team.as_deref(), Some("baggage"));
    assert_eq!(waiting.last_message, said);

    // An answer is recorded once per (message, attribute), oldest first.
    let answer = |message: &str, value: &str, secs: i64| crate::FlowAnswer {
        tenant_id: tenant.clone(),
        contact_id: ana.id.clone(),
        attribute: "booking_ref".into(),
        value: serde_json::json!(value),
        flow: "bags".into(),
        node: "ask_ref".into(),
        conversation_id: conversation.id.clone(),
        message_id: message.into(),
        channel: ChannelKind::Sms,
        answered_at: t0() + jiff::SignedDuration::from_secs(secs),
    };
    store
        .record_flow_answer(&answer("in-2", "K7Q2ZD", 2))
        .await
        .unwrap();
    store
        .record_flow_answer(&answer("in-2", "OTHER1", 2))
        .await
        .unwrap();
    store
        .record_flow_answer(&answer("in-1", "AAAAAA", 1))
        .await
        .unwrap();
    let answers = store.flow_answers(&tenant, &ana.id).await.unwrap();
    let values: Vec<&serde_json::Value> = answers.iter().map(|a| &a.value).collect();
    assert_eq!(
        values,
        [&serde_json::json!("AAAAAA"), &serde_json::json!("K7Q2ZD")]
    );
    assert_eq!(answers[1], answer("in-2", "K7Q2ZD", 2));
    assert!(
        store
            .flow_answers(&other, &ana.id)
            .await
            .unwrap()
            .is_empty()
    );
    // They are the contact's personal data: deleting the contact deletes them.
    assert!(store.delete_contact(&tenant, &ana.id).await.unwrap());
    assert!(
        store
            .flow_answers(&tenant, &ana.id)
            .await
            .unwrap()
            .is_empty()
    );
}

fn flow_session(tenant: &str, conversation_id: &str, node: &str) -> crate::FlowSession {
    let mut vars = serde_json::Map::new();
    vars.insert("ref".into(), serde_json::json!(node));
    crate::FlowSession {
        tenant_id: tenant.to_owned(),
        conversation_id: conversation_id.to_owned(),
        flow: "bags".into(),
        revision: 1,
        node: node.to_owned(),
        attempts: 0,
        vars,
        last_message_id: format!("in-{node}"),
        started_at: t0(),
        updated_at: secs(1),
    }
}

/// Conversations of the tenant, one per new contact, waiting for the bot.
async fn bot_conversations(store: &dyn Store, tenant: &str, n: usize) -> Vec<crate::Conversation> {
    let hello = serde_json::json!({"direction": "in", "text": "bag"});
    let mut conversations = Vec::new();
    for i in 0..n {
        let c = store
            .create_contact(
                tenant,
                &contact(vec![sms(&format!("+3361234561{i}"))], "{}"),
                t0(),
            )
            .await
            .unwrap();
        let mut placed = placement(tenant, &c.id, &hello, 1, true);
        placed.state = relais_core::conversation::ConversationState::Bot;
        conversations.push(store.place_inbound(&placed).await.unwrap());
    }
    conversations
}

pub async fn the_sessions_of_several_conversations_are_read_at_once_within_the_tenant(
    store: &dyn Store,
) {
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let globex = store.create_tenant("globex", t0()).await.unwrap().id;
    let ours = bot_conversations(store, &acme, 3).await;
    let theirs = bot_conversations(store, &globex, 1).await;
    let first = flow_session(&acme, &ours[0].id, "ask_ref");
    let second = flow_session(&acme, &ours[1].id, "ask_name");
    let other = flow_session(&globex, &theirs[0].id, "ask_ref");
    for (tenant, session) in [(&acme, &first), (&acme, &second), (&globex, &other)] {
        let step = crate::FlowStep {
            tenant_id: tenant,
            conversation_id: &session.conversation_id,
            session: Some(session),
            state: None,
            team: None,
            last_message: None,
            at: secs(1),
        };
        store.save_flow_step(&step).await.unwrap();
    }
    let mut found = store
        .flow_sessions_of(
            &acme,
            &[
                &ours[0].id,
                &ours[1].id,
                &ours[2].id,
                &theirs[0].id,
                "unknown",
            ],
        )
        .await
        .unwrap();
    found.sort_by(|a, b| a.node.cmp(&b.node));
    assert_eq!(found, [second.clone(), first.clone()]);
    assert_eq!(
        store.flow_sessions_of(&acme, &[&ours[1].id]).await.unwrap(),
        [second]
    );
    assert!(store.flow_sessions_of(&acme, &[]).await.unwrap().is_empty());
    assert!(
        store
            .flow_sessions_of(&globex, &[&ours[0].id])
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_group_of_flow_steps_saves_ends_and_moves_at_once(store: &dyn Store) {
    use relais_core::conversation::ConversationState;
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let mut c = bot_conversations(store, &acme, 6).await;
    c[5] = store
        .set_conversation_state(&acme, &c[5].id, ConversationState::Resolved, secs(3))
        .await
        .unwrap()
        .expect("found");
    // Sessions wait at the second and third conversations.
    for (i, node) in [(1, "ask_ref"), (2, "ask_name")] {
        let session = flow_session(&acme, &c[i].id, node);
        store
            .save_flow_steps(&[crate::FlowStep {
                tenant_id: &acme,
                conversation_id: &c[i].id,
                session: Some(&session),
                state: None,
                team: None,
                last_message: None,
                at: secs(1),
            }])
            .await
            .unwrap();
    }
    store.save_flow_steps(&[]).await.unwrap();
    let asked = serde_json::json!({"direction": "out", "text": "Votre référence ?"});
    let handed = serde_json::json!({"direction": "out", "text": "Un conseiller arrive"});
    let started = flow_session(&acme, &c[0].id, "ask_ref");
    let mut moved_on = flow_session(&acme, &c[1].id, "ask_date");
    moved_on.attempts = 2;
    let step = |i: usize| crate::FlowStep {
        tenant_id: &acme,
        conversation_id: &c[i].id,
        session: None,
        state: None,
        team: None,
        last_message: None,
        at: secs(5),
    };
    store
        .save_flow_steps(&[
            // A flow starts and asks.
            crate::FlowStep {
                session: Some(&started),
                last_message: Some(&asked),
                ..step(0)
            },
            // A flow goes on to its next question, silently.
            crate::FlowStep {
                session: Some(&moved_on),
                ..step(1)
            },
            // A flow hands off to a team, with its last words.
            crate::FlowStep {
                state: Some(ConversationState::Pending),
                team: Some("baggage"),
                last_message: Some(&handed),
                ..step(2)
            },
            // A flow ends, resolving its conversation.
            crate::FlowStep {
                state: Some(ConversationState::Resolved),
                ..step(3)
            },
            // A last word in a resolved conversation leaves it resolved.
            crate::FlowStep {
                last_message: Some(&handed),
                ..step(5)
            },
        ])
        .await
        .unwrap();
    let conversation = |i: usize| {
        let (acme, id) = (acme.clone(), c[i].id.clone());
        async move {
            store
                .conversation(&acme, &id)
                .await
                .unwrap()
                .expect("found")
        }
    };
    let session = |i: usize| {
        let (acme, id) = (acme.clone(), c[i].id.clone());
        async move { store.flow_session(&acme, &id).await.unwrap() }
    };
    assert_eq!(session(0).await, Some(started.clone()));
    assert_eq!(session(1).await, Some(moved_on));
    assert_eq!(session(2).await, None);
    assert_eq!(session(3).await, None);
    let first = conversation(0).await;
    assert_eq!(first.state, ConversationState::Bot);
    assert_eq!(first.last_message, asked);
    assert_eq!(
        (first.last_message_at, first.updated_at),
        (secs(5), secs(5))
    );
    assert_eq!(
        conversation(1).await,
        c[1],
        "no state, no message: untouched"
    );
    let handed_off = conversation(2).await;
    assert_eq!(handed_off.state, ConversationState::Pending);
    assert_eq!(handed_off.team.as_deref(), Some("baggage"));
    assert_eq!(handed_off.last_message, handed);
    assert_eq!(handed_off.resolved_at, None);
    let ended = conversation(3).await;
    assert_eq!(ended.state, ConversationState::Resolved);
    assert_eq!(ended.resolved_at, Some(secs(5)));
    assert_eq!(ended.last_message, c[3].last_message, "kept");
    assert_eq!(ended.last_message_at, c[3].last_message_at);
    assert_eq!(ended.updated_at, secs(5));
    assert_eq!(conversation(4).await, c[4], "not in the group");
    let resolved = conversation(5).await;
    assert_eq!(resolved.state, ConversationState::Resolved);
    assert_eq!(resolved.resolved_at, Some(secs(3)));
    assert_eq!(resolved.last_message, handed);
    assert_eq!(resolved.team, None);

    // Two steps of one conversation are refused, and nothing of the group is written.
    let again = flow_session(&acme, &c[4].id, "ask_ref");
    let refused = store
        .save_flow_steps(&[
            crate::FlowStep {
                session: Some(&again),
                ..step(4)
            },
            crate::FlowStep {
                state: Some(ConversationState::Resolved),
                ..step(0)
            },
            step(0),
        ])
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
    assert_eq!(session(4).await, None);
    assert_eq!(session(0).await, Some(started));
    assert_eq!(conversation(0).await, first);
}

/// Groups of more rows than one statement takes (see `ROWS_PER_STATEMENT`) are written
/// and read whole, a repeat in a later statement of the group included.
pub async fn groups_larger_than_one_statement_are_handled_whole(store: &dyn Store) {
    use relais_core::conversation::ConversationState;
    const N: usize = 1_100;
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let mut messages: Vec<crate::NewInboundMessage> = (0..N)
        .map(|i| {
            inbound(
                &acme,
                "+33612345678",
                &format!("m{i}"),
                Some(&format!("mo-{i}")),
            )
        })
        .collect();
    messages.push(inbound(&acme, "+33612345678", "again", Some("mo-0")));
    let inserted = store.insert_inbound_many(&messages).await.unwrap();
    assert_eq!(inserted.iter().filter(|o| o.created).count(), N);
    assert_eq!(inserted[N].message, inserted[0].message);

    let finished: Vec<crate::InboundFinish<'_>> = messages[..N]
        .iter()
        .map(|m| crate::InboundFinish {
            tenant_id: &acme,
            id: &m.id,
            contact_id: None,
            conversation_id: Some("conv"),
            annotations: None,
            at: secs(1),
        })
        .collect();
    store.finish_inbound_many(&finished).await.unwrap();
    assert!(
        store
            .unfinished_inbound(secs(60), 10)
            .await
            .unwrap()
            .is_empty()
    );

    let contacts: Vec<String> = (0..N).map(|i| format!("contact-{i}")).collect();
    let last = serde_json::json!({"direction": "in", "text": "hi"});
    let placements: Vec<crate::InboundPlacement<'_>> = contacts
        .iter()
        .enumerate()
        .map(|(i, c)| crate::InboundPlacement {
            tenant_id: &acme,
            contact_id: c,
            message_id: &messages[i].id,
            channel: ChannelKind::Sms,
            channel_id: None,
            address: "+33612345678",
            last_message: &last,
            at: secs(1),
            state: ConversationState::Bot,
            // Both statements of the group, across chunks.
            reopens: i % 3 != 0,
        })
        .collect();
    let placed = store.place_inbound_many(&placements).await.unwrap();
    assert!(
        placed
            .iter()
            .zip(&contacts)
            .all(|(p, c)| &p.contact_id == c)
    );

    let sessions: Vec<crate::FlowSession> = placed
        .iter()
        .map(|c| flow_session(&acme, &c.id, "ask_ref"))
        .collect();
    let steps: Vec<crate::FlowStep<'_>> = sessions
        .iter()
        .map(|s| crate::FlowStep {
            tenant_id: &acme,
            conversation_id: &s.conversation_id,
            session: Some(s),
            state: None,
            team: None,
            last_message: Some(&last),
            at: secs(2),
        })
        .collect();
    store.save_flow_steps(&steps).await.unwrap();
    let ids: Vec<&str> = placed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(store.flow_sessions_of(&acme, &ids).await.unwrap().len(), N);
    let ends: Vec<crate::FlowStep<'_>> = steps
        .iter()
        .map(|s| crate::FlowStep {
            session: None,
            state: Some(ConversationState::Resolved),
            ..s.clone()
        })
        .collect();
    store.save_flow_steps(&ends).await.unwrap();
    assert!(
        store
            .flow_sessions_of(&acme, &ids)
            .await
            .unwrap()
            .is_empty()
    );
    let page = store
        .list_conversations(
            &acme,
            &crate::ConversationFilter {
                states: vec![ConversationState::Resolved],
                ..Default::default()
            },
            &PageRequest {
                after: None,
                limit: 1000,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.data.len(), 1000);
    assert!(page.next_cursor.is_some());

    let mut events: Vec<crate::NewEvent> = (0..N as i64)
        .map(|n| crate::NewEvent {
            key: Some(format!("k{n}")),
            ..stream_event(&acme, "message.received", n, t0())
        })
        .collect();
    events.push(crate::NewEvent {
        key: Some("k0".into()),
        ..stream_event(&acme, "message.received", -1, t0())
    });
    let appended = store.append_events(&events).await.unwrap();
    assert_eq!(
        appended[..N].iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=N as i64).collect::<Vec<_>>()
    );
    assert_eq!(appended[N], appended[0]);
    let again = store.append_events(&events).await.unwrap();
    assert_eq!(again, appended, "every key is in the log already");
    assert_eq!(store.latest_event_seq(&acme).await.unwrap(), N as i64);

    let mut ids: Vec<String> = Vec::new();
    let rows: Vec<ImportRow> = (0..N)
        .map(|i| ImportRow {
            identities: vec![sms(&format!("+336{i:08}"))],
            attributes: Attributes::new(),
            timezone: None,
            locale: None,
            consents: Vec::new(),
        })
        .collect();
    for outcome in store.import_contacts(&acme, &rows, t0()).await.unwrap() {
        if let ImportOutcome::Created { contact_id } = outcome {
            ids.push(contact_id);
        }
    }
    assert_eq!(ids.len(), N);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let found = store.contacts_by_ids(&acme, &refs).await.unwrap();
    assert_eq!(found.len(), N);
    assert!(found.iter().all(|c| c.identities.len() == 1));
}

fn new_agent(tenant: &str, email: &str, teams: &[&str], capacity: u32) -> crate::NewAgent {
    crate::NewAgent {
        id: crate::new_id(),
        tenant_id: tenant.to_owned(),
        email: email.to_owned(),
        name: email.to_owned(),
        role: relais_core::agent::Role::Agent,
        password_hash: "$argon2id$not-a-real-hash".to_owned(),
        capacity,
        teams: teams.iter().map(|t| t.to_string()).collect(),
        at: t0(),
    }
}

/// The queue as agents read it (pending and open, most urgent first, then longest
/// waiting) comes back whole and in order by pages, with only what an agent may see, and
/// an agent's own conversations by their own filter.
pub async fn the_queue_is_read_in_priority_order_by_pages_with_what_an_agent_may_see(
    store: &dyn Store,
) {
    use crate::{Assignee, ConversationFilter, ConversationOrder};
    use relais_core::agent::AssignmentRule;
    use relais_core::conversation::ConversationState;
    let at = |s: i64| {
        t0().checked_add(jiff::SignedDuration::from_secs(s))
            .unwrap_or(t0())
    };
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let spec = crate::TeamSpec {
        description: None,
        assignment: AssignmentRule::Manual,
        first_response_minutes: None,
        next_response_minutes: None,
        is_default: false,
        csat: false,
    };
    for team in ["billing", "sales"] {
        store.put_team(&tenant, team, &spec, t0()).await.unwrap();
    }
    let ana = store
        .create_agent(&new_agent(&tenant, "ana@example.com", &["billing"], 5))
        .await
        .unwrap();
    // (team, priority, waiting since, state): billing, sales and no team; some resolved.
    let plan: [(Option<&str>, i64, i64, ConversationState); 14] = [
        (Some("billing"), 0, 10, ConversationState::Pending),
        (Some("billing"), 4, 30, ConversationState::Pending),
        (Some("billing"), 4, 20, ConversationState::Pending),
        (Some("sales"), 6, 5, ConversationState::Pending),
        (None, 2, 40, ConversationState::Pending),
        (Some("billing"), 1, 50, ConversationState::Pending),
        (Some("sales"), 0, 1, ConversationState::Pending),
        (Some("billing"), 0, 10, ConversationState::Pending),
        (Some("billing"), 7, 60, ConversationState::Resolved),
        (None, 0, 70, ConversationState::Pending),
        (Some("billing"), 2, 80, ConversationState::Pending),
        (Some("sales"), 3, 90, ConversationState::Open),
        (Some("billing"), 5, 100, ConversationState::Open),
        (Some("billing"), 4, 110, ConversationState::Pending),
    ];
    let mut expected = Vec::new();
    for (i, (team, priority, since, state)) in plan.iter().enumerate() {
        let who = store
            .create_contact(
                &tenant,
                &contact(vec![sms(&format!("+336123450{i:02}"))], "{}"),
                t0(),
            )
            .await
            .unwrap();
        let last = serde_json::json!({"direction": "in", "text": "help"});
        let id = format!("in-queue-{i}");
        let mut placed = placement(&tenant, &who.id, &last, *since, true);
        placed.message_id = &id;
        placed.state = ConversationState::Pending;
        let c = store.place_inbound(&placed).await.unwrap();
        if let Some(team) = team {
            store
                .assign_conversation(&tenant, &c.id, None, Some(team), at(*since))
                .await
                .unwrap();
        }
        store
            .note_customer_waiting(&tenant, &c.id, *priority, at(*since), None, None)
            .await
            .unwrap();
        match state {
            ConversationState::Open => {
                // The sales one is ana's although she is not in sales: she sees it.
                store
                    .assign_conversation(&tenant, &c.id, Some(&ana.id), None, at(*since))
                    .await
                    .unwrap();
            }
            ConversationState::Resolved => {
                store
                    .set_conversation_state(&tenant, &c.id, ConversationState::Resolved, at(*since))
                    .await
                    .unwrap();
            }
            _ => {}
        }
        let visible = *state != ConversationState::Resolved
            && (team.is_none() || *team == Some("billing") || *state == ConversationState::Open);
        if visible {
            expected.push((*priority, *since, c.id));
        }
    }
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let expected: Vec<String> = expected.into_iter().map(|(_, _, id)| id).collect();

    let tenant = tenant.as_str();
    let read_all = |filter: ConversationFilter| async move {
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .list_conversations(tenant, &filter, &PageRequest { after, limit: 3 })
                .await
                .unwrap();
            assert!(page.data.len() <= 3);
            ids.extend(page.data.into_iter().map(|c| c.id));
            match page.next_cursor {
                Some(next) => after = Some(next),
                None => return ids,
            }
        }
    };
    let queue = ConversationFilter {
        states: vec![ConversationState::Pending, ConversationState::Open],
        visible_to: Some(ana.id.clone()),
        order: ConversationOrder::Priority,
        ..Default::default()
    };
    assert_eq!(read_all(queue.clone()).await, expected);
    // The open ones only, and ana's own.
    let open = read_all(ConversationFilter {
        states: vec![ConversationState::Open],
        ..queue.clone()
    })
    .await;
    assert_eq!(open.len(), 2, "{open:?}");
    let mine = read_all(ConversationFilter {
        states: vec![ConversationState::Open],
        assignee: Some(Assignee::Agent(ana.id.clone())),
        ..queue.clone()
    })
    .await;
    assert_eq!(mine, open, "both open ones are ana's, most urgent first");
    // One team's queue, for an admin (no visibility limit).
    let sales = read_all(ConversationFilter {
        team: Some("sales".into()),
        visible_to: None,
        ..queue
    })
    .await;
    assert_eq!(sales.len(), 3, "{sales:?}");

    // Assignments not yet told on the stream are found until their event is appended.
    let untold = store.unannounced_assignments(t0(), 100).await.unwrap();
    assert_eq!(untold.len(), 2, "the two open ones: {untold:?}");
    for c in &untold {
        let assigned_at = c.assigned_at.expect("assigned");
        store
            .append_event(&crate::NewEvent {
                tenant_id: tenant.to_owned(),
                kind: "conversation.assigned".into(),
                conversation_id: Some(c.id.clone()),
                team: c.team.clone(),
                data: serde_json::json!({}),
                key: Some(format!(
                    "assigned_{}_{}",
                    c.id,
                    assigned_at.as_microsecond()
                )),
                at: assigned_at,
            })
            .await
            .unwrap();
    }
    assert!(
        store
            .unannounced_assignments(t0(), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .unannounced_assignments(at(1000), 100)
            .await
            .unwrap()
            .is_empty(),
        "older than asked"
    );
}

/// Within a priority the queue goes by when each answer is due: a customer whose
/// next-response answer is due in 2 minutes comes before one who began waiting earlier but
/// whose first answer is due in 30; a customer waiting without an SLA sorts by when they
/// began waiting, among the due times; those who wait for nobody come last. Pages keep
/// that order, and a team's rule hands out the earliest due first.
pub async fn the_queue_goes_by_sla_due_time_within_a_priority(store: &dyn Store) {
    use crate::{ConversationFilter, ConversationOrder};
    use relais_core::agent::AssignmentRule;
    use relais_core::conversation::ConversationState;
    let at = |s: i64| {
        t0().checked_add(jiff::SignedDuration::from_secs(s))
            .unwrap_or(t0())
    };
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let tenant = tenant.as_str();
    let spec = crate::TeamSpec {
        description: None,
        assignment: AssignmentRule::RoundRobin,
        first_response_minutes: Some(30),
        next_response_minutes: Some(2),
        is_default: false,
        csat: false,
    };
    store
        .put_team(tenant, "billing", &spec, t0())
        .await
        .unwrap();
    let ana = store
        .create_agent(&new_agent(tenant, "ana@example.com", &["billing"], 100))
        .await
        .unwrap();
    let first_due = |since: i64| Some(at(since + 30 * 60));
    let next_due = |since: i64| Some(at(since + 2 * 60));

    // Customers of billing, by name: (name, priority, answered once before, waiting
    // since, with the team's SLA or without one, as for a tenant with no SLA policy).
    let plan: [(&str, i64, bool, Option<i64>, bool); 9] = [
        // Waiting since 100: the first answer is due at 100 + 30 min = 1900.
        ("first", 0, false, Some(100), true),
        // Began waiting later, but had an answer before: the next one is due at 720.
        ("next", 0, true, Some(600), true),
        // No SLA: sorts by when the customer began waiting, among the due times.
        ("no_sla", 0, false, Some(1000), false),
        ("no_sla_late", 0, false, Some(2000), false),
        // Level with "next" (due at 720): the id decides.
        ("no_sla_tie", 0, false, Some(720), false),
        // Waiting for an hour: its first answer was due half an hour ago, and stays due
        // then once the breach is recorded.
        ("breached", 0, false, Some(-3600), true),
        // Waiting for nobody: answered, and the customer has not written since; or never
        // waited.
        ("answered", 0, true, None, true),
        ("never_waited", 0, false, None, true),
        // More urgent: first, though its answer is due last.
        ("urgent", 4, false, Some(3000), true),
    ];
    let mut ids = std::collections::HashMap::new();
    for (i, (name, priority, answered, since, sla)) in plan.iter().enumerate() {
        let who = store
            .create_contact(
                tenant,
                &contact(vec![sms(&format!("+336123460{i:02}"))], "{}"),
                t0(),
            )
            .await
            .unwrap();
        let last = serde_json::json!({"direction": "in", "text": "help"});
        let message_id = format!("in-due-{i}");
        let mut placed = placement(tenant, &who.id, &last, 0, true);
        placed.message_id = &message_id;
        placed.state = ConversationState::Pending;
        let c = store.place_inbound(&placed).await.unwrap();
        store
            .assign_conversation(tenant, &c.id, None, Some("billing"), t0())
            .await
            .unwrap();
        if *answered {
            // Ana answered once, then handed the conversation back to the queue.
            store
                .assign_conversation(tenant, &c.id, Some(&ana.id), None, t0())
                .await
                .unwrap();
            store.note_agent_answer(tenant, &c.id, t0()).await.unwrap();
            store
                .assign_conversation(tenant, &c.id, None, None, t0())
                .await
                .unwrap();
        }
        if let Some(since) = *since {
            let (first, next) = match sla {
                true => (first_due(since), next_due(since)),
                false => (None, None),
            };
            let waiting = store
                .note_customer_waiting(tenant, &c.id, *priority, at(since), first, next)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(waiting.waiting_since, Some(at(since)), "{name}");
        }
        if *name == "breached" {
            assert!(
                store
                    .mark_breached(tenant, &c.id, at(-1800), at(0))
                    .await
                    .unwrap()
            );
        }
        ids.insert(*name, c.id);
    }
    let id = |name: &str| ids[name].clone();
    let read = |name: &str| {
        let id = id(name);
        async move { store.conversation(tenant, &id).await.unwrap().unwrap() }
    };
    let next = read("next").await;
    assert_eq!(
        (next.sla_kind.as_deref(), next.sla_due_at),
        (Some("next_response"), Some(at(720)))
    );
    let first = read("first").await;
    assert_eq!(
        (first.sla_kind.as_deref(), first.sla_due_at),
        (Some("first_response"), Some(at(1900)))
    );
    assert_eq!(read("no_sla").await.sla_due_at, None);
    let breached = read("breached").await;
    assert_eq!(
        (breached.sla_due_at, breached.sla_breached_at),
        (Some(at(-1800)), Some(at(0)))
    );
    assert_eq!(read("answered").await.waiting_since, None);

    let by_id = |a: &str, b: &str| {
        let mut pair = [id(a), id(b)];
        pair.sort();
        pair
    };
    let mut expected = vec![id("urgent"), id("breached")];
    expected.extend(by_id("next", "no_sla_tie"));
    expected.extend([id("no_sla"), id("first"), id("no_sla_late")]);
    expected.extend(by_id("answered", "never_waited"));

    let queue = ConversationFilter {
        states: vec![ConversationState::Pending, ConversationState::Open],
        visible_to: Some(ana.id.clone()),
        order: ConversationOrder::Priority,
        ..Default::default()
    };
    // Every page size: a cursor at any place, ties included, skips and repeats nothing.
    for limit in 1..=expected.len() as u32 + 1 {
        let mut listed = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .list_conversations(tenant, &queue, &PageRequest { after, limit })
                .await
                .unwrap();
            assert!(page.data.len() <= limit as usize);
            listed.extend(page.data.into_iter().map(|c| c.id));
            match page.next_cursor {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(listed, expected, "pages of {limit}");
    }

    // The rule hands out the waiting ones (all pending, none assigned) in the same order.
    let mut handed = Vec::new();
    for s in 0..expected.len() as i64 {
        match store
            .assign_next(tenant, "billing", AssignmentRule::RoundRobin, at(5000 + s))
            .await
            .unwrap()
        {
            Some(c) => handed.push(c.id),
            None => break,
        }
    }
    assert_eq!(handed, expected);
}

pub async fn agents_are_assigned_by_rule_within_capacity_and_the_sla_clock_is_kept(
    store: &dyn Store,
) {
    use relais_core::agent::AssignmentRule;
    use relais_core::conversation::ConversationState;
    let at = |s: i64| {
        t0().checked_add(jiff::SignedDuration::from_secs(s))
            .unwrap_or(t0())
    };
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let spec = crate::TeamSpec {
        description: None,
        assignment: AssignmentRule::RoundRobin,
        first_response_minutes: Some(10),
        next_response_minutes: Some(5),
        is_default: true,
        csat: false,
    };
    store
        .put_team(&tenant, "billing", &spec, t0())
        .await
        .unwrap();
    let sales = crate::TeamSpec {
        is_default: true,
        ..spec.clone()
    };
    store
        .put_team(&tenant, "sales", &sales, t0())
        .await
        .unwrap();
    // One default per tenant: the last one marked.
    assert_eq!(
        store.default_team(&tenant).await.unwrap().unwrap().name,
        "sales"
    );
    assert!(
        !store
            .team(&tenant, "billing")
            .await
            .unwrap()
            .unwrap()
            .is_default
    );

    let ana = store
        .create_agent(&new_agent(&tenant, "ana@example.com", &["billing"], 1))
        .await
        .unwrap();
    let bob = store
        .create_agent(&new_agent(
            &tenant,
            "bob@example.com",
            &["billing", "billing"],
            2,
        ))
        .await
        .unwrap();
    assert_eq!(bob.teams, ["billing"]);
    let taken = store
        .create_agent(&new_agent(&tenant, "ana@example.com", &[], 1))
        .await;
    assert!(
        matches!(taken, Err(crate::StoreError::Conflict(_))),
        "{taken:?}"
    );
    assert_eq!(
        store.agent_logins("ana@example.com").await.unwrap().len(),
        1
    );

    // Three customers wait in billing: a plain one, an urgent one, then a VIP.
    let mut waiting = Vec::new();
    for (i, priority) in [(1, 0), (2, 4), (3, 1)] {
        let contact = store
            .create_contact(
                &tenant,
                &contact(vec![sms(&format!("+3361234567{i}"))], "{}"),
                t0(),
            )
            .await
            .unwrap();
        let last = serde_json::json!({"direction": "in", "text": "help"});
        let mut placed = placement(&tenant, &contact.id, &last, i, true);
        placed.message_id = ["in-a", "in-b", "in-c"][i as usize - 1];
        let c = store.place_inbound(&placed).await.unwrap();
        store
            .assign_conversation(&tenant, &c.id, None, Some("billing"), at(i))
            .await
            .unwrap();
        let c = store
            .note_customer_waiting(
                &tenant,
                &c.id,
                priority,
                at(i),
                Some(at(i + 600)),
                Some(at(i + 300)),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.sla_kind.as_deref(), Some("first_response"));
        waiting.push(c);
    }
    // Noting the wait again (a rerun) moves nothing.
    let again = store
        .note_customer_waiting(&tenant, &waiting[0].id, 0, at(50), Some(at(999)), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.waiting_since, again.sla_due_at),
        (Some(at(1)), Some(at(601)))
    );

    // The queue: urgent, VIP, plain.
    let queue = store
        .list_conversations(
            &tenant,
            &crate::ConversationFilter {
                team: Some("billing".into()),
                order: crate::ConversationOrder::Priority,
                ..Default::default()
            },
            &PageRequest {
                after: None,
                limit: 2,
            },
        )
        .await
        .unwrap();
    let ids: Vec<&str> = queue.data.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [waiting[1].id.as_str(), waiting[2].id.as_str()]);
    let rest = store
        .list_conversations(
            &tenant,
            &crate::ConversationFilter {
                team: Some("billing".into()),
                order: crate::ConversationOrder::Priority,
                ..Default::default()
            },
            &PageRequest {
                after: queue.next_cursor.clone(),
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.data.len(), 1);
    assert_eq!(rest.data[0].id, waiting[0].id);

    // In turn, most urgent first, within capacity: Ana (1) then Bob (2), then Bob again.
    let rule = AssignmentRule::RoundRobin;
    let first = store
        .assign_next(&tenant, "billing", rule, at(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.id.as_str(), first.assignee_id.as_deref()),
        (waiting[1].id.as_str(), Some(ana.id.as_str()))
    );
    assert_eq!(first.state, ConversationState::Open);
    let second = store
        .assign_next(&tenant, "billing", rule, at(11))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (second.id.as_str(), second.assignee_id.as_deref()),
        (waiting[2].id.as_str(), Some(bob.id.as_str()))
    );
    let third = store
        .assign_next(&tenant, "billing", rule, at(12))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        third.assignee_id.as_deref(),
        Some(bob.id.as_str()),
        "Ana is full"
    );
    assert!(
        store
            .assign_next(&tenant, "billing", rule, at(13))
            .await
            .unwrap()
            .is_none()
    );
    let mut counts = store.open_counts(&tenant).await.unwrap();
    counts.sort();
    let mut expected = vec![(ana.id.clone(), 1), (bob.id.clone(), 2)];
    expected.sort();
    assert_eq!(counts, expected);

    // Visibility: an agent of another team sees only conversations of no team.
    let carl = store
        .create_agent(&new_agent(&tenant, "carl@example.com", &["sales"], 1))
        .await
        .unwrap();
    let seen = store
        .list_conversations(
            &tenant,
            &crate::ConversationFilter {
                visible_to: Some(carl.id.clone()),
                ..Default::default()
            },
            &PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert!(seen.data.is_empty(), "{:?}", seen.data);
    let mine = store
        .list_conversations(
            &tenant,
            &crate::ConversationFilter {
                assignee: Some(crate::Assignee::Agent(bob.id.clone())),
                ..Default::default()
            },
            &PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(mine.data.len(), 2);

    // The SLA: Ana answers hers; the other two come due unanswered, each breached once.
    store
        .note_agent_answer(&tenant, &first.id, at(20))
        .await
        .unwrap();
    let answered = store
        .conversation(&tenant, &first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((answered.sla_due_at, answered.waiting_since), (None, None));
    assert_eq!(answered.first_response_at, Some(at(20)));
    assert_eq!(answered.priority, 0, "the urgency was answered");
    assert!(store.due_breaches(at(600), 10).await.unwrap().is_empty());
    let due = store.due_breaches(at(700), 10).await.unwrap();
    assert_eq!(due.len(), 2);
    for breach in &due {
        let c = &breach.conversation;
        assert!(
            store
                .mark_breached(&c.tenant_id, &c.id, breach.due_at, at(700))
                .await
                .unwrap()
        );
        assert!(
            !store
                .mark_breached(&c.tenant_id, &c.id, breach.due_at, at(701))
                .await
                .unwrap()
        );
    }
    assert!(store.due_breaches(at(800), 10).await.unwrap().is_empty());
    // The customer writes again after the answer: the next-response target.
    let next = store
        .note_customer_waiting(
            &tenant,
            &first.id,
            2,
            at(900),
            Some(at(1500)),
            Some(at(1200)),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (next.sla_kind.as_deref(), next.sla_due_at, next.priority),
        (Some("next_response"), Some(at(1200)), 2)
    );

    // Deleting Bob puts his conversations back in the queue; resolving frees Ana.
    assert!(store.delete_agent(&tenant, &bob.id, at(30)).await.unwrap());
    let back = store
        .conversation(&tenant, &second.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (back.state, back.assignee_id),
        (ConversationState::Pending, None)
    );
    store
        .set_conversation_state(&tenant, &first.id, ConversationState::Resolved, at(40))
        .await
        .unwrap();
    let least = store
        .assign_next(&tenant, "billing", AssignmentRule::LeastBusy, at(41))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(least.assignee_id.as_deref(), Some(ana.id.as_str()));
    assert!(
        store
            .assign_next(&tenant, "billing", AssignmentRule::Manual, at(42))
            .await
            .unwrap()
            .is_none()
    );

    // Sessions, notes, canned replies and ratings.
    store
        .create_session("digest", &ana, t0(), at(100))
        .await
        .unwrap();
    assert_eq!(
        store
            .session_agent("digest", at(99))
            .await
            .unwrap()
            .map(|a| a.id),
        Some(ana.id.clone())
    );
    assert!(
        store
            .session_agent("digest", at(100))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(store.delete_session("digest").await.unwrap());
    let note = store
        .add_note(&tenant, &first.id, Some(&ana.id), "VIP, be kind", t0())
        .await
        .unwrap();
    assert_eq!(store.notes(&tenant, &first.id).await.unwrap(), [note]);
    store
        .put_canned_reply(&tenant, "hello", "Bonjour {{ contact.first_name }}", t0())
        .await
        .unwrap();
    store
        .put_canned_reply(&tenant, "hello", "Hello {{ contact.first_name }}", at(1))
        .await
        .unwrap();
    let canned = store.canned_reply(&tenant, "hello").await.unwrap().unwrap();
    assert_eq!(
        (canned.text.as_str(), canned.created_at, canned.updated_at),
        ("Hello {{ contact.first_name }}", t0(), at(1))
    );
    assert!(
        store
            .mark_csat_asked(&tenant, &first.id, at(40))
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_csat_asked(&tenant, &first.id, at(41))
            .await
            .unwrap(),
        "once per resolution"
    );
    let rated = store
        .record_csat(&tenant, &first.id, 5, Some("top"), at(50))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (rated.csat_score, rated.csat_comment.as_deref()),
        (Some(5), Some("top"))
    );
    let other = store.create_tenant("globex", t0()).await.unwrap().id;
    assert!(store.notes(&other, &first.id).await.unwrap().is_empty());
    assert!(store.agent(&other, &ana.id).await.unwrap().is_none());
}

fn stored_template(
    name: &str,
    greetings: &[(&str, &str)],
) -> relais_core::stored_template::StoredTemplate {
    let variants: Vec<serde_json::Value> = greetings
        .iter()
        .map(
            |(language, text)| serde_json::json!({"language": language, "content": {"text": text}}),
        )
        .collect();
    relais_core::stored_template::StoredTemplate::parse(
        None,
        &serde_json::json!({"name": name, "variants": variants}),
    )
    .unwrap()
}

pub async fn templates_are_stored_per_tenant_with_their_variants(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let globex = store.create_tenant("globex", t0()).await.unwrap().id;
    let shipped = stored_template(
        "order_shipped",
        &[
            ("fr", "Bonjour {{ first_name }}"),
            ("en", "Hello {{ first_name }}"),
        ],
    );
    let created = store.insert_template(&acme, &shipped, t0()).await.unwrap();
    assert_eq!(created.name, "order_shipped");
    assert_eq!(created.variants, shipped.variants);
    assert_eq!((created.created_at, created.updated_at), (t0(), t0()));
    assert!(matches!(
        store.insert_template(&acme, &shipped, secs(1)).await,
        Err(StoreError::Conflict(_))
    ));
    // Another tenant may use the name.
    store
        .insert_template(
            &globex,
            &stored_template("order_shipped", &[("de", "Hallo")]),
            t0(),
        )
        .await
        .unwrap();
    store
        .insert_template(
            &acme,
            &stored_template("appointment", &[("fr", "RDV")]),
            t0(),
        )
        .await
        .unwrap();

    let replaced = stored_template("order_shipped", &[("fr", "Salut {{ first_name }}")]);
    let (record, created) = store.put_template(&acme, &replaced, secs(5)).await.unwrap();
    assert!(!created);
    assert_eq!(record.variants, replaced.variants);
    assert_eq!((record.created_at, record.updated_at), (t0(), secs(5)));
    let (_, created) = store
        .put_template(
            &acme,
            &stored_template("welcome", &[("fr", "Bienvenue")]),
            secs(5),
        )
        .await
        .unwrap();
    assert!(created);

    let read = store
        .template(&acme, "order_shipped")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, record);
    let names: Vec<String> = store
        .list_templates(&acme)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["appointment", "order_shipped", "welcome"]);
    let mut named: Vec<String> = store
        .templates_named(&acme, &["welcome", "order_shipped", "missing"])
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    named.sort();
    assert_eq!(named, ["order_shipped", "welcome"]);
    let theirs = store
        .template(&globex, "order_shipped")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(theirs.variants[0].language, "de");

    assert!(store.delete_template(&acme, "order_shipped").await.unwrap());
    assert!(!store.delete_template(&acme, "order_shipped").await.unwrap());
    assert!(
        store
            .template(&acme, "order_shipped")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .template(&globex, "order_shipped")
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn provider_templates_are_replaced_per_channel(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let globex = store.create_tenant("globex", t0()).await.unwrap().id;
    let template =
        |channel: &str, name: &str, language: &str, status: &str| crate::ProviderTemplate {
            channel_id: channel.to_owned(),
            name: name.to_owned(),
            language: language.to_owned(),
            category: "UTILITY".into(),
            status: status.to_owned(),
            components: serde_json::json!([{"type": "BODY", "text": "Bonjour {{1}}"}]),
            synced_at: t0(),
        };
    store
        .replace_provider_templates(
            &acme,
            "wa-1",
            &[
                template("wa-1", "order_shipped", "fr", "APPROVED"),
                template("wa-1", "order_shipped", "en_US", "PENDING"),
                template("wa-1", "promo", "fr", "REJECTED"),
            ],
        )
        .await
        .unwrap();
    store
        .replace_provider_templates(
            &acme,
            "wa-2",
            &[template("wa-2", "order_shipped", "fr", "PAUSED")],
        )
        .await
        .unwrap();
    store
        .replace_provider_templates(
            &globex,
            "wa-1",
            &[template("wa-1", "promo", "fr", "APPROVED")],
        )
        .await
        .unwrap();
    let listed = store.provider_templates(&acme, "wa-1").await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|t| (t.name.as_str(), t.language.as_str(), t.status.as_str()))
            .collect::<Vec<_>>(),
        [
            ("order_shipped", "en_US", "PENDING"),
            ("order_shipped", "fr", "APPROVED"),
            ("promo", "fr", "REJECTED")
        ]
    );
    assert_eq!(listed[1].components[0]["text"], "Bonjour {{1}}");
    assert!(listed[1].is_approved() && !listed[0].is_approved());
    let named = store
        .provider_templates_named(&acme, &["order_shipped"])
        .await
        .unwrap();
    assert_eq!(
        named.len(),
        3,
        "both channels' rows of that name: {named:?}"
    );

    // A new synchronisation replaces the channel's rows: `promo` was deleted at Meta.
    store
        .replace_provider_templates(
            &acme,
            "wa-1",
            &[template("wa-1", "order_shipped", "fr", "DISABLED")],
        )
        .await
        .unwrap();
    let listed = store.provider_templates(&acme, "wa-1").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, "DISABLED");
    assert_eq!(
        store.provider_templates(&acme, "wa-2").await.unwrap().len(),
        1
    );
    assert_eq!(
        store.provider_templates(&globex, "wa-1").await.unwrap()[0].status,
        "APPROVED"
    );
}

pub async fn the_last_inbound_message_of_each_contact_and_channel_kind_is_found(store: &dyn Store) {
    let t = store.create_tenant("acme", t0()).await.unwrap().id;
    let other = store.create_tenant("globex", t0()).await.unwrap().id;
    let wrote =
        |tenant: &str, contact: &str, channel: ChannelKind, at: i64| crate::NewInboundMessage {
            channel,
            contact_id: Some(contact.to_owned()),
            received_at: secs(at),
            ..inbound(tenant, "+33612345678", "Bonjour", None)
        };
    for m in [
        wrote(&t, "ana", ChannelKind::Whatsapp, 10),
        wrote(&t, "ana", ChannelKind::Whatsapp, 30),
        wrote(&t, "ana", ChannelKind::Sms, 20),
        wrote(&t, "bob", ChannelKind::Whatsapp, 5),
        wrote(&other, "ana", ChannelKind::Whatsapp, 99),
    ] {
        store.insert_inbound(&m).await.unwrap();
    }
    let mut last: Vec<(String, ChannelKind, Timestamp)> = store
        .last_inbound_at(&t, &["ana", "carl"])
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.contact_id, l.channel, l.at))
        .collect();
    last.sort_by_key(|(_, channel, _)| channel.as_str());
    assert_eq!(
        last,
        [
            ("ana".to_owned(), ChannelKind::Sms, secs(20)),
            ("ana".to_owned(), ChannelKind::Whatsapp, secs(30)),
        ]
    );
    assert!(store.last_inbound_at(&t, &[]).await.unwrap().is_empty());
}

/// Expands to one `#[tokio::test]` per conformance check, each on a fresh store made by
/// `$make` (an async fn returning something that derefs to a `Store`).
#[macro_export]
macro_rules! conformance_suite {
    ($make:path) => {
        $crate::conformance_suite!(@tests $make;
            a_store_that_takes_writes_says_so,
            tenants_have_unique_names,
            api_keys_are_found_by_hash_only,
            contacts_round_trip_and_patch,
            contacts_are_read_by_id_with_their_identities,
            a_groups_idempotency_keys_are_looked_up_at_once_within_the_tenant,
            an_identity_belongs_to_one_contact_per_tenant,
            tenants_never_see_each_other,
            pages_walk_every_contact_once,
            merge_moves_everything_to_the_survivor,
            import_creates_updates_and_rejects,
            consent_ledger_is_append_only_and_decides,
            recipients_are_resolved_and_created_in_bulk,
            planned_contacts_are_written_with_the_messages_or_not_at_all,
            recipients_created_at_once_by_two_requests_are_one_contact,
            settings_and_models_are_per_tenant,
            messages_are_isolated_per_tenant,
            sim_phones_are_listed_per_tenant_most_recent_first,
            a_period_is_counted_by_channel_status_bucket_and_reply,
            idempotency_keys_are_unique_per_tenant,
            message_status_only_moves_forward,
            a_claimed_message_is_not_claimed_twice_before_its_lease_expires,
            messages_leased_on_insert_skip_the_claim,
            a_claim_due_by_takes_only_older_rows,
            claims_by_lane_take_only_their_channel,
            a_batch_answer_is_kept_with_its_messages,
            status_changes_queue_signed_webhook_deliveries,
            a_deleted_webhook_is_never_attempted_again,
            an_open_circuit_holds_back_its_webhook_until_a_probe_gets_through,
            a_probe_whose_worker_died_is_claimed_again_after_its_lease,
            pending_deliveries_past_the_retry_window_expire_in_one_sweep,
            finished_deliveries_past_the_retention_are_pruned_oldest_first,
            a_failed_step_falls_back_once,
            a_dead_address_leaves_its_contact_with_the_failure,
            concurrent_claims_never_share_a_row,
            a_redelivered_inbound_message_is_stored_once,
            inbound_messages_are_isolated_per_tenant,
            inbound_pages_walk_every_message_once,
            channels_are_named_per_tenant,
            owed_smpp_receipts_wait_for_a_final_status_and_survive_until_sent,
            messages_waiting_on_a_channel_are_counted_per_tenant,
            an_acknowledgement_overtaken_by_its_receipt_is_still_logged,
            a_round_settles_with_the_receipts_that_came_meanwhile,
            a_message_being_sent_cannot_be_canceled,
            held_smpp_parts_wait_for_their_message,
            a_channels_reach_counts_distinct_recipients_in_the_window,
            media_is_stored_whole_and_read_within_its_tenant,
            an_inbound_message_keeps_the_media_it_carries,
            a_deleted_contact_leaves_its_messages_without_a_contact,
            a_contact_has_one_conversation_that_a_message_reopens,
            conversations_are_listed_latest_first_by_cursor,
            a_merge_keeps_one_conversation_and_a_delete_removes_it,
            one_addresss_messages_are_read_among_a_contacts_many,
            unfinished_inbound_messages_are_found_until_finished,
            a_group_of_inbound_messages_is_stored_once_each_with_outcomes_in_order,
            a_group_of_inbound_messages_is_finished_at_once,
            a_group_of_messages_is_placed_in_conversations_as_one_by_one,
            an_event_is_queued_once_for_each_webhook_of_its_tenant,
            messages_are_listed_newest_first_with_filters,
            messages_are_listed_by_campaign,
            a_human_agents_reply_keeps_when_the_customer_last_wrote,
            flows_keep_revisions_sessions_and_answers,
            the_sessions_of_several_conversations_are_read_at_once_within_the_tenant,
            a_group_of_flow_steps_saves_ends_and_moves_at_once,
            groups_larger_than_one_statement_are_handled_whole,
            events_are_numbered_per_tenant_and_read_after_a_number,
            an_event_with_a_used_key_is_not_appended_again,
            a_group_of_events_is_numbered_on_from_each_tenant_s_last,
            concurrent_groups_of_events_are_numbered_without_gaps,
            concurrent_appends_are_numbered_without_gaps_and_read_in_order,
            pruned_events_leave_the_numbering_going_on,
            agents_are_assigned_by_rule_within_capacity_and_the_sla_clock_is_kept,
            the_queue_is_read_in_priority_order_by_pages_with_what_an_agent_may_see,
            the_queue_goes_by_sla_due_time_within_a_priority,
            templates_are_stored_per_tenant_with_their_variants,
            provider_templates_are_replaced_per_channel,
            the_last_inbound_message_of_each_contact_and_channel_kind_is_found,
            segment_filters_find_the_same_contacts_on_every_backend,
            segments_are_saved_per_tenant_by_unique_name,
            a_started_campaign_fixes_its_recipients_and_is_leased_to_one_node,
            a_campaign_funnel_counts_clicks_and_attributes_conversions_to_the_last_message,
            marketing_messages_are_counted_per_contact_over_a_period,
            only_stored_link_codes_record_clicks,
            clicked_messages_are_counted_by_channel_and_campaign,
            entry_points_are_found_by_referral_within_their_tenant,
            a_conversation_is_attributed_once_per_inbound_message,
            the_outbox_depth_counts_due_rows_no_worker_holds,
            settings_written_together_are_read_back_each_within_the_tenant,
            customer_events_are_kept_once_per_id_and_counted_by_name_since_a_time,
            an_event_creates_its_new_contact_in_the_same_transaction_or_nothing,
            journey_runs_enter_once_per_key_and_one_active_at_a_time,
            due_journey_runs_are_leased_and_moved_only_by_their_holder,
            a_goal_event_ends_active_runs_and_a_deleted_journey_cancels_them,
            geofences_are_kept_per_tenant_and_replaced_by_name,
            a_twilio_account_is_one_per_tenant_and_its_sid_is_unique,
            a_status_callback_is_due_once_per_status_change_until_a_final_one,
            a_redacted_or_deleted_message_is_its_tenants_and_finished,
            messages_are_listed_by_sender,
            inbound_messages_are_due_after_the_cursor_of_an_account_with_an_inbound_url,
            a_messaging_service_is_its_tenants,
            audit_entries_are_read_back_in_order_filtered_and_paged_within_their_tenant,
            an_export_holds_everything_about_a_contact_and_only_in_its_tenant,
            an_erased_contact_is_found_in_no_table_and_counts_still_add_up,
            erased_addresses_are_blocked_until_lifted_and_only_in_their_tenant,
            retention_purges_old_content_only_and_counts_it,
            content_checks_are_read_back_within_their_tenant,
            a_held_message_is_released_into_the_outbox_or_rejected_for_good,
            senders_are_registered_once_per_tenant_and_verified_within_their_tries,
        );
    };
    (@tests $make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let fixture = $make().await;
                $crate::conformance::$name(&*fixture.store).await;
                fixture.finish().await;
            }
        )*
    };
}

/// Runs `futures` concurrently on this task (the store's pool runs their queries side by
/// side), their outputs in order.
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

fn stream_event(tenant: &str, kind: &str, n: i64, at: Timestamp) -> crate::NewEvent {
    crate::NewEvent {
        tenant_id: tenant.to_owned(),
        kind: kind.to_owned(),
        conversation_id: Some(format!("conv-{n}")),
        team: None,
        data: serde_json::json!({ "n": n, "text": "où est mon colis ?" }),
        key: None,
        at,
    }
}

pub async fn events_are_numbered_per_tenant_and_read_after_a_number(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let globex = store.create_tenant("globex", t0()).await.unwrap().id;
    assert_eq!(store.latest_event_seq(&acme).await.unwrap(), 0);
    assert!(store.events_after(&acme, 0, 10).await.unwrap().is_empty());
    for n in 1..=3 {
        let event = store
            .append_event(&stream_event(&acme, "message.received", n, t0()))
            .await
            .unwrap();
        assert_eq!(event.seq, n);
    }
    let theirs = store
        .append_event(&crate::NewEvent {
            conversation_id: None,
            team: Some("support".into()),
            ..stream_event(&globex, "conversation.state_changed", 9, t0())
        })
        .await
        .unwrap();
    assert_eq!(theirs.seq, 1, "each tenant counts its own events");
    assert_eq!(theirs.team.as_deref(), Some("support"));
    assert_eq!(theirs.conversation_id, None);

    let all = store.events_after(&acme, 0, 10).await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(
        all.iter()
            .all(|e| e.tenant_id == acme && e.kind == "message.received")
    );
    assert_eq!(all[1].conversation_id.as_deref(), Some("conv-2"));
    assert_eq!(
        all[1].data,
        serde_json::json!({"n": 2, "text": "où est mon colis ?"})
    );
    assert_eq!(all[1].at, t0());
    assert_ne!(all[0].id, all[1].id);
    let next = store.events_after(&acme, 1, 1).await.unwrap();
    assert_eq!(next, vec![all[1].clone()], "after 1, one at most: 2");
    assert!(store.events_after(&acme, 3, 10).await.unwrap().is_empty());
    assert_eq!(store.latest_event_seq(&acme).await.unwrap(), 3);
    assert_eq!(store.latest_event_seq(&globex).await.unwrap(), 1);
    assert_eq!(
        store.events_after(&globex, 0, 10).await.unwrap(),
        vec![theirs]
    );
}

pub async fn an_event_with_a_used_key_is_not_appended_again(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let globex = store.create_tenant("globex", t0()).await.unwrap().id;
    let keyed = |tenant: &str, n| crate::NewEvent {
        key: Some("in_m1".into()),
        ..stream_event(tenant, "message.received", n, t0())
    };
    let first = store.append_event(&keyed(&acme, 1)).await.unwrap();
    let again = store.append_event(&keyed(&acme, 2)).await.unwrap();
    assert_eq!(again, first, "the event that holds the key");
    assert_eq!(store.latest_event_seq(&acme).await.unwrap(), 1);
    // The refused append left no gap behind it.
    let next = store
        .append_event(&stream_event(&acme, "message.sent", 3, t0()))
        .await
        .unwrap();
    assert_eq!(next.seq, 2);
    // Keys are per tenant.
    assert_eq!(store.append_event(&keyed(&globex, 1)).await.unwrap().seq, 1);
    assert_eq!(store.events_after(&acme, 0, 10).await.unwrap().len(), 2);
}

pub async fn a_group_of_events_is_numbered_on_from_each_tenant_s_last(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let globex = store.create_tenant("globex", t0()).await.unwrap().id;
    assert!(store.append_events(&[]).await.unwrap().is_empty());
    let keyed = |tenant: &str, n, key: &str| crate::NewEvent {
        key: Some(key.to_owned()),
        ..stream_event(tenant, "message.received", n, t0())
    };
    let first = store.append_event(&keyed(&acme, 1, "in_m1")).await.unwrap();
    assert_eq!(first.seq, 1);
    let appended = store
        .append_events(&[
            stream_event(&acme, "message.sent", 2, t0()),
            keyed(&globex, 3, "in_m1"),
            // The key of an event in the log: that event, appended again not.
            keyed(&acme, 4, "in_m1"),
            keyed(&acme, 5, "in_m2"),
            // A key used earlier in the group: the group's event.
            keyed(&acme, 6, "in_m2"),
            stream_event(&globex, "message.sent", 7, t0()),
            stream_event(&acme, "message.sent", 8, t0()),
        ])
        .await
        .unwrap();
    let numbered: Vec<(&str, i64, i64)> = appended
        .iter()
        .map(|e| {
            let tenant = if e.tenant_id == acme {
                "acme"
            } else {
                "globex"
            };
            (tenant, e.seq, e.data["n"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(
        numbered,
        [
            ("acme", 2, 2),
            ("globex", 1, 3),
            ("acme", 1, 1),
            ("acme", 3, 5),
            ("acme", 3, 5),
            ("globex", 2, 7),
            ("acme", 4, 8),
        ]
    );
    assert_eq!(appended[2], first);
    assert_eq!(appended[4], appended[3]);
    assert_eq!(
        store.events_after(&acme, 1, 10).await.unwrap(),
        [
            appended[0].clone(),
            appended[3].clone(),
            appended[6].clone()
        ],
        "what the group appended is what the log holds"
    );
    assert_eq!(store.latest_event_seq(&acme).await.unwrap(), 4);
    assert_eq!(store.latest_event_seq(&globex).await.unwrap(), 2);
    // A group of used keys only appends nothing and leaves no gap.
    let again = store
        .append_events(&[keyed(&acme, 9, "in_m2"), keyed(&globex, 9, "in_m1")])
        .await
        .unwrap();
    assert_eq!(again, [appended[3].clone(), appended[1].clone()]);
    assert_eq!(store.latest_event_seq(&acme).await.unwrap(), 4);
    assert_eq!(store.latest_event_seq(&globex).await.unwrap(), 2);
    let next = store
        .append_event(&stream_event(&acme, "message.sent", 10, t0()))
        .await
        .unwrap();
    assert_eq!(next.seq, 5, "no gap behind the refused keys");
    let all: Vec<i64> = store
        .events_after(&acme, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(all, [1, 2, 3, 4, 5]);
}

/// Groups spanning two tenants, in either order, appended from several writers at once
/// beside single appends: each tenant's numbers are handed out once each, without gaps.
pub async fn concurrent_groups_of_events_are_numbered_without_gaps(store: &dyn Store) {
    const WRITERS: i64 = 6;
    const ROUNDS: i64 = 10;
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let globex = store.create_tenant("globex", t0()).await.unwrap().id;
    let writers = (0..WRITERS).map(|w| {
        let (acme, globex) = (acme.clone(), globex.clone());
        async move {
            for r in 0..ROUNDS {
                let n = w * ROUNDS + r;
                let (a, b) = if w % 2 == 0 {
                    (&acme, &globex)
                } else {
                    (&globex, &acme)
                };
                if w == 0 {
                    store
                        .append_event(&stream_event(a, "message.received", n, t0()))
                        .await
                        .unwrap();
                    continue;
                }
                let group = [
                    stream_event(a, "message.received", n, t0()),
                    stream_event(b, "message.received", n, t0()),
                    crate::NewEvent {
                        // Every writer uses this key in each round: one of them appends it.
                        key: Some(format!("round-{r}")),
                        ..stream_event(a, "message.received", n, t0())
                    },
                ];
                store.append_events(&group).await.unwrap();
            }
        }
    });
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        join_all(writers.collect()),
    )
    .await
    .expect("no append waits for ever");
    for tenant in [&acme, &globex] {
        let latest = store.latest_event_seq(tenant).await.unwrap();
        let seqs: Vec<i64> = store
            .events_after(tenant, 0, 1000)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, (1..=latest).collect::<Vec<_>>());
    }
    let total = store.latest_event_seq(&acme).await.unwrap()
        + store.latest_event_seq(&globex).await.unwrap();
    // The single writer's events, two per group, and each round's key once per tenant
    // that used it (even writers key it for acme, odd ones for globex).
    assert_eq!(total, ROUNDS + (WRITERS - 1) * ROUNDS * 2 + ROUNDS * 2);
}

/// Appends from many writers at once, with a reader following the log meanwhile: every
/// number from 1 is handed out once, and the reader, always reading after the last number
/// it saw, meets each event once and in order (on PostgreSQL, an append that committed
/// after a higher number was read would be skipped for ever).
pub async fn concurrent_appends_are_numbered_without_gaps_and_read_in_order(store: &dyn Store) {
    const WRITERS: i64 = 8;
    const EACH: i64 = 25;
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let writers = (0..WRITERS).map(|w| {
        let acme = acme.clone();
        async move {
            let mut seqs = Vec::new();
            for i in 0..EACH {
                let event = stream_event(&acme, "message.received", w * EACH + i, t0());
                seqs.push(store.append_event(&event).await.unwrap().seq);
            }
            seqs
        }
    });
    let reader = async {
        let mut seen = Vec::new();
        let mut last = 0;
        while last < WRITERS * EACH {
            let batch = store.events_after(&acme, last, 7).await.unwrap();
            for event in batch {
                assert_eq!(event.seq, last + 1, "read out of order or with a gap");
                last = event.seq;
                seen.push(event.data["n"].as_i64().unwrap());
            }
            tokio::task::yield_now().await;
        }
        seen
    };
    let (written, seen) = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        tokio::join!(join_all(writers.collect()), reader)
    })
    .await
    .expect("the reader caught up with the writers");
    let mut seqs: Vec<i64> = written.into_iter().flatten().collect();
    for per_writer in seqs.chunks(EACH as usize) {
        assert!(
            per_writer.windows(2).all(|w| w[0] < w[1]),
            "one writer's appends go up"
        );
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=WRITERS * EACH).collect::<Vec<_>>());
    let mut seen_sorted = seen.clone();
    seen_sorted.sort_unstable();
    seen_sorted.dedup();
    assert_eq!(
        seen_sorted.len(),
        (WRITERS * EACH) as usize,
        "each event read once"
    );
    assert_eq!(store.latest_event_seq(&acme).await.unwrap(), WRITERS * EACH);
}

pub async fn pruned_events_leave_the_numbering_going_on(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap().id;
    let later = secs(3600);
    store
        .append_event(&stream_event(&acme, "message.received", 1, t0()))
        .await
        .unwrap();
    store
        .append_event(&stream_event(&acme, "message.received", 2, t0()))
        .await
        .unwrap();
    store
        .append_event(&stream_event(&acme, "message.received", 3, later))
        .await
        .unwrap();
    assert_eq!(store.prune_events(secs(60)).await.unwrap(), 2);
    assert_eq!(store.prune_events(secs(60)).await.unwrap(), 0);
    let left = store.events_after(&acme, 0, 10).await.unwrap();
    assert_eq!(left.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
    assert_eq!(store.latest_event_seq(&acme).await.unwrap(), 3);
    let next = store
        .append_event(&stream_event(&acme, "message.received", 4, later))
        .await
        .unwrap();
    assert_eq!(next.seq, 4, "numbers are never reused");
}

/// Upgrades: rows a store held before migration 0014 (the event log in its own table,
/// out of order on disk), written at schema version 13 by [`PRE_0014_LOG`]; the check
/// is [`an_event_log_from_before_0014_is_kept`].
pub const PRE_0014_LOG: &[&str] = &[
    "INSERT INTO tenants (id, name, created_at) VALUES ('t-old', 'old', 1790000000000000)",
    "INSERT INTO messages (id, tenant_id, contact_id, to_address, channel, step, chain, content, purpose, status, segments, created_at, updated_at) \
     VALUES ('m-old', 't-old', NULL, '+33612345678', 'sim', 0, '[\"sim\"]', '{\"text\":\"Bonjour\"}', 'transactional', 'sending', 1, 1790000000000000, 1790000002000000)",
    "INSERT INTO message_events (message_id, seq, status, at, reason, detail, attempt, channel) \
     VALUES ('m-old', 3, 'sending', 1790000002000000, NULL, NULL, 1, 'sim')",
    "INSERT INTO message_events (message_id, seq, status, at, reason, detail, attempt, channel) \
     VALUES ('m-old', 1, 'accepted', 1790000000000000, NULL, NULL, NULL, NULL)",
    "INSERT INTO message_events (message_id, seq, status, at, reason, detail, attempt, channel) \
     VALUES ('m-old', 2, 'queued', 1790000001000000, 'quiet_hours', 'it waited', NULL, NULL)",
];

/// The log written by [`PRE_0014_LOG`] reads back whole and in order after the upgrade,
/// and grows from there.
pub async fn an_event_log_from_before_0014_is_kept(store: &dyn Store) {
    use crate::MessageEvent;
    use relais_core::status::MessageStatus::{Accepted, Queued, Sending, Sent};
    let at = |s: i64| Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH);
    let before = store.message("t-old", "m-old").await.unwrap().unwrap();
    assert_eq!(
        before.events,
        vec![
            MessageEvent::new(Accepted, at(1_790_000_000)),
            MessageEvent::new(Queued, at(1_790_000_001))
                .reason("quiet_hours")
                .detail("it waited"),
            MessageEvent::new(Sending, at(1_790_000_002))
                .attempt(1)
                .channel("sim"),
        ]
    );
    let moved = store
        .record_status("m-old", &MessageEvent::new(Sent, at(1_790_000_003)))
        .await
        .unwrap();
    assert_eq!(moved, Some(Sent));
    let after = store.message("t-old", "m-old").await.unwrap().unwrap();
    assert_eq!(after.message.status, Sent);
    let statuses: Vec<_> = after.events.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [Accepted, Queued, Sending, Sent]);
}

/// Upgrades: outbox rows written at schema version 17, before the rows named their lane:
/// a message to send on `sim`, one on a configured channel (leased), and a fallback timer.
/// The check is [`the_outbox_from_before_0018_has_its_lanes`].
pub const PRE_0018_OUTBOX: &[&str] = &[
    "INSERT INTO tenants (id, name, created_at) VALUES ('t-old', 'old', 1790000000000000)",
    "INSERT INTO messages (id, tenant_id, to_address, channel, step, chain, content, purpose, status, created_at, updated_at) \
     VALUES ('m-sim', 't-old', '+33612345678', 'sim', 0, '[\"sim\"]', '{\"text\":\"Bonjour\"}', 'transactional', 'queued', 1790000000000000, 1790000000000000)",
    "INSERT INTO messages (id, tenant_id, to_address, channel, step, chain, content, purpose, status, created_at, updated_at) \
     VALUES ('m-smsc', 't-old', '+33612345678', 'chan-1', 0, '[\"chan-1\"]', '{\"text\":\"Bonjour\"}', 'transactional', 'queued', 1790000000000000, 1790000000000000)",
    "INSERT INTO messages (id, tenant_id, to_address, channel, step, chain, content, purpose, status, created_at, updated_at) \
     VALUES ('m-timer', 't-old', '+33612345678', 'sim', 0, '[\"sim\", \"sms\"]', '{\"text\":\"Bonjour\"}', 'transactional', 'sent', 1790000000000000, 1790000000000000)",
    "INSERT INTO outbox (message_id, tenant_id, due_at, phase, lease_owner, lease_until, attempts) \
     VALUES ('m-sim', 't-old', 1790000001000000, 'send', NULL, NULL, 0)",
    "INSERT INTO outbox (message_id, tenant_id, due_at, phase, lease_owner, lease_until, attempts) \
     VALUES ('m-smsc', 't-old', 1790000001000000, 'send', 'n1', 1790000009000000, 2)",
    "INSERT INTO outbox (message_id, tenant_id, due_at, phase, lease_owner, lease_until, attempts) \
     VALUES ('m-timer', 't-old', 1790000001000000, 'watch', NULL, NULL, 0)",
];

/// The rows written by [`PRE_0018_OUTBOX`] are claimed by their lanes after the upgrade,
/// the lease and attempts they had kept.
pub async fn the_outbox_from_before_0018_has_its_lanes(store: &dyn Store) {
    let at = |micros: i64| Timestamp::from_microsecond(micros).expect("time");
    let lease = jiff::SignedDuration::from_secs(30);
    let now = at(1790000002000000);
    let lane = |name: &'static str, now: Timestamp| async move {
        store
            .claim_lane(name, now, now, 10, "n2", lease)
            .await
            .expect("claim")
            .into_iter()
            .map(|i| (i.message.id, i.attempts))
            .collect::<Vec<_>>()
    };
    assert_eq!(lane("sim", now).await, [("m-sim".to_owned(), 0)]);
    assert_eq!(
        lane(crate::WATCH_LANE, now).await,
        [("m-timer".to_owned(), 0)]
    );
    assert!(lane("chan-1", now).await.is_empty(), "still leased to n1");
    assert_eq!(
        lane("chan-1", at(1790000010000000)).await,
        [("m-smsc".to_owned(), 2)]
    );
}

/// Upgrades: a webhook and a pending delivery written at schema version 18, before webhooks
/// had a circuit. The check is [`a_webhook_from_before_0019_has_a_closed_circuit`].
pub const PRE_0019_WEBHOOK: &[&str] = &[
    "INSERT INTO tenants (id, name, created_at) VALUES ('t-old', 'old', 1790000000000000)",
    "INSERT INTO webhooks (id, tenant_id, url, secret, created_at) \
     VALUES ('w-old', 't-old', 'https://example.com/hook', 'whsec_c2VjcmV0', 1790000000000000)",
    "INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event_type, payload, status, attempts, due_at, created_at, updated_at) \
     VALUES ('d-old', 't-old', 'w-old', 'message.status', '{}', 'pending', 3, 1790000001000000, 1790000000000000, 1790000000000000)",
];

/// The webhook written by [`PRE_0019_WEBHOOK`] has a closed circuit after the upgrade, and
/// its pending delivery is claimed, then expires with the others past the window.
pub async fn a_webhook_from_before_0019_has_a_closed_circuit(store: &dyn Store) {
    let at = |micros: i64| Timestamp::from_microsecond(micros).expect("time");
    let hooks = store.webhooks("t-old").await.expect("webhooks");
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].circuit, relais_core::circuit::Circuit::default());
    let lease = jiff::SignedDuration::from_secs(30);
    let due = store
        .claim_webhook_deliveries(at(1790000002000000), 10, "n1", lease)
        .await
        .expect("claim");
    let ids: Vec<&str> = due.iter().map(|d| d.delivery.id.as_str()).collect();
    assert_eq!(ids, ["d-old"]);
    let expired = store
        .expire_webhook_deliveries(at(1790000000000000), "expired", at(1790000099000000))
        .await
        .expect("sweep");
    assert_eq!(expired, 1, "its lease lapsed");
}

/// A message stored before migration 0025, which added the campaign label.
pub const PRE_0025_MESSAGE: &[&str] = &[
    "INSERT INTO tenants (id, name, created_at) VALUES ('t-old', 'old', 1790000000000000)",
    "INSERT INTO messages (id, tenant_id, to_address, channel, step, chain, content, purpose, status, created_at, updated_at, events) \
     VALUES ('m-old', 't-old', '+33612345678', 'sim', 0, '[\"sim\"]', '{\"text\":\"Bonjour\"}', 'transactional', 'delivered', 1790000000000000, 1790000000000000, '[]')",
];

/// The message written by [`PRE_0025_MESSAGE`] (at schema 30, before 0032) reads back as
/// no human agent's reply.
pub async fn a_message_from_before_0032_is_no_human_agents_reply(store: &dyn Store) {
    let old = store
        .message("t-old", "m-old")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(old.message.human_agent_since, None);
}

/// The message written by [`PRE_0025_MESSAGE`] reads back without a campaign, is listed,
/// and is in no campaign's list.
pub async fn a_message_from_before_0025_has_no_campaign(store: &dyn Store) {
    let old = store
        .message("t-old", "m-old")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(old.message.campaign, None);
    let page = PageRequest {
        after: None,
        limit: 10,
    };
    let all = store
        .list_messages("t-old", &crate::MessageFilter::default(), &page)
        .await
        .expect("list");
    assert_eq!(all.data.len(), 1);
    let filter = crate::MessageFilter {
        campaign: relais_core::campaign::CampaignLabel::parse("soldes").ok(),
        ..Default::default()
    };
    let in_campaign = store
        .list_messages("t-old", &filter, &page)
        .await
        .expect("list");
    assert!(in_campaign.data.is_empty());
}

/// A merge recorded at schema 0035, before merges kept their cause.
pub const PRE_0036_MERGE: &[&str] = &[
    "INSERT INTO tenants (id, name, created_at) VALUES ('t-old', 'old', 1790000000000000)",
    "INSERT INTO contacts (id, tenant_id, attributes, created_at, updated_at) \
     VALUES ('c-kept', 't-old', '{}', 1790000000000000, 1790000000000000)",
    "INSERT INTO contact_merges (id, tenant_id, survivor_id, merged_id, merged_snapshot, merged_at) \
     VALUES ('merge-old', 't-old', 'c-kept', 'c-gone', \
     '{\"id\":\"c-gone\",\"attributes\":{},\"timezone\":null,\"locale\":null,\"identities\":[],\"created_at\":\"2026-09-21T12:26:40Z\",\"updated_at\":\"2026-09-21T12:26:40Z\"}', \
     1790000000000000)",
];

/// The merge written by [`PRE_0036_MERGE`] reads back as one asked through the API, as
/// every merge of that time was.
pub async fn a_merge_from_before_0036_was_asked_through_the_api(store: &dyn Store) {
    let merges = store.merges("t-old", "c-kept").await.expect("read");
    assert_eq!(merges.len(), 1);
    assert_eq!(merges[0].merged_id, "c-gone");
    assert_eq!(merges[0].cause, MergeCause::Api);
}

/// A tenant with an inbound WhatsApp message, written at schema 0028.
pub const PRE_0029_INBOUND: &[&str] = &[
    "INSERT INTO tenants (id, name, created_at) VALUES ('t-old', 'old', 1790000000000000)",
    "INSERT INTO inbound_messages (id, tenant_id, channel, from_address, to_address, contact_id, text, received_at) \
     VALUES ('in-old', 't-old', 'whatsapp', '+33612345678', '15550783881', 'c-old', 'Bonjour', 1790000000000000)",
];

/// After 0035, the message written by [`PRE_0029_INBOUND`] reads back without media, and
/// the tenant stores uploads.
pub async fn an_inbound_message_from_before_0035_has_no_media(store: &dyn Store) {
    let old = store
        .inbound_message("t-old", "in-old")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!((old.text.as_str(), old.media), ("Bonjour", None));
    let upload = crate::NewMedia {
        id: crate::new_id(),
        tenant_id: "t-old".into(),
        channel_id: "ch".into(),
        owner_address: "vold".into(),
        mime_type: "image/gif".into(),
        bytes: b"GIF89a".to_vec(),
        created_at: t0(),
    };
    store.insert_media(&upload).await.expect("stored");
    assert!(
        store
            .media("t-old", &upload.id)
            .await
            .expect("read")
            .is_some()
    );
}

/// After 0029, the message written by [`PRE_0029_INBOUND`] opens its contact's window,
/// and the tenant stores templates.
pub async fn a_store_from_before_0029_keeps_its_inbound_and_takes_templates(store: &dyn Store) {
    let last = store
        .last_inbound_at("t-old", &["c-old"])
        .await
        .expect("read");
    assert_eq!(
        last,
        [crate::LastInbound {
            contact_id: "c-old".into(),
            channel: ChannelKind::Whatsapp,
            at: t0(),
        }]
    );
    let template = stored_template("welcome", &[("fr", "Bienvenue")]);
    store
        .insert_template("t-old", &template, t0())
        .await
        .expect("stored");
    assert!(store.list_templates("t-old").await.expect("listed").len() == 1);
    assert!(
        store
            .provider_templates("t-old", "wa")
            .await
            .expect("read")
            .is_empty()
    );
}

/// Contacts of a segment test, each named by its `n` attribute.
async fn segment_contacts(
    store: &dyn Store,
    tenant: &str,
) -> std::collections::HashMap<String, String> {
    use relais_core::status::MessageStatus;
    let people = [
        // n, attributes, identities, timezone, locale
        (
            "ana",
            r#"{"n":"ana","city":"Lyon","age":31,"vip":true,"tags":["vip","shoes"]}"#,
            vec![sms("+33600000001")],
            Some("Europe/Paris"),
            Some("fr"),
        ),
        (
            "bob",
            r#"{"n":"bob","city":"Paris","age":"31","vip":false,"tags":"shoes, bags"}"#,
            vec![
                sms("+33600000002"),
                Identity {
                    channel: ChannelKind::Whatsapp,
                    address: "+33600000002".into(),
                },
            ],
            None,
            Some("fr-FR"),
        ),
        (
            "cy",
            r#"{"n":"cy","city":"lyon","age":17.5,"address":{"city":"Lyon"}}"#,
            vec![Identity {
                channel: ChannelKind::Email,
                address: "cy@example.com".into(),
            }],
            Some("Europe/London"),
            Some("en"),
        ),
        (
            "dee",
            r#"{"n":"dee","city":null,"age":64}"#,
            vec![],
            None,
            None,
        ),
    ];
    let mut ids = std::collections::HashMap::new();
    for (n, json, identities, tz, locale) in people {
        let c = store
            .create_contact(
                tenant,
                &NewContact {
                    attributes: attrs(json),
                    identities,
                    timezone: tz.map(str::to_owned),
                    locale: locale.map(str::to_owned),
                },
                t0(),
            )
            .await
            .unwrap();
        ids.insert(n.to_owned(), c.id);
    }
    // ana: opted in to marketing on SMS, then bob opted in then out (the latest counts);
    // cy opted in to everything on every channel.
    for record in [
        consent(
            &ids["ana"],
            0,
            Some(ChannelKind::Sms),
            Purpose::Marketing,
            ConsentStatus::OptedIn,
        ),
        consent(
            &ids["bob"],
            0,
            Some(ChannelKind::Sms),
            Purpose::Marketing,
            ConsentStatus::OptedIn,
        ),
        consent(&ids["bob"], 10, None, Purpose::All, ConsentStatus::OptedOut),
        consent(
            &ids["cy"],
            0,
            None,
            Purpose::Marketing,
            ConsentStatus::OptedIn,
        ),
    ] {
        store.append_consent(tenant, &record).await.unwrap();
    }
    // ana read a message an hour ago; bob was delivered one 40 days ago and wrote in
    // after it; dee wrote in without ever being sent anything.
    let now = secs(100 * 86_400);
    let message = |who: &str, status: MessageStatus, at: Timestamp| crate::NewMessage {
        contact_id: Some(ids[who].clone()),
        status,
        ..queued_message(tenant, "sms", "+33600000009", at)
    };
    let ago = |hours: i64| {
        now.checked_sub(jiff::SignedDuration::from_hours(hours))
            .unwrap()
    };
    let read = message("ana", MessageStatus::Read, ago(1));
    store
        .insert_messages(&[
            read.clone(),
            message("bob", MessageStatus::Delivered, ago(40 * 24)),
        ])
        .await
        .unwrap();
    // ana clicked the link of the message she read; cy bought 3 days ago, bob 50 days
    // ago (each tenant's codes are its own).
    let code = read.id[read.id.len() - 12..].to_owned();
    store
        .insert_tracked_links(&[tracked_link(
            tenant,
            &read.id,
            &code,
            "https://shop.example/",
        )])
        .await
        .unwrap();
    store.record_click(&code, ago(0), None).await.unwrap();
    for (who, hours_ago) in [("cy", 3 * 24), ("bob", 50 * 24)] {
        let event = customer_event(tenant, &ids[who], "purchase", None, ago(hours_ago));
        record(store, &event, &[], &[]).await;
    }
    for (who, hours_ago) in [("bob", 39 * 24), ("dee", 2)] {
        let mut m = inbound(tenant, "+33600000099", "hello", None);
        m.contact_id = Some(ids[who].clone());
        m.received_at = now
            .checked_sub(jiff::SignedDuration::from_hours(hours_ago))
            .unwrap();
        store.insert_inbound(&m).await.unwrap();
    }
    ids
}

pub async fn segment_filters_find_the_same_contacts_on_every_backend(store: &dyn Store) {
    use relais_core::segment::Filter;
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let other = store.create_tenant("globex", t0()).await.unwrap().id;
    let ids = segment_contacts(store, &tenant).await;
    segment_contacts(store, &other).await;
    let name_of: std::collections::HashMap<&String, &String> =
        ids.iter().map(|(n, id)| (id, n)).collect();
    let now = secs(100 * 86_400);
    let cases: &[(&str, &[&str])] = &[
        ("attributes.city = 'Lyon'", &["ana"]),
        ("attributes.city != 'Lyon'", &["bob", "cy", "dee"]),
        ("attributes.city in ('Lyon', 'lyon')", &["ana", "cy"]),
        ("attributes.age > 30", &["ana", "dee"]),
        ("attributes.age <= 17.5", &["cy"]),
        ("attributes.age = '31'", &["bob"]),
        ("attributes.city < 'M'", &["ana"]),
        ("attributes.vip = true", &["ana"]),
        ("attributes.vip = false", &["bob"]),
        ("attributes.tags contains 'shoes'", &["ana", "bob"]),
        ("attributes.tags contains 'vi'", &[]),
        ("attributes.city exists", &["ana", "bob", "cy"]),
        ("not attributes.city exists", &["dee"]),
        ("attributes.address.city = 'Lyon'", &["cy"]),
        ("identity.whatsapp exists", &["bob"]),
        ("identity.sms = '+33600000001'", &["ana"]),
        ("identity.email contains '@example.com'", &["cy"]),
        ("consent.sms.marketing = 'opted_in'", &["ana", "cy"]),
        ("consent.sms.marketing = 'opted_out'", &["bob"]),
        ("not consent.whatsapp.marketing exists", &["ana", "dee"]),
        ("timezone = 'Europe/Paris' or locale = 'en'", &["ana", "cy"]),
        ("locale contains 'fr'", &["ana", "bob"]),
        ("read within 1d", &["ana"]),
        ("delivered within 30d", &["ana"]),
        ("delivered within 60d", &["ana", "bob"]),
        ("inbound within 7d", &["dee"]),
        ("replied within 60d", &["bob"]),
        ("not (read within 1d or inbound within 60d)", &["cy"]),
        ("clicked within 1d", &["ana"]),
        ("event.purchase within 7d", &["cy"]),
        ("event.purchase within 60d", &["bob", "cy"]),
        ("event.cart_abandoned within 60d", &[]),
        (
            "not clicked within 1d and event.purchase within 60d",
            &["bob", "cy"],
        ),
        (
            "attributes.city = 'Lyon' and consent.sms.marketing = 'opted_in'",
            &["ana"],
        ),
    ];
    for (text, expected) in cases {
        let filter = Filter::parse(text).unwrap();
        let mut found: Vec<&str> = store
            .matching_contacts(&tenant, &filter, now, None, 100)
            .await
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .iter()
            .map(|id| name_of[id].as_str())
            .collect();
        found.sort_unstable();
        assert_eq!(found, *expected, "{text}");
        assert_eq!(
            store.count_matching(&tenant, &filter, now).await.unwrap(),
            expected.len() as i64,
            "{text}"
        );
    }
    // Pages walk the matches in id order.
    let all = Filter::parse("attributes.n exists").unwrap();
    let first = store
        .matching_contacts(&tenant, &all, now, None, 3)
        .await
        .unwrap();
    let rest = store
        .matching_contacts(&tenant, &all, now, first.last().map(String::as_str), 3)
        .await
        .unwrap();
    assert_eq!(first.len() + rest.len(), 4);
    assert!(first.windows(2).all(|w| w[0] < w[1]) && first[2] < rest[0]);
}

pub async fn segments_are_saved_per_tenant_by_unique_name(store: &dyn Store) {
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let other = store.create_tenant("globex", t0()).await.unwrap().id;
    let saved = store
        .insert_segment(&tenant, "lyon", "attributes.city = 'Lyon'", t0())
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_segment(&tenant, "lyon", "locale = 'fr'", t0())
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .insert_segment(&other, "lyon", "locale = 'fr'", t0())
        .await
        .unwrap();
    assert_eq!(
        store.segment(&tenant, "lyon").await.unwrap(),
        Some(saved.clone())
    );
    assert_eq!(
        store.segment(&tenant, &saved.id).await.unwrap(),
        Some(saved.clone())
    );
    assert_eq!(store.segment(&other, &saved.id).await.unwrap(), None);
    let changed = store
        .update_segment(&tenant, &saved.id, "locale = 'en'", secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.filter, "locale = 'en'");
    assert_eq!(store.list_segments(&tenant).await.unwrap().len(), 1);
    assert!(store.delete_segment(&tenant, &saved.id).await.unwrap());
    assert!(!store.delete_segment(&tenant, &saved.id).await.unwrap());
}

/// Clicks count per message; a conversion event counts for the last message the contact
/// was sent before it, within the window (a later message takes the credit, a late
/// event none); rows are split by the start of the address and the SMS segments.
pub async fn a_campaign_funnel_counts_clicks_and_attributes_conversions_to_the_last_message(
    store: &dyn Store,
) {
    use relais_core::campaign::{CampaignPhase, RecipientState};
    use relais_core::segment::Filter;
    use relais_core::status::MessageStatus;
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let mut people = Vec::new();
    for number in ["+33600000001", "+447700900002", "+33600000003"] {
        let c = store
            .create_contact(
                &tenant,
                &contact(vec![sms(number)], r#"{"in": true}"#),
                t0(),
            )
            .await
            .unwrap();
        people.push((c.id, number));
    }
    let definition = serde_json::json!({"name": "soldes", "filter": "attributes.in = true"});
    let campaign = store
        .insert_campaign(&tenant, "soldes", &definition, t0())
        .await
        .unwrap();
    let filter = Filter::parse("attributes.in = true").unwrap();
    store
        .start_campaign(
            &tenant,
            &campaign.id,
            &filter,
            CampaignPhase::Send,
            &definition,
            secs(1),
        )
        .await
        .unwrap();
    let sent = |i: usize, status: MessageStatus, segments: i64| crate::NewMessage {
        contact_id: Some(people[i].0.clone()),
        status,
        segments: Some(segments),
        ..queued_message(&tenant, "sms", people[i].1, secs(100))
    };
    let messages = [
        sent(0, MessageStatus::Delivered, 1),
        sent(1, MessageStatus::Read, 2),
        sent(2, MessageStatus::Sent, 1),
    ];
    // cy is sent another message later, outside the campaign.
    let later = crate::NewMessage {
        contact_id: Some(people[2].0.clone()),
        ..queued_message(&tenant, "sms", people[2].1, secs(200))
    };
    store.insert_messages(&messages).await.unwrap();
    store
        .insert_messages(std::slice::from_ref(&later))
        .await
        .unwrap();
    let outcomes: Vec<crate::RecipientOutcome> = messages
        .iter()
        .zip(["a", "b", "a"])
        .map(|(m, variant)| crate::RecipientOutcome {
            contact_id: m.contact_id.clone().unwrap(),
            state: RecipientState::Enqueued,
            variant: Some(variant.into()),
            message_id: Some(m.id.clone()),
            reason: None,
        })
        .collect();
    store
        .record_recipients(&campaign.id, &outcomes)
        .await
        .unwrap();
    let code = messages[0].id[messages[0].id.len() - 12..].to_owned();
    store
        .insert_tracked_links(&[tracked_link(
            &tenant,
            &messages[0].id,
            &code,
            "https://shop.example/",
        )])
        .await
        .unwrap();
    for _ in 0..2 {
        store.record_click(&code, secs(150), None).await.unwrap();
    }
    // ana buys an hour after her message; bob 8 days after his (outside a 7-day window);
    // cy after the later message.
    for (who, at) in [(0, 3_700), (1, 100 + 8 * 86_400), (2, 300)] {
        let event = customer_event(&tenant, &people[who].0, "purchase", None, secs(at));
        record(store, &event, &[], &[]).await;
    }
    let query = crate::FunnelQuery {
        conversion: Some((vec!["purchase".into()], 7 * 86_400 * 1_000_000)),
        address_prefix_chars: 3,
    };
    let rows = store
        .campaign_funnel(&tenant, &campaign.id, &query)
        .await
        .unwrap();
    let summary: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.variant.as_deref().unwrap_or(""),
                r.status.as_str(),
                r.address_prefix.as_deref().unwrap_or(""),
                r.segments,
                r.count,
                r.clicked,
                r.converted,
                r.conversion_value,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("a", "delivered", "+33", 1, 1, 1, 1, 42.5),
            ("a", "sent", "+33", 1, 1, 0, 0, 0.0),
            ("b", "read", "+44", 2, 1, 0, 0, 0.0),
        ]
    );
    // Without a conversion event or prices, the same messages, nothing converted.
    let plain = store
        .campaign_funnel(&tenant, &campaign.id, &crate::FunnelQuery::default())
        .await
        .unwrap();
    assert_eq!(plain.len(), 3);
    assert!(
        plain
            .iter()
            .all(|r| r.converted == 0 && r.address_prefix.is_none())
    );
    assert_eq!(plain.iter().map(|r| r.clicked).sum::<i64>(), 1);
}

pub async fn a_started_campaign_fixes_its_recipients_and_is_leased_to_one_node(store: &dyn Store) {
    use relais_core::campaign::{CampaignPhase, CampaignState, RecipientState};
    use relais_core::segment::Filter;
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let ids = segment_contacts(store, &tenant).await;
    let definition = serde_json::json!({"name": "soldes", "filter": "locale exists"});
    let campaign = store
        .insert_campaign(&tenant, "soldes", &definition, t0())
        .await
        .unwrap();
    assert_eq!(campaign.state, CampaignState::Draft);
    assert!(matches!(
        store
            .insert_campaign(&tenant, "soldes", &definition, t0())
            .await,
        Err(StoreError::Conflict(_))
    ));
    let filter = Filter::parse("locale exists").unwrap();
    let plan = serde_json::json!({"filter": "locale exists"});
    let started = store
        .start_campaign(
            &tenant,
            &campaign.id,
            &filter,
            CampaignPhase::Send,
            &plan,
            secs(10),
        )
        .await
        .unwrap();
    assert_eq!(started, Some(3));
    // A contact added later is not a recipient; a second start changes nothing.
    store
        .create_contact(
            &tenant,
            &NewContact {
                locale: Some("fr".into()),
                ..Default::default()
            },
            secs(11),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .start_campaign(
                &tenant,
                &campaign.id,
                &filter,
                CampaignPhase::Send,
                &plan,
                secs(12)
            )
            .await
            .unwrap(),
        None
    );
    let pending = store
        .campaign_recipients(&campaign.id, RecipientState::Pending, None, 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 3);
    assert!(!pending.contains(&ids["dee"]));
    // The next page starts after the last id of the one before, in id order.
    assert!(pending.windows(2).all(|w| w[0] < w[1]));
    let after_first = store
        .campaign_recipients(&campaign.id, RecipientState::Pending, Some(&pending[0]), 10)
        .await
        .unwrap();
    assert_eq!(after_first, pending[1..]);
    assert!(
        store
            .campaign_recipients(&campaign.id, RecipientState::Pending, Some(&pending[2]), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // One node holds the lease until it lapses (or gives it back).
    let claimed = store
        .claim_campaign("node-a", secs(20), secs(50))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, campaign.id);
    assert_eq!(
        store
            .claim_campaign("node-b", secs(30), secs(60))
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .claim_campaign("node-a", secs(30), secs(60))
            .await
            .unwrap()
            .is_some(),
        "its own lease after a restart"
    );
    assert!(
        store
            .claim_campaign("node-b", secs(61), secs(90))
            .await
            .unwrap()
            .is_some(),
        "a lapsed lease"
    );
    assert!(
        !store
            .renew_campaign(&campaign.id, "node-a", secs(120))
            .await
            .unwrap()
    );
    store
        .release_campaign(&campaign.id, "node-b", secs(62))
        .await
        .unwrap();

    store
        .record_recipients(
            &campaign.id,
            &[
                crate::RecipientOutcome {
                    contact_id: pending[0].clone(),
                    state: RecipientState::Enqueued,
                    variant: Some("A".into()),
                    message_id: Some("m1".into()),
                    reason: None,
                },
                crate::RecipientOutcome {
                    contact_id: pending[1].clone(),
                    state: RecipientState::Skipped,
                    variant: None,
                    message_id: None,
                    reason: Some("opted_out".into()),
                },
            ],
        )
        .await
        .unwrap();
    let counts = store.recipient_counts(&campaign.id).await.unwrap();
    let count = |state: &str| {
        counts
            .iter()
            .filter(|c| c.state == state)
            .map(|c| c.count)
            .sum::<i64>()
    };
    assert_eq!(
        (count("enqueued"), count("skipped"), count("pending")),
        (1, 1, 1)
    );
    let canceled = store
        .move_campaign(
            &tenant,
            &campaign.id,
            &[CampaignState::Running],
            CampaignState::Canceled,
            secs(70),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(canceled.state, CampaignState::Canceled);
    assert_eq!(canceled.finished_at, Some(secs(70)));
    assert!(
        store
            .campaign_recipients(&campaign.id, RecipientState::Pending, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .move_campaign(
                &tenant,
                &campaign.id,
                &[CampaignState::Running],
                CampaignState::Paused,
                secs(71)
            )
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .claim_campaign("node-a", secs(200), secs(230))
            .await
            .unwrap(),
        None
    );
}

pub async fn marketing_messages_are_counted_per_contact_over_a_period(store: &dyn Store) {
    use relais_core::campaign::CampaignLabel;
    use relais_core::status::MessageStatus;
    let tenant = store.create_tenant("acme", t0()).await.unwrap().id;
    let a = store
        .create_contact(&tenant, &contact(vec![sms("+33600000001")], "{}"), t0())
        .await
        .unwrap()
        .id;
    let b = store
        .create_contact(&tenant, &contact(vec![sms("+33600000002")], "{}"), t0())
        .await
        .unwrap()
        .id;
    let message =
        |who: &str, purpose: &str, campaign: Option<&str>, status: MessageStatus, at: i64| {
            crate::NewMessage {
                contact_id: Some(who.to_owned()),
                purpose: purpose.into(),
                campaign: campaign.map(|c| CampaignLabel::parse(c).unwrap()),
                status,
                ..queued_message(&tenant, "sms", "+33600000001", secs(at))
            }
        };
    store
        .insert_messages(&[
            message(&a, "marketing", Some("one"), MessageStatus::Delivered, 100),
            message(&a, "marketing", None, MessageStatus::Read, 200),
            message(&a, "marketing", Some("two"), MessageStatus::Queued, 300),
            message(&a, "transactional", None, MessageStatus::Delivered, 300),
            message(&a, "marketing", Some("old"), MessageStatus::Delivered, 10),
            message(&a, "marketing", Some("three"), MessageStatus::Rejected, 300),
            message(&b, "marketing", Some("two"), MessageStatus::Delivered, 300),
            message(&b, "newsletter", None, MessageStatus::Delivered, 300),
        ])
        .await
        .unwrap();
    let counts = |capped: Purpose, except: Option<&'static str>| {
        let ids = [a.clone(), b.clone()];
        let tenant = tenant.clone();
        async move {
            store
                .purpose_counts(&tenant, &ids, &capped, secs(50), except)
                .await
                .unwrap()
        }
    };
    // A marketing cap counts marketing topics (b's newsletter), not transactional ones.
    let marketing = counts(Purpose::Marketing, Some("two")).await;
    assert_eq!(marketing.get(&a), Some(&2));
    assert_eq!(marketing.get(&b), Some(&1));
    let all = counts(Purpose::Marketing, None).await;
    assert_eq!((all.get(&a), all.get(&b)), (Some(&3), Some(&2)));
    let topic = counts(Purpose::Topic("newsletter".into()), None).await;
    assert_eq!((topic.get(&a), topic.get(&b)), (None, Some(&1)));
    let everything = counts(Purpose::All, Some("two")).await;
    assert_eq!(everything.get(&a), Some(&3));
    let times = store
        .engagement_times(&tenant, &[a.clone(), b.clone()], secs(0))
        .await
        .unwrap();
    assert_eq!(times.len(), 1, "{times:?}");
    assert_eq!(times[0].0, a);
}

fn tracked_link(tenant: &str, message_id: &str, code: &str, url: &str) -> crate::NewTrackedLink {
    crate::NewTrackedLink {
        code: code.to_owned(),
        tenant_id: tenant.to_owned(),
        message_id: message_id.to_owned(),
        url: url.to_owned(),
        field: "text".into(),
        created_at: t0(),
    }
}

/// A stored code records each click with the message's channel and gives its URL back; a
/// code nobody stored records nothing, and codes are unique.
pub async fn only_stored_link_codes_record_clicks(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let m = queued_message(&acme.id, "sim", "+33612345678", t0());
    store
        .insert_messages(std::slice::from_ref(&m))
        .await
        .unwrap();
    let links = [
        tracked_link(&acme.id, &m.id, "AAAAAAAAAAAA", "https://shop.example/a"),
        tracked_link(&acme.id, &m.id, "BBBBBBBBBBBB", "https://shop.example/b"),
    ];
    store.insert_tracked_links(&links).await.unwrap();
    assert!(matches!(
        store.insert_tracked_links(&links[..1]).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .record_click("ZZZZZZZZZZZZ", t0(), Some("curl"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.resolve_link("ZZZZZZZZZZZZ").await.unwrap(), None);
    let resolved = store
        .resolve_link("AAAAAAAAAAAA")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(resolved.url, "https://shop.example/a");
    let later = t0()
        .checked_add(jiff::SignedDuration::from_secs(60))
        .unwrap();
    let click = store
        .record_click("BBBBBBBBBBBB", t0(), Some("Mozilla/5.0"))
        .await
        .unwrap()
        .expect("a stored code");
    assert_eq!(
        click,
        crate::RecordedClick {
            tenant_id: acme.id.clone(),
            message_id: m.id.clone(),
            channel: "sim".into(),
            url: "https://shop.example/b".into(),
        }
    );
    store
        .record_click("BBBBBBBBBBBB", later, None)
        .await
        .unwrap();
    let clicks = store.clicks_of_message(&acme.id, &m.id).await.unwrap();
    assert_eq!(clicks.len(), 2);
    assert_eq!(clicks[0].user_agent.as_deref(), Some("Mozilla/5.0"));
    assert_eq!(clicks[0].at, t0());
    assert_eq!(clicks[1].at, later);
    assert_eq!(clicks[1].user_agent, None);
    assert_eq!(clicks[1].url, "https://shop.example/b");
    let globex = store.create_tenant("globex", t0()).await.unwrap();
    assert!(
        store
            .clicks_of_message(&globex.id, &m.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .tracked_links_of_message(&acme.id, &m.id)
            .await
            .unwrap()
            .len(),
        2
    );
}

/// A message clicked twice counts once, under its channel and campaign; a message with
/// no click, or created outside the period, does not count.
pub async fn clicked_messages_are_counted_by_channel_and_campaign(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let campaign = relais_core::campaign::CampaignLabel::parse("spring").unwrap();
    let clicked = crate::NewMessage {
        campaign: Some(campaign),
        ..queued_message(&acme.id, "sim", "+33612345678", t0())
    };
    let ignored = queued_message(&acme.id, "sim", "+33612345679", t0());
    store
        .insert_messages(&[clicked.clone(), ignored.clone()])
        .await
        .unwrap();
    store
        .insert_tracked_links(&[
            tracked_link(&acme.id, &clicked.id, "CCCCCCCCCCCC", "https://a.example"),
            tracked_link(&acme.id, &ignored.id, "DDDDDDDDDDDD", "https://b.example"),
        ])
        .await
        .unwrap();
    store
        .record_click("CCCCCCCCCCCC", t0(), None)
        .await
        .unwrap();
    store
        .record_click("CCCCCCCCCCCC", t0(), None)
        .await
        .unwrap();
    let day = jiff::SignedDuration::from_hours(24);
    let since = t0().checked_sub(day).unwrap();
    let until = t0().checked_add(day).unwrap();
    assert_eq!(
        store.clicked_counts(&acme.id, since, until).await.unwrap(),
        [crate::ClickedCount {
            channel: "sim".into(),
            campaign: Some("spring".into()),
            messages: 1,
        }]
    );
    assert!(
        store
            .clicked_counts(&acme.id, until, until.checked_add(day).unwrap())
            .await
            .unwrap()
            .is_empty()
    );
}

fn entry_point(tenant: &str, referral: &str) -> crate::EntryPoint {
    use relais_core::entry_point::{Destination, EntryChannel, ReferralCode};
    crate::EntryPoint {
        id: crate::new_id(),
        tenant_id: tenant.to_owned(),
        name: "Spring ads".into(),
        channel: EntryChannel::Whatsapp,
        destination: Destination::Number("+33612345678".into()),
        referral: ReferralCode::parse(referral).unwrap(),
        text: Some("Bonjour".into()),
        flow: Some("welcome".into()),
        campaign: Some(relais_core::campaign::CampaignLabel::parse("spring").unwrap()),
        created_at: t0(),
    }
}

/// An entry point reads back as written, by id and by referral, only in its tenant; a
/// referral code is taken once per tenant.
pub async fn entry_points_are_found_by_referral_within_their_tenant(store: &dyn Store) {
    use relais_core::entry_point::ReferralCode;
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let globex = store.create_tenant("globex", t0()).await.unwrap();
    let ads = entry_point(&acme.id, "SPRING");
    store.create_entry_point(&ads).await.unwrap();
    assert!(matches!(
        store
            .create_entry_point(&entry_point(&acme.id, "spring"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .create_entry_point(&entry_point(&globex.id, "SPRING"))
        .await
        .unwrap();
    let referral = ReferralCode::parse("spring").unwrap();
    assert_eq!(
        store
            .entry_point_by_referral(&acme.id, &referral)
            .await
            .unwrap(),
        Some(ads.clone())
    );
    assert_eq!(
        store.entry_point(&acme.id, &ads.id).await.unwrap(),
        Some(ads.clone())
    );
    assert_eq!(store.entry_point(&globex.id, &ads.id).await.unwrap(), None);
    assert_eq!(
        store.entry_points(&acme.id).await.unwrap(),
        std::slice::from_ref(&ads)
    );
    assert!(!store.delete_entry_point(&globex.id, &ads.id).await.unwrap());
    assert!(store.delete_entry_point(&acme.id, &ads.id).await.unwrap());
    assert_eq!(
        store
            .entry_point_by_referral(&acme.id, &referral)
            .await
            .unwrap(),
        None
    );
}

/// The same inbound message attributed twice (a run again after a crash) is one record;
/// the latest entry point is the conversation's.
pub async fn a_conversation_is_attributed_once_per_inbound_message(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let ads = entry_point(&acme.id, "SPRING");
    let poster = entry_point(&acme.id, "POSTER");
    store.create_entry_point(&ads).await.unwrap();
    store.create_entry_point(&poster).await.unwrap();
    let first = crate::Attribution {
        tenant_id: acme.id.clone(),
        inbound_id: "in-1".into(),
        conversation_id: "conv-1".into(),
        entry_point_id: ads.id.clone(),
        campaign: ads.campaign.clone(),
        contact_id: "c-1".into(),
        at: t0(),
    };
    store.attribute_conversation(&first).await.unwrap();
    store.attribute_conversation(&first).await.unwrap();
    assert_eq!(
        store.attributions(&acme.id, &ads.id).await.unwrap(),
        std::slice::from_ref(&first)
    );
    let second = crate::Attribution {
        inbound_id: "in-2".into(),
        entry_point_id: poster.id.clone(),
        campaign: None,
        at: t0()
            .checked_add(jiff::SignedDuration::from_secs(5))
            .unwrap(),
        ..first.clone()
    };
    store.attribute_conversation(&second).await.unwrap();
    assert_eq!(
        store
            .conversation_attribution(&acme.id, "conv-1")
            .await
            .unwrap(),
        Some(second)
    );
    assert_eq!(
        store
            .conversation_attribution(&acme.id, "conv-2")
            .await
            .unwrap(),
        None
    );
}

/// Due and unleased rows are ready; a row due later, or leased to a worker, is not.
pub async fn the_outbox_depth_counts_due_rows_no_worker_holds(store: &dyn Store) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    assert_eq!(store.outbox_ready(t0()).await.unwrap(), 0);
    let later = t0()
        .checked_add(jiff::SignedDuration::from_secs(3600))
        .unwrap();
    let due = queued_message(&acme.id, "sim", "+33612345678", t0());
    let claimed = queued_message(&acme.id, "sim", "+33612345679", t0());
    let scheduled = crate::NewMessage {
        due_at: Some(later),
        ..queued_message(&acme.id, "sim", "+33612345670", t0())
    };
    store.insert_messages(&[due, scheduled]).await.unwrap();
    store
        .insert_messages(std::slice::from_ref(&claimed))
        .await
        .unwrap();
    // The scheduled one is not due yet.
    assert_eq!(store.outbox_ready(t0()).await.unwrap(), 2);
    let taken = store
        .claim_due(t0(), 1, "worker", jiff::SignedDuration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(store.outbox_ready(t0()).await.unwrap(), 1);
    // An hour later the scheduled one is due and the worker's 60 s lease ran out.
    assert_eq!(store.outbox_ready(later).await.unwrap(), 3);
}

pub async fn settings_written_together_are_read_back_each_within_the_tenant(store: &dyn Store) {
    let a = store.create_tenant("acme", t0()).await.unwrap().id;
    let b = store.create_tenant("globex", t0()).await.unwrap().id;
    // A value read before the write is not served after it (the read cache is told).
    assert_eq!(store.setting(&a, "sender_rates").await.unwrap(), None);
    let first = [
        ("sender_rates", serde_json::json!({"default": 5})),
        ("frequency_cap", serde_json::json!({"max": 2, "per": "7d"})),
    ];
    store.put_settings(&a, &first, t0()).await.unwrap();
    assert_eq!(
        store.setting(&a, "sender_rates").await.unwrap(),
        Some(serde_json::json!({"default": 5}))
    );
    assert_eq!(
        store.setting(&a, "frequency_cap").await.unwrap(),
        Some(serde_json::json!({"max": 2, "per": "7d"}))
    );
    let second = [
        ("sender_rates", serde_json::json!({"default": 1})),
        ("frequency_cap", serde_json::Value::Null),
    ];
    store.put_settings(&a, &second, t0()).await.unwrap();
    assert_eq!(
        store.setting(&a, "sender_rates").await.unwrap(),
        Some(serde_json::json!({"default": 1}))
    );
    assert_eq!(
        store.setting(&a, "frequency_cap").await.unwrap(),
        Some(serde_json::Value::Null),
        "a section set to nothing is kept as such, not forgotten"
    );
    assert_eq!(store.setting(&b, "sender_rates").await.unwrap(), None);
    store.put_settings(&b, &[], t0()).await.unwrap();
}

fn customer_event(
    tenant: &str,
    contact: &str,
    name: &str,
    key: Option<&str>,
    at: Timestamp,
) -> crate::ContactEvent {
    crate::ContactEvent {
        id: crate::new_id(),
        tenant_id: tenant.to_owned(),
        contact_id: contact.to_owned(),
        name: name.to_owned(),
        properties: attrs(r#"{"cart": "c-1", "total": 42.5}"#),
        value: Some(42.5),
        idempotency_id: key.map(str::to_owned),
        outcome: Attributes::new(),
        at,
    }
}

fn journey_entry(
    tenant: &str,
    journey: &str,
    contact: &str,
    key: &str,
    exclusive: bool,
) -> crate::NewJourneyRun {
    crate::NewJourneyRun {
        id: crate::new_id(),
        tenant_id: tenant.to_owned(),
        journey: journey.to_owned(),
        contact_id: contact.to_owned(),
        entry_key: key.to_owned(),
        exclusive,
        entered_by: None,
        event_properties: attrs(r#"{"cart": "c-1"}"#),
        step: "wait".into(),
        due_at: t0(),
    }
}

async fn record(
    store: &dyn Store,
    event: &crate::ContactEvent,
    exits: &[String],
    entries: &[crate::NewJourneyRun],
) -> crate::EventRecorded {
    store
        .record_contact_event(&crate::EventWrite {
            event,
            new_contact: None,
            exits,
            entries,
        })
        .await
        .unwrap()
}

pub async fn customer_events_are_kept_once_per_id_and_counted_by_name_since_a_time(
    store: &dyn Store,
) {
    let t = store.create_tenant("acme", t0()).await.unwrap().id;
    let other = store.create_tenant("globex", t0()).await.unwrap().id;
    let ana = store
        .create_contact(&t, &contact(vec![sms("+33611111111")], "{}"), t0())
        .await
        .unwrap()
        .id;
    let first = customer_event(&t, &ana, "purchase", Some("order-1"), secs(10));
    let crate::EventRecorded::New {
        event,
        entered,
        exited,
    } = record(store, &first, &[], &[]).await
    else {
        panic!("a new event")
    };
    assert!(entered.is_empty() && exited.is_empty());
    assert_eq!(event.outcome["entered"], serde_json::json!([]));
    // The same client id again: the first event, nothing new written.
    let again = customer_event(&t, &ana, "purchase", Some("order-1"), secs(20));
    match record(store, &again, &[], &[]).await {
        crate::EventRecorded::Duplicate(found) => {
            assert_eq!(found.id, first.id);
            assert_eq!(found.at, secs(10));
            assert_eq!(found.properties["cart"], "c-1");
        }
        other => panic!("a duplicate, not {other:?}"),
    }
    // Another tenant may use the same id; events without an id never collide.
    let theirs = customer_event(&other, "someone", "purchase", Some("order-1"), secs(10));
    assert!(matches!(
        record(store, &theirs, &[], &[]).await,
        crate::EventRecorded::New { .. }
    ));
    for s in [30, 40] {
        let e = customer_event(&t, &ana, "purchase", None, secs(s));
        assert!(matches!(
            record(store, &e, &[], &[]).await,
            crate::EventRecorded::New { .. }
        ));
    }
    let viewed = customer_event(&t, &ana, "product_viewed", None, secs(50));
    record(store, &viewed, &[], &[]).await;

    assert_eq!(
        store
            .count_contact_events(&t, &ana, "purchase", secs(0))
            .await
            .unwrap(),
        (3, 127.5)
    );
    assert_eq!(
        store
            .count_contact_events(&t, &ana, "purchase", secs(30))
            .await
            .unwrap(),
        (2, 85.0)
    );
    assert_eq!(
        store
            .count_contact_events(&t, &ana, "refund", secs(0))
            .await
            .unwrap(),
        (0, 0.0)
    );
    let listed = store
        .contact_events(&t, &ana, Some("purchase"), secs(0), 10)
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|e| e.at).collect::<Vec<_>>(),
        [secs(40), secs(30), secs(10)]
    );
    assert_eq!(
        store
            .contact_events(&t, &ana, None, secs(45), 10)
            .await
            .unwrap()[0]
            .name,
        "product_viewed"
    );
    assert_eq!(
        store
            .contact_event_by_idempotency_id(&t, "order-1")
            .await
            .unwrap()
            .map(|e| e.id),
        Some(first.id)
    );
}

pub async fn an_event_creates_its_new_contact_in_the_same_transaction_or_nothing(
    store: &dyn Store,
) {
    let t = store.create_tenant("acme", t0()).await.unwrap().id;
    let planned = crate::PlannedContact {
        tenant_id: t.clone(),
        id: crate::new_id(),
        identity: sms("+33622222222"),
        created_at: t0(),
    };
    let event = customer_event(&t, &planned.id, "signup", Some("s-1"), t0());
    let write = crate::EventWrite {
        event: &event,
        new_contact: Some(&planned),
        exits: &[],
        entries: &[],
    };
    assert!(matches!(
        store.record_contact_event(&write).await.unwrap(),
        crate::EventRecorded::New { .. }
    ));
    let found = store
        .contact_by_identity(&t, None, "+33622222222")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, planned.id);
    // A second planned contact for an identity someone owns: nothing of the event is kept.
    let late = crate::PlannedContact {
        id: crate::new_id(),
        ..planned.clone()
    };
    let event = customer_event(&t, &late.id, "signup", Some("s-2"), t0());
    let write = crate::EventWrite {
        event: &event,
        new_contact: Some(&late),
        exits: &[],
        entries: &[],
    };
    assert!(matches!(
        store.record_contact_event(&write).await,
        Err(StoreError::IdentityTaken(_))
    ));
    assert!(
        store
            .contact_event_by_idempotency_id(&t, "s-2")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.contact(&t, &late.id).await.unwrap().is_none());
}

pub async fn journey_runs_enter_once_per_key_and_one_active_at_a_time(store: &dyn Store) {
    let t = store.create_tenant("acme", t0()).await.unwrap().id;
    let e1 = customer_event(&t, "ana", "cart_abandoned", Some("e1"), t0());
    let entries = [
        journey_entry(&t, "cart", "ana", "e1", true),
        journey_entry(&t, "browse", "ana", "e1", false),
    ];
    let crate::EventRecorded::New { entered, event, .. } = record(store, &e1, &[], &entries).await
    else {
        panic!("new")
    };
    assert_eq!(
        entered
            .iter()
            .map(|r| r.journey.as_str())
            .collect::<Vec<_>>(),
        ["cart", "browse"]
    );
    assert_eq!(
        event.outcome["entered"],
        serde_json::json!(["cart", "browse"])
    );
    let run = &entered[0];
    assert_eq!(
        (run.state, run.phase, run.step.as_str()),
        (crate::RunState::Active, crate::RunPhase::Enter, "wait")
    );
    assert_eq!(run.event_properties["cart"], "c-1");
    // A second trigger: the exclusive journey refuses a second active run, the other takes it.
    let entered = store
        .enter_journey_runs(&[
            journey_entry(&t, "cart", "ana", "e2", true),
            journey_entry(&t, "browse", "ana", "e2", false),
        ])
        .await
        .unwrap();
    assert_eq!(
        entered
            .iter()
            .map(|r| r.journey.as_str())
            .collect::<Vec<_>>(),
        ["browse"]
    );
    // The same entry key never enters twice, even for a non-exclusive journey.
    assert!(
        store
            .enter_journey_runs(&[journey_entry(&t, "browse", "ana", "e2", false)])
            .await
            .unwrap()
            .is_empty()
    );
    // Another contact is not held back.
    assert_eq!(
        store
            .enter_journey_runs(&[journey_entry(&t, "cart", "bob", "e3", true)])
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .journey_runs_of_contact(&t, "ana")
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(store.journey_runs(&t, "cart", 10).await.unwrap().len(), 2);
}

pub async fn due_journey_runs_are_leased_and_moved_only_by_their_holder(store: &dyn Store) {
    let t = store.create_tenant("acme", t0()).await.unwrap().id;
    let mut later = journey_entry(&t, "cart", "bob", "e2", true);
    later.due_at = secs(3600);
    let runs = store
        .enter_journey_runs(&[journey_entry(&t, "cart", "ana", "e1", true), later])
        .await
        .unwrap();
    let lease = jiff::SignedDuration::from_secs(60);
    let claimed = store
        .claim_due_runs(t0(), 10, "node-a", lease)
        .await
        .unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|r| r.contact_id.as_str())
            .collect::<Vec<_>>(),
        ["ana"]
    );
    assert!(
        store
            .claim_due_runs(t0(), 10, "node-b", lease)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    // The holder, restarted under the same name, takes it back without waiting.
    assert_eq!(
        store
            .claim_due_runs(t0(), 10, "node-a", lease)
            .await
            .unwrap()
            .len(),
        1
    );
    // The holder moves it on: waiting an hour.
    let progress = crate::RunProgress {
        step: "wait".into(),
        phase: crate::RunPhase::Wait,
        steps_taken: 1,
        state: crate::RunState::Active,
        due_at: Some(secs(3600)),
        deadline: None,
        last_message_id: None,
        last_sent_at: None,
        ended_reason: None,
        at: t0(),
        sent: Vec::new(),
    };
    assert!(
        !store
            .advance_run(&runs[0].id, "node-b", &progress)
            .await
            .unwrap(),
        "not its lease"
    );
    assert!(
        store
            .advance_run(&runs[0].id, "node-a", &progress)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_due_runs(secs(3599), 10, "node-b", lease)
            .await
            .unwrap()
            .is_empty()
    );
    // A lease that ran out is claimable by another node.
    let both = store
        .claim_due_runs(secs(3600), 10, "node-b", lease)
        .await
        .unwrap();
    assert_eq!(both.len(), 2);
    let ana = both.iter().find(|r| r.contact_id == "ana").unwrap();
    assert_eq!((ana.phase, ana.steps_taken), (crate::RunPhase::Wait, 1));
    assert_eq!(
        store
            .claim_due_runs(secs(3661), 10, "node-c", lease)
            .await
            .unwrap()
            .len(),
        2,
        "node-b died"
    );
    // Ended: it leaves its exclusive slot, so the contact may enter again.
    let done = crate::RunProgress {
        state: crate::RunState::Completed,
        due_at: None,
        ended_reason: Some("last step".into()),
        at: secs(3661),
        ..progress.clone()
    };
    assert!(
        store
            .advance_run(&runs[0].id, "node-c", &done)
            .await
            .unwrap()
    );
    let ended = store.journey_run(&t, &runs[0].id).await.unwrap().unwrap();
    assert_eq!(
        (ended.state, ended.ended_at),
        (crate::RunState::Completed, Some(secs(3661)))
    );
    assert!(
        !store
            .advance_run(&runs[0].id, "node-c", &progress)
            .await
            .unwrap(),
        "an ended run stays ended"
    );
    assert_eq!(
        store
            .enter_journey_runs(&[journey_entry(&t, "cart", "ana", "e9", true)])
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn a_goal_event_ends_active_runs_and_a_deleted_journey_cancels_them(store: &dyn Store) {
    let t = store.create_tenant("acme", t0()).await.unwrap().id;
    let definition = serde_json::json!({"trigger": {"event": "cart_abandoned"}});
    store
        .put_journey(&t, "cart", &definition, t0())
        .await
        .unwrap();
    let second = store
        .put_journey(&t, "cart", &definition, secs(5))
        .await
        .unwrap();
    assert_eq!(
        (second.revision, second.created_at, second.updated_at),
        (2, t0(), secs(5))
    );
    store
        .put_journey(&t, "winback", &definition, t0())
        .await
        .unwrap();
    assert_eq!(
        store
            .list_journeys(&t)
            .await
            .unwrap()
            .iter()
            .map(|j| j.name.as_str())
            .collect::<Vec<_>>(),
        ["cart", "winback"]
    );
    let entered = store
        .enter_journey_runs(&[
            journey_entry(&t, "cart", "ana", "e1", true),
            journey_entry(&t, "winback", "ana", "e1", true),
        ])
        .await
        .unwrap();
    let purchase = customer_event(&t, "ana", "purchase", None, secs(10));
    let crate::EventRecorded::New { exited, event, .. } =
        record(store, &purchase, &["cart".into(), "browse".into()], &[]).await
    else {
        panic!("new")
    };
    assert_eq!(exited, ["cart"]);
    assert_eq!(event.outcome["exited"], serde_json::json!(["cart"]));
    let run = store
        .journey_run(&t, &entered[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.state, crate::RunState::Exited);
    assert_eq!(run.ended_reason.as_deref(), Some("goal event purchase"));
    assert!(
        store
            .claim_due_runs(secs(10), 10, "n", jiff::SignedDuration::from_secs(60))
            .await
            .unwrap()
            .iter()
            .all(|r| r.journey == "winback")
    );
    assert!(store.delete_journey(&t, "winback", secs(20)).await.unwrap());
    assert!(!store.delete_journey(&t, "winback", secs(20)).await.unwrap());
    assert_eq!(
        store
            .journey_run(&t, &entered[1].id)
            .await
            .unwrap()
            .unwrap()
            .state,
        crate::RunState::Canceled
    );
    assert!(store.journey(&t, "winback").await.unwrap().is_none());
}

pub async fn geofences_are_kept_per_tenant_and_replaced_by_name(store: &dyn Store) {
    use relais_core::journey::geo::Geofence;
    let t = store.create_tenant("acme", t0()).await.unwrap().id;
    let other = store.create_tenant("globex", t0()).await.unwrap().id;
    let shop = Geofence::new(45.764, 4.8357, 150.0).unwrap();
    store
        .put_geofence(&t, "shop-lyon", &shop, t0())
        .await
        .unwrap();
    let moved = Geofence::new(45.765, 4.836, 200.0).unwrap();
    let record = store
        .put_geofence(&t, "shop-lyon", &moved, secs(5))
        .await
        .unwrap();
    assert_eq!(
        (record.area.lat, record.area.radius_m, record.created_at),
        (45.765, 200.0, t0())
    );
    assert_eq!(record.geofence().unwrap(), moved);
    assert!(store.geofences(&other).await.unwrap().is_empty());
    assert_eq!(store.geofences(&t).await.unwrap().len(), 1);
    assert!(store.delete_geofence(&t, "shop-lyon").await.unwrap());
    assert!(store.geofences(&t).await.unwrap().is_empty());
}
