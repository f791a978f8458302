//! Journeys: the tenant's journey documents and geofences, and where each contact stands
//! in each journey (a run). A run is advanced by a worker that claims due runs with a
//! lease, as the outbox is (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: its single
//! writer), so several nodes share the work and a run survives restarts. A run is entered
//! once per (journey, contact, entry key), and while a journey allows one run at a time a
//! second active one is refused by the store itself, so concurrent triggers cannot race
//! past the re-entry rule.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use relais_core::journey::geo::Geofence;
use serde::Serialize;
use serde_json::{Map, Value};

/// A stored journey document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JourneyRecord {
    pub name: String,
    pub definition: Value,
    /// 1 for the first upload, one more for each later one.
    pub revision: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A tenant's named geofence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeofenceRecord {
    pub name: String,
    #[serde(flatten)]
    pub area: AreaJson,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A geofence as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AreaJson {
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
}

impl GeofenceRecord {
    pub fn geofence(&self) -> StoreResult<Geofence> {
        Geofence::new(self.area.lat, self.area.lon, self.area.radius_m)
            .map_err(|e| crate::StoreError::Corrupt(format!("geofence {}: {e}", self.name)))
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Somewhere in the journey; the worker takes it up at `due_at`.
    Active,
    /// Went past its last step.
    Completed,
    /// Left at an `exit` step or on a goal event.
    Exited,
    /// Stopped on an error (a step the accept path refused, a loop); `ended_reason` says.
    Failed,
    /// Its journey was deleted.
    Canceled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Active => "active",
            RunState::Completed => "completed",
            RunState::Exited => "exited",
            RunState::Failed => "failed",
            RunState::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        Some(match s {
            "active" => RunState::Active,
            "completed" => RunState::Completed,
            "exited" => RunState::Exited,
            "failed" => RunState::Failed,
            "canceled" => RunState::Canceled,
            _ => return None,
        })
    }
}

/// What the worker does with a run's step when it comes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunPhase {
    /// The step's action is still to do.
    Enter,
    /// A `wait` or a `branch` step is waiting for `due_at`.
    Wait,
}

impl RunPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RunPhase::Enter => "enter",
            RunPhase::Wait => "wait",
        }
    }
}

/// A run to enter.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJourneyRun {
    pub id: String,
    pub tenant_id: String,
    pub journey: String,
    pub contact_id: String,
    /// Which occurrence of the trigger entered it: the event's id, `once`, a birthday's
    /// year. A second run with the same key is not entered.
    pub entry_key: String,
    /// One active run per contact at a time (re-entry `once` and `after_exit`).
    pub exclusive: bool,
    /// The event that entered it, if an event did.
    pub entered_by: Option<String>,
    /// The properties of that event (conditions and templates read them).
    pub event_properties: Map<String, Value>,
    pub step: String,
    pub due_at: Timestamp,
}

/// A contact's run of a journey.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JourneyRun {
    pub id: String,
    pub tenant_id: String,
    pub journey: String,
    pub contact_id: String,
    pub entry_key: String,
    pub entered_by: Option<String>,
    pub event_properties: Map<String, Value>,
    pub step: String,
    pub phase: RunPhase,
    /// Steps taken so far: the idempotency of a send step's message includes it.
    pub steps_taken: i64,
    pub state: RunState,
    pub due_at: Option<Timestamp>,
    /// When a `branch` stops waiting for engagement.
    pub deadline: Option<Timestamp>,
    /// The last message a `send` step accepted, and when.
    pub last_message_id: Option<String>,
    pub last_sent_at: Option<Timestamp>,
    pub ended_reason: Option<String>,
    pub started_at: Timestamp,
    pub updated_at: Timestamp,
    pub ended_at: Option<Timestamp>,
}

/// A run's new position, written by the worker that holds its lease.
#[derive(Debug, Clone, PartialEq)]
pub struct RunProgress {
    pub step: String,
    pub phase: RunPhase,
    pub steps_taken: i64,
    pub state: RunState,
    /// When the worker takes it up again (`None` once it ended).
    pub due_at: Option<Timestamp>,
    pub deadline: Option<Timestamp>,
    pub last_message_id: Option<String>,
    pub last_sent_at: Option<Timestamp>,
    pub ended_reason: Option<String>,
    pub at: Timestamp,
    /// The messages the run's `send` steps stored in this turn, for the journey's report.
    pub sent: Vec<SentStep>,
}

