//! Storage for Relais: one trait, two backends (SQLite embedded by default, PostgreSQL for
//! several nodes), and one conformance suite that both must pass.
//!
//! Every method takes the tenant it acts for; no query crosses tenants.

mod channels;
mod held_parts;
mod inbound;
mod messages;
mod model;
mod postgres;
mod receipt_watches;
mod sql;
mod sqlite;

pub mod conformance;
pub mod scratch;

pub use channels::*;
pub use held_parts::*;
pub use inbound::*;
pub use messages::*;
pub use model::*;
pub use postgres::PostgresStore;
pub use receipt_watches::*;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::consent::ConsentRecord;
use relais_core::contact::{Contact, Identity};
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
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

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
    + ReceiptWatchStore
    + HeldPartStore
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
    /// `survivor`, deletes `merged` and records the merge.
    async fn merge_contacts(
        &self,
        tenant: &str,
        survivor: &str,
        merged: &str,
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
    /// any channel, the earliest first); a contact holding just that identity is created
    /// for each one nobody owns, all in one transaction. An address listed twice resolves to
    /// one contact. `Conflict` when a concurrent request created one of them meanwhile (a
    /// retry then finds it).
    async fn resolve_or_create_contacts(
        &self,
        tenant: &str,
        identities: &[Identity],
        now: Timestamp,
    ) -> StoreResult<Vec<Contact>>;

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
}

/// Opens the store a URL names: `sqlite://path` (created if missing) or `postgres://…`,
/// and runs its migrations.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        Ok(Arc::new(
            SqliteStore::open(std::path::Path::new(path)).await?,
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
