//! Relais as an SMSC (`relais serve --smpp-listen`): ESMEs bind with a system_id/password
//! issued per tenant, each `submit_sm` becomes an A2P message through [`crate::send::accept`]
//! (consent, quiet hours and routing apply), `submit_sm_resp` carries the Relais message id,
//! and the message's final status goes back to the ESME as a `deliver_sm` receipt.
//!
//! Credentials are stored as channels of kind `smpp_server` (config: `system_id` and the
//! password's argon2id hash, a PHC string with its salt), so they live in the tenant's
//! store and need no table of their own. Credentials issued before argon2 hold an unsalted
//! SHA-256; they still bind, and their hash is upgraded to argon2 on their next bind.
//! Hashes are computed on the blocking pool, a few at a time: each takes ~19 MiB and tens
//! of milliseconds, which must not stall the async workers or let a flood of binds
//! exhaust memory.

use crate::send::{AcceptContext, AcceptError, Recipient, SANDBOX_KINDS, SendRequest, accept};
use jiff::Timestamp;
use rand::Rng;
use rand::distributions::Alphanumeric;
use relais_core::clock::Clock;
use relais_core::contact::AddressRules;
use relais_core::content::Content;
use relais_core::status::MessageStatus;
use relais_core::tenant::hash_api_key;
use relais_smpp::pdu::receipt_message;
use relais_smpp::receipt::receipt_date;
use relais_smpp::{
    Authenticator, BindRequest, CommandStatus, ReceiptState, ServerConfig, ServerHandle,
    ShortMessage, SmppServer, SubmitContext, SubmitHandler,
};
use relais_store::ChannelRecord;
use relais_store::{NewChannel, ReceiptWatch, Store, StoreError};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The `kind` of the channel records holding ESME credentials.
pub const KIND: &str = "smpp_server";

/// How often the status of submitted messages is looked at for receipts.
const RECEIPT_POLL: Duration = Duration::from_millis(200);

/// Owed receipts read per poll.
const RECEIPT_BATCH: u32 = 1000;

/// A receipt whose ESME stays unbound this long is given up.
const RECEIPT_GIVE_UP: Duration = Duration::from_secs(24 * 3600);

/// How long a receipt waits after its ESME was found unbound.
const RECEIPT_RETRY: jiff::SignedDuration = jiff::SignedDuration::from_secs(5);

/// Password hashes computed at once in the process (SMPP binds, agents' logins and
/// passwords); more wait their turn. Two, like the cores of the smallest machine Relais is
/// measured on: a flood of binds or logins then costs at most 2 × 19 MiB, not 19 MiB each.
const HASHING_AT_ONCE: usize = 2;

static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHING_AT_ONCE);

/// How a password matched its stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Matches,
    /// It matches an unsalted SHA-256 from before argon2: upgrade it.
    MatchesLegacy,
    Wrong,
}

/// The argon2id hash of `password` (PHC string, random salt, the crate's defaults:
/// 19 MiB, 2 passes, as OWASP recommends).
pub(crate) fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks `password` against a stored hash: argon2 (a PHC string) or the legacy SHA-256.
pub(crate) fn verify_password(stored: &str, password: &str) -> Verdict {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    if let Ok(hash) = PasswordHash::new(stored) {
        return match argon2::Argon2::default().verify_password(password.as_bytes(), &hash) {
            Ok(()) => Verdict::Matches,
            Err(_) => Verdict::Wrong,
        };
    }
    let legacy = hash_api_key(password);
    // Compared in full whatever differs, like the PHC verifier does.
    let same = stored.len() == legacy.len()
        && stored
            .bytes()
            .zip(legacy.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Verdict::MatchesLegacy
    } else {
        Verdict::Wrong
    }
}

/// Runs a password hash on the blocking pool, at most [`HASHING_AT_ONCE`] at a time.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let _turn = HASHING.acquire().await.ok()?;
    tokio::task::spawn_blocking(f).await.ok()
}

/// Credentials as issued: the password is shown once and only its hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCredentials {
    pub id: String,
    pub system_id: String,
    pub password: String,
}

fn random_string(len: usize) -> String {
    rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot hash the new password: {0}")]
    Hash(String),
}

