//! Customer events (`POST /v1/events`): what a contact did (`cart_abandoned`, `purchase`),
//! kept durably for journeys, segments' behaviour filters ("conversion events within a
//! period") and conversion attribution. An event is written in one transaction with what
//! it causes — the contact it creates, the journey runs it enters and ends — so it is
//! never half applied; a client's event id is kept once per tenant, so a retry finds the
//! first event and its answer instead of applying it twice.

use crate::{JourneyRun, NewJourneyRun, PlannedContact, StoreResult};
use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};

/// A recorded customer event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactEvent {
    pub id: String,
    pub tenant_id: String,
    pub contact_id: String,
    pub name: String,
    pub properties: Map<String, Value>,
    /// A conversion's value (an order's amount), if any.
    pub value: Option<f64>,
    /// The client's id of the event (its idempotency key).
    pub idempotency_id: Option<String>,
    /// The answer the event got: `entered` and `exited` journeys, and what the caller
    /// added (the geofences an `entered_area` matched).
    pub outcome: Map<String, Value>,
    pub at: Timestamp,
}

/// What one event writes, in one transaction.
#[derive(Debug, Clone)]
pub struct EventWrite<'a> {
    /// The event; its `outcome` is completed with `entered` and `exited`.
    pub event: &'a ContactEvent,
    /// A contact to create first (an event for an unknown contact that asked for it).
    pub new_contact: Option<&'a PlannedContact>,
    /// Journeys whose active runs for the contact end (the event is their goal).
    pub exits: &'a [String],
    /// Runs the event enters; one that a re-entry rule or an earlier entry refuses is
    /// left out without error.
    pub entries: &'a [NewJourneyRun],
}

/// What recording an event did.
#[derive(Debug, Clone, PartialEq)]
pub enum EventRecorded {
    /// Written, with the journeys it entered and those whose runs it ended.
    New {
        event: ContactEvent,
        entered: Vec<JourneyRun>,
        exited: Vec<String>,
    },
    /// An event with this idempotency id was recorded before: that one, and nothing
    /// written now.
    Duplicate(ContactEvent),
}

