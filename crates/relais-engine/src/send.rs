//! The accept path of `POST /v1/messages`: validate, resolve the contact, check consent,
//! personalise, pick the route, hold for `send_at` and quiet hours, and store the message
//! with its outbox row in one transaction.

use crate::handoff::{Handoff, Reservation};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use relais_core::channel::ChannelKind;
use relais_core::consent::{Purpose, may_send};
use relais_core::contact::{AddressRules, Contact, Identity};
use relais_core::content::{Body, ChannelCapabilities, Content, TextLimit, degrade};
use relais_core::fallback::FallbackChain;
use relais_core::phone::normalize_phone;
use relais_core::quiet_hours::{QuietHours, next_allowed};
use relais_core::retry::Validity;
use relais_core::sender::Sender;
use relais_core::sms::segment_info;
use relais_core::status::MessageStatus;
use relais_core::template::{ContentTemplate, ContentTemplateError, template_context};
use relais_store::{MessageEvent, NewMessage, Store, StoreError};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Most messages one batch request may carry.
pub const MAX_BATCH: usize = 10_000;

/// The tenant setting holding quiet-hours windows (a JSON list, see `docs/messages.md`).
pub const QUIET_HOURS_SETTING: &str = "quiet_hours";

/// Who a message goes to: an E.164 number, a contact, or an address on a channel.
#[derive(Debug, Clone)]
pub enum Recipient {
    Phone(String),
    Contact {
        contact_id: String,
    },
    Address {
        channel: ChannelKind,
        address: String,
    },
}

impl<'de> Deserialize<'de> for Recipient {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ContactRef {
            contact_id: String,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct AddressRef {
            channel: ChannelKind,
            address: String,
        }
        const EXPECTED: &str = "`to` must be a phone number such as \"+33612345678\", {\"contact_id\": …} or {\"channel\": …, \"address\": …}";
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(phone) => Ok(Recipient::Phone(phone)),
            value @ serde_json::Value::Object(_) if value.get("contact_id").is_some() => {
                ContactRef::deserialize(value)
                    .map(|c| Recipient::Contact {
                        contact_id: c.contact_id,
                    })
                    .map_err(|e| D::Error::custom(format!("{e}; {EXPECTED}")))
            }
            value @ serde_json::Value::Object(_) => AddressRef::deserialize(value)
                .map(|a| Recipient::Address {
                    channel: a.channel,
                    address: a.address,
                })
                .map_err(|e| D::Error::custom(format!("{e}; {EXPECTED}"))),
            _ => Err(D::Error::custom(EXPECTED)),
        }
    }
}

/// The body of `POST /v1/messages`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    pub to: Recipient,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub channels: Option<FallbackChain>,
    #[serde(default)]
    pub content: Option<Content>,
    /// A text template (`Bonjour {{ first_name }}`), instead of `content`.
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub variables: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub purpose: Option<Purpose>,
    /// The sender shown to the recipient (`MyShop`, `+33612345678`, a short code); the
    /// dispatcher paces each sender at its own rate.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub send_at: Option<Timestamp>,
    #[serde(default)]
    pub validity: Option<Validity>,
}

/// Why a request was refused; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The request is wrong at `pointer` (a JSON pointer into the body).
    #[error("{pointer}: {detail}")]
    Invalid { pointer: String, detail: String },
    #[error(
        "this Idempotency-Key was used for a different request (message {message_id}); use a new key"
    )]
    IdempotencyConflict { message_id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(pointer: &str, detail: impl Into<String>) -> AcceptError {
    AcceptError::Invalid {
        pointer: pointer.to_owned(),
        detail: detail.into(),
    }
}

/// The answer to an accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub id: String,
    pub status: MessageStatus,
    /// The message already existed under this Idempotency-Key; nothing new was sent.
    pub replayed: bool,
}

/// An `Idempotency-Key` with the digest of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