/// A message a journey's `send` step stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentStep {
    pub step: String,
    pub message_id: String,
}

/// A journey's runs counted by the step they stand at (or ended at) and their state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepCount {
    pub step: String,
    pub state: String,
    pub count: i64,
}

/// Storage for journeys; a supertrait of [`crate::Store`].
#[async_trait]
pub trait JourneyStore: Send + Sync {
    /// Creates or replaces the tenant's journey `name`; the record has its new revision.
    async fn put_journey(
        &self,
        tenant: &str,
        name: &str,
        definition: &Value,
        at: Timestamp,
    ) -> StoreResult<JourneyRecord>;
    async fn journey(&self, tenant: &str, name: &str) -> StoreResult<Option<JourneyRecord>>;
    /// By name.
    async fn list_journeys(&self, tenant: &str) -> StoreResult<Vec<JourneyRecord>>;
    /// `false` when there was no such journey; its active runs are canceled.
    async fn delete_journey(&self, tenant: &str, name: &str, at: Timestamp) -> StoreResult<bool>;

    async fn put_geofence(
        &self,
        tenant: &str,
        name: &str,
        area: &Geofence,
        at: Timestamp,
    ) -> StoreResult<GeofenceRecord>;
    /// By name.
    async fn geofences(&self, tenant: &str) -> StoreResult<Vec<GeofenceRecord>>;
    async fn delete_geofence(&self, tenant: &str, name: &str) -> StoreResult<bool>;

    /// Enters runs without an event (a date trigger, a segment entry); those a re-entry
    /// rule or an earlier entry refuses are left out. The runs entered.
    async fn enter_journey_runs(&self, runs: &[NewJourneyRun]) -> StoreResult<Vec<JourneyRun>>;
    /// When the journey last looked at segment `segment` (`None`: never).
    async fn segment_scanned_at(
        &self,
        tenant: &str,
        journey: &str,
        segment: &str,
    ) -> StoreResult<Option<Timestamp>>;
    /// Every contact recorded as in the journey's segment at its last look.
    async fn segment_members(
        &self,
        tenant: &str,
        journey: &str,
        segment: &str,
    ) -> StoreResult<Vec<String>>;
    /// Applies part of a look at the journey's segment in one transaction: `entered`
    /// become members (already members: no error) and `runs` are entered (as
    /// [`JourneyStore::enter_journey_runs`] does), `left` stop being members; with
    /// `finished`, the look is recorded as made at `now`. The runs entered.
    #[allow(clippy::too_many_arguments)]
    async fn apply_segment_scan(
        &self,
        tenant: &str,
        journey: &str,
        segment: &str,
        entered: &[String],
        runs: &[NewJourneyRun],
        left: &[String],
        finished: bool,
        now: Timestamp,
    ) -> StoreResult<Vec<JourneyRun>>;
    /// Leases up to `limit` active runs due by `now` (not leased, their lease ran out, or
    /// already leased to `lease_owner`: a node restarted under its name takes its runs
    /// back at once) to `lease_owner` until `now + lease_for`, earliest due first.
    async fn claim_due_runs(
        &self,
        now: Timestamp,
        limit: u32,
        lease_owner: &str,
        lease_for: SignedDuration,
    ) -> StoreResult<Vec<JourneyRun>>;
    /// Moves a run `lease_owner` holds and releases it. `false` (nothing written) when the
    /// run is no longer active or no longer leased to `lease_owner` (a goal event ended it).
    async fn advance_run(
        &self,
        run_id: &str,
        lease_owner: &str,
        progress: &RunProgress,
    ) -> StoreResult<bool>;
    async fn journey_run(&self, tenant: &str, run_id: &str) -> StoreResult<Option<JourneyRun>>;
    /// The contact's runs, latest started first.
    async fn journey_runs_of_contact(
        &self,
        tenant: &str,
        contact_id: &str,
    ) -> StoreResult<Vec<JourneyRun>>;
    /// The journey's runs by step and state.
    async fn journey_step_counts(&self, tenant: &str, journey: &str)
    -> StoreResult<Vec<StepCount>>;
    /// The journey's runs, latest started first, at most `limit`.
    async fn journey_runs(
        &self,
        tenant: &str,
        journey: &str,
        limit: u32,
    ) -> StoreResult<Vec<JourneyRun>>;
}

