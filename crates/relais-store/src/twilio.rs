//! What the Twilio-compatible API keeps besides messages: each tenant's Twilio account
//! (SID, auth token digest, sealed auth token) and each message's `StatusCallback`, with
//! the status last called back. Callbacks are claimed with a lease (PostgreSQL: `FOR
//! UPDATE SKIP LOCKED`; SQLite: its single writer), so several nodes share the work.
//!
//! Also the two edits Twilio's API makes to a message that the native API does not: a
//! body redacted, and a finished message deleted.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use relais_core::status::MessageStatus;

/// A tenant's Twilio account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioAccount {
    pub tenant_id: String,
    /// `AC` + 32 hex digits.
    pub account_sid: String,
    /// SHA-256 of the auth token, hex.
    pub token_hash: String,
    /// The auth token as stored (sealed by the engine).
    pub auth_token: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Where inbound messages are posted, if the tenant set it.
    pub inbound_url: Option<String>,
    /// Why the last inbound message posted there was not answered as asked, if it was not.
    pub inbound_error: Option<String>,
}

/// A tenant whose inbound messages after `cursor` are to be posted, leased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTwilioInbound {
    pub account: TwilioAccount,
    pub url: String,
    /// The id of the last inbound message done with.
    pub cursor: String,
    /// Failed attempts at posting the message after `cursor`.
    pub attempts: i64,
}

/// How a claimed tenant's inbound round ended; each releases the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioInboundOutcome {
    /// Done with the messages up to `cursor` (`error`: why the last was not answered as
    /// asked, kept for the tenant to see); the next are due now.
    Advanced {
        cursor: String,
        error: Option<String>,
    },
    /// Posting the message after `cursor` failed `attempts` times; again at `due_at`.
    Retry {
        cursor: String,
        due_at: Timestamp,
        attempts: i64,
        error: String,
    },
}

/// A Messaging Service: a pool of senders under an `MG` SID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioService {
    pub sid: String,
    pub tenant_id: String,
    pub name: String,
    /// The pool, in the order given.
    pub senders: Vec<String>,
    pub created_at: Timestamp,
}

/// A message's `StatusCallback`, to store with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTwilioCallback {
    pub message_id: String,
    pub tenant_id: String,
    pub url: String,
    pub created_at: Timestamp,
}

/// A callback whose message changed status since it was last called back, leased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTwilioCallback {
    pub message_id: String,
    pub tenant_id: String,
    pub url: String,
    /// The message's status now.
    pub status: MessageStatus,
    pub to_address: String,
    pub sender: Option<String>,
    /// Failed attempts at calling this status back so far.
    pub attempts: i64,
}

/// How a claimed callback ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioCallbackOutcome {
    /// `status` was called back (or given up on, with `error`): the next change is due
    /// now; none is when `done`.
    Called {
        status: MessageStatus,
        done: bool,
        error: Option<String>,
    },
    /// The attempt failed; try again at `due_at`.
    Retry { due_at: Timestamp, error: String },
}

/// What [`TwilioStore::delete_finished_message`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    /// The message is still on its way (this status): only finished messages are deleted.
    InProgress(MessageStatus),
}