impl Idempotency {
    /// `body` is the parsed JSON body; its canonical form (sorted keys) is hashed, so
    /// spacing and key order do not matter.
    pub fn new(key: &str, body: &serde_json::Value) -> Result<Self, AcceptError> {
        let key = key.trim();
        if key.is_empty() || key.len() > 255 {
            return Err(invalid(
                "/",
                "the Idempotency-Key header must hold 1 to 255 characters",
            ));
        }
        let mut canonical = String::new();
        write_canonical(body, &mut canonical);
        let digest = Sha256::digest(canonical.as_bytes());
        Ok(Idempotency {
            key: key.to_owned(),
            request_hash: hex::encode(digest),
        })
    }
}

/// JSON with object keys sorted at every level, so that key order never changes a hash.
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The channel kinds a sandbox server routes to when a request names no channel.
pub const SANDBOX_KINDS: &[ChannelKind] = &[ChannelKind::Sim];

/// What the accept path needs besides the request.
#[derive(Clone, Copy)]
pub struct AcceptContext<'a> {
    pub store: &'a dyn Store,
    pub rules: AddressRules,
    pub now: Timestamp,
    /// Channel kinds with an adapter, for routing requests that name no channel.
    pub configured: &'a [ChannelKind],
    /// The running dispatcher's hand-off queue, if messages due now go straight to it.
    pub handoff: Option<&'a Handoff>,
}

/// Stores accepted messages in one transaction. Those due now go straight to the running
/// dispatcher when its queue has room (their outbox rows leased to it); the others wait
/// in the outbox for a claim.
async fn store_accepted(ctx: AcceptContext<'_>, messages: &[NewMessage]) -> Result<(), StoreError> {
    let due_now = messages
        .iter()
        .filter(|m| m.due_at.is_some_and(|due| due <= ctx.now))
        .count();
    let reservation = ctx.handoff.and_then(|h| h.reserve(due_now, ctx.now));
    ctx.store
        .insert_messages_leased(messages, reservation.as_ref().map(Reservation::lease))
        .await?;
    if let Some(reservation) = reservation {
        let owner = reservation.lease().owner.clone();
        if let Err(ids) = reservation.deliver(messages)
            && let Err(e) = ctx.store.release_leases(&owner, &ids).await
        {
            // Stored all the same: they are claimed once the lease runs out.
            tracing::warn!(error = %e, count = ids.len(), "cannot give up the leases of messages the stopped dispatcher did not take");
        }
    }
    Ok(())
}

/// Accepts one message: stores it (or finds it again by its Idempotency-Key).
pub async fn accept(
    ctx: AcceptContext<'_>,
    tenant: &str,
    request: SendRequest,
    idempotency: Option<Idempotency>,
) -> Result<Accepted, AcceptError> {
    if let Some(idem) = &idempotency
        && let Some(replay) = replay(ctx.store, tenant, idem).await?
    {
        return Ok(replay);
    }
    let checked = check(ctx, request, idempotency.clone(), String::new());
    let message = prepare_all(ctx, tenant, vec![checked])
        .await?
        .pop()
        .unwrap_or_else(|| Err(invalid("/", "nothing to send")))?;
    let accepted = Accepted {
        id: message.id.clone(),
        status: message.status,
        replayed: false,
    };
    match store_accepted(ctx, std::slice::from_ref(&message)).await {
        Ok(()) => Ok(accepted),
        // Two requests with one key raced; the loser answers like a replay.
        Err(StoreError::Conflict(detail)) => match &idempotency {
            Some(idem) => replay(ctx.store, tenant, idem)
                .await?
                .ok_or_else(|| StoreError::Conflict(detail).into()),
            None => Err(StoreError::Conflict(detail).into()),
        },
        Err(e) => Err(e.into()),
    }
}