/// Storage for customer events; a supertrait of [`crate::Store`].
#[async_trait]
pub trait ContactEventStore: Send + Sync {
    /// Writes the event, the contact it creates, the runs it ends and those it enters, in
    /// one transaction — or nothing when its idempotency id was used. `IdentityTaken` when
    /// the planned contact's identity was taken meanwhile (nothing written).
    async fn record_contact_event(&self, write: &EventWrite<'_>) -> StoreResult<EventRecorded>;
    async fn contact_event_by_idempotency_id(
        &self,
        tenant: &str,
        idempotency_id: &str,
    ) -> StoreResult<Option<ContactEvent>>;
    /// The contact's events (of `name`, or all) at or after `since`, newest first.
    async fn contact_events(
        &self,
        tenant: &str,
        contact_id: &str,
        name: Option<&str>,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<ContactEvent>>;
    /// How many events of `name` the contact had at or after `since`, and the sum of their
    /// values (conversions).
    async fn count_contact_events(
        &self,
        tenant: &str,
        contact_id: &str,
        name: &str,
        since: Timestamp,
    ) -> StoreResult<(u64, f64)>;
}

macro_rules! impl_contact_event_store {
    ($modname:ident, $store:ty, $db:ty, $runs:ident) => {
        mod $modname {
            use super::*;
            use crate::journeys::$runs as runs;
            use crate::{StoreError, from_micros, micros};
            use sqlx::Row;

            type DbRow = <$db as sqlx::Database>::Row;

            const COLUMNS: &str =
                "id, tenant_id, contact_id, name, properties, value, idempotency_id, outcome, at";

            fn object_of(text: &str, what: &str) -> StoreResult<Map<String, Value>> {
                match serde_json::from_str(text) {
                    Ok(Value::Object(map)) => Ok(map),
                    Ok(other) => Err(StoreError::Corrupt(format!("{what} is not an object: {other}"))),
                    Err(e) => Err(StoreError::Corrupt(format!("{what}: {e}"))),
                }
            }

            fn event_from_row(row: &DbRow) -> StoreResult<ContactEvent> {
                Ok(ContactEvent {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    contact_id: row.try_get("contact_id")?,
                    name: row.try_get("name")?,
                    properties: object_of(&row.try_get::<String, _>("properties")?, "event properties")?,
                    value: row.try_get("value")?,
                    idempotency_id: row.try_get("idempotency_id")?,
                    outcome: object_of(&row.try_get::<String, _>("outcome")?, "event outcome")?,
                    at: from_micros(row.try_get("at")?)?,
                })
            }

            fn taken(e: sqlx::Error) -> StoreError {
                match e {
                    sqlx::Error::Database(db) if crate::noted(db.is_unique_violation()) => {
                        StoreError::IdentityTaken(
                            "the event's new contact's identity was taken meanwhile".into(),
                        )
                    }
                    other => other.into(),
                }
            }

            #[async_trait]
            impl ContactEventStore for $store {
                async fn record_contact_event(&self, write: &EventWrite<'_>) -> StoreResult<EventRecorded> {
                    let e = write.event;
                    let mut tx = self.begin_write().await?;
                    let inserted = sqlx::query(
                        "INSERT INTO contact_events (id, tenant_id, contact_id, name, properties, value, idempotency_id, outcome, at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, '{}', $8) ON CONFLICT DO NOTHING",
                    )
                    .bind(e.id.as_str())
                    .bind(e.tenant_id.as_str())
                    .bind(e.contact_id.as_str())
                    .bind(e.name.as_str())
                    .bind(Value::Object(e.properties.clone()).to_string())
                    .bind(e.value)
                    .bind(e.idempotency_id.as_deref())
                    .bind(micros(e.at))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if inserted == 0 {
                        tx.rollback().await?;
                        let key = e.idempotency_id.as_deref().unwrap_or_default();
                        return match self.contact_event_by_idempotency_id(&e.tenant_id, key).await? {
                            Some(first) => Ok(EventRecorded::Duplicate(first)),
                            None => Err(StoreError::Conflict(format!("event {} exists", e.id))),
                        };
                    }
                    if let Some(c) = write.new_contact {
                        sqlx::query(
                            "INSERT INTO contacts (id, tenant_id, attributes, timezone, locale, created_at, updated_at) \
                             VALUES ($1, $2, '{}', NULL, NULL, $3, $3)",
                        )
                        .bind(c.id.as_str())
                        .bind(c.tenant_id.as_str())
                        .bind(micros(c.created_at))
                        .execute(&mut *tx)
                        .await?;
                        sqlx::query(
                            "INSERT INTO identities (tenant_id, channel, address, contact_id, created_at) VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(c.tenant_id.as_str())
                        .bind(c.identity.channel.as_str())
                        .bind(c.identity.address.as_str())
                        .bind(c.id.as_str())
                        .bind(micros(c.created_at))
                        .execute(&mut *tx)
                        .await
                        .map_err(taken)?;
                    }
                    let mut exited = Vec::new();
                    for journey in write.exits {
                        let ended = sqlx::query(
                            "UPDATE journey_runs SET state = 'exited', ended_reason = $1, active_key = NULL, \
                               due_at = NULL, lease_owner = NULL, lease_until = NULL, ended_at = $2, updated_at = $2 \
                             WHERE tenant_id = $3 AND journey = $4 AND contact_id = $5 AND state = 'active'",
                        )
                        .bind(format!("goal event {}", e.name))
                        .bind(micros(e.at))
                        .bind(e.tenant_id.as_str())
                        .bind(journey.as_str())
                        .bind(e.contact_id.as_str())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if ended > 0 {
                            exited.push(journey.clone());
                        }
                    }
                    let mut entered = Vec::new();
                    for run in write.entries {
                        if let Some(row) = runs::insert_run(run)
                            .fetch_optional(&mut *tx)
                            .await?
                        {
                            entered.push(runs::run_from_row(&row)?);
                        }
                    }
                    let mut outcome = e.outcome.clone();
                    outcome.insert(
                        "entered".into(),
                        entered.iter().map(|r| Value::String(r.journey.clone())).collect(),
                    );
                    outcome.insert(
                        "exited".into(),
                        exited.iter().cloned().map(Value::String).collect(),
                    );
                    sqlx::query("UPDATE contact_events SET outcome = $1 WHERE id = $2")
                        .bind(Value::Object(outcome.clone()).to_string())
                        .bind(e.id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(EventRecorded::New {
                        event: ContactEvent {
                            outcome,
                            at: from_micros(micros(e.at))?,
                            ..e.clone()
                        },
                        entered,
                        exited,
                    })
                }

                async fn contact_event_by_idempotency_id(
                    &self,
                    tenant: &str,
                    idempotency_id: &str,
                ) -> StoreResult<Option<ContactEvent>> {
                    // From the writer: a retry that lost the race to the first request
                    // must see what it committed.
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM contact_events WHERE tenant_id = $1 AND idempotency_id = $2"
                    )))
                    .bind(tenant)
                    .bind(idempotency_id)
                    .fetch_optional(self.writer())
                    .await?
                    .as_ref()
                    .map(event_from_row)
                    .transpose()
                }

                async fn contact_events(
                    &self,
                    tenant: &str,
                    contact_id: &str,
                    name: Option<&str>,
                    since: Timestamp,
                    limit: u32,
                ) -> StoreResult<Vec<ContactEvent>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM contact_events WHERE tenant_id = $1 AND contact_id = $2 \
                         AND ($3 IS NULL OR name = $3) AND at >= $4 ORDER BY at DESC, id DESC LIMIT $5"
                    )))
                    .bind(tenant)
                    .bind(contact_id)
                    .bind(name)
                    .bind(micros(since))
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(event_from_row)
                    .collect()
                }

                async fn count_contact_events(
                    &self,
                    tenant: &str,
                    contact_id: &str,
                    name: &str,
                    since: Timestamp,
                ) -> StoreResult<(u64, f64)> {
                    let row = sqlx::query(
                        "SELECT COUNT(*) AS n, SUM(value) AS total FROM contact_events \
                         WHERE tenant_id = $1 AND contact_id = $2 AND name = $3 AND at >= $4",
                    )
                    .bind(tenant)
                    .bind(contact_id)
                    .bind(name)
                    .bind(micros(since))
                    .fetch_one(self.reader())
                    .await?;
                    let n: i64 = row.try_get("n")?;
                    let total: Option<f64> = row.try_get("total")?;
                    Ok((u64::try_from(n).unwrap_or(0), total.unwrap_or(0.0)))
                }
            }
        }
    };
}

impl_contact_event_store!(
    sqlite_contact_events,
    crate::SqliteStore,
    sqlx::Sqlite,
    sqlite_journeys
);
impl_contact_event_store!(
    postgres_contact_events,
    crate::PostgresStore,
    sqlx::Postgres,
    postgres_journeys
);
