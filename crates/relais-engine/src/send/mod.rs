//! The accept path of `POST /v1/messages` and `/messages/batch`: validate, resolve the
//! contact, check consent, personalise, pick the route, hold for `send_at` and quiet hours,
//! and store the messages with their outbox rows in one transaction, handing those due now
//! to the running dispatcher.
//!
//! Requests are accepted in groups ([`Acceptor`]): the single sends and batches that
//! arrive while a group is being stored are prepared and stored together, one
//! transaction for all of them (group commit), and each caller gets its own answer. A 202
//! is answered only once the transaction committed, and the store and the hand-off run in
//! a task of their own, so a client that disconnects midway changes nothing of either.
//!
//! - [`request`]: the wire format and the Idempotency-Key.
//! - [`prepare`]: from checked requests to messages ready to store.
//! - [`route`]: which channel or chain a message takes.
//! - [`templated`]: what a template body becomes (a stored template rendered, a provider
//!   template checked against its registry), and the steps a customer-service window leaves.
//! - [`group`]: the group commit.

mod group;
mod prepare;
mod request;
mod route;
mod templated;

pub use group::Acceptor;
pub(crate) use prepare::zone_of_country;
pub use prepare::{QUIET_HOURS_SETTING, phone_time_zone, segments_for};
pub use request::{BadIdempotencyKey, Idempotency, MAX_BATCH, Recipient, SendRequest};
pub use route::{SANDBOX_KINDS, configured_kind};