async fn replay(
    store: &dyn Store,
    tenant: &str,
    idem: &Idempotency,
) -> Result<Option<Accepted>, AcceptError> {
    let Some(existing) = store.message_by_idempotency_key(tenant, &idem.key).await? else {
        return Ok(None);
    };
    if existing.request_hash.as_deref() != Some(idem.request_hash.as_str()) {
        return Err(AcceptError::IdempotencyConflict {
            message_id: existing.id,
        });
    }
    Ok(Some(Accepted {
        id: existing.id,
        status: existing.status,
        replayed: true,
    }))
}

/// The outcome of one item of a batch.
#[derive(Debug)]
pub enum BatchItem {
    Accepted(Accepted),
    Refused(AcceptError),
}

/// Accepts up to [`MAX_BATCH`] messages; the valid ones are stored in one transaction, the
/// others are refused one by one (pointers are prefixed with `/messages/{index}`).
pub async fn accept_batch(
    ctx: AcceptContext<'_>,
    tenant: &str,
    requests: Vec<Box<serde_json::value::RawValue>>,
) -> Result<Vec<BatchItem>, AcceptError> {
    if requests.is_empty() {
        return Err(invalid("/messages", "the batch is empty"));
    }
    if requests.len() > MAX_BATCH {
        return Err(invalid(
            "/messages",
            format!(
                "the batch holds {} messages, at most {MAX_BATCH}",
                requests.len()
            ),
        ));
    }
    let mut checked = Vec::with_capacity(requests.len());
    for (index, raw) in requests.into_iter().enumerate() {
        let base = format!("/messages/{index}");
        checked.push(match serde_path_to_request(&raw) {
            Ok(request) => check(ctx, request, None, base),
            Err((pointer, detail)) => Err(invalid(&format!("{base}{pointer}"), detail)),
        });
    }
    let mut items = Vec::new();
    let mut messages = Vec::new();
    for prepared in prepare_all(ctx, tenant, checked).await? {
        match prepared {
            Ok(message) => {
                items.push(BatchItem::Accepted(Accepted {
                    id: message.id.clone(),
                    status: message.status,
                    replayed: false,
                }));
                messages.push(message);
            }
            Err(e) => items.push(BatchItem::Refused(e)),
        }
    }
    store_accepted(ctx, &messages).await?;
    Ok(items)
}

/// One message of a batch, read from its own JSON text (the batch body is parsed once,
/// without building a JSON tree per message).
fn serde_path_to_request(
    raw: &serde_json::value::RawValue,
) -> Result<SendRequest, (String, String)> {
    let de = &mut serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize(de).map_err(|e| {
        let mut pointer = String::new();
        for segment in e.path().iter() {
            use serde_path_to_error::Segment;
            match segment {
                Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
                Segment::Map { key } | Segment::Enum { variant: key } => {
                    pointer.push('/');
                    pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                }
                Segment::Unknown => pointer.push_str("/?"),
            }
        }
        (pointer, e.into_inner().to_string())
    })
}

/// Who a checked request goes to, before the store is asked.
enum Target {
    Contact(String),
    Identity(Identity),
}

/// A request that passed the checks needing no store.
struct Checked {
    request: SendRequest,
    purpose: Purpose,
    sender: Option<Sender>,
    content: Content,
    target: Target,
    /// The country of the number in `to`, when `to` is a phone number (parsing it again
    /// for quiet hours costs as much as the rest of the accept path).
    region: Option<Option<String>>,
    idempotency: Option<Idempotency>,
    /// Prefix of the JSON pointers of its errors (`/messages/3` in a batch).
    base: String,
}