/// Issues a new system_id/password for `tenant`. SMPP 3.4 caps passwords at 8 characters:
/// 8 random alphanumerics (47 bits) is what the protocol allows.
pub async fn issue_credentials(
    store: &dyn Store,
    tenant: &str,
    now: Timestamp,
) -> Result<IssuedCredentials, IssueError> {
    let system_id = format!("r{}", random_string(12).to_lowercase());
    let password = random_string(8);
    let hashed = password.clone();
    let password_hash = blocking(move || hash_password(&hashed))
        .await
        .unwrap_or_else(|| Err("the hashing task died".into()))
        .map_err(IssueError::Hash)?;
    let record = store
        .create_channel(
            &NewChannel {
                tenant_id: tenant.to_owned(),
                kind: KIND.to_owned(),
                name: format!("smpp-esme-{system_id}"),
                config: serde_json::json!({
                    "system_id": system_id,
                    "password_hash": password_hash,
                }),
            },
            now,
        )
        .await?;
    Ok(IssuedCredentials {
        id: record.id,
        system_id,
        password,
    })
}

/// Who a session acts for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Esme {
    pub tenant_id: String,
    pub system_id: String,
}

struct Auth {
    store: Arc<dyn Store>,
}

impl Auth {
    fn new(store: Arc<dyn Store>) -> Self {
        Auth { store }
    }

    /// Checks `password` against the record's hash off the async workers.
    async fn verify(
        &self,
        record: &ChannelRecord,
        password: &str,
    ) -> Result<Verdict, CommandStatus> {
        let Some(stored) = record.config["password_hash"].as_str() else {
            tracing::error!(credentials = %record.id, "SMPP credentials without a password hash");
            return Err(CommandStatus::EsmeRsyserr);
        };
        let (stored, password) = (stored.to_owned(), password.to_owned());
        blocking(move || verify_password(&stored, &password))
            .await
            .ok_or(CommandStatus::EsmeRsyserr)
    }

    /// Replaces a legacy SHA-256 by an argon2 hash of the password that just matched it.
    /// A failure leaves the old hash, which still binds: it is tried again next time.
    async fn upgrade(&self, record: &ChannelRecord, password: &str) {
        let password = password.to_owned();
        let Some(Ok(hash)) = blocking(move || hash_password(&password)).await else {
            tracing::warn!(credentials = %record.id, "cannot hash SMPP credentials anew");
            return;
        };
        let mut config = record.config.clone();
        config["password_hash"] = serde_json::Value::String(hash);
        match self
            .store
            .update_channel_config(&record.tenant_id, &record.id, &config)
            .await
        {
            Ok(_) => {
                tracing::info!(credentials = %record.id, system_id = %config["system_id"], "SMPP credentials upgraded from SHA-256 to argon2")
            }
            Err(e) => {
                tracing::warn!(credentials = %record.id, error = %e, "cannot upgrade SMPP credentials to argon2")
            }
        }
    }
}

impl Authenticator for Auth {
    type Principal = Esme;

    async fn authenticate(
        &self,
        request: &BindRequest,
        _peer: SocketAddr,
    ) -> Result<Esme, CommandStatus> {
        let records = self.store.channels_of_kind(KIND).await.map_err(|e| {
            tracing::error!(error = %e, "cannot read SMPP credentials");
            CommandStatus::EsmeRsyserr
        })?;
        let record = records
            .into_iter()
            .find(|r| r.config["system_id"].as_str() == Some(request.system_id.as_str()))
            .ok_or(CommandStatus::EsmeRinvsysid)?;
        match self.verify(&record, &request.password).await? {
            Verdict::Matches => {}
            Verdict::MatchesLegacy => self.upgrade(&record, &request.password).await,
            Verdict::Wrong => return Err(CommandStatus::EsmeRinvpaswd),
        }
        Ok(Esme {
            tenant_id: record.tenant_id,
            system_id: request.system_id.clone(),
        })
    }
}

struct Handler {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rules: AddressRules,
    /// The running dispatcher's hand-off queue, if submits due now go straight to it.
    handoff: Option<crate::handoff::Handoff>,
    /// When held parts were last looked at for expiry (at most once a second).
    swept: Mutex<Option<Timestamp>>,
    /// Parts are held one at a time, in the order their submits arrived: a session handles
    /// its submits concurrently, and the part that completes a message is answered with
    /// the message's id, which must be the last one sent.
    holding: tokio::sync::Mutex<()>,
}

