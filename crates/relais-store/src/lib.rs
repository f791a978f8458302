//! Storage for Relais: one trait, two backends (SQLite embedded by default, PostgreSQL for
//! several nodes), and one conformance suite that both must pass.
//!
//! Every method takes the tenant it acts for; no query crosses tenants.

mod agents;
mod analytics;
mod audit;
mod campaigns;
mod channels;
mod config_cache;
mod contact_events;
mod content_checks;
mod conversations;
mod entry_points;
mod events;
mod flows;
mod held_parts;
mod inbound;
mod journeys;
mod links;
mod media;
mod messages;
mod model;
mod postgres;
mod privacy;
mod queue_depth;
mod reach;
mod receipt_watches;
mod segments;
mod senders;
mod settings;
mod sql;
mod sqlite;
mod templates;
mod twilio;

pub mod conformance;
pub mod scratch;

pub use agents::*;
pub use analytics::*;
pub use audit::*;
pub use campaigns::*;
pub use channels::*;
pub use config_cache::CONFIG_FRESH_FOR;
pub use contact_events::*;
pub use content_checks::*;
pub use conversations::*;
pub use entry_points::*;
pub use events::*;
pub use flows::*;
pub use held_parts::*;
pub use inbound::*;
pub use journeys::*;
pub use links::*;
pub use media::*;
pub use messages::*;
pub use model::*;
pub use postgres::PostgresStore;
pub use privacy::*;
pub use queue_depth::*;
pub use reach::*;
pub use receipt_watches::*;
pub use segments::{SegmentRecord, SegmentStore};
pub use senders::*;
pub use settings::*;
pub use sqlite::{SqliteStore, sqlite_memory_bytes};
pub use templates::*;
pub use twilio::*;

use async_trait::async_trait;
use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::consent::ConsentRecord;
use relais_core::contact::{Contact, Identity, MergeCause};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The store cannot take writes (or answer) right now: a full disk, an I/O error, a
    /// database that is down or read-only. Nothing was changed; trying again later may work.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A planned contact's identity was taken meanwhile by another contact: nothing of
    /// the transaction was written; resolving the recipients again finds the owner.
    #[error("{0}")]
    IdentityTaken(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// A store error told again to each of several callers that shared the operation
    /// (a group commit), as its text.
    #[error("the store failed: {0}")]
    Failed(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// The same error for another caller of a shared operation: the variants callers
    /// decide on keep their kind, the others keep their text.
    pub fn share(&self) -> StoreError {
        match self {
            StoreError::NotFound(s) => StoreError::NotFound(s.clone()),
            StoreError::Conflict(s) => StoreError::Conflict(s.clone()),
            StoreError::Invalid(s) => StoreError::Invalid(s.clone()),
            StoreError::Corrupt(s) => StoreError::Corrupt(s.clone()),
            StoreError::Unavailable(s) => StoreError::Unavailable(s.clone()),
            StoreError::IdentityTaken(s) => StoreError::IdentityTaken(s.clone()),
            StoreError::Failed(s) => StoreError::Failed(s.clone()),
            other => StoreError::Failed(other.to_string()),
        }
    }
}

/// Recipients resolved to contacts, some of them planned and not yet written.
#[derive(Debug, Clone, Default)]
pub struct PlannedContacts {
    /// Each identity's contact, with `true` when it is one of `new`.
    pub resolved: Vec<(Contact, bool)>,
    pub new: Vec<PlannedContact>,
}

/// A contact to create, holding one identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedContact {
    pub tenant_id: String,
    pub id: String,
    pub identity: Identity,
    pub created_at: Timestamp,
}

/// Set whenever a database error comes through, so that the SQLite writer checks its
/// connection for a transaction the error left open (see `sqlite.rs`) before reusing it.
pub(crate) static ERROR_SEEN: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Set while a script runs (see `Script` in messages.rs): dropped unfinished, it notes an
/// error, so that the connection is checked before its next use.
pub(crate) struct ScriptGuard(bool);