/// The checks that need no store, in the order the request is read: purpose, content,
/// recipient.
fn check(
    ctx: AcceptContext<'_>,
    request: SendRequest,
    idempotency: Option<Idempotency>,
    base: String,
) -> Result<Checked, AcceptError> {
    let at = |p: &str| format!("{base}{p}");
    let purpose = request.purpose.clone().unwrap_or(Purpose::Transactional);
    if matches!(purpose, Purpose::All) {
        return Err(invalid(
            &at("/purpose"),
            "a message cannot be sent for purpose `all`",
        ));
    }
    let sender = request
        .from
        .as_deref()
        .map(Sender::parse)
        .transpose()
        .map_err(|e| invalid(&at("/from"), e.to_string()))?;
    let content = match (&request.content, &request.template) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                &at("/template"),
                "give either `content` or `template`, not both",
            ));
        }
        (Some(c), None) => c.clone(),
        (None, Some(t)) => Content::text(t.clone()),
        (None, None) => {
            return Err(invalid(
                &at("/content"),
                "`content` or `template` is required",
            ));
        }
    };
    content
        .validate()
        .map_err(|e| invalid(&at("/content"), e.to_string()))?;
    let pointer = at("/to");
    let mut region = None;
    let target = match &request.to {
        Recipient::Contact { contact_id } => Target::Contact(contact_id.clone()),
        Recipient::Phone(raw) => {
            let phone = normalize_phone(raw, ctx.rules.default_country)
                .map_err(|e| invalid(&pointer, e.to_string()))?;
            region = Some(phone.region());
            Target::Identity(Identity {
                channel: ChannelKind::Sms,
                address: phone.into_string(),
            })
        }
        Recipient::Address { channel, address } => Target::Identity(
            Identity::parse(*channel, address, ctx.rules)
                .map_err(|e| invalid(&format!("{pointer}/address"), e.to_string()))?,
        ),
    };
    Ok(Checked {
        request,
        purpose,
        sender,
        content,
        target,
        region,
        idempotency,
        base,
    })
}

/// A message built but not yet checked against consent and quiet hours.
struct Draft {
    message: NewMessage,
    kind: ChannelKind,
    purpose: Purpose,
    send_at: Option<Timestamp>,
    timezone: Option<String>,
    region: Option<Option<String>>,
    base: String,
}

/// Everything but the write, for several requests at once: the recipients are resolved
/// (and created) together, the consent ledgers and the quiet hours read once. The outer
/// error is a store failure (nothing may be stored); the inner ones refuse one request.
async fn prepare_all(
    ctx: AcceptContext<'_>,
    tenant: &str,
    checked: Vec<Result<Checked, AcceptError>>,
) -> Result<Vec<Result<NewMessage, AcceptError>>, AcceptError> {
    // Recipients: every address of the batch in one look-up, the unknown ones created in
    // one transaction.
    let identities: Vec<Identity> = checked
        .iter()
        .filter_map(|c| match c {
            Ok(Checked {
                target: Target::Identity(identity),
                ..
            }) => Some(identity.clone()),
            _ => None,
        })
        .collect();
    let mut resolved = resolve_identities(ctx, tenant, &identities)
        .await?
        .into_iter();
    let mut templates: HashMap<String, ContentTemplate> = HashMap::new();
    let mut channels = ChannelNames::new();
    let mut drafts: Vec<Result<Draft, AcceptError>> = Vec::with_capacity(checked.len());
    for item in checked {
        let checked = match item {
            Ok(c) => c,
            Err(e) => {
                drafts.push(Err(e));
                continue;
            }
        };
        let (contact, address) = match &checked.target {
            Target::Identity(identity) => match resolved.next() {
                Some(contact) => (contact, identity.address.clone()),
                None => {
                    return Err(StoreError::Corrupt("a recipient was not resolved".into()).into());
                }
            },
            Target::Contact(contact_id) => {
                match contact_by_id(ctx, tenant, contact_id, &checked.base).await {
                    Ok(found) => found,
                    Err(e @ AcceptError::Store(_)) => return Err(e),
                    Err(e) => {
                        drafts.push(Err(e));
                        continue;
                    }
                }
            }
        };
        match draft(
            ctx,
            tenant,
            checked,
            contact,
            address,
            &mut templates,
            &mut channels,
        )
        .await
        {
            Err(e @ AcceptError::Store(_)) => return Err(e),
            other => drafts.push(other),
        }
    }

    // Consent ledgers of all the recipients in one query; quiet hours once.
    let mut contact_ids: Vec<String> = drafts
        .iter()
        .filter_map(|d| d.as_ref().ok())
        .filter_map(|d| d.message.contact_id.clone())
        .collect();
    contact_ids.sort_unstable();
    contact_ids.dedup();
    let ledgers = if contact_ids.is_empty() {
        HashMap::new()
    } else {
        ctx.store.consents_of(tenant, &contact_ids).await?
    };
    let mut quiet: Option<QuietHours> = None;
    let mut prepared = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let draft = match draft {
            Ok(d) => d,
            Err(e) => {
                prepared.push(Err(e));
                continue;
            }
        };
        let ledger = draft
            .message
            .contact_id
            .as_ref()
            .and_then(|id| ledgers.get(id))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let decision = may_send(ledger, draft.kind, &draft.purpose);
        if !decision.allowed {
            // A refusal is stored as a rejected message, so the sender can see why.
            let mut message = draft.message;
            message.events.push(
                MessageEvent::new(MessageStatus::Rejected, ctx.now)
                    .reason(decision.code)
                    .detail(decision.explanation)
                    .channel(draft.kind.as_str()),
            );
            message.status = MessageStatus::Rejected;
            prepared.push(Ok(message));
            continue;
        }
        let quiet = match &quiet {
            Some(q) => q,
            None => {
                let loaded = match ctx.store.setting(tenant, QUIET_HOURS_SETTING).await? {
                    Some(v) => serde_json::from_value(v).unwrap_or_default(),
                    None => QuietHours::default(),
                };
                quiet.insert(loaded)
            }
        };
        prepared.push(schedule(ctx.now, draft, quiet));
    }
    Ok(prepared)
}