/// How long a part of a concatenated submit waits for the rest of its message.
const CONCATENATION_TTL: jiff::SignedDuration = jiff::SignedDuration::from_secs(300);

/// What a submit became: a part held for the rest of its message, or a whole message
/// (`held` names the parts to forget once it is accepted or refused).
enum Assembled {
    Held(String),
    Whole {
        text: String,
        part_ids: Vec<String>,
        held: Option<String>,
    },
}

impl Handler {
    /// A single-part submit is whole; a part of a concatenated one is held in the store
    /// until its message is complete, so that a restart between parts loses nothing.
    async fn assemble(&self, esme: &Esme, message: &ShortMessage) -> Result<Assembled, StoreError> {
        let text = message.text();
        let Some(part) = message
            .concat_part()
            .filter(|u| (1..=u.total).contains(&u.seq))
        else {
            return Ok(Assembled::Whole {
                text,
                part_ids: Vec::new(),
                held: None,
            });
        };
        let _turn = self.holding.lock().await;
        let now = self.clock.now();
        self.expire_held_parts(now).await;
        // The ESME is part of the key: two applications may use the same reference.
        let key = [
            esme.tenant_id.as_str(),
            esme.system_id.as_str(),
            message.source.as_str(),
            message.destination.as_str(),
            &part.reference.to_string(),
            &part.total.to_string(),
        ]
        .join("\u{1f}");
        let this = relais_store::HeldPart {
            key: key.clone(),
            tenant_id: esme.tenant_id.clone(),
            total: i64::from(part.total),
            seq: i64::from(part.seq),
            text,
            part_id: relais_core::ids::new_id(),
            held_at: now,
        };
        let held = self.store.hold_part(&this).await?;
        if held.len() < usize::from(part.total) {
            // Answered with the id it was first held with (a repeated part gets the same).
            let id = held
                .into_iter()
                .find(|p| p.seq == this.seq)
                .map_or(this.part_id, |p| p.part_id);
            return Ok(Assembled::Held(id));
        }
        // The last part's answer is the message's id; the others have their own.
        let part_ids = held
            .iter()
            .filter(|p| p.seq != this.seq)
            .map(|p| p.part_id.clone())
            .collect();
        Ok(Assembled::Whole {
            text: held.into_iter().map(|p| p.text).collect(),
            part_ids,
            held: Some(key),
        })
    }

    /// Forgets the parts of messages whose other parts never came, at most once a second.
    async fn expire_held_parts(&self, now: Timestamp) {
        {
            let mut swept = self.swept.lock().unwrap_or_else(|p| p.into_inner());
            if swept.is_some_and(|at| now.duration_since(at) < jiff::SignedDuration::from_secs(1)) {
                return;
            }
            *swept = Some(now);
        }
        let before = now.checked_sub(CONCATENATION_TTL).unwrap_or(now);
        match self.store.expire_parts(before).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                parts = n,
                "concatenated submits incomplete after 5 min: their parts are dropped"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot expire held SMPP parts"),
        }
    }
}

