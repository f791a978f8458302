//! Who a channel started conversations with: the recipients of its business-initiated
//! messages and when each was last messaged. A limit on distinct recipients over a moving
//! window (WhatsApp's messaging limit: so many unique customers per 24 h) is counted from
//! here, so it survives a restart.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;

/// A channel's recipients over a window, as [`ReachStore::reach_since`] counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reach {
    /// Distinct recipients messaged in the window.
    pub recipients: u64,
    /// The earliest of their last messages: the first to leave the window.
    pub oldest: Option<Timestamp>,
    /// When the recipient asked about was last messaged in the window, if they were.
    pub recipient: Option<Timestamp>,
}

/// Storage for channels' reach; a supertrait of [`crate::Store`].
#[async_trait]
pub trait ReachStore: Send + Sync {
    /// Records that `channel` messaged `to` at `at` (an earlier time is kept only if it is
    /// the later one), and forgets the channel's recipients last messaged before
    /// `forget_before`, so the table holds about one window's worth.
    async fn record_reach(
        &self,
        tenant: &str,
        channel: &str,
        to: &str,
        at: Timestamp,
        forget_before: Timestamp,
    ) -> StoreResult<()>;
    /// The recipients `channel` messaged after `since`, and when `to` was, if among them.
    async fn reach_since(
        &self,
        tenant: &str,
        channel: &str,
        to: &str,
        since: Timestamp,
    ) -> StoreResult<Reach>;
}

macro_rules! impl_reach_store {
    ($modname:ident, $store:ty) => {
        mod $modname {
            use super::*;
            use crate::{from_micros, micros};
            use sqlx::Row;

            #[async_trait]
            impl ReachStore for $store {
                async fn record_reach(
                    &self,
                    tenant: &str,
                    channel: &str,
                    to: &str,
                    at: Timestamp,
                    forget_before: Timestamp,
                ) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(
                        "INSERT INTO channel_reach (tenant_id, channel, to_address, at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (tenant_id, channel, to_address) DO UPDATE SET at = \
                         CASE WHEN excluded.at > channel_reach.at THEN excluded.at ELSE channel_reach.at END",
                    )
                    .bind(tenant)
                    .bind(channel)
                    .bind(to)
                    .bind(micros(at))
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "DELETE FROM channel_reach WHERE tenant_id = $1 AND channel = $2 AND at < $3",
                    )
                    .bind(tenant)
                    .bind(channel)
                    .bind(micros(forget_before))
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn reach_since(
                    &self,
                    tenant: &str,
                    channel: &str,
                    to: &str,
                    since: Timestamp,
                ) -> StoreResult<Reach> {
                    let row = sqlx::query(
                        "SELECT COUNT(*) AS n, MIN(at) AS oldest, \
                         MAX(CASE WHEN to_address = $3 THEN at END) AS recipient \
                         FROM channel_reach WHERE tenant_id = $1 AND channel = $2 AND at > $4",
                    )
                    .bind(tenant)
                    .bind(channel)
                    .bind(to)
                    .bind(micros(since))
                    .fetch_one(self.reader())
                    .await?;
                    let n: i64 = row.try_get("n")?;
                    let oldest: Option<i64> = row.try_get("oldest")?;
                    let recipient: Option<i64> = row.try_get("recipient")?;
                    Ok(Reach {
                        recipients: u64::try_from(n).unwrap_or(0),
                        oldest: oldest.map(from_micros).transpose()?,
                        recipient: recipient.map(from_micros).transpose()?,
                    })
                }
            }
        }
    };
}

impl_reach_store!(sqlite_reach, crate::SqliteStore);
impl_reach_store!(postgres_reach, crate::PostgresStore);