/// The contacts of `identities`, created when unknown; retried when a concurrent request
/// created one of them meanwhile.
async fn resolve_identities(
    ctx: AcceptContext<'_>,
    tenant: &str,
    identities: &[Identity],
) -> Result<Vec<Contact>, AcceptError> {
    if identities.is_empty() {
        return Ok(Vec::new());
    }
    let mut attempt = 0;
    loop {
        match ctx
            .store
            .resolve_or_create_contacts(tenant, identities, ctx.now)
            .await
        {
            Err(StoreError::Conflict(_)) if attempt < 3 => attempt += 1,
            other => return Ok(other?),
        }
    }
}

/// A contact named by id, and the address to send to.
async fn contact_by_id(
    ctx: AcceptContext<'_>,
    tenant: &str,
    contact_id: &str,
    base: &str,
) -> Result<(Contact, String), AcceptError> {
    let pointer = format!("{base}/to/contact_id");
    let contact = ctx
        .store
        .contact(tenant, contact_id)
        .await?
        .ok_or_else(|| invalid(&pointer, format!("no contact {contact_id} in this tenant")))?;
    let address = contact
        .identities
        .iter()
        .find(|i| i.channel.is_phone_addressed())
        .or_else(|| contact.identities.first())
        .map(|i| i.address.clone())
        .ok_or_else(|| {
            invalid(
                &pointer,
                "the contact has no identity (phone number or address) to send to",
            )
        })?;
    Ok((contact, address))
}