/// Storage of the Twilio-compatible API; a supertrait of [`crate::Store`].
#[async_trait]
pub trait TwilioStore: Send + Sync {
    /// Stores the tenant's account, replacing the token it had (a new token revokes the
    /// old); its inbound settings are kept (and not written: see
    /// [`TwilioStore::set_twilio_inbound`]). A SID another tenant holds is a `Conflict`.
    async fn put_twilio_account(&self, account: &TwilioAccount) -> StoreResult<()>;
    async fn twilio_account(&self, tenant: &str) -> StoreResult<Option<TwilioAccount>>;
    async fn twilio_account_by_sid(&self, sid: &str) -> StoreResult<Option<TwilioAccount>>;
    /// Records a message's `StatusCallback` (again for the same message: nothing changes).
    async fn insert_twilio_callback(&self, callback: &NewTwilioCallback) -> StoreResult<()>;
    /// Leases to `lease_owner` until `now + lease_for` up to `limit` callbacks due at or
    /// before `now` whose message's status is not the one last called back.
    async fn claim_twilio_callbacks(
        &self,
        now: Timestamp,
        limit: u32,
        lease_owner: &str,
        lease_for: SignedDuration,
    ) -> StoreResult<Vec<DueTwilioCallback>>;
    /// Records how a claimed callback ended and releases it; `false` (nothing written)
    /// when `lease_owner` no longer holds it.
    async fn finish_twilio_callback(
        &self,
        message_id: &str,
        lease_owner: &str,
        outcome: &TwilioCallbackOutcome,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Replaces the content of the tenant's message (a redacted body); `false` when the
    /// tenant has no such message.
    async fn replace_message_content(
        &self,
        tenant: &str,
        id: &str,
        content: &serde_json::Value,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Sets where the tenant's inbound messages are posted (`None`: nowhere), starting
    /// after `cursor`; `false` when the tenant has no account.
    async fn set_twilio_inbound(
        &self,
        tenant: &str,
        url: Option<&str>,
        cursor: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Leases to `lease_owner` until `now + lease_for` up to `limit` accounts with an
    /// inbound URL, due, and an inbound message after their cursor.
    async fn claim_twilio_inbound(
        &self,
        now: Timestamp,
        limit: u32,
        lease_owner: &str,
        lease_for: SignedDuration,
    ) -> StoreResult<Vec<DueTwilioInbound>>;
    /// Records how a claimed tenant's round ended; `false` (nothing written) when
    /// `lease_owner` no longer holds it.
    async fn finish_twilio_inbound(
        &self,
        tenant: &str,
        lease_owner: &str,
        outcome: &TwilioInboundOutcome,
    ) -> StoreResult<bool>;
    async fn insert_twilio_service(&self, service: &TwilioService) -> StoreResult<()>;
    /// The tenant's service with this SID (another tenant's is none).
    async fn twilio_service(&self, tenant: &str, sid: &str) -> StoreResult<Option<TwilioService>>;
    /// The tenant's services, oldest first.
    async fn twilio_services(&self, tenant: &str) -> StoreResult<Vec<TwilioService>>;
    /// Deletes the tenant's message if it is finished (delivered, read, or failed for
    /// good), with its outbox row, tracked links, clicks and callback.
    async fn delete_finished_message(&self, tenant: &str, id: &str) -> StoreResult<DeleteOutcome>;
}

macro_rules! impl_twilio_store {
    ($modname:ident, $store:ty, $db:ty, $lock:expr, $lock_accounts:expr) => {
        mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros};
            use sqlx::Row;

            type DbRow = <$db as sqlx::Database>::Row;

            const ACCOUNT_COLUMNS: &str = "tenant_id, account_sid, token_hash, auth_token, \
                created_at, updated_at, inbound_url, inbound_error";

            fn account_from_row(row: &DbRow) -> StoreResult<TwilioAccount> {
                Ok(TwilioAccount {
                    tenant_id: row.try_get("tenant_id")?,
                    account_sid: row.try_get("account_sid")?,
                    token_hash: row.try_get("token_hash")?,
                    auth_token: row.try_get("auth_token")?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                    updated_at: from_micros(row.try_get("updated_at")?)?,
                    inbound_url: row.try_get("inbound_url")?,
                    inbound_error: row.try_get("inbound_error")?,
                })
            }

            fn status_from_db(s: &str) -> StoreResult<MessageStatus> {
                s.parse().map_err(|e: relais_core::status::UnknownMessageStatus| {
                    StoreError::Corrupt(format!("twilio callback: {e}"))
                })
            }

            /// The account whose `column` (a unique one) is `value`.
            async fn account_where(
                store: &$store,
                column: &'static str,
                value: &str,
            ) -> StoreResult<Option<TwilioAccount>> {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM twilio_accounts WHERE {column} = $1"
                )))
                .bind(value)
                .fetch_optional(store.reader())
                .await?
                .as_ref()
                .map(account_from_row)
                .transpose()
            }

