//! Counts over a period for the dashboard: messages by channel, campaign, status and time
//! bucket; inbound messages by bucket; how many reached contacts wrote back; and the help
//! desk's first responses and SLA breaches.
//!
//! Message and inbound ids are UUIDv7, whose first 48 bits are the creation's Unix
//! milliseconds: a period is read as a range of the `(tenant_id, id)` index instead of a
//! scan of the tenant's rows, and `created_at` then filters exactly.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

/// The period counted, cut in buckets of `bucket` from `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub since: Timestamp,
    pub until: Timestamp,
    pub bucket: SignedDuration,
}

/// Messages created in the period with the same channel, campaign, current status and
/// bucket (the bucket's index from the period's start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageCount {
    pub channel: String,
    pub campaign: Option<String>,
    pub status: String,
    pub bucket: i64,
    pub count: i64,
}

/// The help desk over the period.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DeskCounts {
    /// Conversations opened (or reopened) in the period.
    pub opened: i64,
    /// Of them, those that got a first response.
    pub answered: i64,
    /// The mean time to that first response, in seconds.
    pub mean_first_response_secs: Option<f64>,
    /// SLA targets missed in the period.
    pub sla_breaches: i64,
}

/// Everything the dashboard counts, as the store can group it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PeriodCounts {
    pub messages: Vec<MessageCount>,
    /// Inbound messages received per bucket: `(bucket, count)`.
    pub inbound: Vec<(i64, i64)>,
    /// Contacts sent a message in the period.
    pub contacts_reached: i64,
    /// Of them, those who wrote in after the first message they were sent in the period.
    pub contacts_replied: i64,
    pub desk: DeskCounts,
}

/// Storage for the dashboard's counts; a supertrait of [`crate::Store`].
#[async_trait]
pub trait AnalyticsStore: Send + Sync {
    async fn period_counts(&self, tenant: &str, period: &Period) -> StoreResult<PeriodCounts>;
}

/// The smallest UUIDv7 (as text) created at `at`, less a margin for clocks of nodes that
/// disagree a little: every id of a row created at or after `at` sorts after it.
pub(crate) fn lowest_id_at(at: Timestamp) -> String {
    let margin = SignedDuration::from_secs(3600);
    let ms = at
        .checked_sub(margin)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .as_millisecond()
        .max(0);
    let hex = format!("{ms:012x}");
    format!("{}-{}-0000-0000-000000000000", &hex[..8], &hex[8..12])
}

fn bucket_micros(period: &Period) -> i64 {
    i64::try_from(period.bucket.as_micros())
        .unwrap_or(i64::MAX)
        .max(1)
}

macro_rules! impl_analytics_store {
    ($modname:ident, $store:ty) => {
        mod $modname {
            use super::*;
            use crate::micros;
            use sqlx::Row;

            #[async_trait]
            impl AnalyticsStore for $store {
                async fn period_counts(
                    &self,
                    tenant: &str,
                    period: &Period,
                ) -> StoreResult<PeriodCounts> {
                    let since = micros(period.since);
                    let until = micros(period.until);
                    let lowest = lowest_id_at(period.since);
                    let bucket = bucket_micros(period);
                    let rows = sqlx::query(
                        "SELECT channel, campaign, status, (created_at - $3) / $5 AS bucket, COUNT(*) AS n \
                         FROM messages WHERE tenant_id = $1 AND id >= $2 AND created_at >= $3 AND created_at < $4 \
                         GROUP BY 1, 2, 3, 4",
                    )
                    .bind(tenant)
                    .bind(&lowest)
                    .bind(since)
                    .bind(until)
                    .bind(bucket)
                    .fetch_all(self.reader())
                    .await?;
                    let mut messages = Vec::with_capacity(rows.len());
                    for row in &rows {
                        messages.push(MessageCount {
                            channel: row.try_get("channel")?,
                            campaign: row.try_get("campaign")?,
                            status: row.try_get("status")?,
                            bucket: row.try_get("bucket")?,
                            count: row.try_get("n")?,
                        });
                    }
                    let rows = sqlx::query(
                        "SELECT (received_at - $3) / $5 AS bucket, COUNT(*) AS n FROM inbound_messages \
                         WHERE tenant_id = $1 AND id >= $2 AND received_at >= $3 AND received_at < $4 \
                         GROUP BY 1",
                    )
                    .bind(tenant)
                    .bind(&lowest)
                    .bind(since)
                    .bind(until)
                    .bind(bucket)
                    .fetch_all(self.reader())
                    .await?;
                    let mut inbound = Vec::with_capacity(rows.len());
                    for row in &rows {
                        inbound.push((row.try_get("bucket")?, row.try_get("n")?));
                    }
                    let row = sqlx::query(
                        "SELECT COUNT(*) AS reached, COALESCE(SUM(CASE WHEN EXISTS (\
                             SELECT 1 FROM inbound_messages i WHERE i.tenant_id = $1 \
                             AND i.contact_id = first.contact_id AND i.received_at >= first.at) \
                           THEN 1 ELSE 0 END), 0) AS replied \
                         FROM (SELECT contact_id, MIN(created_at) AS at FROM messages \
                               WHERE tenant_id = $1 AND id >= $2 AND created_at >= $3 AND created_at < $4 \
                               AND contact_id IS NOT NULL GROUP BY contact_id) AS first",
                    )
                    .bind(tenant)
                    .bind(&lowest)
                    .bind(since)
                    .bind(until)
                    .fetch_one(self.reader())
                    .await?;
                    let contacts_reached: i64 = row.try_get("reached")?;
                    let contacts_replied: i64 = row.try_get("replied")?;
                    let row = sqlx::query(
                        "SELECT \
                           COALESCE(SUM(CASE WHEN opened_at >= $2 AND opened_at < $3 THEN 1 ELSE 0 END), 0) AS opened, \
                           COALESCE(SUM(CASE WHEN opened_at >= $2 AND opened_at < $3 AND first_response_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS answered, \
                           CAST(AVG(CASE WHEN opened_at >= $2 AND opened_at < $3 AND first_response_at IS NOT NULL \
                               THEN (first_response_at - opened_at) / 1000000.0 END) AS DOUBLE PRECISION) AS mean_first, \
                           COALESCE(SUM(CASE WHEN sla_breached_at >= $2 AND sla_breached_at < $3 THEN 1 ELSE 0 END), 0) AS breaches \
                         FROM conversations WHERE tenant_id = $1",
                    )
                    .bind(tenant)
                    .bind(since)
                    .bind(until)
                    .fetch_one(self.reader())
                    .await?;
                    let desk = DeskCounts {
                        opened: row.try_get("opened")?,
                        answered: row.try_get("answered")?,
                        mean_first_response_secs: row.try_get("mean_first")?,
                        sla_breaches: row.try_get("breaches")?,
                    };
                    Ok(PeriodCounts {
                        messages,
                        inbound,
                        contacts_reached,
                        contacts_replied,
                        desk,
                    })
                }
            }
        }
    };
}

impl_analytics_store!(sqlite_analytics, crate::SqliteStore);
impl_analytics_store!(postgres_analytics, crate::PostgresStore);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_id_sorts_before_ids_made_at_that_time_and_after_older_ones() {
        let now = Timestamp::now();
        let made_now = relais_core::ids::new_id();
        assert!(
            lowest_id_at(now) <= made_now,
            "{} {made_now}",
            lowest_id_at(now)
        );
        let two_hours_later = now
            .checked_add(SignedDuration::from_secs(7200))
            .unwrap_or(now);
        assert!(lowest_id_at(two_hours_later) > made_now);
    }
}