macro_rules! impl_journey_store {
    ($modname:ident, $store:ty, $db:ty, $lock:expr) => {
        pub(crate) mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros};
            use sqlx::Row;

            type DbRow = <$db as sqlx::Database>::Row;

            pub(crate) const RUN_COLUMNS: &str = "id, tenant_id, journey, contact_id, entry_key, entered_by, event_properties, step, phase, steps_taken, state, due_at, deadline, last_message_id, last_sent_at, ended_reason, started_at, updated_at, ended_at";

            fn json_of(text: &str, what: &str) -> StoreResult<Value> {
                serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
            }

            fn micros_opt(v: Option<i64>) -> StoreResult<Option<Timestamp>> {
                v.map(from_micros).transpose()
            }

            pub(crate) fn run_from_row(row: &DbRow) -> StoreResult<JourneyRun> {
                let state: String = row.try_get("state")?;
                let phase: String = row.try_get("phase")?;
                let properties = match json_of(&row.try_get::<String, _>("event_properties")?, "run's event properties")? {
                    Value::Object(map) => map,
                    other => return Err(StoreError::Corrupt(format!("run's event properties: {other}"))),
                };
                Ok(JourneyRun {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    journey: row.try_get("journey")?,
                    contact_id: row.try_get("contact_id")?,
                    entry_key: row.try_get("entry_key")?,
                    entered_by: row.try_get("entered_by")?,
                    event_properties: properties,
                    step: row.try_get("step")?,
                    phase: match phase.as_str() {
                        "enter" => RunPhase::Enter,
                        "wait" => RunPhase::Wait,
                        other => return Err(StoreError::Corrupt(format!("run phase `{other}`"))),
                    },
                    steps_taken: row.try_get("steps_taken")?,
                    state: RunState::parse(&state)
                        .ok_or_else(|| StoreError::Corrupt(format!("run state `{state}`")))?,
                    due_at: micros_opt(row.try_get("due_at")?)?,
                    deadline: micros_opt(row.try_get("deadline")?)?,
                    last_message_id: row.try_get("last_message_id")?,
                    last_sent_at: micros_opt(row.try_get("last_sent_at")?)?,
                    ended_reason: row.try_get("ended_reason")?,
                    started_at: from_micros(row.try_get("started_at")?)?,
                    updated_at: from_micros(row.try_get("updated_at")?)?,
                    ended_at: micros_opt(row.try_get("ended_at")?)?,
                })
            }

            /// The insert of a run, refused without error (no row returned) by an
            /// earlier entry with its key or an active exclusive run.
            pub(crate) fn insert_run(
                run: &NewJourneyRun,
            ) -> sqlx::query::Query<'static, $db, <$db as sqlx::Database>::Arguments> {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO journey_runs (id, tenant_id, journey, contact_id, entry_key, active_key, entered_by, event_properties, \
                       step, phase, steps_taken, state, due_at, started_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'enter', 0, 'active', $10, $10, $10) \
                     ON CONFLICT DO NOTHING RETURNING {RUN_COLUMNS}"
                )))
                .bind(run.id.clone())
                .bind(run.tenant_id.clone())
                .bind(run.journey.clone())
                .bind(run.contact_id.clone())
                .bind(run.entry_key.clone())
                .bind(run.exclusive.then(|| run.contact_id.clone()))
                .bind(run.entered_by.clone())
                .bind(Value::Object(run.event_properties.clone()).to_string())
                .bind(run.step.clone())
                .bind(micros(run.due_at))
            }

            fn journey_from_row(row: &DbRow) -> StoreResult<JourneyRecord> {
                Ok(JourneyRecord {
                    name: row.try_get("name")?,
                    definition: json_of(&row.try_get::<String, _>("definition")?, "journey definition")?,
                    revision: row.try_get("revision")?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                    updated_at: from_micros(row.try_get("updated_at")?)?,
                })
            }

            fn geofence_from_row(row: &DbRow) -> StoreResult<GeofenceRecord> {
                Ok(GeofenceRecord {
                    name: row.try_get("name")?,
                    area: AreaJson {
                        lat: row.try_get("lat")?,
                        lon: row.try_get("lon")?,
                        radius_m: row.try_get("radius_m")?,
                    },
                    created_at: from_micros(row.try_get("created_at")?)?,
                    updated_at: from_micros(row.try_get("updated_at")?)?,
                })
            }

            #[async_trait]
            impl JourneyStore for $store {
                async fn put_journey(
                    &self,
                    tenant: &str,
                    name: &str,
                    definition: &Value,
                    at: Timestamp,
                ) -> StoreResult<JourneyRecord> {
                    let row = sqlx::query(
                        "INSERT INTO journeys (tenant_id, name, definition, revision, created_at, updated_at) \
                         VALUES ($1, $2, $3, 1, $4, $4) \
                         ON CONFLICT (tenant_id, name) DO UPDATE SET definition = excluded.definition, \
                           revision = journeys.revision + 1, updated_at = excluded.updated_at \
                         RETURNING name, definition, revision, created_at, updated_at",
                    )
                    .bind(tenant)
                    .bind(name)
                    .bind(definition.to_string())
                    .bind(micros(at))
                    .fetch_one(self.writer())
                    .await?;
                    journey_from_row(&row)
                }

                async fn journey(&self, tenant: &str, name: &str) -> StoreResult<Option<JourneyRecord>> {
                    sqlx::query(
                        "SELECT name, definition, revision, created_at, updated_at FROM journeys \
                         WHERE tenant_id = $1 AND name = $2",
                    )
                    .bind(tenant)
                    .bind(name)
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(journey_from_row)
                    .transpose()
                }

                async fn list_journeys(&self, tenant: &str) -> StoreResult<Vec<JourneyRecord>> {
                    sqlx::query(
                        "SELECT name, definition, revision, created_at, updated_at FROM journeys \
                         WHERE tenant_id = $1 ORDER BY name",
                    )
                    .bind(tenant)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(journey_from_row)
                    .collect()
                }

                async fn delete_journey(&self, tenant: &str, name: &str, at: Timestamp) -> StoreResult<bool> {
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query("DELETE FROM journeys WHERE tenant_id = $1 AND name = $2")
                        .bind(tenant)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "UPDATE journey_runs SET state = 'canceled', ended_reason = 'journey deleted', active_key = NULL, \
                           due_at = NULL, lease_owner = NULL, lease_until = NULL, ended_at = $1, updated_at = $1 \
                         WHERE tenant_id = $2 AND journey = $3 AND state = 'active'",
                    )
                    .bind(micros(at))
                    .bind(tenant)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn put_geofence(
                    &self,
                    tenant: &str,
                    name: &str,
                    area: &Geofence,
                    at: Timestamp,
                ) -> StoreResult<GeofenceRecord> {
                    let row = sqlx::query(
                        "INSERT INTO geofences (tenant_id, name, lat, lon, radius_m, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $6) \
                         ON CONFLICT (tenant_id, name) DO UPDATE SET lat = excluded.lat, lon = excluded.lon, \
                           radius_m = excluded.radius_m, updated_at = excluded.updated_at \
                         RETURNING name, lat, lon, radius_m, created_at, updated_at",
                    )
                    .bind(tenant)
                    .bind(name)
                    .bind(area.center.lat)
                    .bind(area.center.lon)
                    .bind(area.radius_m)
                    .bind(micros(at))
                    .fetch_one(self.writer())
                    .await?;
                    geofence_from_row(&row)
                }

                async fn geofences(&self, tenant: &str) -> StoreResult<Vec<GeofenceRecord>> {
                    sqlx::query(
                        "SELECT name, lat, lon, radius_m, created_at, updated_at FROM geofences \
                         WHERE tenant_id = $1 ORDER BY name",
                    )
                    .bind(tenant)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(geofence_from_row)
                    .collect()
                }

                async fn delete_geofence(&self, tenant: &str, name: &str) -> StoreResult<bool> {
                    let done = sqlx::query("DELETE FROM geofences WHERE tenant_id = $1 AND name = $2")
                        .bind(tenant)
                        .bind(name)
                        .execute(self.writer())
                        .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn enter_journey_runs(&self, runs: &[NewJourneyRun]) -> StoreResult<Vec<JourneyRun>> {
                    if runs.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut tx = self.begin_write().await?;
                    let mut entered = Vec::new();
                    for run in runs {
                        if let Some(row) = insert_run(run).fetch_optional(&mut *tx).await? {
                            entered.push(run_from_row(&row)?);
                        }
                    }
                    tx.commit().await?;
                    Ok(entered)
                }

                async fn segment_scanned_at(
                    &self,
                    tenant: &str,
                    journey: &str,
                    segment: &str,
                ) -> StoreResult<Option<Timestamp>> {
                    let at: Option<i64> = sqlx::query_scalar(
                        "SELECT scanned_at FROM journey_segment_scans \
                         WHERE tenant_id = $1 AND journey = $2 AND segment = $3",
                    )
                    .bind(tenant)
                    .bind(journey)
                    .bind(segment)
                    .fetch_optional(self.reader())
                    .await?;
                    micros_opt(at)
                }

                async fn segment_members(
                    &self,
                    tenant: &str,
                    journey: &str,
                    segment: &str,
                ) -> StoreResult<Vec<String>> {
                    Ok(sqlx::query_scalar(
                        "SELECT contact_id FROM journey_segment_members \
                         WHERE tenant_id = $1 AND journey = $2 AND segment = $3",
                    )
                    .bind(tenant)
                    .bind(journey)
                    .bind(segment)
                    .fetch_all(self.reader())
                    .await?)
                }

                async fn apply_segment_scan(
                    &self,
                    tenant: &str,
                    journey: &str,
                    segment: &str,
                    entered: &[String],
                    runs: &[NewJourneyRun],
                    left: &[String],
                    finished: bool,
                    now: Timestamp,
                ) -> StoreResult<Vec<JourneyRun>> {
                    let mut tx = self.begin_write().await?;
                    for contact in entered {
                        sqlx::query(
                            "INSERT INTO journey_segment_members (tenant_id, journey, segment, contact_id, entered_at) \
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                        )
                        .bind(tenant)
                        .bind(journey)
                        .bind(segment)
                        .bind(contact)
                        .bind(micros(now))
                        .execute(&mut *tx)
                        .await?;
                    }
                    for contact in left {
                        sqlx::query(
                            "DELETE FROM journey_segment_members \
                             WHERE tenant_id = $1 AND journey = $2 AND segment = $3 AND contact_id = $4",
                        )
                        .bind(tenant)
                        .bind(journey)
                        .bind(segment)
                        .bind(contact)
                        .execute(&mut *tx)
                        .await?;
                    }
                    let mut entered_runs = Vec::new();
                    for run in runs {
                        if let Some(row) = insert_run(run).fetch_optional(&mut *tx).await? {
                            entered_runs.push(run_from_row(&row)?);
                        }
                    }
                    if finished {
                        sqlx::query(
                            "INSERT INTO journey_segment_scans (tenant_id, journey, segment, scanned_at) \
                             VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (tenant_id, journey, segment) DO UPDATE SET scanned_at = excluded.scanned_at",
                        )
                        .bind(tenant)
                        .bind(journey)
                        .bind(segment)
                        .bind(micros(now))
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(entered_runs)
                }

                async fn claim_due_runs(
                    &self,
                    now: Timestamp,
                    limit: u32,
                    lease_owner: &str,
                    lease_for: SignedDuration,
                ) -> StoreResult<Vec<JourneyRun>> {
                    let until = now.checked_add(lease_for).unwrap_or(now);
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE journey_runs SET lease_owner = $1, lease_until = $2 WHERE id IN (\
                           SELECT id FROM journey_runs WHERE state = 'active' AND due_at <= $3 \
                           AND (lease_until IS NULL OR lease_until <= $3 OR lease_owner = $1) ORDER BY due_at, id LIMIT $4{}) \
                         RETURNING {RUN_COLUMNS}",
                        $lock
                    )))
                    .bind(lease_owner)
                    .bind(micros(until))
                    .bind(micros(now))
                    .bind(i64::from(limit))
                    .fetch_all(self.writer())
                    .await?;
                    let mut runs = rows.iter().map(run_from_row).collect::<StoreResult<Vec<_>>>()?;
                    // RETURNING gives no order: the earliest due first, as claimed.
                    runs.sort_by(|a, b| (a.due_at, &a.id).cmp(&(b.due_at, &b.id)));
                    Ok(runs)
                }

                async fn advance_run(
                    &self,
                    run_id: &str,
                    lease_owner: &str,
                    p: &RunProgress,
                ) -> StoreResult<bool> {
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(
                        "UPDATE journey_runs SET step = $1, phase = $2, steps_taken = $3, state = $4, due_at = $5, \
                           deadline = $6, last_message_id = $7, last_sent_at = $8, ended_reason = $9, \
                           ended_at = CASE WHEN $4 = 'active' THEN NULL ELSE $10 END, \
                           active_key = CASE WHEN $4 = 'active' THEN active_key ELSE NULL END, \
                           lease_owner = NULL, lease_until = NULL, updated_at = $10 \
                         WHERE id = $11 AND state = 'active' AND lease_owner = $12",
                    )
                    .bind(p.step.as_str())
                    .bind(p.phase.as_str())
                    .bind(p.steps_taken)
                    .bind(p.state.as_str())
                    .bind(p.due_at.map(micros))
                    .bind(p.deadline.map(micros))
                    .bind(p.last_message_id.as_deref())
                    .bind(p.last_sent_at.map(micros))
                    .bind(p.ended_reason.as_deref())
                    .bind(micros(p.at))
                    .bind(run_id)
                    .bind(lease_owner)
                    .execute(&mut *tx)
                    .await?;
                    // Kept even when the run moved on without this node (a goal event
                    // ended it): the message was stored all the same.
                    for sent in &p.sent {
                        sqlx::query(
                            "INSERT INTO journey_messages (tenant_id, message_id, journey, step, run_id, sent_at) \
                             SELECT tenant_id, $1, journey, $2, id, $3 FROM journey_runs WHERE id = $4 \
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(sent.message_id.as_str())
                        .bind(sent.step.as_str())
                        .bind(micros(p.at))
                        .bind(run_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn journey_step_counts(
                    &self,
                    tenant: &str,
                    journey: &str,
                ) -> StoreResult<Vec<StepCount>> {
                    let rows = sqlx::query(
                        "SELECT step, state, COUNT(*) AS n FROM journey_runs \
                         WHERE tenant_id = $1 AND journey = $2 GROUP BY step, state ORDER BY step, state",
                    )
                    .bind(tenant)
                    .bind(journey)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter()
                        .map(|r| {
                            Ok(StepCount {
                                step: r.try_get("step")?,
                                state: r.try_get("state")?,
                                count: r.try_get("n")?,
                            })
                        })
                        .collect()
                }

                async fn journey_run(&self, tenant: &str, run_id: &str) -> StoreResult<Option<JourneyRun>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {RUN_COLUMNS} FROM journey_runs WHERE tenant_id = $1 AND id = $2"
                    )))
                    .bind(tenant)
                    .bind(run_id)
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(run_from_row)
                    .transpose()
                }

                async fn journey_runs_of_contact(
                    &self,
                    tenant: &str,
                    contact_id: &str,
                ) -> StoreResult<Vec<JourneyRun>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {RUN_COLUMNS} FROM journey_runs WHERE tenant_id = $1 AND contact_id = $2 \
                         ORDER BY started_at DESC, id DESC"
                    )))
                    .bind(tenant)
                    .bind(contact_id)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(run_from_row)
                    .collect()
                }

                async fn journey_runs(
                    &self,
                    tenant: &str,
                    journey: &str,
                    limit: u32,
                ) -> StoreResult<Vec<JourneyRun>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {RUN_COLUMNS} FROM journey_runs WHERE tenant_id = $1 AND journey = $2 \
                         ORDER BY started_at DESC, id DESC LIMIT $3"
                    )))
                    .bind(tenant)
                    .bind(journey)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(run_from_row)
                    .collect()
                }
            }
        }
    };
}

impl_journey_store!(sqlite_journeys, crate::SqliteStore, sqlx::Sqlite, "");
impl_journey_store!(
    postgres_journeys,
    crate::PostgresStore,
    sqlx::Postgres,
    " FOR UPDATE SKIP LOCKED"
);
