//! Campaigns: their definitions and states, the recipients fixed when one starts and what
//! became of each, the lease a node holds while it sends one, and the reads the sending
//! needs (a contact's recent marketing messages for the frequency cap, the moments they
//! engaged for send-time optimisation) and the counts its report shows.
//!
//! A campaign's recipients are copied from its segment in the transaction that starts it,
//! so that who gets it no longer depends on when each page is read, and a campaign taken
//! up again after a crash goes on with exactly those it had not done.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;
use relais_core::campaign::{CampaignPhase, CampaignState, RecipientState};
use relais_core::consent::Purpose;
use relais_core::segment::Filter;
use serde::Serialize;
use std::collections::HashMap;

/// A stored campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// The campaign as created (JSON).
    pub definition: serde_json::Value,
    pub state: CampaignState,
    pub phase: CampaignPhase,
    /// What starting it fixed (the filter, the best hours learned then).
    pub plan: Option<serde_json::Value>,
    /// The A/B test's winning variant, once chosen.
    pub winner: Option<String>,
    /// When an A/B test's results are read: its group's messages were all stored, plus
    /// the test's period.
    pub test_ends_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What became of one recipient, written after their turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientOutcome {
    pub contact_id: String,
    pub state: RecipientState,
    pub variant: Option<String>,
    pub message_id: Option<String>,
    pub reason: Option<String>,
}

/// Recipients counted by state, reason and variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientCount {
    pub state: String,
    pub reason: Option<String>,
    pub variant: Option<String>,
    pub count: i64,
}

/// A campaign's messages counted by variant, channel, status, the start of their address
/// and their SMS segments, with how many of them were answered (the contact wrote in
/// after the message was created), clicked and converted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelCount {
    pub variant: Option<String>,
    pub channel: String,
    pub status: String,
    /// The first [`FunnelQuery::address_prefix_chars`] characters of the recipients'
    /// addresses (what a price table's country prefixes need), `None` without them.
    pub address_prefix: Option<String>,
    /// SMS segments per message (1 for other channels).
    pub segments: i64,
    pub count: i64,
    pub replied: i64,
    /// Messages with at least one click on a tracked link.
    pub clicked: i64,
    /// Messages a conversion event was attributed to.
    pub converted: i64,
    /// The sum of the values of the conversion events attributed to them.
    pub conversion_value: f64,
}

/// What a campaign's funnel counts besides statuses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunnelQuery {
    /// The conversion events (`purchase`) and the attribution window in microseconds: an
    /// event of one of these names counts for the last message sent to the contact
    /// before it, when it came within the window after that message.
    pub conversion: Option<(Vec<String>, i64)>,
    /// How many leading characters of each address to group by (0: none).
    pub address_prefix_chars: usize,
}

