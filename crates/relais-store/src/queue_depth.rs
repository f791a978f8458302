//! How much work waits in the outbox: the `relais_outbox_ready` gauge of `/metrics`.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;

/// Storage for the queue's depth; a supertrait of [`crate::Store`].
#[async_trait]
pub trait QueueDepthStore: Send + Sync {
    /// Outbox rows due by `now` that no worker holds (never leased, or their lease ran
    /// out): sends waiting for a worker. Fallback timers ([`crate::WATCH_LANE`]) are not
    /// work and are not counted.
    async fn outbox_ready(&self, now: Timestamp) -> StoreResult<i64>;
}

macro_rules! impl_queue_depth_store {
    ($modname:ident, $store:ty) => {
        mod $modname {
            use super::*;
            use crate::micros;
            use sqlx::Row;

            #[async_trait]
            impl QueueDepthStore for $store {
                async fn outbox_ready(&self, now: Timestamp) -> StoreResult<i64> {
                    let row = sqlx::query(
                        "SELECT COUNT(*) AS n FROM outbox WHERE due_at <= $1 \
                         AND (lease_until IS NULL OR lease_until <= $1) AND lane <> $2",
                    )
                    .bind(micros(now))
                    .bind(crate::WATCH_LANE)
                    .fetch_one(self.reader())
                    .await?;
                    Ok(row.try_get("n")?)
                }
            }
        }
    };
}

impl_queue_depth_store!(sqlite_queue_depth, crate::SqliteStore);
impl_queue_depth_store!(postgres_queue_depth, crate::PostgresStore);
