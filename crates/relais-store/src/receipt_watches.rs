//! Receipts owed to SMPP applications: a message an ESME submitted with
//! `registered_delivery` is watched until it reaches a final status, then its receipt goes
//! back as a `deliver_sm`. The watch lives in the store, so a restart owes the same
//! receipts.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;
use relais_core::status::MessageStatus;

/// What the receipt of one submitted message needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptWatch {
    /// The id the ESME got in its `submit_sm_resp`: the message's id, or a part's for the
    /// earlier parts of a concatenated submit.
    pub receipt_id: String,
    pub message_id: String,
    pub tenant_id: String,
    /// The ESME account the receipt goes to.
    pub system_id: String,
    /// The submit's addresses, echoed in the receipt.
    pub source: String,
    pub destination: String,
    /// `submit date` of the receipt text (`YYMMDDhhmm`).
    pub submitted: String,
    /// The first characters of the message, for the receipt's `text:` field.
    pub text: String,
    pub created_at: Timestamp,
}

/// Storage for owed receipts; a supertrait of [`crate::Store`].
#[async_trait]
pub trait ReceiptWatchStore: Send + Sync {
    /// Watches a message for one receipt id (a second watch of that id is ignored).
    async fn watch_receipt(&self, watch: &ReceiptWatch) -> StoreResult<()>;
    /// Up to `limit` watches whose message reached a final status, with that status, and
    /// whose next try is due by `now`; oldest tries first.
    async fn due_receipts(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(ReceiptWatch, MessageStatus)>>;
    /// The receipts went out (or were given up): forget these watches, by receipt id.
    async fn forget_receipts(&self, receipt_ids: &[String]) -> StoreResult<()>;
    /// The ESME was not bound: try these receipt ids again at `at`.
    async fn postpone_receipts(&self, receipt_ids: &[String], at: Timestamp) -> StoreResult<()>;
}

/// Statuses a message does not leave (for an SMS, `delivered` is the end).
const FINAL: &str =
    "'delivered', 'read', 'undelivered', 'failed', 'rejected', 'expired', 'canceled'";

macro_rules! impl_receipt_watch_store {
    ($modname:ident, $store:ty, $db:ty) => {
        mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros};
            use sqlx::Row;

            type Db = $db;

            #[async_trait]
            impl ReceiptWatchStore for $store {
                async fn watch_receipt(&self, watch: &ReceiptWatch) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO smpp_receipt_watches (receipt_id, message_id, tenant_id, system_id, source, destination, submitted, text, created_at, next_try_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (receipt_id) DO NOTHING",
                    )
                    .bind(watch.receipt_id.as_str())
                    .bind(watch.message_id.as_str())
                    .bind(watch.tenant_id.as_str())
                    .bind(watch.system_id.as_str())
                    .bind(watch.source.as_str())
                    .bind(watch.destination.as_str())
                    .bind(watch.submitted.as_str())
                    .bind(watch.text.as_str())
                    .bind(micros(watch.created_at))
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }

                async fn due_receipts(
                    &self,
                    now: Timestamp,
                    limit: u32,
                ) -> StoreResult<Vec<(ReceiptWatch, MessageStatus)>> {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT w.receipt_id, w.message_id, w.tenant_id, w.system_id, w.source, w.destination, w.submitted, w.text, w.created_at, m.status \
                         FROM smpp_receipt_watches w JOIN messages m ON m.id = w.message_id \
                         WHERE w.next_try_at <= $1 AND m.status IN ({FINAL}) \
                         ORDER BY w.next_try_at, w.receipt_id LIMIT $2"
                    )))
                    .bind(micros(now))
                    .bind(i64::from(limit))
                    .fetch_all(self.writer())
                    .await?;
                    rows.iter()
                        .map(|row| {
                            let status: String = row.try_get("status")?;
                            let status = status.parse().map_err(
                                |e: relais_core::status::UnknownMessageStatus| {
                                    StoreError::Corrupt(e.to_string())
                                },
                            )?;
                            Ok((
                                ReceiptWatch {
                                    receipt_id: row.try_get("receipt_id")?,
                                    message_id: row.try_get("message_id")?,
                                    tenant_id: row.try_get("tenant_id")?,
                                    system_id: row.try_get("system_id")?,
                                    source: row.try_get("source")?,
                                    destination: row.try_get("destination")?,
                                    submitted: row.try_get("submitted")?,
                                    text: row.try_get("text")?,
                                    created_at: from_micros(row.try_get("created_at")?)?,
                                },
                                status,
                            ))
                        })
                        .collect()
                }

                async fn forget_receipts(&self, receipt_ids: &[String]) -> StoreResult<()> {
                    for chunk in receipt_ids.chunks(1000) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "DELETE FROM smpp_receipt_watches WHERE receipt_id IN (",
                        );
                        let mut sep = q.separated(", ");
                        for id in chunk {
                            sep.push_bind(id.as_str());
                        }
                        q.push(")");
                        q.build().execute(self.writer()).await?;
                    }
                    Ok(())
                }

                async fn postpone_receipts(
                    &self,
                    receipt_ids: &[String],
                    at: Timestamp,
                ) -> StoreResult<()> {
                    for chunk in receipt_ids.chunks(1000) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "UPDATE smpp_receipt_watches SET next_try_at = ",
                        );
                        q.push_bind(micros(at)).push(" WHERE receipt_id IN (");
                        let mut sep = q.separated(", ");
                        for id in chunk {
                            sep.push_bind(id.as_str());
                        }
                        q.push(")");
                        q.build().execute(self.writer()).await?;
                    }
                    Ok(())
                }
            }
        }
    };
}

impl_receipt_watch_store!(sqlite_receipt_watches, crate::SqliteStore, sqlx::Sqlite);
impl_receipt_watch_store!(
    postgres_receipt_watches,
    crate::PostgresStore,
    sqlx::Postgres
);
