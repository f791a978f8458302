//! A tenant's senders (`relais_core::verified_sender`): registered `pending`, `verified`
//! once their code, TXT record or approval said so. A code is kept as a digest, with its
//! expiry and its tries; a try is taken before the code is compared, so that concurrent
//! guesses share the same [`relais_core::verified_sender::CODE_ATTEMPTS`].

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;
use relais_core::verified_sender::{PendingCode, SenderKind};

/// A registered sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderRecord {
    pub id: String,
    pub tenant_id: String,
    pub kind: SenderKind,
    /// As `relais_core::verified_sender::normalize_value` writes it.
    pub value: String,
    pub verified: bool,
    /// An email domain's DKIM selector.
    pub dkim_selector: Option<String>,
    /// An email domain's TXT token.
    pub token: Option<String>,
    /// A phone number's code waiting to be typed back.
    pub code: Option<PendingCode>,
    pub verified_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Storage for senders; a supertrait of [`crate::Store`].
#[async_trait]
pub trait SenderStore: Send + Sync {
    /// Registers a sender; the same kind and value twice in a tenant is a `Conflict`.
    async fn create_sender(&self, sender: &SenderRecord) -> StoreResult<()>;
    /// The tenant's senders, oldest first.
    async fn senders(&self, tenant: &str) -> StoreResult<Vec<SenderRecord>>;
    async fn sender(&self, tenant: &str, id: &str) -> StoreResult<Option<SenderRecord>>;
    /// Keeps a new code (its tries start again); `false` when there is no such sender.
    async fn set_sender_code(
        &self,
        tenant: &str,
        id: &str,
        digest: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Takes one try of the pending code; `false` when `max` were taken already (or there
    /// is no such sender).
    async fn take_code_attempt(
        &self,
        tenant: &str,
        id: &str,
        max: u32,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Marks the sender verified and forgets its code; `false` when there is no such sender.
    async fn mark_sender_verified(
        &self,
        tenant: &str,
        id: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;
    async fn delete_sender(&self, tenant: &str, id: &str) -> StoreResult<bool>;
}

macro_rules! impl_sender_store {
    ($modname:ident, $store:ty, $db:ty) => {
        mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros};
            use sqlx::Row;

            type DbRow = <$db as sqlx::Database>::Row;

            const COLUMNS: &str = "id, tenant_id, kind, value, state, dkim_selector, token, code_digest, code_expires_at, code_attempts, verified_at, created_at, updated_at";

            fn sender_from_row(row: &DbRow) -> StoreResult<SenderRecord> {
                let kind: String = row.try_get("kind")?;
                let state: String = row.try_get("state")?;
                let digest: Option<String> = row.try_get("code_digest")?;
                let expires: Option<i64> = row.try_get("code_expires_at")?;
                let attempts: i64 = row.try_get("code_attempts")?;
                let id: String = row.try_get("id")?;
                let corrupt = |what: &str| StoreError::Corrupt(format!("sender {id}: {what}"));
                let code = match (digest, expires) {
                    (Some(digest), Some(expires)) => Some(PendingCode {
                        digest,
                        expires_at: from_micros(expires)?,
                        attempts: u32::try_from(attempts).map_err(|_| corrupt("code_attempts"))?,
                    }),
                    _ => None,
                };
                Ok(SenderRecord {
                    kind: SenderKind::parse(&kind).ok_or_else(|| corrupt("kind"))?,
                    verified: match state.as_str() {
                        "verified" => true,
                        "pending" => false,
                        _ => return Err(corrupt("state")),
                    },
                    tenant_id: row.try_get("tenant_id")?,
                    value: row.try_get("value")?,
                    dkim_selector: row.try_get("dkim_selector")?,
                    token: row.try_get("token")?,
                    code,
                    verified_at: row
                        .try_get::<Option<i64>, _>("verified_at")?
                        .map(from_micros)
                        .transpose()?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                    updated_at: from_micros(row.try_get("updated_at")?)?,
                    id,
                })
            }

            #[async_trait]
            impl SenderStore for $store {
                async fn create_sender(&self, s: &SenderRecord) -> StoreResult<()> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO senders ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                    )))
                    .bind(s.id.as_str())
                    .bind(s.tenant_id.as_str())
                    .bind(s.kind.as_str())
                    .bind(s.value.as_str())
                    .bind(if s.verified { "verified" } else { "pending" })
                    .bind(s.dkim_selector.as_deref())
                    .bind(s.token.as_deref())
                    .bind(s.code.as_ref().map(|c| c.digest.as_str()))
                    .bind(s.code.as_ref().map(|c| micros(c.expires_at)))
                    .bind(s.code.as_ref().map_or(0, |c| i64::from(c.attempts)))
                    .bind(s.verified_at.map(micros))
                    .bind(micros(s.created_at))
                    .bind(micros(s.updated_at))
                    .execute(self.writer())
                    .await
                    .map_err(|e| match e {
                        sqlx::Error::Database(db) if $crate::noted(db.is_unique_violation()) => {
                            StoreError::Conflict(format!(
                                "the sender `{}` ({}) is registered already",
                                s.value,
                                s.kind.as_str()
                            ))
                        }
                        other => other.into(),
                    })?;
                    Ok(())
                }

                async fn senders(&self, tenant: &str) -> StoreResult<Vec<SenderRecord>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM senders WHERE tenant_id = $1 ORDER BY created_at, id"
                    )))
                    .bind(tenant)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(sender_from_row)
                    .collect()
                }

                async fn sender(&self, tenant: &str, id: &str) -> StoreResult<Option<SenderRecord>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM senders WHERE tenant_id = $1 AND id = $2"
                    )))
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(self.writer())
                    .await?
                    .as_ref()
                    .map(sender_from_row)
                    .transpose()
                }

                async fn set_sender_code(
                    &self,
                    tenant: &str,
                    id: &str,
                    digest: &str,
                    expires_at: Timestamp,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE senders SET code_digest = $3, code_expires_at = $4, code_attempts = 0, updated_at = $5 \
                         WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind(digest)
                    .bind(micros(expires_at))
                    .bind(micros(now))
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn take_code_attempt(
                    &self,
                    tenant: &str,
                    id: &str,
                    max: u32,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE senders SET code_attempts = code_attempts + 1, updated_at = $4 \
                         WHERE tenant_id = $1 AND id = $2 AND code_attempts < $3",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind(i64::from(max))
                    .bind(micros(now))
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn mark_sender_verified(
                    &self,
                    tenant: &str,
                    id: &str,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE senders SET state = 'verified', verified_at = $3, updated_at = $3, \
                         code_digest = NULL, code_expires_at = NULL, code_attempts = 0 \
                         WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind(micros(now))
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn delete_sender(&self, tenant: &str, id: &str) -> StoreResult<bool> {
                    let done = sqlx::query("DELETE FROM senders WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant)
                        .bind(id)
                        .execute(self.writer())
                        .await?;
                    Ok(done.rows_affected() == 1)
                }
            }
        }
    };
}

impl_sender_store!(sqlite_senders, crate::SqliteStore, sqlx::Sqlite);
impl_sender_store!(postgres_senders, crate::PostgresStore, sqlx::Postgres);