/// Routes and personalises one request for its contact. `templates` keeps the templates
/// compiled for earlier requests of the batch, by content.
async fn draft(
    ctx: AcceptContext<'_>,
    tenant: &str,
    checked: Checked,
    contact: Contact,
    address: String,
    templates: &mut HashMap<String, ContentTemplate>,
    channels: &mut ChannelNames,
) -> Result<Draft, AcceptError> {
    let Checked {
        mut request,
        purpose,
        sender,
        content,
        idempotency,
        region,
        base,
        ..
    } = checked;
    let at = |p: &str| format!("{base}{p}");
    let now = ctx.now;
    let named = resolve_channel_names(ctx.store, tenant, &mut request, &base, channels).await?;
    let chain = pick_route(&request, &contact, &address, ctx.configured, &named, &at)?;
    let first = chain
        .steps()
        .first()
        .ok_or_else(|| invalid(&at("/channels"), "the chain is empty"))?;
    let kind = kind_of(
        &named,
        &first.channel,
        &at(if request.channels.is_some() {
            "/channels/0"
        } else {
            "/channel"
        }),
    )?;
    chain
        .check_capabilities(|name| {
            name.parse()
                .ok()
                .or_else(|| named.get(name).copied())
                .map(ChannelCapabilities::for_kind)
        })
        .map_err(|e| invalid(&at("/channels"), e.to_string()))?;

    // Personalise with the contact's attributes and the request's variables.
    let template_pointer = if request.template.is_some() {
        "/template"
    } else {
        "/content"
    };
    let context = template_context(&contact.attributes, &request.variables);
    let key = serde_json::to_string(&content).ok();
    let compiled = match key.as_ref().and_then(|k| templates.get(k)) {
        Some(t) => Ok(t.clone()),
        None => ContentTemplate::compile(&content).inspect(|t| {
            if let Some(k) = key {
                templates.insert(k, t.clone());
            }
        }),
    };
    let rendered = compiled
        .and_then(|t| t.render(&context))
        .map_err(|e| match e {
            ContentTemplateError::Field { field, source } => {
                let pointer = if request.template.is_some() {
                    at(template_pointer)
                } else {
                    at(&format!(
                        "/content/{}",
                        field
                            .replace('.', "/")
                            .replace(['[', ']'], "/")
                            .replace("//", "/")
                            .trim_end_matches('/')
                    ))
                };
                invalid(&pointer, source.to_string())
            }
            other => invalid(&at(template_pointer), other.to_string()),
        })?;

    let segments = segments_for(&rendered, kind);
    let chain_json = serde_json::to_value(&chain).unwrap_or(serde_json::Value::Null);
    let content_json = serde_json::to_value(&rendered).unwrap_or(serde_json::Value::Null);
    let expires_at = request.validity.map(|v| v.expires_at(now));
    let message = NewMessage {
        id: relais_core::ids::new_id(),
        tenant_id: tenant.to_owned(),
        contact_id: Some(contact.id.clone()),
        to_address: address,
        channel: first.channel.clone(),
        step: 0,
        chain: chain_json,
        content: content_json,
        purpose: purpose.as_str().to_owned(),
        sender: sender.map(Sender::into_string),
        status: MessageStatus::Accepted,
        segments,
        idempotency_key: idempotency.as_ref().map(|i| i.key.clone()),
        request_hash: idempotency.map(|i| i.request_hash),
        send_at: request.send_at,
        expires_at,
        created_at: now,
        events: vec![MessageEvent::new(MessageStatus::Accepted, now)],
        due_at: None,
    };
    Ok(Draft {
        message,
        kind,
        purpose,
        send_at: request.send_at,
        timezone: contact.timezone,
        region,
        base,
    })
}

/// When: `send_at`, then the recipient's quiet hours.
fn schedule(now: Timestamp, draft: Draft, quiet: &QuietHours) -> Result<NewMessage, AcceptError> {
    let Draft {
        mut message,
        kind,
        purpose,
        send_at,
        timezone,
        region,
        base,
    } = draft;
    let wanted = send_at.filter(|s| *s > now).unwrap_or(now);
    let country = region.unwrap_or_else(|| {
        normalize_phone(&message.to_address, None)
            .ok()
            .and_then(|p| p.region())
    });
    let tz = timezone
        .as_deref()
        .and_then(|tz| TimeZone::get(tz).ok())
        .or_else(|| country.as_deref().and_then(zone_of_country))
        .unwrap_or(TimeZone::UTC);
    let due = next_allowed(wanted, &tz, country.as_deref(), &purpose, quiet)
        .map_err(|e| invalid(&format!("{base}/purpose"), e.to_string()))?;
    if due > now {
        let (reason, detail) = if due > wanted {
            ("quiet_hours", format!("held by quiet hours until {due}"))
        } else {
            ("send_at", format!("scheduled for {due}"))
        };
        message.events.push(
            MessageEvent::new(MessageStatus::Scheduled, now)
                .reason(reason)
                .detail(detail),
        );
        message.status = MessageStatus::Scheduled;
    } else {
        message
            .events
            .push(MessageEvent::new(MessageStatus::Queued, now).channel(kind.as_str()));
        message.status = MessageStatus::Queued;
    }
    message.due_at = Some(due);
    Ok(message)
}