            fn service_from_row(row: &DbRow) -> StoreResult<TwilioService> {
                let senders: String = row.try_get("senders")?;
                Ok(TwilioService {
                    sid: row.try_get("sid")?,
                    tenant_id: row.try_get("tenant_id")?,
                    name: row.try_get("name")?,
                    senders: serde_json::from_str(&senders)
                        .map_err(|e| StoreError::Corrupt(format!("twilio service senders: {e}")))?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                })
            }

            #[async_trait]
            impl TwilioStore for $store {
                async fn insert_twilio_service(&self, service: &TwilioService) -> StoreResult<()> {
                    let senders = serde_json::Value::from(service.senders.clone()).to_string();
                    sqlx::query(
                        "INSERT INTO twilio_services (sid, tenant_id, name, senders, created_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(service.sid.as_str())
                    .bind(service.tenant_id.as_str())
                    .bind(service.name.as_str())
                    .bind(senders)
                    .bind(micros(service.created_at))
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }

                async fn twilio_service(&self, tenant: &str, sid: &str) -> StoreResult<Option<TwilioService>> {
                    sqlx::query(
                        "SELECT sid, tenant_id, name, senders, created_at FROM twilio_services \
                         WHERE tenant_id = $1 AND sid = $2",
                    )
                    .bind(tenant)
                    .bind(sid)
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(service_from_row)
                    .transpose()
                }

                async fn twilio_services(&self, tenant: &str) -> StoreResult<Vec<TwilioService>> {
                    sqlx::query(
                        "SELECT sid, tenant_id, name, senders, created_at FROM twilio_services \
                         WHERE tenant_id = $1 ORDER BY created_at, sid",
                    )
                    .bind(tenant)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(service_from_row)
                    .collect()
                }

                async fn put_twilio_account(&self, account: &TwilioAccount) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO twilio_accounts (tenant_id, account_sid, token_hash, auth_token, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (tenant_id) DO UPDATE SET account_sid = excluded.account_sid, \
                           token_hash = excluded.token_hash, auth_token = excluded.auth_token, \
                           updated_at = excluded.updated_at",
                    )
                    .bind(account.tenant_id.as_str())
                    .bind(account.account_sid.as_str())
                    .bind(account.token_hash.as_str())
                    .bind(account.auth_token.as_str())
                    .bind(micros(account.created_at))
                    .bind(micros(account.updated_at))
                    .execute(self.writer())
                    .await
                    .map_err(|e| match e {
                        sqlx::Error::Database(db) if $crate::noted(db.is_unique_violation()) => {
                            StoreError::Conflict(format!(
                                "account SID {} belongs to another tenant",
                                account.account_sid
                            ))
                        }
                        other => other.into(),
                    })?;
                    Ok(())
                }

                async fn twilio_account(&self, tenant: &str) -> StoreResult<Option<TwilioAccount>> {
                    account_where(self, "tenant_id", tenant).await
                }

                async fn twilio_account_by_sid(&self, sid: &str) -> StoreResult<Option<TwilioAccount>> {
                    account_where(self, "account_sid", sid).await
                }