impl SubmitHandler<Esme> for Handler {
    async fn submit(
        &self,
        ctx: SubmitContext<'_, Esme>,
        message: ShortMessage,
    ) -> Result<String, CommandStatus> {
        let (text, part_ids, held) = match self.assemble(ctx.principal, &message).await {
            // The part is answered now; its message is accepted with its last part.
            Ok(Assembled::Held(id)) => return Ok(id),
            Ok(Assembled::Whole {
                text,
                part_ids,
                held,
            }) => (text, part_ids, held),
            Err(e) => {
                tracing::error!(esme = %ctx.system_id, error = %e, "cannot hold a part of a concatenated submit");
                return Err(CommandStatus::EsmeRsyserr);
            }
        };
        let request = SendRequest {
            to: Recipient::Phone(relais_channels::smpp::e164_or_raw(&message.destination)),
            channel: None,
            channels: None,
            content: Some(Content::text(text.clone())),
            template: None,
            variables: Default::default(),
            purpose: None,
            // The ESME's source_addr is the sender, paced like any other.
            from: Some(message.source.clone()).filter(|s| !s.trim().is_empty()),
            send_at: None,
            validity: None,
            campaign: None,
            human_agent: false,
            track_links: None,
        };
        let now = self.clock.now();
        let context = AcceptContext {
            store: &self.store,
            rules: self.rules,
            now,
            configured: SANDBOX_KINDS,
            built_in: SANDBOX_KINDS,
            handoff: self.handoff.as_ref(),
            links: None,
        };
        let outcome = accept(context, &ctx.principal.tenant_id, request, None).await;
        // Accepted or refused, the message is done with its parts (a retried last part of a
        // refused message starts over).
        if let Some(key) = held
            && let Err(e) = self.store.release_parts(&key).await
        {
            tracing::warn!(esme = %ctx.system_id, error = %e, "cannot forget the parts of a concatenated submit");
        }
        let accepted = match outcome {
            Ok(accepted) => accepted,
            Err(AcceptError::Invalid { pointer, detail }) => {
                tracing::info!(esme = %ctx.system_id, %pointer, %detail, "submit_sm refused");
                return Err(if pointer.starts_with("/to") {
                    CommandStatus::EsmeRinvdstadr
                } else if pointer.starts_with("/from") {
                    CommandStatus::EsmeRinvsrcadr
                } else {
                    CommandStatus::EsmeRinvmsglen
                });
            }
            // The tenant refuses what its content checks score too high (docs/trust.md).
            Err(e @ AcceptError::ContentRefused { .. }) => {
                tracing::info!(esme = %ctx.system_id, error = %e, "submit_sm refused by the content checks");
                return Err(CommandStatus::EsmeRsubmitfail);
            }
            Err(e) => {
                tracing::error!(esme = %ctx.system_id, error = %e, "submit_sm failed");
                return Err(CommandStatus::EsmeRsyserr);
            }
        };
        if message.registered_delivery & 0x03 != 0 {
            // One receipt per id the ESME was given: each earlier part's, and the
            // message's (the last part's answer).
            for receipt_id in part_ids.iter().chain(std::iter::once(&accepted.id)) {
                let watch = ReceiptWatch {
                    receipt_id: receipt_id.clone(),
                    message_id: accepted.id.clone(),
                    tenant_id: ctx.principal.tenant_id.clone(),
                    system_id: ctx.principal.system_id.clone(),
                    source: message.source.clone(),
                    destination: message.destination.clone(),
                    submitted: receipt_date(SystemTime::now()),
                    text: text.chars().take(20).collect(),
                    created_at: now,
                };
                if let Err(e) = self.store.watch_receipt(&watch).await {
                    // The message is accepted and goes out; only its receipt is lost.
                    tracing::error!(esme = %ctx.system_id, message = %accepted.id, error = %e, "cannot record an owed SMPP receipt");
                }
            }
        }
        Ok(accepted.id)
    }
}

/// The receipt state of a message's status, once the status will not change any more
/// (for an SMS, `delivered` is the end: `read` never comes).
fn receipt_state(status: MessageStatus) -> Option<ReceiptState> {
    match status {
        MessageStatus::Delivered | MessageStatus::Read => Some(ReceiptState::Delivered),
        MessageStatus::Undelivered | MessageStatus::Failed => Some(ReceiptState::Undeliverable),
        MessageStatus::Expired => Some(ReceiptState::Expired),
        MessageStatus::Rejected => Some(ReceiptState::Rejected),
        MessageStatus::Canceled => Some(ReceiptState::Deleted),
        _ => None,
    }
}

