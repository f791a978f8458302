//! Parts of concatenated SMPP submits waiting for the rest of their message. An ESME is told
//! each part was accepted as soon as it arrives, so the parts live in the store: a restart
//! between two parts still assembles the message when the last one comes.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;

/// One part of a concatenated submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldPart {
    /// Names the message the part belongs to (ESME, addresses, reference and part count).
    pub key: String,
    pub tenant_id: String,
    /// The number of parts of the message, and this one's, from 1.
    pub total: i64,
    pub seq: i64,
    pub text: String,
    /// The id the ESME was answered with for this part.
    pub part_id: String,
    pub held_at: Timestamp,
}

/// Storage for held parts; a supertrait of [`crate::Store`].
#[async_trait]
pub trait HeldPartStore: Send + Sync {
    /// Keeps a part (a repeated part keeps its first text and id) and returns every part
    /// held for its key, in order.
    async fn hold_part(&self, part: &HeldPart) -> StoreResult<Vec<HeldPart>>;
    /// Forgets the parts of a key (their message was accepted or refused).
    async fn release_parts(&self, key: &str) -> StoreResult<()>;
    /// Forgets the parts held before `before` (a message whose other parts never came);
    /// the number of parts forgotten.
    async fn expire_parts(&self, before: Timestamp) -> StoreResult<u64>;
}

macro_rules! impl_held_part_store {
    ($modname:ident, $store:ty) => {
        mod $modname {
            use super::*;
            use crate::{from_micros, micros};
            use sqlx::Row;

            #[async_trait]
            impl HeldPartStore for $store {
                async fn hold_part(&self, part: &HeldPart) -> StoreResult<Vec<HeldPart>> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(
                        "INSERT INTO smpp_held_parts (key, seq, tenant_id, total, text, part_id, held_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key, seq) DO NOTHING",
                    )
                    .bind(part.key.as_str())
                    .bind(part.seq)
                    .bind(part.tenant_id.as_str())
                    .bind(part.total)
                    .bind(part.text.as_str())
                    .bind(part.part_id.as_str())
                    .bind(micros(part.held_at))
                    .execute(&mut *tx)
                    .await?;
                    let rows = sqlx::query(
                        "SELECT key, seq, tenant_id, total, text, part_id, held_at FROM smpp_held_parts \
                         WHERE key = $1 ORDER BY seq",
                    )
                    .bind(part.key.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    rows.iter()
                        .map(|row| {
                            Ok(HeldPart {
                                key: row.try_get("key")?,
                                tenant_id: row.try_get("tenant_id")?,
                                total: row.try_get("total")?,
                                seq: row.try_get("seq")?,
                                text: row.try_get("text")?,
                                part_id: row.try_get("part_id")?,
                                held_at: from_micros(row.try_get("held_at")?)?,
                            })
                        })
                        .collect()
                }

                async fn release_parts(&self, key: &str) -> StoreResult<()> {
                    sqlx::query("DELETE FROM smpp_held_parts WHERE key = $1")
                        .bind(key)
                        .execute(self.writer())
                        .await?;
                    Ok(())
                }

                async fn expire_parts(&self, before: Timestamp) -> StoreResult<u64> {
                    let done = sqlx::query("DELETE FROM smpp_held_parts WHERE held_at < $1")
                        .bind(micros(before))
                        .execute(self.writer())
                        .await?;
                    Ok(done.rows_affected())
                }
            }
        }
    };
}

impl_held_part_store!(sqlite_held_parts, crate::SqliteStore);
impl_held_part_store!(postgres_held_parts, crate::PostgresStore);