                async fn insert_twilio_callback(&self, callback: &NewTwilioCallback) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO twilio_callbacks (message_id, tenant_id, url, notified_status, pending, attempts, due_at, created_at) \
                         VALUES ($1, $2, $3, NULL, 1, 0, $4, $4) ON CONFLICT (message_id) DO NOTHING",
                    )
                    .bind(callback.message_id.as_str())
                    .bind(callback.tenant_id.as_str())
                    .bind(callback.url.as_str())
                    .bind(micros(callback.created_at))
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }

                async fn claim_twilio_callbacks(
                    &self,
                    now: Timestamp,
                    limit: u32,
                    lease_owner: &str,
                    lease_for: SignedDuration,
                ) -> StoreResult<Vec<DueTwilioCallback>> {
                    let until = now.checked_add(lease_for).unwrap_or(now);
                    let mut tx = self.begin_write().await?;
                    let claimed: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "UPDATE twilio_callbacks SET lease_owner = $1, lease_until = $2 WHERE message_id IN (\
                           SELECT c.message_id FROM twilio_callbacks c \
                           JOIN messages m ON m.id = c.message_id AND m.tenant_id = c.tenant_id \
                           WHERE c.pending = 1 AND c.due_at <= $3 \
                           AND (c.lease_until IS NULL OR c.lease_until <= $3) \
                           AND (c.notified_status IS NULL OR c.notified_status <> m.status) \
                           ORDER BY c.due_at, c.message_id LIMIT $4{}) \
                         RETURNING message_id",
                        $lock
                    )))
                    .bind(lease_owner)
                    .bind(micros(until))
                    .bind(micros(now))
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await?;
                    let mut due = Vec::with_capacity(claimed.len());
                    for id in &claimed {
                        let row = sqlx::query(
                            "SELECT c.message_id, c.tenant_id, c.url, c.attempts, m.status, m.to_address, m.sender \
                             FROM twilio_callbacks c JOIN messages m ON m.id = c.message_id \
                             WHERE c.message_id = $1",
                        )
                        .bind(id.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                        let Some(row) = row else { continue };
                        let status: String = row.try_get("status")?;
                        due.push(DueTwilioCallback {
                            message_id: row.try_get("message_id")?,
                            tenant_id: row.try_get("tenant_id")?,
                            url: row.try_get("url")?,
                            status: status_from_db(&status)?,
                            to_address: row.try_get("to_address")?,
                            sender: row.try_get("sender")?,
                            attempts: row.try_get("attempts")?,
                        });
                    }
                    tx.commit().await?;
                    Ok(due)
                }

                async fn finish_twilio_callback(
                    &self,
                    message_id: &str,
                    lease_owner: &str,
                    outcome: &TwilioCallbackOutcome,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    let result = match outcome {
                        TwilioCallbackOutcome::Called { status, done, error } => sqlx::query(
                            "UPDATE twilio_callbacks SET notified_status = $3, pending = $4, attempts = 0, \
                               due_at = $5, last_error = $6, lease_owner = NULL, lease_until = NULL \
                             WHERE message_id = $1 AND lease_owner = $2",
                        )
                        .bind(message_id)
                        .bind(lease_owner)
                        .bind(status.as_str())
                        .bind(if *done { 0_i64 } else { 1 })
                        .bind(micros(now))
                        .bind(error.as_deref())
                        .execute(self.writer())
                        .await?,
                        TwilioCallbackOutcome::Retry { due_at, error } => sqlx::query(
                            "UPDATE twilio_callbacks SET attempts = attempts + 1, due_at = $3, last_error = $4, \
                               lease_owner = NULL, lease_until = NULL \
                             WHERE message_id = $1 AND lease_owner = $2",
                        )
                        .bind(message_id)
                        .bind(lease_owner)
                        .bind(micros(*due_at))
                        .bind(error.as_str())
                        .execute(self.writer())
                        .await?,
                    };
                    Ok(result.rows_affected() > 0)
                }

                async fn replace_message_content(
                    &self,
                    tenant: &str,
                    id: &str,
                    content: &serde_json::Value,
                    at: Timestamp,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE messages SET content = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind(content.to_string())
                    .bind(micros(at))
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn set_twilio_inbound(
                    &self,
                    tenant: &str,
                    url: Option<&str>,
                    cursor: &str,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE twilio_accounts SET inbound_url = $2, inbound_cursor = $3, inbound_due_at = 0, \
                           inbound_attempts = 0, inbound_error = NULL, updated_at = $4 WHERE tenant_id = $1",
                    )
                    .bind(tenant)
                    .bind(url)
                    .bind(cursor)
                    .bind(micros(now))
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn claim_twilio_inbound(
                    &self,
                    now: Timestamp,
                    limit: u32,
                    lease_owner: &str,
                    lease_for: SignedDuration,
                ) -> StoreResult<Vec<DueTwilioInbound>> {
                    let until = now.checked_add(lease_for).unwrap_or(now);
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE twilio_accounts SET inbound_lease_owner = $1, inbound_lease_until = $2 \
                         WHERE tenant_id IN (\
                           SELECT a.tenant_id FROM twilio_accounts a WHERE a.inbound_url IS NOT NULL \
                           AND a.inbound_due_at <= $3 \
                           AND (a.inbound_lease_until IS NULL OR a.inbound_lease_until <= $3) \
                           AND EXISTS (SELECT 1 FROM inbound_messages i \
                             WHERE i.tenant_id = a.tenant_id AND i.id > a.inbound_cursor) \
                           ORDER BY a.inbound_due_at, a.tenant_id LIMIT $4{}) \
                         RETURNING {ACCOUNT_COLUMNS}, inbound_cursor, inbound_attempts",
                        $lock_accounts
                    )))
                    .bind(lease_owner)
                    .bind(micros(until))
                    .bind(micros(now))
                    .bind(i64::from(limit))
                    .fetch_all(self.writer())
                    .await?;
                    rows.iter()
                        .map(|row| {
                            let account = account_from_row(row)?;
                            Ok(DueTwilioInbound {
                                url: account.inbound_url.clone().unwrap_or_default(),
                                account,
                                cursor: row.try_get::<Option<String>, _>("inbound_cursor")?.unwrap_or_default(),
                                attempts: row.try_get("inbound_attempts")?,
                            })
                        })
                        .collect()
                }

                async fn finish_twilio_inbound(
                    &self,
                    tenant: &str,
                    lease_owner: &str,
                    outcome: &TwilioInboundOutcome,
                ) -> StoreResult<bool> {
                    let (cursor, due_at, attempts, error) = match outcome {
                        TwilioInboundOutcome::Advanced { cursor, error } => {
                            (cursor, 0, 0, error.as_deref())
                        }
                        TwilioInboundOutcome::Retry { cursor, due_at, attempts, error } => {
                            (cursor, micros(*due_at), *attempts, Some(error.as_str()))
                        }
                    };
                    // A retry keeps the error it had before, when it has none of its own.
                    let done = sqlx::query(
                        "UPDATE twilio_accounts SET inbound_cursor = $3, inbound_due_at = $4, \
                           inbound_attempts = $6, inbound_error = COALESCE($5, inbound_error), \
                           inbound_lease_owner = NULL, inbound_lease_until = NULL \
                         WHERE tenant_id = $1 AND inbound_lease_owner = $2",
                    )
                    .bind(tenant)
                    .bind(lease_owner)
                    .bind(cursor.as_str())
                    .bind(due_at)
                    .bind(error)
                    .bind(attempts)
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn delete_finished_message(&self, tenant: &str, id: &str) -> StoreResult<DeleteOutcome> {
                    let mut tx = self.begin_write().await?;
                    let status: Option<String> = sqlx::query_scalar(
                        "SELECT status FROM messages WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(status) = status else {
                        return Ok(DeleteOutcome::NotFound);
                    };
                    let status = status_from_db(&status)?;
                    if !relais_core::twilio::finished(status) {
                        tx.rollback().await?;
                        return Ok(DeleteOutcome::InProgress(status));
                    }
                    for table in ["outbox", "twilio_callbacks"] {
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DELETE FROM {table} WHERE message_id = $1"
                        )))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    for table in ["tracked_links", "link_clicks"] {
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DELETE FROM {table} WHERE tenant_id = $1 AND message_id = $2"
                        )))
                        .bind(tenant)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    sqlx::query("DELETE FROM messages WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(DeleteOutcome::Deleted)
                }
            }
        }
    };
}

impl_twilio_store!(sqlite_twilio, crate::SqliteStore, sqlx::Sqlite, "", "");
impl_twilio_store!(
    postgres_twilio,
    crate::PostgresStore,
    sqlx::Postgres,
    " FOR UPDATE OF c SKIP LOCKED",
    " FOR UPDATE OF a SKIP LOCKED"
);