/// Sends the owed receipts of messages that reached a final status. The watches are in
/// the store: receipts owed before a restart go out after it, to an ESME bound on any
/// node sharing the store.
async fn send_receipts(store: Arc<dyn Store>, clock: Arc<dyn Clock>, handle: ServerHandle<Esme>) {
    loop {
        tokio::time::sleep(RECEIPT_POLL).await;
        let now = clock.now();
        let due = match store.due_receipts(now, RECEIPT_BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read owed SMPP receipts");
                continue;
            }
        };
        let (mut sent, mut later) = (Vec::new(), Vec::new());
        for (watch, status) in due {
            let Some(state) = receipt_state(status) else {
                continue;
            };
            let err = if state == ReceiptState::Delivered {
                0
            } else {
                1
            };
            let done = receipt_date(SystemTime::now());
            let receipt = receipt_message(
                &watch.source,
                &watch.destination,
                &watch.receipt_id,
                state,
                err,
                &watch.submitted,
                &done,
                &watch.text,
            );
            let esme = Esme {
                tenant_id: watch.tenant_id.clone(),
                system_id: watch.system_id.clone(),
            };
            match handle.deliver(&esme, receipt).await {
                Ok(_) => sent.push(watch.receipt_id),
                Err(e) => {
                    let owed_for = now.duration_since(watch.created_at);
                    if owed_for.unsigned_abs() < RECEIPT_GIVE_UP {
                        // The ESME is not bound right now.
                        later.push(watch.receipt_id);
                    } else {
                        tracing::warn!(message = %watch.message_id, receipt = %watch.receipt_id, error = %e, "SMPP receipt given up");
                        sent.push(watch.receipt_id);
                    }
                }
            }
        }
        if let Err(e) = store.forget_receipts(&sent).await {
            tracing::warn!(error = %e, "cannot forget sent SMPP receipts; they may go twice");
        }
        let retry_at = now
            .checked_add(RECEIPT_RETRY)
            .unwrap_or(jiff::Timestamp::MAX);
        if let Err(e) = store.postpone_receipts(&later, retry_at).await {
            tracing::warn!(error = %e, "cannot postpone SMPP receipts");
        }
    }
}