use crate::handoff::Handoff;
use jiff::Timestamp;
use prepare::{Checked, check, prepare};
use relais_core::channel::ChannelKind;
use relais_core::contact::AddressRules;
use relais_core::status::MessageStatus;
use relais_store::{BatchRequest, NewMessage, PlannedContact, Store, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

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
    #[error("this Idempotency-Key was used for a different batch; use a new key")]
    BatchIdempotencyConflict,
    /// The content checks scored the content at the tenant's threshold and the tenant
    /// refuses such messages (`docs/trust.md`).
    #[error("{pointer}: refused by the content checks, {}", assessment.summary())]
    ContentRefused {
        pointer: String,
        assessment: relais_core::content_check::Assessment,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AcceptError {
    /// The same refusal for another request that shared the work (a group commit).
    fn share(&self) -> AcceptError {
        match self {
            AcceptError::Invalid { pointer, detail } => AcceptError::Invalid {
                pointer: pointer.clone(),
                detail: detail.clone(),
            },
            AcceptError::IdempotencyConflict { message_id } => AcceptError::IdempotencyConflict {
                message_id: message_id.clone(),
            },
            AcceptError::BatchIdempotencyConflict => AcceptError::BatchIdempotencyConflict,
            AcceptError::ContentRefused {
                pointer,
                assessment,
            } => AcceptError::ContentRefused {
                pointer: pointer.clone(),
                assessment: assessment.clone(),
            },
            AcceptError::Store(e) => AcceptError::Store(e.share()),
        }
    }
}

pub(crate) fn invalid(pointer: &str, detail: impl Into<String>) -> AcceptError {
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

/// The outcome of one item of a batch.
#[derive(Debug)]
pub enum BatchItem {
    Accepted(Accepted),
    Refused(AcceptError),
}

/// The answer to a batch request.
#[derive(Debug)]
pub struct BatchAnswer {
    pub items: Vec<BatchItem>,
    /// The batch was accepted before under this Idempotency-Key: this is the answer it got
    /// then, and nothing new was sent.
    pub replayed: bool,
}

/// What the accept path needs besides the request.
#[derive(Clone, Copy)]
pub struct AcceptContext<'a> {
    pub store: &'a Arc<dyn Store>,
    pub rules: AddressRules,
    pub now: Timestamp,
    /// Channel kinds with an adapter, for routing requests that name no channel.
    pub configured: &'a [ChannelKind],
    /// The channel kinds the dispatcher sends on without a configured channel (the
    /// sandbox's `sim`; a test's scripted adapters). A request naming any other kind the
    /// tenant has no configured channel of is refused at once.
    pub built_in: &'a [ChannelKind],
    /// The running dispatcher's hand-off queue, if messages due now go straight to it.
    pub handoff: Option<&'a Handoff>,
    /// Rewrites links to tracked short links, when the server has a public URL.
    pub links: Option<&'a crate::tracked_links::LinkTracking>,
}

/// Accepts one message: stores it (or finds it again by its Idempotency-Key).
pub async fn accept(
    ctx: AcceptContext<'_>,
    tenant: &str,
    request: SendRequest,
    idempotency: Option<Idempotency>,
) -> Result<Accepted, AcceptError> {
    accept_many(ctx, vec![(tenant.to_owned(), request, idempotency)])
        .await
        .pop()
        .unwrap_or_else(|| Err(StoreError::Corrupt("the request got no answer".into()).into()))
}

/// Accepts several messages, each as [`accept`] would, together: one look-up per kind of
/// store read and one transaction for all. The answers are in the requests' order.
pub async fn accept_many(
    ctx: AcceptContext<'_>,
    requests: Vec<(String, SendRequest, Option<Idempotency>)>,
) -> Vec<Result<Accepted, AcceptError>> {
    let jobs = requests
        .into_iter()
        .map(|(tenant, request, idempotency)| Job {
            tenant,
            work: Work::One {
                request: Box::new(request),
                idempotency,
            },
        })
        .collect();
    accept_jobs(&ctx, jobs)
        .await
        .into_iter()
        .map(|answer| match answer {
            Ok(Answer::One(accepted)) => Ok(accepted),
            Ok(Answer::Batch(_)) => {
                Err(StoreError::Corrupt("a message got a batch's answer".into()).into())
            }
            Err(e) => Err(e),
        })
        .collect()
}

/// Accepts up to [`MAX_BATCH`] messages; the valid ones are stored in one transaction, the
/// others are refused one by one (pointers are prefixed with `/messages/{index}`).
pub async fn accept_batch(
    ctx: AcceptContext<'_>,
    tenant: &str,
    requests: Vec<Box<serde_json::value::RawValue>>,
) -> Result<Vec<BatchItem>, AcceptError> {
    Ok(accept_batch_keyed(ctx, tenant, requests, None).await?.items)
}

/// [`accept_batch`] with an Idempotency-Key: the same key and body get the answer the batch
/// got the first time, another body with the same key a conflict.
pub async fn accept_batch_keyed(
    ctx: AcceptContext<'_>,
    tenant: &str,
    requests: Vec<Box<serde_json::value::RawValue>>,
    idempotency: Option<Idempotency>,
) -> Result<BatchAnswer, AcceptError> {
    let job = Job {
        tenant: tenant.to_owned(),
        work: Work::Batch {
            requests,
            idempotency,
        },
    };
    match accept_jobs(&ctx, vec![job]).await.pop() {
        Some(Ok(Answer::Batch(answer))) => Ok(answer),
        Some(Err(e)) => Err(e),
        _ => Err(StoreError::Corrupt("the request got no answer".into()).into()),
    }
}

/// One caller's request.
pub(crate) struct Job {
    pub(crate) tenant: String,
    pub(crate) work: Work,
}

pub(crate) enum Work {
    One {
        request: Box<SendRequest>,
        idempotency: Option<Idempotency>,
    },
    Batch {
        requests: Vec<Box<serde_json::value::RawValue>>,
        idempotency: Option<Idempotency>,
    },
}

impl Work {
    fn idempotency(&self) -> Option<&Idempotency> {
        match self {
            Work::One { idempotency, .. } | Work::Batch { idempotency, .. } => idempotency.as_ref(),
        }
    }
}

/// What a job got.
#[derive(Debug)]
pub(crate) enum Answer {
    One(Accepted),
    Batch(BatchAnswer),
}

/// A job whose messages are built, waiting for the transaction.
struct Built {
    job: usize,
    tenant: String,
    batch: bool,
    idempotency: Option<Idempotency>,
    results: Vec<Result<NewMessage, AcceptError>>,
}

impl Built {
    fn messages(&self) -> impl Iterator<Item = &NewMessage> {
        self.results.iter().filter_map(|r| r.as_ref().ok())
    }

    /// The answer it gets once stored.
    fn answer(self) -> Result<Answer, AcceptError> {
        let accepted = |m: &NewMessage| Accepted {
            id: m.id.clone(),
            status: m.status,
            replayed: false,
        };
        if !self.batch {
            return match self.results.into_iter().next() {
                Some(Ok(m)) => Ok(Answer::One(accepted(&m))),
                Some(Err(e)) => Err(e),
                None => Err(StoreError::Corrupt("a request built no message".into()).into()),
            };
        }
        Ok(Answer::Batch(BatchAnswer {
            items: self
                .results
                .into_iter()
                .map(|r| match r {
                    Ok(m) => BatchItem::Accepted(accepted(&m)),
                    Err(e) => BatchItem::Refused(e),
                })
                .collect(),
            replayed: false,
        }))
    }

    /// The record that answers this batch's retries.
    fn record(&self, now: Timestamp) -> Option<BatchRequest> {
        let idempotency = self.idempotency.as_ref().filter(|_| self.batch)?;
        let items: Vec<serde_json::Value> = self
            .results
            .iter()
            .enumerate()
            .map(|(index, r)| match r {
                Ok(m) => serde_json::json!({"id": m.id, "status": m.status.as_str()}),
                Err(e) => {
                    let (pointer, detail) = item_error(index, e);
                    serde_json::json!({"pointer": pointer, "detail": detail})
                }
            })
            .collect();
        Some(BatchRequest {
            tenant_id: self.tenant.clone(),
            idempotency_key: idempotency.key.clone(),
            request_hash: idempotency.request_hash.clone(),
            response: serde_json::Value::Array(items).to_string(),
            created_at: now,
        })
    }
}

/// Where and why a batch item was refused.
pub fn item_error(index: usize, e: &AcceptError) -> (String, String) {
    match e {
        AcceptError::Invalid { pointer, detail } => (pointer.clone(), detail.clone()),
        AcceptError::ContentRefused {
            pointer,
            assessment,
        } => (
            pointer.clone(),
            format!("refused by the content checks, {}", assessment.summary()),
        ),
        other => (format!("/messages/{index}"), other.to_string()),
    }
}

/// A batch's recorded answer, read back.
fn replayed_batch(record: &BatchRequest) -> Result<BatchAnswer, AcceptError> {
    let corrupt = || {
        StoreError::Corrupt(format!(
            "the recorded answer of batch `{}`",
            record.idempotency_key
        ))
    };
    let items: Vec<serde_json::Value> =
        serde_json::from_str(&record.response).map_err(|_| corrupt())?;
    let items = items
        .into_iter()
        .map(|item| {
            let text = |k: &str| item.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            match (text("id"), text("status"), text("pointer"), text("detail")) {
                (Some(id), Some(status), _, _) => Ok(BatchItem::Accepted(Accepted {
                    id,
                    status: status.parse().map_err(|_| corrupt())?,
                    replayed: true,
                })),
                (_, _, Some(pointer), Some(detail)) => {
                    Ok(BatchItem::Refused(AcceptError::Invalid { pointer, detail }))
                }
                _ => Err(corrupt()),
            }
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(BatchAnswer {
        items,
        replayed: true,
    })
}

/// The answer a request with this Idempotency-Key got before (a batch's, with `batch`),
/// or a conflict when it came with another body; `None` when the key is new.
async fn replay(
    store: &dyn Store,
    tenant: &str,
    idem: &Idempotency,
    batch: bool,
    keyed: &mut KeyedMessages,
) -> Result<Option<Answer>, AcceptError> {
    if batch {
        let Some(record) = store.batch_request(tenant, &idem.key).await? else {
            return Ok(None);
        };
        if record.request_hash != idem.request_hash {
            return Err(AcceptError::BatchIdempotencyConflict);
        }
        return Ok(Some(Answer::Batch(replayed_batch(&record)?)));
    }
    let existing = match keyed.get_mut(tenant) {
        Some(Ok(by_key)) => by_key.remove(&idem.key),
        Some(Err(e)) => return Err(AcceptError::Store(e.share())),
        None => store.message_by_idempotency_key(tenant, &idem.key).await?,
    };
    let Some(existing) = existing else {
        return Ok(None);
    };
    if existing.request_hash.as_deref() != Some(idem.request_hash.as_str()) {
        return Err(AcceptError::IdempotencyConflict {
            message_id: existing.id,
        });
    }
    Ok(Some(Answer::One(Accepted {
        id: existing.id,
        status: existing.status,
        replayed: true,
    })))
}

/// The answer `first` got, for a later request of the same group with the same key: the
/// same answer marked replayed when the bodies match, a conflict otherwise.
fn repeat_of(first: &Result<Answer, AcceptError>, same_body: bool) -> Result<Answer, AcceptError> {
    match (first, same_body) {
        (Ok(Answer::One(first)), true) => Ok(Answer::One(Accepted {
            replayed: true,
            ..first.clone()
        })),
        (Ok(Answer::One(first)), false) => Err(AcceptError::IdempotencyConflict {
            message_id: first.id.clone(),
        }),
        (Ok(Answer::Batch(first)), true) => Ok(Answer::Batch(BatchAnswer {
            items: first
                .items
                .iter()
                .map(|item| match item {
                    BatchItem::Accepted(a) => BatchItem::Accepted(Accepted {
                        replayed: true,
                        ..a.clone()
                    }),
                    BatchItem::Refused(e) => BatchItem::Refused(e.share()),
                })
                .collect(),
            replayed: true,
        })),
        (Ok(Answer::Batch(_)), false) => Err(AcceptError::BatchIdempotencyConflict),
        (Err(e), _) => Err(e.share()),
    }
}

/// A checked request of a job (a batch has one per message).
type JobItem = (usize, Result<Checked, AcceptError>);

/// A job that repeats the Idempotency-Key of an earlier job of the same group.
struct Repeat {
    job: usize,
    first: usize,
    same_body: bool,
    tenant: String,
    idem: Idempotency,
    batch: bool,
}

/// The messages accepted before with the Idempotency-Keys of a group's single requests,
/// by tenant then key, read at once (or the error that read met).
type KeyedMessages = HashMap<String, Result<HashMap<String, relais_store::Message>, StoreError>>;

async fn keyed_messages(store: &dyn Store, jobs: &[Job]) -> KeyedMessages {
    let mut keys: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for job in jobs {
        if let Work::One {
            idempotency: Some(idem),
            ..
        } = &job.work
        {
            keys.entry(job.tenant.as_str()).or_default().push(&idem.key);
        }
    }
    let mut keyed = HashMap::new();
    for (tenant, keys) in keys {
        let found = store
            .messages_by_idempotency_keys(tenant, &keys)
            .await
            .map(|messages| {
                messages
                    .into_iter()
                    .filter_map(|m| Some((m.idempotency_key.clone()?, m)))
                    .collect()
            });
        keyed.insert(tenant.to_owned(), found);
    }
    keyed
}

/// Accepts a group of jobs together: one look-up per store read, one transaction for all
/// their messages. Answers in the jobs' order.
pub(crate) async fn accept_jobs(
    ctx: &AcceptContext<'_>,
    jobs: Vec<Job>,
) -> Vec<Result<Answer, AcceptError>> {
    let mut answers: Vec<Option<Result<Answer, AcceptError>>> = jobs.iter().map(|_| None).collect();
    let mut keyed = keyed_messages(&**ctx.store, &jobs).await;
    // Replays first, and keys repeated inside the group.
    // (tenant, key, batch) → the first job with it and its body's hash.
    let mut keys: HashMap<(String, String, bool), (usize, String)> = HashMap::new();
    let mut repeats: Vec<Repeat> = Vec::new();
    let mut per_tenant: BTreeMap<String, Vec<JobItem>> = BTreeMap::new();
    let mut plans: HashMap<usize, (bool, Option<Idempotency>)> = HashMap::new();
    for (index, job) in jobs.into_iter().enumerate() {
        let Job { tenant, work } = job;
        if let Some(idem) = work.idempotency() {
            let batch = matches!(work, Work::Batch { .. });
            let key = (tenant.clone(), idem.key.clone(), batch);
            if let Some((first, hash)) = keys.get(&key) {
                repeats.push(Repeat {
                    job: index,
                    first: *first,
                    same_body: *hash == idem.request_hash,
                    tenant: tenant.clone(),
                    idem: idem.clone(),
                    batch,
                });
                continue;
            }
            match replay(&**ctx.store, &tenant, idem, batch, &mut keyed).await {
                Ok(Some(answer)) => {
                    answers[index] = Some(Ok(answer));
                    continue;
                }
                Err(e) => {
                    answers[index] = Some(Err(e));
                    continue;
                }
                Ok(None) => {
                    keys.insert(key, (index, idem.request_hash.clone()));
                }
            }
        }
        let items = per_tenant.entry(tenant).or_default();
        match work {
            Work::One {
                request,
                idempotency,
            } => {
                plans.insert(index, (false, idempotency.clone()));
                items.push((
                    index,
                    check(ctx.rules, *request, idempotency, String::new()),
                ));
            }
            Work::Batch {
                requests,
                idempotency,
            } => {
                if requests.is_empty() {
                    answers[index] = Some(Err(invalid("/messages", "the batch is empty")));
                    continue;
                }
                if requests.len() > MAX_BATCH {
                    answers[index] = Some(Err(invalid(
                        "/messages",
                        format!(
                            "the batch holds {} messages, at most {MAX_BATCH}",
                            requests.len()
                        ),
                    )));
                    continue;
                }
                plans.insert(index, (true, idempotency));
                for (item, raw) in requests.into_iter().enumerate() {
                    let base = format!("/messages/{item}");
                    items.push((
                        index,
                        match request::parse_item(&raw) {
                            Ok(request) => check(ctx.rules, request, None, base),
                            Err((pointer, detail)) => {
                                Err(invalid(&format!("{base}{pointer}"), detail))
                            }
                        },
                    ));
                }
            }
        }
    }

    // Each tenant's requests prepared together.
    let mut built: Vec<Built> = Vec::new();
    let mut contacts: Vec<PlannedContact> = Vec::new();
    let mut links: Vec<relais_store::NewTrackedLink> = Vec::new();
    let mut checks: Vec<relais_store::ContentCheckRecord> = Vec::new();
    for (tenant, items) in per_tenant {
        let order: Vec<usize> = items.iter().map(|(job, _)| *job).collect();
        match prepare(ctx, &tenant, items).await {
            Ok(prepared) => {
                contacts.extend(prepared.contacts);
                links.extend(prepared.links);
                checks.extend(prepared.checks);
                let results = prepared.messages;
                let mut by_job: BTreeMap<usize, Vec<Result<NewMessage, AcceptError>>> =
                    BTreeMap::new();
                for (job, result) in order.into_iter().zip(results) {
                    by_job.entry(job).or_default().push(result);
                }
                for (job, results) in by_job {
                    let (batch, idempotency) = plans.remove(&job).unwrap_or((false, None));
                    built.push(Built {
                        job,
                        tenant: tenant.clone(),
                        batch,
                        idempotency,
                        results,
                    });
                }
            }
            Err(e) => {
                let mut jobs = order;
                jobs.dedup();
                for job in jobs {
                    answers[job] = Some(Err(e.share()));
                }
            }
        }
    }

    // The tracked links first (see `crate::tracked_links`): refused, no message is stored.
    if !links.is_empty()
        && let Err(e) = ctx.store.insert_tracked_links(&links).await
    {
        for b in built.drain(..) {
            answers[b.job] = Some(Err(AcceptError::Store(e.share())));
        }
    }

    // The content checks' findings too: a row whose message is not stored is never read.
    if !checks.is_empty()
        && let Err(e) = ctx.store.insert_content_checks(&checks).await
    {
        for b in built.drain(..) {
            answers[b.job] = Some(Err(AcceptError::Store(e.share())));
        }
    }

    // One transaction for all. A key taken meanwhile by a request outside the group
    // refuses it: the jobs whose key is now taken answer as replays, the others go again.
    for _ in 0..3 {
        if built.is_empty() {
            break;
        }
        let messages: Vec<NewMessage> = built.iter().flat_map(Built::messages).cloned().collect();
        let records: Vec<BatchRequest> = built.iter().filter_map(|b| b.record(ctx.now)).collect();
        match store_accepted(ctx, messages, records, contacts.clone()).await {
            Ok(()) => {
                for b in built.drain(..) {
                    let job = b.job;
                    answers[job] = Some(b.answer());
                }
            }
            Err(StoreError::IdentityTaken(detail)) => {
                // Another request created one of the recipients meanwhile: the messages
                // go to the contacts that own them now (created here when still unknown).
                match take_over_contacts(ctx, &mut built, std::mem::take(&mut contacts)).await {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, %detail, "cannot resolve recipients created meanwhile");
                        for b in built.drain(..) {
                            answers[b.job] = Some(Err(AcceptError::Store(e.share())));
                        }
                    }
                }
            }
            Err(StoreError::Conflict(detail)) => {
                let mut again = Vec::new();
                let mut replayed_any = false;
                for b in built.drain(..) {
                    let taken = match &b.idempotency {
                        None => None,
                        // Read again: the key may have been taken since the group began.
                        Some(idem) => {
                            replay(&**ctx.store, &b.tenant, idem, b.batch, &mut HashMap::new())
                                .await
                                .transpose()
                        }
                    };
                    match taken {
                        Some(answer) => {
                            replayed_any = true;
                            answers[b.job] = Some(answer);
                        }
                        None => again.push(b),
                    }
                }
                if !replayed_any {
                    for b in again {
                        answers[b.job] = Some(Err(StoreError::Conflict(detail.clone()).into()));
                    }
                    break;
                }
                built = again;
            }
            Err(e) => {
                for b in built.drain(..) {
                    answers[b.job] = Some(Err(AcceptError::Store(e.share())));
                }
            }
        }
    }
    for b in built {
        answers[b.job] = Some(Err(StoreError::Conflict(
            "an Idempotency-Key kept being taken by other requests".into(),
        )
        .into()));
    }

    // Keys repeated inside the group answer like retries of the first, unless the first
    // lost the key to a request of another group that committed first: then the key's
    // owner answers them, and a retry of that owner's body is its replay, not a conflict.
    for repeat in repeats {
        let answer = match &answers[repeat.first] {
            Some(Err(
                AcceptError::IdempotencyConflict { .. } | AcceptError::BatchIdempotencyConflict,
            )) if !repeat.same_body => {
                let mut from_the_store = KeyedMessages::new();
                match replay(
                    &**ctx.store,
                    &repeat.tenant,
                    &repeat.idem,
                    repeat.batch,
                    &mut from_the_store,
                )
                .await
                {
                    Ok(Some(answer)) => Ok(answer),
                    Ok(None) => Err(StoreError::Conflict(
                        "an Idempotency-Key kept being taken by other requests".into(),
                    )
                    .into()),
                    Err(e) => Err(e),
                }
            }
            Some(first) => repeat_of(first, repeat.same_body),
            None => Err(StoreError::Corrupt("a request got no answer".into()).into()),
        };
        answers[repeat.job] = Some(answer);
    }
    answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| Err(StoreError::Corrupt("a request got no answer".into()).into()))
        })
        .collect()
}