/// The time zone most of a country's people live in, for contacts without one.
fn zone_of_country(country: &str) -> Option<TimeZone> {
    let zone = match country {
        "FR" | "MC" => "Europe/Paris",
        "BE" => "Europe/Brussels",
        "CH" => "Europe/Zurich",
        "DE" => "Europe/Berlin",
        "ES" => "Europe/Madrid",
        "IT" => "Europe/Rome",
        "GB" => "Europe/London",
        "NL" => "Europe/Amsterdam",
        "PT" => "Europe/Lisbon",
        "LU" => "Europe/Luxembourg",
        "RE" => "Indian/Reunion",
        "GP" | "MF" | "BL" => "America/Guadeloupe",
        "MQ" => "America/Martinique",
        "GF" => "America/Cayenne",
        "YT" => "Indian/Mayotte",
        "PM" => "America/Miquelon",
        "CA" => "America/Toronto",
        "US" => "America/New_York",
        _ => return None,
    };
    TimeZone::get(zone).ok()
}

/// SMS segments of the text, on channels whose limit counts segments or that simulate
/// phones.
pub fn segments_for(content: &Content, kind: ChannelKind) -> Option<i64> {
    let caps = ChannelCapabilities::for_kind(kind);
    let sms_like = matches!(caps.text_limit, TextLimit::SmsSegments(_)) || kind == ChannelKind::Sim;
    if !sms_like {
        return None;
    }
    let degraded = degrade(content, caps);
    match &degraded.body {
        Body::Text(text) => i64::try_from(segment_info(text).segments).ok(),
        _ => None,
    }
}

pub(crate) fn channel_kind(name: &str, pointer: &str) -> Result<ChannelKind, AcceptError> {
    name.parse::<ChannelKind>()
        .map_err(|e| invalid(pointer, e.to_string()))
}

/// The channel kind a configured channel of provider kind `kind` (`smpp`, …) sends on.
pub fn configured_kind(kind: &str) -> Option<ChannelKind> {
    match kind {
        "smpp" => Some(ChannelKind::Sms),
        other => other.parse().ok(),
    }
}

/// A channel kind, or the kind of a configured channel named in the request.
fn kind_of(
    named: &HashMap<String, ChannelKind>,
    name: &str,
    pointer: &str,
) -> Result<ChannelKind, AcceptError> {
    match named.get(name) {
        Some(kind) => Ok(*kind),
        None => channel_kind(name, pointer),
    }
}

/// Replaces the names of the tenant's configured channels in `channel` / `channels` by their
/// ids (what the dispatcher routes on), and says which kind each id sends on.
async fn resolve_channel_names(
    store: &dyn Store,
    tenant: &str,
    request: &mut SendRequest,
    base: &str,
    known: &mut ChannelNames,
) -> Result<HashMap<String, ChannelKind>, AcceptError> {
    // A plain function of `base`: a `&dyn Fn` held across the awaits would make the
    // accept future not `Send`.
    let at = |p: &str| format!("{base}{p}");
    let mut named = HashMap::new();
    if let Some(name) = &mut request.channel
        && let Some((id, kind)) =
            configured_channel(store, tenant, name, &at("/channel"), known).await?
    {
        *name = id.clone();
        named.insert(id, kind);
    }
    if let Some(chain) = &request.channels {
        let mut steps = chain.steps().to_vec();
        let mut changed = false;
        for (i, step) in steps.iter_mut().enumerate() {
            let pointer = at(&format!("/channels/{i}"));
            if let Some((id, kind)) =
                configured_channel(store, tenant, &step.channel, &pointer, known).await?
            {
                step.channel = id.clone();
                named.insert(id, kind);
                changed = true;
            }
        }
        if changed {
            request.channels = Some(
                FallbackChain::new(steps).map_err(|e| invalid(&at("/channels"), e.to_string()))?,
            );
        }
    }
    Ok(named)
}