/// Serves ESMEs on `listener` until `shutdown` resolves; accepted submits due now go to
/// `handoff`'s dispatcher when given.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rules: AddressRules,
    handoff: Option<crate::handoff::Handoff>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let server = SmppServer::new(
        ServerConfig {
            system_id: "relais".into(),
            ..ServerConfig::default()
        },
        Auth::new(store.clone()),
        Handler {
            store: store.clone(),
            clock: clock.clone(),
            rules,
            handoff,
            swept: Mutex::new(None),
            holding: tokio::sync::Mutex::new(()),
        },
    );
    let receipts = tokio::spawn(send_receipts(store, clock, server.handle()));
    let result = server.serve(listener, shutdown).await;
    receipts.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_core::clock::ManualClock;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn password_hashes_run_two_at_a_time_however_many_are_asked() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut asked = Vec::new();
        for _ in 0..12 {
            let (running, most) = (running.clone(), most.clone());
            asked.push(tokio::spawn(blocking(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
            })));
        }
        for one in asked {
            assert_eq!(one.await.unwrap(), Some(()), "each one runs");
        }
        // Other tests of this process may hold a turn meanwhile: at most, never more.
        let most = most.load(Ordering::SeqCst);
        assert!((1..=HASHING_AT_ONCE).contains(&most), "{most} at once");
    }

    fn part(seq: u8, text: &str) -> ShortMessage {
        let mut message = ShortMessage::new("SHOP", "33612345678");
        message.short_message = text.as_bytes().to_vec().into();
        message.sar = Some((7, 2, seq));
        message
    }

    fn esme(system_id: &str) -> Esme {
        Esme {
            tenant_id: "t1".into(),
            system_id: system_id.into(),
        }
    }

    fn bind(system_id: &str, password: &str) -> BindRequest {
        BindRequest {
            mode: relais_smpp::BindMode::Transceiver,
            system_id: system_id.into(),
            password: password.into(),
            system_type: String::new(),
            interface_version: 0x34,
        }
    }

    async fn sqlite() -> (tempfile::TempDir, Arc<dyn Store>, String) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            relais_store::SqliteStore::open(&dir.path().join("relais.db"))
                .await
                .unwrap(),
        );
        let tenant = store
            .create_tenant("default", Timestamp::now())
            .await
            .unwrap()
            .id;
        (dir, store, tenant)
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    #[tokio::test]
    async fn issued_credentials_are_kept_as_a_salted_argon2_hash_and_bind() {
        let (_dir, store, tenant) = sqlite().await;
        let issued = issue_credentials(&*store, &tenant, Timestamp::now())
            .await
            .unwrap();
        let record = store.channel(&tenant, &issued.id).await.unwrap().unwrap();
        let hash = record.config["password_hash"].as_str().unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains(&issued.password));
        let again = issue_credentials(&*store, &tenant, Timestamp::now())
            .await
            .unwrap();
        let other = store.channel(&tenant, &again.id).await.unwrap().unwrap();
        assert_ne!(
            hash.split('$').nth(4),
            other.config["password_hash"]
                .as_str()
                .unwrap()
                .split('$')
                .nth(4),
            "each hash has its own salt"
        );

        let auth = Auth::new(store.clone());
        let esme = auth
            .authenticate(&bind(&issued.system_id, &issued.password), peer())
            .await
            .unwrap();
        assert_eq!(esme.tenant_id, tenant);
        assert_eq!(
            auth.authenticate(&bind(&issued.system_id, "nope"), peer())
                .await
                .unwrap_err(),
            CommandStatus::EsmeRinvpaswd
        );
        assert_eq!(
            auth.authenticate(&bind("nobody", &issued.password), peer())
                .await
                .unwrap_err(),
            CommandStatus::EsmeRinvsysid
        );
    }

    #[tokio::test]
    async fn credentials_hashed_with_sha256_still_bind_and_are_upgraded_to_argon2() {
        let (_dir, store, tenant) = sqlite().await;
        // As issued before argon2: the bare SHA-256 of the password.
        let record = store
            .create_channel(
                &NewChannel {
                    tenant_id: tenant.clone(),
                    kind: KIND.into(),
                    name: "smpp-esme-rold".into(),
                    config: serde_json::json!({"system_id": "rold", "password_hash": hash_api_key("Old12345")}),
                },
                Timestamp::now(),
            )
            .await
            .unwrap();
        let auth = Auth::new(store.clone());
        assert_eq!(
            auth.authenticate(&bind("rold", "wrong"), peer())
                .await
                .unwrap_err(),
            CommandStatus::EsmeRinvpaswd
        );
        let unchanged = store.channel(&tenant, &record.id).await.unwrap().unwrap();
        assert_eq!(
            unchanged.config, record.config,
            "a wrong password upgrades nothing"
        );

        auth.authenticate(&bind("rold", "Old12345"), peer())
            .await
            .unwrap();
        let upgraded = store.channel(&tenant, &record.id).await.unwrap().unwrap();
        let hash = upgraded.config["password_hash"].as_str().unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert_eq!(upgraded.config["system_id"], "rold");
        // And it binds with the new hash, and only with the right password.
        auth.authenticate(&bind("rold", "Old12345"), peer())
            .await
            .unwrap();
        assert_eq!(
            auth.authenticate(&bind("rold", "wrong"), peer())
                .await
                .unwrap_err(),
            CommandStatus::EsmeRinvpaswd
        );
    }

    #[tokio::test]
    async fn the_parts_of_a_concatenated_submit_outlive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            relais_store::SqliteStore::open(&dir.path().join("relais.db"))
                .await
                .unwrap(),
        );
        let clock = Arc::new(ManualClock::new("2026-11-22T10:00:00Z".parse().unwrap()));
        // Each handler is a server started on the same store.
        let server = || Handler {
            store: store.clone(),
            clock: clock.clone(),
            rules: AddressRules {
                default_country: None,
            },
            handoff: None,
            swept: Mutex::new(None),
            holding: tokio::sync::Mutex::new(()),
        };
        let Ok(Assembled::Held(first)) = server().assemble(&esme("shop"), &part(1, "Hello ")).await
        else {
            panic!("the first part is held");
        };
        let Ok(Assembled::Held(repeated)) =
            server().assemble(&esme("shop"), &part(1, "Hello ")).await
        else {
            panic!("a repeated part is held");
        };
        assert_eq!(repeated, first, "a repeated part gets the same id");
        // Another application using the same reference sends another message.
        assert!(matches!(
            server().assemble(&esme("other"), &part(2, "there")).await,
            Ok(Assembled::Held(_))
        ));
        match server().assemble(&esme("shop"), &part(2, "world")).await {
            Ok(Assembled::Whole {
                text,
                part_ids,
                held,
            }) => {
                assert_eq!(text, "Hello world");
                assert_eq!(part_ids, [first]);
                store.release_parts(&held.unwrap()).await.unwrap();
            }
            _ => panic!("the last part completes the message"),
        }
        // The other message's part waited too long: its first part starts a new message.
        clock.advance(jiff::SignedDuration::from_secs(301));
        assert!(matches!(
            server().assemble(&esme("other"), &part(1, "Hi ")).await,
            Ok(Assembled::Held(_))
        ));
    }
}