/// After [`StoreError::IdentityTaken`]: the planned contacts are resolved again, the
/// stores' own way (created in a transaction of their own when still unknown, found when
/// another request created them), and the messages that named a planned contact name the
/// contact that owns the recipient now. Like a consent recorded between the accept's read
/// of the ledgers and its commit, a contact created meanwhile is taken as it was read.
async fn take_over_contacts(
    ctx: &AcceptContext<'_>,
    built: &mut [Built],
    planned: Vec<PlannedContact>,
) -> Result<(), StoreError> {
    let mut by_tenant: BTreeMap<String, Vec<PlannedContact>> = BTreeMap::new();
    for p in planned {
        by_tenant.entry(p.tenant_id.clone()).or_default().push(p);
    }
    let mut owner_of: HashMap<String, String> = HashMap::new();
    for (tenant, planned) in by_tenant {
        let identities: Vec<relais_core::contact::Identity> =
            planned.iter().map(|p| p.identity.clone()).collect();
        let mut attempt = 0;
        let resolved = loop {
            match ctx
                .store
                .resolve_or_create_contacts(&tenant, &identities, ctx.now)
                .await
            {
                Err(StoreError::Conflict(_)) if attempt < 3 => attempt += 1,
                other => break other?,
            }
        };
        for (p, (contact, _)) in planned.into_iter().zip(resolved) {
            owner_of.insert(p.id, contact.id);
        }
    }
    for b in built.iter_mut() {
        for message in b.results.iter_mut().flatten() {
            if let Some(owner) = message.contact_id.as_ref().and_then(|c| owner_of.get(c)) {
                message.contact_id = Some(owner.clone());
            }
        }
    }
    Ok(())
}