/// Storage for campaigns; a supertrait of [`crate::Store`].
#[async_trait]
pub trait CampaignStore: Send + Sync {
    /// Creates a draft campaign; `Conflict` when the tenant has one of that name.
    async fn insert_campaign(
        &self,
        tenant: &str,
        name: &str,
        definition: &serde_json::Value,
        now: Timestamp,
    ) -> StoreResult<CampaignRecord>;
    /// The campaign with this id, or else this name.
    async fn campaign(&self, tenant: &str, id_or_name: &str)
    -> StoreResult<Option<CampaignRecord>>;
    /// The tenant's campaigns, newest first.
    async fn list_campaigns(&self, tenant: &str) -> StoreResult<Vec<CampaignRecord>>;
    /// Starts a draft: its state becomes `running` in `phase`, with `plan`, and the
    /// contacts `filter` holds at `now` become its recipients, all in one transaction.
    /// `None` (and nothing changed) when it is not a draft any more.
    async fn start_campaign(
        &self,
        tenant: &str,
        id: &str,
        filter: &Filter,
        phase: CampaignPhase,
        plan: &serde_json::Value,
        now: Timestamp,
    ) -> StoreResult<Option<i64>>;
    /// Moves the campaign from one of `from` to `to`; `None` when it was in none of them.
    /// Canceling also cancels the recipients not yet done; completing sets `finished_at`.
    async fn move_campaign(
        &self,
        tenant: &str,
        id: &str,
        from: &[CampaignState],
        to: CampaignState,
        now: Timestamp,
    ) -> StoreResult<Option<CampaignRecord>>;
    /// Takes the lease of a running campaign whose lease is free, lapsed or already
    /// `owner`'s (a node that restarted after a crash takes its campaigns up at once),
    /// until `lease_until`.
    async fn claim_campaign(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<CampaignRecord>>;
    /// Extends a lease held by `owner`; false when it is not theirs any more.
    async fn renew_campaign(
        &self,
        id: &str,
        owner: &str,
        lease_until: Timestamp,
    ) -> StoreResult<bool>;
    /// Gives a lease back; the campaign goes behind the others that wait for a turn.
    async fn release_campaign(&self, id: &str, owner: &str, now: Timestamp) -> StoreResult<()>;
    /// Replaces a running campaign's plan (its next free slot moved).
    async fn set_campaign_plan(&self, id: &str, plan: &serde_json::Value) -> StoreResult<()>;
    /// Moves a running campaign to `phase`, with its winner and test end when known.
    async fn set_campaign_phase(
        &self,
        id: &str,
        phase: CampaignPhase,
        winner: Option<&str>,
        test_ends_at: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Up to `limit` recipients in `state`, by contact id, those after `after` only when
    /// given (a worker reads the next page while the one before is still being stored).
    async fn campaign_recipients(
        &self,
        campaign_id: &str,
        state: RecipientState,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<String>>;
    /// Writes what became of recipients, in one transaction.
    async fn record_recipients(
        &self,
        campaign_id: &str,
        outcomes: &[RecipientOutcome],
    ) -> StoreResult<()>;
    async fn recipient_counts(&self, campaign_id: &str) -> StoreResult<Vec<RecipientCount>>;
    /// The campaign's messages by variant, channel and status (and what `query` asks).
    async fn campaign_funnel(
        &self,
        tenant: &str,
        campaign_id: &str,
        query: &FunnelQuery,
    ) -> StoreResult<Vec<FunnelCount>>;
    /// The messages of the journey's `send` steps, as [`CampaignStore::campaign_funnel`]
    /// counts a campaign's, with the step in `variant`.
    async fn journey_funnel(
        &self,
        tenant: &str,
        journey: &str,
        query: &FunnelQuery,
    ) -> StoreResult<Vec<FunnelCount>>;
    /// For each of `contact_ids`, how many messages a frequency cap on `capped` counts
    /// were stored for them since `since` (refused and canceled ones aside), except those
    /// labelled `except_campaign`. As [`relais_core::frequency_cap::FrequencyCap::covers`]
    /// reads it: a cap on `all` counts every message, on `marketing` every one but the
    /// transactional ones (marketing topics included), on a topic that topic's.
    async fn purpose_counts(
        &self,
        tenant: &str,
        contact_ids: &[String],
        capped: &Purpose,
        since: Timestamp,
        except_campaign: Option<&str>,
    ) -> StoreResult<HashMap<String, i64>>;
    /// When each of `contact_ids` engaged since `since`: read a message, or wrote in.
    async fn engagement_times(
        &self,
        tenant: &str,
        contact_ids: &[String],
        since: Timestamp,
    ) -> StoreResult<Vec<(String, Timestamp)>>;
    /// The latest `limit` engagements of the tenant's contacts since `since` (only the
    /// recipients of `campaign_id` when given), with the contact's time zone.
    async fn recent_engagements(
        &self,
        tenant: &str,
        campaign_id: Option<&str>,
        since: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<(Option<String>, Timestamp)>>;
}

macro_rules! impl_campaign_store {
    ($modname:ident, $store:ty, $db:ty) => {
        mod $modname {
            use super::*;
            use crate::segments::{compile, push_condition};
            use crate::{StoreError, from_micros, micros, new_id};
            use sqlx::Row;

            type Db = $db;
            type DbRow = <$db as sqlx::Database>::Row;

            const COLUMNS: &str = "id, tenant_id, name, definition, state, phase, plan, winner, test_ends_at, \
                started_at, finished_at, created_at, updated_at";

            fn optional_time(row: &DbRow, column: &str) -> StoreResult<Option<Timestamp>> {
                row.try_get::<Option<i64>, _>(column)?
                    .map(from_micros)
                    .transpose()
            }

            fn campaign_from_row(row: &DbRow) -> StoreResult<CampaignRecord> {
                let definition: String = row.try_get("definition")?;
                let state: String = row.try_get("state")?;
                let phase: String = row.try_get("phase")?;
                let plan: Option<String> = row.try_get("plan")?;
                Ok(CampaignRecord {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    name: row.try_get("name")?,
                    definition: serde_json::from_str(&definition)
                        .map_err(|e| StoreError::Corrupt(format!("campaign definition: {e}")))?,
                    state: CampaignState::parse(&state)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    phase: CampaignPhase::parse(&phase)
                        .ok_or_else(|| StoreError::Corrupt(format!("campaign phase `{phase}`")))?,
                    plan: plan
                        .map(|p| serde_json::from_str(&p))
                        .transpose()
                        .map_err(|e| StoreError::Corrupt(format!("campaign plan: {e}")))?,
                    winner: row.try_get("winner")?,
                    test_ends_at: optional_time(row, "test_ends_at")?,
                    started_at: optional_time(row, "started_at")?,
                    finished_at: optional_time(row, "finished_at")?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                    updated_at: from_micros(row.try_get("updated_at")?)?,
                })
            }

            /// Counts the messages `source` names (`grp`, `message_id`; `$1` is the tenant,
            /// `$2` the campaign or journey) as a funnel.
            async fn funnel(
                store: &$store,
                source: &str,
                tenant: &str,
                owner: &str,
                query: &FunnelQuery,
            ) -> StoreResult<Vec<FunnelCount>> {
                // The recipients drive the join: SQLite's planner, left to itself, read the
                // tenant's messages first and looked each one up among the recipients
                // (which have no index by message), minutes for 100,000. Its CROSS JOIN
                // keeps the written order; PostgreSQL plans it well.
                let join = match crate::Store::backend(store) {
                    crate::Backend::Sqlite => "CROSS JOIN",
                    crate::Backend::Postgres => "JOIN",
                };
                let prefix = if query.address_prefix_chars > 0 {
                    format!("substr(m.to_address, 1, {})", query.address_prefix_chars)
                } else {
                    "CAST(NULL AS TEXT)".to_owned()
                };
                // A message counts from when it was to go out (a scheduled one from its
                // time, not from when it was accepted).
                const AT: &str = "COALESCE(m.send_at, m.created_at)";
                const LATER_AT: &str = "COALESCE(l.send_at, l.created_at)";
                let (converted, value) = match &query.conversion {
                    Some((events, _)) if !events.is_empty() => {
                        let names: Vec<String> = (0..events.len()).map(|i| format!("${}", i + 3)).collect();
                        let window = format!("${}", events.len() + 3);
                        let attributed = format!(
                            "FROM contact_events e WHERE e.tenant_id = $1 AND e.contact_id = m.contact_id \
                               AND e.name IN ({}) AND e.at >= {AT} AND e.at <= {AT} + {window} \
                               AND NOT EXISTS (SELECT 1 FROM messages l WHERE l.tenant_id = $1 \
                                 AND l.contact_id = m.contact_id AND {LATER_AT} > {AT} AND {LATER_AT} <= e.at \
                                 AND l.status NOT IN ('rejected', 'canceled'))",
                            names.join(", ")
                        );
                        (
                            format!("COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 {attributed}) THEN 1 ELSE 0 END), 0)"),
                            format!("COALESCE(SUM(COALESCE((SELECT SUM(e.value) {attributed}), CAST(0 AS DOUBLE PRECISION))), CAST(0 AS DOUBLE PRECISION))"),
                        )
                    }
                    _ => (
                        "CAST(0 AS BIGINT)".to_owned(),
                        "CAST(0 AS DOUBLE PRECISION)".to_owned(),
                    ),
                };
                let sql = format!(
                    "SELECT r.grp AS variant, m.channel AS channel, m.status AS status, \
                       {prefix} AS address_prefix, COALESCE(m.segments, 1) AS segments, COUNT(*) AS n, \
                       COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM inbound_messages w \
                           WHERE w.tenant_id = $1 AND w.contact_id = m.contact_id AND w.received_at >= m.created_at) \
                         THEN 1 ELSE 0 END), 0) AS replied, \
                       COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM link_clicks k \
                           WHERE k.tenant_id = $1 AND k.message_id = m.id) THEN 1 ELSE 0 END), 0) AS clicked, \
                       {converted} AS converted, {value} AS conversion_value \
                     FROM ({source}) r {join} messages m ON m.id = r.message_id \
                     WHERE m.tenant_id = $1 \
                     GROUP BY r.grp, m.channel, m.status, {prefix}, COALESCE(m.segments, 1) \
                     ORDER BY 1, 2, 3, 4, 5",
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(owner);
                if let Some((events, window)) = &query.conversion
                    && !events.is_empty()
                {
                    for event in events {
                        q = q.bind(event.as_str());
                    }
                    q = q.bind(*window);
                }
                let rows = q.fetch_all(store.reader()).await?;
                rows.iter()
                    .map(|r| {
                        Ok(FunnelCount {
                            variant: r.try_get("variant")?,
                            channel: r.try_get("channel")?,
                            status: r.try_get("status")?,
                            address_prefix: r.try_get("address_prefix")?,
                            segments: r.try_get("segments")?,
                            count: r.try_get("n")?,
                            replied: r.try_get("replied")?,
                            clicked: r.try_get("clicked")?,
                            converted: r.try_get("converted")?,
                            conversion_value: r.try_get("conversion_value")?,
                        })
                    })
                    .collect()
            }

            #[async_trait]
            impl CampaignStore for $store {
                async fn insert_campaign(
                    &self,
                    tenant: &str,
                    name: &str,
                    definition: &serde_json::Value,
                    now: Timestamp,
                ) -> StoreResult<CampaignRecord> {
                    let id = new_id();
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO campaigns (id, tenant_id, name, definition, state, phase, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, 'draft', 'send', $5, $5) ON CONFLICT (tenant_id, name) DO NOTHING \
                         RETURNING {COLUMNS}"
                    )))
                    .bind(&id)
                    .bind(tenant)
                    .bind(name)
                    .bind(definition.to_string())
                    .bind(micros(now))
                    .fetch_optional(self.writer())
                    .await?;
                    match row {
                        Some(row) => campaign_from_row(&row),
                        None => Err(StoreError::Conflict(format!(
                            "a campaign named `{name}` exists"
                        ))),
                    }
                }

                async fn campaign(
                    &self,
                    tenant: &str,
                    id_or_name: &str,
                ) -> StoreResult<Option<CampaignRecord>> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM campaigns WHERE tenant_id = $1 AND (id = $2 OR name = $2) \
                         ORDER BY CASE WHEN id = $2 THEN 0 ELSE 1 END LIMIT 1"
                    )))
                    .bind(tenant)
                    .bind(id_or_name)
                    .fetch_optional(self.reader())
                    .await?;
                    row.as_ref().map(campaign_from_row).transpose()
                }

                async fn list_campaigns(&self, tenant: &str) -> StoreResult<Vec<CampaignRecord>> {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM campaigns WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC"
                    )))
                    .bind(tenant)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter().map(campaign_from_row).collect()
                }

                async fn start_campaign(
                    &self,
                    tenant: &str,
                    id: &str,
                    filter: &Filter,
                    phase: CampaignPhase,
                    plan: &serde_json::Value,
                    now: Timestamp,
                ) -> StoreResult<Option<i64>> {
                    let mut tx = self.begin_write().await?;
                    let started = sqlx::query(
                        "UPDATE campaigns SET state = 'running', phase = $3, plan = $4, started_at = $5, updated_at = $5 \
                         WHERE tenant_id = $1 AND id = $2 AND state = 'draft'",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind(phase.as_str())
                    .bind(plan.to_string())
                    .bind(micros(now))
                    .execute(&mut *tx)
                    .await?;
                    if started.rows_affected() == 0 {
                        return Ok(None);
                    }
                    let mut q = sqlx::QueryBuilder::<Db>::new(
                        "INSERT INTO campaign_recipients (campaign_id, contact_id, state) SELECT ",
                    );
                    q.push_bind(id.to_owned())
                        .push(", c.id, 'pending' FROM contacts c WHERE c.tenant_id = ")
                        .push_bind(tenant.to_owned())
                        .push(" AND ");
                    push_condition(&mut q, compile(filter, crate::Store::backend(self), now));
                    let inserted = q.build().execute(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(Some(i64::try_from(inserted.rows_affected()).unwrap_or(i64::MAX)))
                }

                async fn move_campaign(
                    &self,
                    tenant: &str,
                    id: &str,
                    from: &[CampaignState],
                    to: CampaignState,
                    now: Timestamp,
                ) -> StoreResult<Option<CampaignRecord>> {
                    let mut tx = self.begin_write().await?;
                    let mut q = sqlx::QueryBuilder::<Db>::new("UPDATE campaigns SET state = ");
                    q.push_bind(to.as_str()).push(", updated_at = ").push_bind(micros(now));
                    if matches!(to, CampaignState::Completed | CampaignState::Canceled) {
                        q.push(", finished_at = ").push_bind(micros(now));
                        q.push(", lease_owner = NULL, lease_until = NULL");
                    }
                    q.push(" WHERE tenant_id = ").push_bind(tenant.to_owned());
                    q.push(" AND id = ").push_bind(id.to_owned()).push(" AND state IN (");
                    let mut states = q.separated(", ");
                    for state in from {
                        states.push_bind(state.as_str());
                    }
                    q.push(") RETURNING ").push(COLUMNS);
                    let row = q.build().fetch_optional(&mut *tx).await?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    if to == CampaignState::Canceled {
                        sqlx::query(
                            "UPDATE campaign_recipients SET state = 'canceled' \
                             WHERE campaign_id = $1 AND state IN ('pending', 'waiting')",
                        )
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    let record = campaign_from_row(&row)?;
                    tx.commit().await?;
                    Ok(Some(record))
                }

                async fn claim_campaign(
                    &self,
                    owner: &str,
                    now: Timestamp,
                    lease_until: Timestamp,
                ) -> StoreResult<Option<CampaignRecord>> {
                    // The lease is checked again by the UPDATE itself: of two nodes that
                    // picked the same campaign, the second updates nothing.
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE campaigns SET lease_owner = $1, lease_until = $3 \
                         WHERE id = (SELECT id FROM campaigns WHERE state = 'running' \
                             AND (lease_until IS NULL OR lease_until < $2 OR lease_owner = $1) \
                             AND NOT (phase = 'test' AND test_ends_at IS NOT NULL AND test_ends_at > $2) \
                             ORDER BY updated_at, id LIMIT 1) \
                         AND state = 'running' AND (lease_until IS NULL OR lease_until < $2 OR lease_owner = $1) \
                         RETURNING {COLUMNS}"
                    )))
                    .bind(owner)
                    .bind(micros(now))
                    .bind(micros(lease_until))
                    .fetch_optional(self.writer())
                    .await?;
                    row.as_ref().map(campaign_from_row).transpose()
                }

                async fn renew_campaign(
                    &self,
                    id: &str,
                    owner: &str,
                    lease_until: Timestamp,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE campaigns SET lease_until = $3 WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
                    )
                    .bind(id)
                    .bind(owner)
                    .bind(micros(lease_until))
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn release_campaign(&self, id: &str, owner: &str, now: Timestamp) -> StoreResult<()> {
                    sqlx::query(
                        "UPDATE campaigns SET lease_owner = NULL, lease_until = NULL, updated_at = $3 \
                         WHERE id = $1 AND lease_owner = $2",
                    )
                    .bind(id)
                    .bind(owner)
                    .bind(micros(now))
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }

                async fn set_campaign_plan(&self, id: &str, plan: &serde_json::Value) -> StoreResult<()> {
                    sqlx::query("UPDATE campaigns SET plan = $2 WHERE id = $1")
                        .bind(id)
                        .bind(plan.to_string())
                        .execute(self.writer())
                        .await?;
                    Ok(())
                }

                async fn set_campaign_phase(
                    &self,
                    id: &str,
                    phase: CampaignPhase,
                    winner: Option<&str>,
                    test_ends_at: Option<Timestamp>,
                    now: Timestamp,
                ) -> StoreResult<()> {
                    sqlx::query(
                        "UPDATE campaigns SET phase = $2, winner = COALESCE($3, winner), \
                         test_ends_at = COALESCE($4, test_ends_at), updated_at = $5 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(phase.as_str())
                    .bind(winner)
                    .bind(test_ends_at.map(micros))
                    .bind(micros(now))
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }

                async fn campaign_recipients(
                    &self,
                    campaign_id: &str,
                    state: RecipientState,
                    after: Option<&str>,
                    limit: i64,
                ) -> StoreResult<Vec<String>> {
                    // '' sorts before every id.
                    let rows = sqlx::query(
                        "SELECT contact_id FROM campaign_recipients WHERE campaign_id = $1 AND state = $2 \
                         AND contact_id > $3 ORDER BY contact_id LIMIT $4",
                    )
                    .bind(campaign_id)
                    .bind(state.as_str())
                    .bind(after.unwrap_or(""))
                    .bind(limit)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter()
                        .map(|r| r.try_get::<String, _>("contact_id").map_err(StoreError::from))
                        .collect()
                }

                async fn record_recipients(
                    &self,
                    campaign_id: &str,
                    outcomes: &[RecipientOutcome],
                ) -> StoreResult<()> {
                    // One statement per 500 recipients instead of one each: a page of 1,000
                    // held the one writer for a thousand round trips.
                    let mut tx = self.begin_write().await?;
                    for chunk in outcomes.chunks(crate::ROWS_PER_STATEMENT) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "WITH v (contact_id, state, variant, message_id, reason) AS (",
                        );
                        q.push_values(chunk, |mut row, outcome| {
                            row.push_bind(outcome.contact_id.as_str())
                                .push_bind(outcome.state.as_str())
                                .push_bind(outcome.variant.as_deref())
                                .push_bind(outcome.message_id.as_deref())
                                .push_bind(outcome.reason.as_deref());
                        });
                        q.push(
                            ") UPDATE campaign_recipients SET state = v.state, variant = v.variant, \
                               message_id = v.message_id, reason = v.reason \
                             FROM v WHERE campaign_recipients.campaign_id = ",
                        );
                        q.push_bind(campaign_id);
                        q.push(" AND campaign_recipients.contact_id = v.contact_id");
                        q.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn recipient_counts(&self, campaign_id: &str) -> StoreResult<Vec<RecipientCount>> {
                    let rows = sqlx::query(
                        "SELECT state, reason, variant, COUNT(*) AS n FROM campaign_recipients \
                         WHERE campaign_id = $1 GROUP BY state, reason, variant ORDER BY state, reason, variant",
                    )
                    .bind(campaign_id)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter()
                        .map(|r| {
                            Ok(RecipientCount {
                                state: r.try_get("state")?,
                                reason: r.try_get("reason")?,
                                variant: r.try_get("variant")?,
                                count: r.try_get("n")?,
                            })
                        })
                        .collect()
                }

                async fn campaign_funnel(
                    &self,
                    tenant: &str,
                    campaign_id: &str,
                    query: &FunnelQuery,
                ) -> StoreResult<Vec<FunnelCount>> {
                    let source = "SELECT variant AS grp, message_id FROM campaign_recipients \
                                  WHERE campaign_id = $2 AND state = 'enqueued'";
                    funnel(self, source, tenant, campaign_id, query).await
                }

                async fn journey_funnel(
                    &self,
                    tenant: &str,
                    journey: &str,
                    query: &FunnelQuery,
                ) -> StoreResult<Vec<FunnelCount>> {
                    let source = "SELECT step AS grp, message_id FROM journey_messages \
                                  WHERE tenant_id = $1 AND journey = $2";
                    funnel(self, source, tenant, journey, query).await
                }

                async fn purpose_counts(
                    &self,
                    tenant: &str,
                    contact_ids: &[String],
                    capped: &Purpose,
                    since: Timestamp,
                    except_campaign: Option<&str>,
                ) -> StoreResult<HashMap<String, i64>> {
                    let mut counts = HashMap::new();
                    for chunk in contact_ids.chunks(crate::ROWS_PER_STATEMENT) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "SELECT contact_id, COUNT(*) AS n FROM messages WHERE tenant_id = ",
                        );
                        q.push_bind(tenant.to_owned()).push(" AND contact_id IN (");
                        let mut ids = q.separated(", ");
                        for id in chunk {
                            ids.push_bind(id.clone());
                        }
                        q.push(") AND created_at >= ").push_bind(micros(since));
                        match capped {
                            Purpose::All => {}
                            Purpose::Marketing => {
                                q.push(" AND purpose <> ")
                                    .push_bind(Purpose::Transactional.as_str().to_owned());
                            }
                            other => {
                                q.push(" AND purpose = ").push_bind(other.as_str().to_owned());
                            }
                        }
                        q.push(" AND status NOT IN ('rejected', 'canceled')");
                        if let Some(campaign) = except_campaign {
                            q.push(" AND (campaign IS NULL OR campaign <> ")
                                .push_bind(campaign.to_owned())
                                .push(")");
                        }
                        q.push(" GROUP BY contact_id");
                        for row in q.build().fetch_all(self.reader()).await? {
                            counts.insert(row.try_get("contact_id")?, row.try_get("n")?);
                        }
                    }
                    Ok(counts)
                }

                async fn engagement_times(
                    &self,
                    tenant: &str,
                    contact_ids: &[String],
                    since: Timestamp,
                ) -> StoreResult<Vec<(String, Timestamp)>> {
                    let mut times = Vec::new();
                    for chunk in contact_ids.chunks(crate::ROWS_PER_STATEMENT) {
                        // A read message's last change is its read: `read` is the end of
                        // the status machine.
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "SELECT contact_id, updated_at AS at FROM messages WHERE tenant_id = ",
                        );
                        q.push_bind(tenant.to_owned())
                            .push(" AND status = 'read' AND created_at >= ")
                            .push_bind(micros(since))
                            .push(" AND contact_id IN (");
                        let mut ids = q.separated(", ");
                        for id in chunk {
                            ids.push_bind(id.clone());
                        }
                        q.push(") UNION ALL SELECT contact_id, received_at AS at FROM inbound_messages WHERE tenant_id = ")
                            .push_bind(tenant.to_owned())
                            .push(" AND received_at >= ")
                            .push_bind(micros(since))
                            .push(" AND contact_id IN (");
                        let mut ids = q.separated(", ");
                        for id in chunk {
                            ids.push_bind(id.clone());
                        }
                        q.push(")");
                        for row in q.build().fetch_all(self.reader()).await? {
                            times.push((row.try_get("contact_id")?, from_micros(row.try_get("at")?)?));
                        }
                    }
                    Ok(times)
                }

                async fn recent_engagements(
                    &self,
                    tenant: &str,
                    campaign_id: Option<&str>,
                    since: Timestamp,
                    limit: i64,
                ) -> StoreResult<Vec<(Option<String>, Timestamp)>> {
                    let recipients = if campaign_id.is_some() {
                        " AND e.contact_id IN (SELECT contact_id FROM campaign_recipients WHERE campaign_id = $3)"
                    } else {
                        " AND $3 IS NULL"
                    };
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT c.timezone AS timezone, e.at AS at FROM ( \
                             SELECT contact_id, updated_at AS at FROM messages WHERE tenant_id = $1 AND status = 'read' AND created_at >= $2 \
                             UNION ALL SELECT contact_id, received_at AS at FROM inbound_messages WHERE tenant_id = $1 AND received_at >= $2 \
                         ) e JOIN contacts c ON c.id = e.contact_id AND c.tenant_id = $1 \
                         WHERE e.contact_id IS NOT NULL{recipients} ORDER BY e.at DESC LIMIT $4"
                    )))
                    .bind(tenant)
                    .bind(micros(since))
                    .bind(campaign_id)
                    .bind(limit)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter()
                        .map(|r| Ok((r.try_get("timezone")?, from_micros(r.try_get("at")?)?)))
                        .collect()
                }
            }
        }
    };
}

impl_campaign_store!(sqlite_campaigns, crate::SqliteStore, sqlx::Sqlite);
impl_campaign_store!(postgres_campaigns, crate::PostgresStore, sqlx::Postgres);