impl ScriptGuard {
    pub(crate) fn arm() -> ScriptGuard {
        ScriptGuard(true)
    }
    pub(crate) fn disarm(mut self) {
        self.0 = false;
    }
}

impl Drop for ScriptGuard {
    fn drop(&mut self) {
        if self.0 {
            ERROR_SEEN.store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

/// Notes that a database error was seen (an error kept out of [`StoreError::Database`],
/// such as a unique violation), passing `matched` through for a match guard.
pub(crate) fn noted(matched: bool) -> bool {
    ERROR_SEEN.store(true, std::sync::atomic::Ordering::Release);
    matched
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        ERROR_SEEN.store(true, std::sync::atomic::Ordering::Release);
        match unavailable_reason(&e) {
            Some(reason) => {
                if let Ok(mut last) = LAST_REFUSAL.lock() {
                    *last = Some((std::time::Instant::now(), reason.clone()));
                }
                StoreError::Unavailable(reason)
            }
            None => StoreError::Database(e),
        }
    }
}

/// How long a refused write keeps the store reported as unavailable: a tiny probe can
/// succeed on a disk too full for a message (space freed by a checkpoint, a page reused),
/// so `check_writable` also reports the refusals of the last moments.
pub const REFUSAL_MEMORY: std::time::Duration = std::time::Duration::from_secs(5);

/// The last time the store could not work (any store of the process), and why.
static LAST_REFUSAL: std::sync::Mutex<Option<(std::time::Instant, String)>> =
    std::sync::Mutex::new(None);

/// Why the store refused work within [`REFUSAL_MEMORY`], if it did.
pub(crate) fn refused_recently() -> Option<String> {
    let last = LAST_REFUSAL.lock().ok()?;
    let (at, why) = last.as_ref()?;
    let ago = at.elapsed();
    (ago < REFUSAL_MEMORY).then(|| format!("{why} ({:.1} s ago)", ago.as_secs_f64()))
}

/// Why `e` means "the store cannot work now" rather than a bug or bad data: the errors a
/// caller should answer with "try again later" (HTTP 503), not "internal error".
fn unavailable_reason(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Io(io) => Some(format!("I/O error: {io}")),
        sqlx::Error::PoolTimedOut => Some("no database connection within the timeout".into()),
        sqlx::Error::PoolClosed => Some("the store is closing".into()),
        sqlx::Error::WorkerCrashed => Some("the database connection stopped".into()),
        sqlx::Error::Tls(tls) => Some(format!("database TLS error: {tls}")),
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            let code = code.as_ref();
            let unavailable = match code.parse::<i32>() {
                // SQLite: the extended result code; its low byte is the primary code.
                // FULL, IOERR, READONLY, CANTOPEN, NOMEM, BUSY, LOCKED, PROTOCOL.
                Ok(extended) => matches!(extended & 0xff, 5..=8 | 10 | 13 | 14 | 15),
                // PostgreSQL: a SQLSTATE. Class 08 (connection), 53 (insufficient
                // resources: disk full, out of memory, too many connections), 57P
                // (shutdown, cannot connect now), 25006 (a read-only standby).
                Err(_) => {
                    code.starts_with("08")
                        || code.starts_with("53")
                        || code.starts_with("57P")
                        || code == "25006"
                }
            };
            unavailable.then(|| db.message().to_owned())
        }
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[async_trait]
pub trait Store:
    MessageStore
    + ChannelStore
    + InboundStore
    + ConversationStore
    + AgentStore
    + EventStore
    + FlowStore
    + ReceiptWatchStore
    + HeldPartStore
    + ReachStore
    + TemplateStore
    + MediaStore
    + AnalyticsStore
    + SegmentStore
    + CampaignStore
    + LinkStore
    + EntryPointStore
    + QueueDepthStore
    + SettingsStore
    + ContactEventStore
    + JourneyStore
    + TwilioStore
    + AuditStore
    + PrivacyStore
    + ContentCheckStore
    + SenderStore
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;

    // Tenants and keys.
    async fn create_tenant(&self, name: &str, now: Timestamp) -> StoreResult<Tenant>;
    async fn tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>>;
    async fn tenant(&self, id: &str) -> StoreResult<Option<Tenant>>;
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    async fn insert_api_key(&self, key: &NewApiKey, now: Timestamp) -> StoreResult<ApiKeyRecord>;
    /// The live (not revoked) key with this digest.
    async fn api_key_by_hash(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>>;

    // Contacts.
    async fn create_contact(
        &self,
        tenant: &str,
        new: &NewContact,
        now: Timestamp,
    ) -> StoreResult<Contact>;
    async fn contact(&self, tenant: &str, id: &str) -> StoreResult<Option<Contact>>;
    /// Those of the tenant's contacts `ids` names that exist, with their identities, in no
    /// order (an id listed twice gives its contact once).
    async fn contacts_by_ids(&self, tenant: &str, ids: &[&str]) -> StoreResult<Vec<Contact>>;
    async fn update_contact(
        &self,
        tenant: &str,
        id: &str,
        patch: &ContactPatch,
        now: Timestamp,
    ) -> StoreResult<Contact>;
    async fn delete_contact(&self, tenant: &str, id: &str) -> StoreResult<bool>;
    async fn list_contacts(&self, tenant: &str, page: &PageRequest) -> StoreResult<Page<Contact>>;
    /// The contact that owns `address` (on `channel`, or on any channel when `None`).
    async fn contact_by_identity(
        &self,
        tenant: &str,
        channel: Option<ChannelKind>,
        address: &str,
    ) -> StoreResult<Option<Contact>>;
    async fn add_identity(
        &self,
        tenant: &str,
        contact_id: &str,
        identity: &Identity,
        now: Timestamp,
    ) -> StoreResult<Contact>;
    async fn remove_identity(
        &self,
        tenant: &str,
        contact_id: &str,
        identity: &Identity,
    ) -> StoreResult<bool>;
    /// Moves identities, attributes (survivor wins), consents and history of `merged` to
    /// `survivor`, deletes `merged` and records the merge with its `cause`. When both had
    /// a conversation, the survivor's keeps the messages and the merged one's goes, with
    /// its flow session.
    async fn merge_contacts(
        &self,
        tenant: &str,
        survivor: &str,
        merged: &str,
        cause: &MergeCause,
        now: Timestamp,
    ) -> StoreResult<MergeRecord>;
    async fn merges(&self, tenant: &str, survivor: &str) -> StoreResult<Vec<MergeRecord>>;
    /// Creates or updates one batch of imported rows in one transaction.
    async fn import_contacts(
        &self,
        tenant: &str,
        rows: &[ImportRow],
        now: Timestamp,
    ) -> StoreResult<Vec<ImportOutcome>>;

    /// The contacts owning `identities`, in their order, found like
    /// [`Store::contact_by_identity`] does (a phone-addressed identity matches its address on
    /// any channel, the earliest first), each with `true` when it was just created: a
    /// contact holding just that identity is created for each one nobody owns, all in one
    /// transaction. An address listed twice resolves to one contact. `Conflict` when a
    /// concurrent request created one of them meanwhile (a retry then finds it).
    async fn resolve_or_create_contacts(
        &self,
        tenant: &str,
        identities: &[Identity],
        now: Timestamp,
    ) -> StoreResult<Vec<(Contact, bool)>>;
    /// [`ContactStore::resolve_or_create_contacts`] without writing: the contacts to
    /// create are built and returned in [`PlannedContacts::new`], for the caller to write
    /// with what it writes anyway ([`crate::MessageStore::insert_accepted`]), saving a
    /// transaction.
    async fn plan_contacts(
        &self,
        tenant: &str,
        identities: &[Identity],
        now: Timestamp,
    ) -> StoreResult<PlannedContacts>;

    // Consent ledger (append-only).
    async fn append_consent(&self, tenant: &str, record: &ConsentRecord) -> StoreResult<()>;
    async fn consents(&self, tenant: &str, contact_id: &str) -> StoreResult<Vec<ConsentRecord>>;
    /// The ledgers of several contacts at once, by contact id (contacts without any record
    /// are absent).
    async fn consents_of(
        &self,
        tenant: &str,
        contact_ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, Vec<ConsentRecord>>>;

    // Tenant settings and NLU models.
    async fn put_setting(
        &self,
        tenant: &str,
        key: &str,
        value: &serde_json::Value,
        now: Timestamp,
    ) -> StoreResult<()>;
    async fn setting(&self, tenant: &str, key: &str) -> StoreResult<Option<serde_json::Value>>;
    /// Stores a new model version and returns its number (1, 2, …).
    async fn save_nlu_model(
        &self,
        tenant: &str,
        model: &[u8],
        summary: &str,
        now: Timestamp,
    ) -> StoreResult<i64>;
    /// The live (highest) model version, without loading the model.
    async fn nlu_model_version(&self, tenant: &str) -> StoreResult<Option<i64>>;
    async fn nlu_model(&self, tenant: &str) -> StoreResult<Option<NluModelRecord>>;

    /// Commits one tiny write: `Ok` when the store takes writes now, `Unavailable` (a
    /// full disk, a database that is down or read-only) when it does not. For health
    /// checks: a store that answers reads may still refuse every write. A write refused
    /// within the last [`REFUSAL_MEMORY`] also makes it `Unavailable`.
    async fn check_writable(&self) -> StoreResult<()>;
}

/// How far a committed write (a 202, a recorded status) is guaranteed to survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// A commit survives a crash of the Relais process (`kill -9`); a power cut or an
    /// operating-system crash may lose the last commits (about the last second).
    /// SQLite: `synchronous = NORMAL` in WAL mode; PostgreSQL: `synchronous_commit = off`.
    #[default]
    Normal,
    /// Every commit is flushed to disk (fsync) before it returns, so it also survives a
    /// power cut. SQLite: `synchronous = FULL`; PostgreSQL: `synchronous_commit = on`.
    Fsync,
}

impl Durability {
    /// `normal` or `fsync`.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "normal" => Ok(Durability::Normal),
            "fsync" => Ok(Durability::Fsync),
            other => Err(StoreError::Invalid(format!(
                "durability must be `normal` or `fsync`, not `{other}`"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Normal => "normal",
            Durability::Fsync => "fsync",
        }
    }
}

/// How a store is opened.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreOptions {
    pub durability: Durability,
}

/// Opens the store a URL names: `sqlite://path` (created if missing) or `postgres://…`,
/// and runs its migrations.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    open_with(url, StoreOptions::default()).await
}

/// [`open`] with options.
pub async fn open_with(url: &str, options: StoreOptions) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect_with(url, options).await?))
    } else if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        Ok(Arc::new(
            SqliteStore::open_with(std::path::Path::new(path), options).await?,
        ))
    } else {
        Err(StoreError::Invalid(format!(
            "unsupported database URL `{}`; use sqlite://PATH or postgres://USER@HOST/DB",
            redact_url(url)
        )))
    }
}

/// A URL with its password replaced, for logs and `relais config`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((creds, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match creds.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

pub(crate) use relais_core::ids::new_id;

/// Rows per multi-row statement of the methods that write or read a group at once
/// (`insert_inbound_many`, `append_events`…): at 15 bound parameters a row at most, far
/// under SQLite's limit (32,766) and PostgreSQL's (65,535), and enough rows that the cost
/// of the statement itself vanishes. Larger groups take one statement per 500 rows.
pub(crate) const ROWS_PER_STATEMENT: usize = 500;

pub(crate) fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub(crate) fn from_micros(us: i64) -> StoreResult<Timestamp> {
    Timestamp::from_microsecond(us).map_err(|e| StoreError::Corrupt(format!("timestamp {us}: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