/// Stores messages (and batch answers) in one transaction; those due now go straight to the
/// running dispatcher when its queue has room (their outbox rows leased to it), the others
/// wait in the outbox for a claim. The write and the hand-off run in a task of their own:
/// a caller dropped midway (a client that disconnected) leaves neither half done.
async fn store_accepted(
    ctx: &AcceptContext<'_>,
    messages: Vec<NewMessage>,
    records: Vec<BatchRequest>,
    contacts: Vec<PlannedContact>,
) -> Result<(), StoreError> {
    if messages.is_empty() && records.is_empty() && contacts.is_empty() {
        return Ok(());
    }
    let due_now = messages
        .iter()
        .filter(|m| m.due_at.is_some_and(|due| due <= ctx.now))
        .count();
    let reservation = ctx.handoff.and_then(|h| h.reserve(due_now, ctx.now));
    let store = ctx.store.clone();
    let task = tokio::spawn(async move {
        store
            .insert_accepted(
                &messages,
                reservation.as_ref().map(|r| r.lease()),
                &records,
                &contacts,
            )
            .await?;
        crate::counters::count_accepted(&messages);
        if let Some(reservation) = reservation {
            let owner = reservation.lease().owner.clone();
            if let Err(ids) = reservation.deliver(&messages)
                && let Err(e) = store.release_leases(&owner, &ids).await
            {
                // Stored all the same: they are claimed once the lease runs out.
                tracing::warn!(error = %e, count = ids.len(), "cannot give up the leases of messages the stopped dispatcher did not take");
            }
        }
        Ok(())
    });
    task.await.map_err(|e| {
        StoreError::Failed(format!("the write of accepted messages ended badly: {e}"))
    })?
}