/// The id and kind of the configured channel `name` names; `None` for a channel kind or an
/// unknown name (refused later as an unknown channel).
async fn configured_channel(
    store: &dyn Store,
    tenant: &str,
    name: &str,
    pointer: &str,
    known: &mut ChannelNames,
) -> Result<Option<(String, ChannelKind)>, AcceptError> {
    if name.parse::<ChannelKind>().is_ok() {
        return Ok(None);
    }
    if let Some(found) = known.get(name) {
        return Ok(found.clone());
    }
    let Some(record) = store.channel_by_name_or_id(tenant, name).await? else {
        known.insert(name.to_owned(), None);
        return Ok(None);
    };
    let kind = configured_kind(&record.kind).ok_or_else(|| {
        invalid(
            pointer,
            format!(
                "channel `{name}` (kind `{}`) does not send messages",
                record.kind
            ),
        )
    })?;
    let found = Some((record.id, kind));
    known.insert(name.to_owned(), found.clone());
    Ok(found)
}

/// The configured channels a batch's requests named, by the name they used (`None`: not
/// a configured channel), so that a batch of 10,000 to one channel looks it up once.
type ChannelNames = HashMap<String, Option<(String, ChannelKind)>>;

fn pick_route(
    request: &SendRequest,
    contact: &Contact,
    address: &str,
    configured: &[ChannelKind],
    named: &HashMap<String, ChannelKind>,
    at: &dyn Fn(&str) -> String,
) -> Result<FallbackChain, AcceptError> {
    match (&request.channel, &request.channels) {
        (Some(_), Some(_)) => Err(invalid(
            &at("/channels"),
            "give either `channel` or `channels`, not both",
        )),
        (Some(channel), None) => {
            kind_of(named, channel, &at("/channel"))?;
            Ok(FallbackChain::single(channel.clone()))
        }
        (None, Some(chain)) => {
            for (i, step) in chain.steps().iter().enumerate() {
                kind_of(named, &step.channel, &at(&format!("/channels/{i}")))?;
            }
            Ok(chain.clone())
        }
        (None, None) => {
            if let Some(identity) = contact
                .identities
                .iter()
                .find(|i| i.channel != ChannelKind::Sim && configured.contains(&i.channel))
            {
                return Ok(FallbackChain::single(identity.channel.as_str()));
            }
            let phone = normalize_phone(address, None).is_ok()
                || contact
                    .identities
                    .iter()
                    .any(|i| i.channel.is_phone_addressed());
            if phone && configured.contains(&ChannelKind::Sim) {
                return Ok(FallbackChain::single(ChannelKind::Sim.as_str()));
            }
            Err(invalid(
                &at("/channel"),
                "no configured channel reaches this contact; name one with `channel`",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_hash_ignores_key_order_but_not_content() {
        let a: serde_json::Value = serde_json::from_str(
            r#"{"to": "+33612345678", "content": {"text": "Hi", "buttons": []}}"#,
        )
        .unwrap_or_default();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"content":{"buttons":[],"text":"Hi"},"to":"+33612345678"}"#)
                .unwrap_or_default();
        let c: serde_json::Value = serde_json::from_str(
            r#"{"to": "+33612345678", "content": {"text": "Ho", "buttons": []}}"#,
        )
        .unwrap_or_default();
        let hash = |v: &serde_json::Value| Idempotency::new("k", v).map(|i| i.request_hash).ok();
        assert!(hash(&a).is_some());
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(hash(&a), hash(&c));
        assert!(Idempotency::new("  ", &a).is_err());
    }
}
