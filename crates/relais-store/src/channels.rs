//! Configured channels: a tenant's connections to providers (an SMPP account, a WhatsApp
//! number…), each with a kind, a name unique in the tenant and a JSON config.
//!
//! The config holds secrets; the store keeps it as given (sealed by the engine's
//! `SecretBox` before it gets here) and the API layer redacts it.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;

/// A channel to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChannel {
    pub tenant_id: String,
    /// `smpp`, `smpp_server`, `whatsapp`, … (not a `ChannelKind`: several provider kinds
    /// reach one channel kind).
    pub kind: String,
    pub name: String,
    pub config: serde_json::Value,
}

/// A stored channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelRecord {
    pub id: String,
    pub tenant_id: String,
    pub kind: String,
    pub name: String,
    pub config: serde_json::Value,
    pub created_at: Timestamp,
}

/// Storage for configured channels; a supertrait of [`crate::Store`].
#[async_trait]
pub trait ChannelStore: Send + Sync {
    /// [`crate::StoreError::Conflict`] when the tenant already has a channel of that name.
    async fn create_channel(&self, new: &NewChannel, now: Timestamp) -> StoreResult<ChannelRecord>;
    async fn channel(&self, tenant: &str, id: &str) -> StoreResult<Option<ChannelRecord>>;
    /// The tenant's channel whose id or name is `key` (ids win over names).
    async fn channel_by_name_or_id(
        &self,
        tenant: &str,
        key: &str,
    ) -> StoreResult<Option<ChannelRecord>>;
    /// The tenant's channels, oldest first.
    async fn channels(&self, tenant: &str) -> StoreResult<Vec<ChannelRecord>>;
    /// Every tenant's channels of `kind`, for a server starting their connections.
    async fn channels_of_kind(&self, kind: &str) -> StoreResult<Vec<ChannelRecord>>;
    async fn delete_channel(&self, tenant: &str, id: &str) -> StoreResult<bool>;
    /// Replaces a channel's config (secrets sealed anew, a credential's hash upgraded);
    /// `false` when the tenant has no such channel.
    async fn update_channel_config(
        &self,
        tenant: &str,
        id: &str,
        config: &serde_json::Value,
    ) -> StoreResult<bool>;
    /// Messages of the tenant still waiting in the outbox to be sent on channel `id`.
    async fn queued_on_channel(&self, tenant: &str, id: &str) -> StoreResult<i64>;
}

macro_rules! impl_channel_store {
    ($modname:ident, $store:ty, $db:ty) => {
        mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros, new_id};
            use sqlx::Row;

            type DbRow = <$db as sqlx::Database>::Row;

            const COLUMNS: &str = "id, tenant_id, kind, name, config, created_at";

            fn from_row(row: &DbRow) -> StoreResult<ChannelRecord> {
                let config: String = row.try_get("config")?;
                Ok(ChannelRecord {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    kind: row.try_get("kind")?,
                    name: row.try_get("name")?,
                    config: serde_json::from_str(&config)
                        .map_err(|e| StoreError::Corrupt(format!("channel config: {e}")))?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                })
            }

            #[async_trait]
            impl ChannelStore for $store {
                async fn create_channel(
                    &self,
                    new: &NewChannel,
                    now: Timestamp,
                ) -> StoreResult<ChannelRecord> {
                    let record = ChannelRecord {
                        id: new_id(),
                        tenant_id: new.tenant_id.clone(),
                        kind: new.kind.clone(),
                        name: new.name.clone(),
                        config: new.config.clone(),
                        created_at: now,
                    };
                    sqlx::query(
                        "INSERT INTO channels (id, tenant_id, kind, name, config, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(record.id.as_str())
                    .bind(record.tenant_id.as_str())
                    .bind(record.kind.as_str())
                    .bind(record.name.as_str())
                    .bind(record.config.to_string())
                    .bind(micros(now))
                    .execute(self.writer())
                    .await
                    .map_err(|e| match e {
                        sqlx::Error::Database(db) if $crate::noted(db.is_unique_violation()) => {
                            StoreError::Conflict(format!(
                                "a channel named `{}` already exists",
                                new.name
                            ))
                        }
                        other => other.into(),
                    })?;
                    Ok(record)
                }

                async fn channel(
                    &self,
                    tenant: &str,
                    id: &str,
                ) -> StoreResult<Option<ChannelRecord>> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM channels WHERE tenant_id = $1 AND id = $2"
                    )))
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?;
                    row.as_ref().map(from_row).transpose()
                }

                async fn channel_by_name_or_id(
                    &self,
                    tenant: &str,
                    key: &str,
                ) -> StoreResult<Option<ChannelRecord>> {
                    // One statement, not a look-up by id and then by name: every accept
                    // group naming a channel asks this, and each statement is a round
                    // trip to a connection's thread.
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM channels WHERE tenant_id = $1 AND (id = $2 OR name = $2) \
                         ORDER BY id = $2 DESC LIMIT 1"
                    )))
                    .bind(tenant)
                    .bind(key)
                    .fetch_optional(self.reader())
                    .await?;
                    row.as_ref().map(from_row).transpose()
                }

                async fn channels(&self, tenant: &str) -> StoreResult<Vec<ChannelRecord>> {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM channels WHERE tenant_id = $1 ORDER BY created_at, id"
                    )))
                    .bind(tenant)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter().map(from_row).collect()
                }

                async fn channels_of_kind(&self, kind: &str) -> StoreResult<Vec<ChannelRecord>> {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM channels WHERE kind = $1 ORDER BY created_at, id"
                    )))
                    .bind(kind)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter().map(from_row).collect()
                }

                async fn delete_channel(&self, tenant: &str, id: &str) -> StoreResult<bool> {
                    let done = sqlx::query("DELETE FROM channels WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant)
                        .bind(id)
                        .execute(self.writer())
                        .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn update_channel_config(
                    &self,
                    tenant: &str,
                    id: &str,
                    config: &serde_json::Value,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE channels SET config = $1 WHERE tenant_id = $2 AND id = $3",
                    )
                    .bind(config.to_string())
                    .bind(tenant)
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn queued_on_channel(&self, tenant: &str, id: &str) -> StoreResult<i64> {
                    let n: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM outbox o JOIN messages m ON m.id = o.message_id \
                         WHERE m.tenant_id = $1 AND m.channel = $2 AND o.phase = 'send'",
                    )
                    .bind(tenant)
                    .bind(id)
                    .fetch_one(self.reader())
                    .await?;
                    Ok(n)
                }
            }
        }
    };
}

impl_channel_store!(sqlite_channels, crate::SqliteStore, sqlx::Sqlite);
impl_channel_store!(postgres_channels, crate::PostgresStore, sqlx::Postgres);
