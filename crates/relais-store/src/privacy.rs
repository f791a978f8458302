//! GDPR in the store: a contact's export (every row naming them, table by table), their
//! erasure in one transaction (rows that others count keep their counts and lose what
//! names the person; rows that only describe the person go), the keyed digests of erased
//! addresses that block re-creating them, the retention purge, and a scan of every table
//! for a text (to prove an erasure, or to find where someone still is).
//!
//! The erased person's rows that stay (messages, inbound messages, the conversation,
//! flow answers, clicks, campaign and journey rows, customer events) are moved to a
//! fresh random contact id that nothing else knows: counts per campaign, channel, status
//! or day still add up, and nothing leads back to the person.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;
use relais_core::privacy::RetentionCutoffs;
use std::collections::BTreeMap;

/// One kind of data in an export (`messages_out`, `consents`…), one JSON object per row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExportSection {
    pub kind: &'static str,
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Everything the store holds about one contact.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ContactExport {
    pub contact_id: String,
    pub sections: Vec<ExportSection>,
}

/// What an erasure did: rows deleted or anonymised, by table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ErasureReport {
    pub contact_id: String,
    /// Addresses now blocked from re-creation (as keyed digests).
    pub suppressed_addresses: u64,
    pub deleted: BTreeMap<String, u64>,
    pub anonymised: BTreeMap<String, u64>,
}

/// What one retention sweep of a tenant purged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PurgeCounts {
    /// Outbound messages whose body was replaced by `[erased]`.
    pub outbound_bodies: u64,
    /// Inbound messages whose text, payload and annotations were removed.
    pub inbound_contents: u64,
    /// Uploaded media deleted.
    pub attachments: u64,
}

impl PurgeCounts {
    pub fn total(&self) -> u64 {
        self.outbound_bodies + self.inbound_contents + self.attachments
    }
}

/// A text found in a column: `rows` rows of `table` hold `needle` in `column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub table: String,
    pub column: String,
    pub needle: String,
    pub rows: u64,
}

/// Storage for GDPR requests; a supertrait of [`crate::Store`].
#[async_trait]
pub trait PrivacyStore: Send + Sync {
    /// Every row naming the tenant's contact `id`, by kind; `None` when the tenant has
    /// no such contact (another tenant's included).
    async fn export_contact(&self, tenant: &str, id: &str) -> StoreResult<Option<ContactExport>>;
    /// Erases the tenant's contact `id` in one transaction (see the module doc) and
    /// blocks their addresses; `NotFound` (nothing changed) when there is no such contact.
    async fn erase_contact(
        &self,
        tenant: &str,
        id: &str,
        now: Timestamp,
    ) -> StoreResult<ErasureReport>;
    /// Those of `addresses` that belong to an erased person of the tenant.
    async fn suppressed_addresses(
        &self,
        tenant: &str,
        addresses: &[String],
    ) -> StoreResult<Vec<String>>;
    /// Unblocks `addresses` (the person opted in again); how many were blocked.
    async fn lift_suppression(&self, tenant: &str, addresses: &[String]) -> StoreResult<u64>;
    /// Purges the tenant's content older than the cutoffs; what it purged.
    async fn purge_expired(
        &self,
        tenant: &str,
        cutoffs: &RetentionCutoffs,
    ) -> StoreResult<PurgeCounts>;
    /// Every (table, column) of the database, whatever the tenant, whose text or bytes
    /// contain one of `needles` (case-insensitively for text). Tables and columns are
    /// read from the database's catalogue, so a table added later is searched too.
    async fn find_traces(&self, needles: &[String]) -> StoreResult<Vec<Trace>>;
}

/// The kinds of an export and the query of each; `$1` is the tenant, `$2` the contact.
pub(crate) const EXPORT_QUERIES: &[(&str, &str)] = &[
    (
        "profile",
        "SELECT id, attributes, timezone, locale, created_at, updated_at FROM contacts WHERE tenant_id = $1 AND id = $2",
    ),
    (
        "identities",
        "SELECT channel, address, created_at FROM identities WHERE tenant_id = $1 AND contact_id = $2 ORDER BY created_at, channel, address",
    ),
    (
        "consents",
        "SELECT id, channel, purpose, status, source, proof, recorded_at FROM consents WHERE tenant_id = $1 AND contact_id = $2 ORDER BY recorded_at, id",
    ),
    (
        "merges",
        "SELECT id, merged_id, merged_snapshot, cause, merged_at FROM contact_merges WHERE tenant_id = $1 AND survivor_id = $2 ORDER BY merged_at, id",
    ),
    (
        "messages_out",
        "SELECT id, channel, sender, to_address, content, purpose, status, segments, campaign, events, send_at, created_at, updated_at \
         FROM messages WHERE tenant_id = $1 AND contact_id = $2 ORDER BY created_at, id",
    ),
    (
        "messages_in",
        "SELECT id, channel, from_address, to_address, text, media, conversation_id, received_at \
         FROM inbound_messages WHERE tenant_id = $1 AND contact_id = $2 ORDER BY received_at, id",
    ),
    (
        "nlu_annotations",
        "SELECT id AS inbound_message_id, annotations, annotated_at FROM inbound_messages \
         WHERE tenant_id = $1 AND contact_id = $2 AND annotations IS NOT NULL ORDER BY received_at, id",
    ),
    (
        "conversations",
        "SELECT id, state, channel, address, team, last_message, last_message_at, created_at, resolved_at, csat_score, csat_comment, csat_at \
         FROM conversations WHERE tenant_id = $1 AND contact_id = $2",
    ),
    (
        "conversation_notes",
        "SELECT n.id, n.conversation_id, n.agent_id, n.text, n.created_at FROM conversation_notes n \
         JOIN conversations c ON c.id = n.conversation_id WHERE c.tenant_id = $1 AND c.contact_id = $2 ORDER BY n.created_at, n.id",
    ),
    (
        "flow_answers",
        "SELECT flow, node, attribute, value, channel, conversation_id, message_id, answered_at \
         FROM flow_answers WHERE tenant_id = $1 AND contact_id = $2 ORDER BY answered_at, attribute",
    ),
    (
        "flow_sessions",
        "SELECT s.flow, s.node, s.vars, s.started_at, s.updated_at FROM flow_sessions s \
         JOIN conversations c ON c.id = s.conversation_id WHERE c.tenant_id = $1 AND c.contact_id = $2",
    ),
    (
        "link_clicks",
        "SELECT k.id, k.code, l.url, k.message_id, k.channel, k.user_agent, k.clicked_at FROM link_clicks k \
         JOIN messages m ON m.id = k.message_id JOIN tracked_links l ON l.code = k.code \
         WHERE m.tenant_id = $1 AND m.contact_id = $2 ORDER BY k.clicked_at, k.id",
    ),
    (
        "contact_events",
        "SELECT id, name, properties, value, outcome, at FROM contact_events WHERE tenant_id = $1 AND contact_id = $2 ORDER BY at, id",
    ),
    (
        "campaigns",
        "SELECT r.campaign_id, c.name AS campaign, r.state, r.variant, r.message_id, r.reason FROM campaign_recipients r \
         JOIN campaigns c ON c.id = r.campaign_id WHERE c.tenant_id = $1 AND r.contact_id = $2 ORDER BY c.name",
    ),
    (
        "journeys",
        "SELECT id, journey, step, state, entered_by, event_properties, started_at, ended_at, ended_reason \
         FROM journey_runs WHERE tenant_id = $1 AND contact_id = $2 ORDER BY started_at, id",
    ),
    (
        "journey_segments",
        "SELECT journey, segment, entered_at FROM journey_segment_members WHERE tenant_id = $1 AND contact_id = $2 ORDER BY journey, segment",
    ),
    (
        "referrals",
        "SELECT inbound_id, conversation_id, entry_point_id, campaign, at FROM conversation_referrals \
         WHERE tenant_id = $1 AND contact_id = $2 ORDER BY at",
    ),
    (
        "media",
        "SELECT id, channel_id, mime_type, size, created_at FROM media WHERE tenant_id = $1 \
         AND owner_address IN (SELECT address FROM identities WHERE tenant_id = $1 AND contact_id = $2) ORDER BY created_at, id",
    ),
    (
        "audit",
        "SELECT id, at, actor_kind, actor_id, action, status FROM audit_log \
         WHERE tenant_id = $1 AND resource_kind = 'contact' AND resource_id = $2 ORDER BY id",
    ),
];

/// The ids of the contact's outbound messages (`$1` tenant, `$2` contact): those linked
/// to them and those sent to one of their addresses.
const MESSAGES_OF: &str = "SELECT id FROM messages WHERE tenant_id = $1 AND (contact_id = $2 \
     OR to_address IN (SELECT address FROM identities WHERE tenant_id = $1 AND contact_id = $2))";
const INBOUND_OF: &str = "SELECT id FROM inbound_messages WHERE tenant_id = $1 AND (contact_id = $2 \
     OR from_address IN (SELECT address FROM identities WHERE tenant_id = $1 AND contact_id = $2))";
const CONVERSATIONS_OF: &str =
    "SELECT id FROM conversations WHERE tenant_id = $1 AND contact_id = $2";

/// What is done, in this order, to erase contact `$2` of tenant `$1`; `$3` is the fresh
/// id the kept rows move to, `$4` the time. Rows found through the contact's messages or
/// conversation go before the messages and conversation lose the contact's id.
pub(crate) fn erasure_steps() -> Vec<(Step, &'static str, String)> {
    let erased = relais_core::privacy::ERASED;
    let content = relais_core::privacy::ERASED_CONTENT;
    vec![
        (Step::Anonymise, "link_clicks", format!("UPDATE link_clicks SET user_agent = NULL WHERE tenant_id = $1 AND message_id IN ({MESSAGES_OF})")),
        (Step::Delete, "outbox", format!("DELETE FROM outbox WHERE tenant_id = $1 AND message_id IN ({MESSAGES_OF})")),
        // The checks' reasons quote the message (its links' hosts, its phrases); the score
        // and verdict stay counted.
        (Step::Anonymise, "content_checks", format!("UPDATE content_checks SET reasons = '[]' WHERE tenant_id = $1 AND message_id IN ({MESSAGES_OF})")),
        // A message not yet handed to a provider is not sent to an erased person.
        (Step::Anonymise, "messages", format!("UPDATE messages SET status = 'canceled' WHERE tenant_id = $1 AND status IN ('accepted', 'held', 'scheduled', 'queued') AND id IN ({MESSAGES_OF})")),
        (Step::Delete, "smpp_receipt_watches", format!("DELETE FROM smpp_receipt_watches WHERE tenant_id = $1 AND message_id IN ({MESSAGES_OF})")),
        (Step::Delete, "sim_messages", format!("DELETE FROM sim_messages WHERE tenant_id = $1 AND message_id IN ({MESSAGES_OF})")),
        (Step::Delete, "stream_events", format!("DELETE FROM stream_events WHERE tenant_id = $1 AND conversation_id IN ({CONVERSATIONS_OF})")),
        (Step::Delete, "flow_sessions", format!("DELETE FROM flow_sessions WHERE tenant_id = $1 AND conversation_id IN ({CONVERSATIONS_OF})")),
        (Step::Anonymise, "conversation_notes", format!("UPDATE conversation_notes SET text = '{erased}' WHERE tenant_id = $1 AND conversation_id IN ({CONVERSATIONS_OF})")),
        (Step::Anonymise, "flow_answers", format!("UPDATE flow_answers SET value = '{erased}', contact_id = $3 WHERE tenant_id = $1 AND contact_id = $2")),
        (Step::Anonymise, "conversation_referrals", "UPDATE conversation_referrals SET contact_id = $3 WHERE tenant_id = $1 AND contact_id = $2".into()),
        (Step::Anonymise, "campaign_recipients", "UPDATE campaign_recipients SET contact_id = $3 WHERE contact_id = $2 AND campaign_id IN (SELECT id FROM campaigns WHERE tenant_id = $1)".into()),
        (Step::Anonymise, "contact_events", "UPDATE contact_events SET contact_id = $3, properties = '{}', idempotency_id = NULL WHERE tenant_id = $1 AND contact_id = $2".into()),
        (Step::Anonymise, "journey_runs", "UPDATE journey_runs SET contact_id = $3, event_properties = '{}', entry_key = id, active_key = NULL, \
             state = CASE WHEN state = 'active' THEN 'canceled' ELSE state END, \
             ended_reason = CASE WHEN state = 'active' THEN 'contact erased' ELSE ended_reason END, \
             ended_at = CASE WHEN state = 'active' THEN $4 ELSE ended_at END, \
             due_at = NULL, lease_owner = NULL, lease_until = NULL WHERE tenant_id = $1 AND contact_id = $2".into()),
        (Step::Delete, "journey_segment_members", "DELETE FROM journey_segment_members WHERE tenant_id = $1 AND contact_id = $2".into()),
        (Step::Delete, "contact_merges", "DELETE FROM contact_merges WHERE tenant_id = $1 AND (survivor_id = $2 OR merged_id = $2)".into()),
        (Step::Delete, "consents", "DELETE FROM consents WHERE tenant_id = $1 AND contact_id = $2".into()),
        (Step::Anonymise, "inbound_messages", format!("UPDATE inbound_messages SET contact_id = $3, from_address = '{erased}', text = '{erased}', \
             annotations = NULL, payload = NULL, media = NULL WHERE tenant_id = $1 AND id IN ({INBOUND_OF})")),
        (Step::Anonymise, "messages", format!("UPDATE messages SET contact_id = $3, to_address = '{erased}', content = '{content}', \
             idempotency_key = NULL, request_hash = NULL WHERE tenant_id = $1 AND id IN ({MESSAGES_OF})")),
        (Step::Anonymise, "conversations", format!("UPDATE conversations SET contact_id = $3, address = '{erased}', last_message = '{erased}', \
             csat_comment = NULL, state = 'resolved', resolved_at = COALESCE(resolved_at, $4), waiting_since = NULL, sla_due_at = NULL \
             WHERE tenant_id = $1 AND contact_id = $2")),
        (Step::Delete, "identities", "DELETE FROM identities WHERE tenant_id = $1 AND contact_id = $2".into()),
        (Step::Delete, "contacts", "DELETE FROM contacts WHERE tenant_id = $1 AND id = $2".into()),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Delete,
    Anonymise,
}

/// The highest `$n` a statement uses: how many parameters to bind.
pub(crate) fn parameters(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    let mut max = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'$' {
            let digits: String = sql[i + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            max = max.max(digits.parse().unwrap_or(0));
        }
    }
    max
}

/// `text` as a `LIKE` pattern matching it anywhere (with `\` as the escape).
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// A tracked link's URL without what may name a person: its scheme and host only.
pub(crate) fn url_origin(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return relais_core::privacy::ERASED.to_owned();
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..host_end];
    // Credentials in the authority name someone too.
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    format!("{scheme}://{host}/")
}

/// Stored JSON with its times (`at`, `…_at`, in microseconds) as RFC 3339, as the
/// export's own columns are.
pub(crate) fn readable_times(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let time = (key == "at" || key.ends_with("_at"))
                    .then(|| v.as_i64())
                    .flatten()
                    .and_then(|us| jiff::Timestamp::from_microsecond(us).ok());
                match time {
                    Some(t) => *v = serde_json::Value::String(t.to_string()),
                    None => readable_times(v),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(readable_times),
        _ => {}
    }
}

/// A random secret for the keyed digests: 244 random bits from two v4 UUIDs.
pub(crate) fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

macro_rules! impl_privacy_store {
    ($modname:ident, $store:ty, $db:ty, $backend:expr) => {
        mod $modname {
            use super::*;
            use crate::{Backend, StoreError, from_micros, micros, new_id};
            use relais_core::privacy::{ERASED, ERASED_CONTENT, suppression_digest};
            use sqlx::{Column, Row, ValueRef};

            type Db = $db;
            type DbRow = <Db as sqlx::Database>::Row;
            type Tx<'a> = sqlx::Transaction<'a, Db>;

            /// A row as JSON: numbers, text (JSON text parsed), booleans; timestamps
            /// (`…_at`, `at`) as RFC 3339; bytes left out.
            fn row_to_json(row: &DbRow) -> StoreResult<serde_json::Map<String, serde_json::Value>> {
                use serde_json::Value;
                let mut out = serde_json::Map::new();
                for (i, column) in row.columns().iter().enumerate() {
                    let name = column.name().to_owned();
                    let raw = row.try_get_raw(i)?;
                    if raw.is_null() {
                        out.insert(name, Value::Null);
                        continue;
                    }
                    let is_time = name == "at" || name.ends_with("_at");
                    let value = if let Ok(n) = row.try_get::<i64, _>(i) {
                        if is_time {
                            Value::String(from_micros(n)?.to_string())
                        } else {
                            Value::from(n)
                        }
                    } else if let Ok(f) = row.try_get::<f64, _>(i) {
                        Value::from(f)
                    } else if let Ok(s) = row.try_get::<String, _>(i) {
                        match s.chars().next() {
                            Some('{') | Some('[') => match serde_json::from_str(&s) {
                                Ok(mut v) => {
                                    readable_times(&mut v);
                                    v
                                }
                                Err(_) => Value::String(s),
                            },
                            _ => Value::String(s),
                        }
                    } else if let Ok(b) = row.try_get::<bool, _>(i) {
                        Value::Bool(b)
                    } else {
                        continue;
                    };
                    out.insert(name, value);
                }
                Ok(out)
            }

            async fn execute(tx: &mut Tx<'_>, sql: &str, params: &[&str], now: i64) -> StoreResult<u64> {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
                for n in 0..parameters(sql) {
                    q = match params.get(n) {
                        Some(p) => q.bind(p.to_string()),
                        None => q.bind(now),
                    };
                }
                Ok(q.execute(&mut **tx).await?.rows_affected())
            }

            async fn secret(tx: &mut Tx<'_>, tenant: &str, now: Timestamp) -> StoreResult<String> {
                sqlx::query("INSERT INTO suppression_keys (tenant_id, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO NOTHING")
                    .bind(tenant)
                    .bind(new_secret())
                    .bind(micros(now))
                    .execute(&mut **tx)
                    .await?;
                let row = sqlx::query("SELECT secret FROM suppression_keys WHERE tenant_id = $1")
                    .bind(tenant)
                    .fetch_one(&mut **tx)
                    .await?;
                Ok(row.try_get("secret")?)
            }

            async fn known_secret(store: &$store, tenant: &str) -> StoreResult<Option<String>> {
                let row = sqlx::query("SELECT secret FROM suppression_keys WHERE tenant_id = $1")
                    .bind(tenant)
                    .fetch_optional(store.reader())
                    .await?;
                Ok(row.map(|r| r.try_get("secret")).transpose()?)
            }

            async fn strings(tx: &mut Tx<'_>, sql: &str, tenant: &str, contact: &str) -> StoreResult<Vec<String>> {
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .bind(tenant)
                    .bind(contact)
                    .fetch_all(&mut **tx)
                    .await?;
                rows.iter().map(|r| Ok(r.try_get::<String, _>(0)?)).collect()
            }

            fn bump(map: &mut BTreeMap<String, u64>, table: &str, n: u64) {
                if n > 0 {
                    *map.entry(table.to_owned()).or_default() += n;
                }
            }

            #[async_trait]
            impl PrivacyStore for $store {
                async fn export_contact(&self, tenant: &str, id: &str) -> StoreResult<Option<ContactExport>> {
                    let mut conn = self.reader().acquire().await?;
                    let mut sections = Vec::with_capacity(EXPORT_QUERIES.len());
                    for (kind, sql) in EXPORT_QUERIES {
                        let rows = sqlx::query(sqlx::AssertSqlSafe(*sql))
                            .bind(tenant)
                            .bind(id)
                            .fetch_all(&mut *conn)
                            .await?;
                        if *kind == "profile" && rows.is_empty() {
                            return Ok(None);
                        }
                        sections.push(ExportSection {
                            kind,
                            rows: rows.iter().map(row_to_json).collect::<StoreResult<_>>()?,
                        });
                    }
                    Ok(Some(ContactExport { contact_id: id.to_owned(), sections }))
                }

                async fn erase_contact(&self, tenant: &str, id: &str, now: Timestamp) -> StoreResult<ErasureReport> {
                    let mut tx = self.begin_write().await?;
                    let found = sqlx::query("SELECT 1 FROM contacts WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant)
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if found.is_none() {
                        return Err(StoreError::NotFound(format!("contact {id}")));
                    }
                    let mut report = ErasureReport { contact_id: id.to_owned(), ..Default::default() };
                    let identities = strings(&mut tx, "SELECT address FROM identities WHERE tenant_id = $1 AND contact_id = $2", tenant, id).await?;
                    // Every address the person used: their identities, and where their
                    // messages went or came from (an identity removed earlier included).
                    let mut addresses = identities.clone();
                    addresses.extend(strings(&mut tx, &format!("SELECT DISTINCT to_address FROM messages WHERE id IN ({MESSAGES_OF})"), tenant, id).await?);
                    addresses.extend(strings(&mut tx, &format!("SELECT DISTINCT from_address FROM inbound_messages WHERE id IN ({INBOUND_OF})"), tenant, id).await?);
                    addresses.sort();
                    addresses.dedup();
                    addresses.retain(|a| !a.is_empty() && a != ERASED);

                    let secret = secret(&mut tx, tenant, now).await?;
                    for address in &identities {
                        sqlx::query("INSERT INTO suppressions (tenant_id, digest, erased_at) VALUES ($1, $2, $3) ON CONFLICT (tenant_id, digest) DO NOTHING")
                            .bind(tenant)
                            .bind(suppression_digest(secret.as_bytes(), address))
                            .bind(micros(now))
                            .execute(&mut *tx)
                            .await?;
                    }
                    report.suppressed_addresses = identities.len() as u64;

                    // Text logs that name the person anywhere in a JSON document: the
                    // queued webhook payloads, the live event log, the answers kept for
                    // batch idempotency.
                    let mut needles = addresses.clone();
                    needles.push(id.to_owned());
                    needles.extend(strings(&mut tx, MESSAGES_OF, tenant, id).await?);
                    needles.extend(strings(&mut tx, INBOUND_OF, tenant, id).await?);
                    needles.extend(strings(&mut tx, CONVERSATIONS_OF, tenant, id).await?);
                    for (table, column) in [("webhook_deliveries", "payload"), ("stream_events", "data"), ("batch_requests", "response")] {
                        for needle in &needles {
                            let done = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE tenant_id = $1 AND {column} LIKE $2 ESCAPE '\\'")))
                                .bind(tenant)
                                .bind(contains_pattern(needle))
                                .execute(&mut *tx)
                                .await?;
                            bump(&mut report.deleted, table, done.rows_affected());
                        }
                    }
                    // Rows keyed by address only.
                    for address in &addresses {
                        for sql in [
                            "DELETE FROM sim_messages WHERE tenant_id = $1 AND number = $2",
                            "DELETE FROM channel_reach WHERE tenant_id = $1 AND to_address = $2",
                            "DELETE FROM media WHERE tenant_id = $1 AND owner_address = $2",
                        ] {
                            let table = sql.split_whitespace().nth(2).unwrap_or_default();
                            let n = execute(&mut tx, sql, &[tenant, address], 0).await?;
                            bump(&mut report.deleted, table, n);
                        }
                        let digits = address.trim_start_matches('+');
                        let done = sqlx::query("DELETE FROM smpp_held_parts WHERE tenant_id = $1 AND key LIKE $2 ESCAPE '\\'")
                            .bind(tenant)
                            .bind(contains_pattern(digits))
                            .execute(&mut *tx)
                            .await?;
                        bump(&mut report.deleted, "smpp_held_parts", done.rows_affected());
                    }
                    // A tracked link keeps where it went (its host), not the personal
                    // path or query a template put in it.
                    let links = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT code, url FROM tracked_links WHERE tenant_id = $1 AND message_id IN ({MESSAGES_OF})")))
                        .bind(tenant)
                        .bind(id)
                        .fetch_all(&mut *tx)
                        .await?;
                    for link in &links {
                        let url: String = link.try_get("url")?;
                        let code: String = link.try_get("code")?;
                        sqlx::query("UPDATE tracked_links SET url = $1 WHERE code = $2")
                            .bind(url_origin(&url))
                            .bind(code)
                            .execute(&mut *tx)
                            .await?;
                    }
                    bump(&mut report.anonymised, "tracked_links", links.len() as u64);
                    // A message's event log keeps statuses and times; details (a
                    // provider's error text may quote the number) go.
                    let events = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT id, events FROM messages WHERE id IN ({MESSAGES_OF})")))
                        .bind(tenant)
                        .bind(id)
                        .fetch_all(&mut *tx)
                        .await?;
                    for row in &events {
                        let message: String = row.try_get("id")?;
                        let log: String = row.try_get("events")?;
                        let mut log: Vec<serde_json::Value> = serde_json::from_str(&log)
                            .map_err(|e| StoreError::Corrupt(format!("events of message {message}: {e}")))?;
                        for event in &mut log {
                            if let Some(event) = event.as_object_mut() {
                                event.remove("detail");
                            }
                        }
                        sqlx::query("UPDATE messages SET events = $1 WHERE id = $2")
                            .bind(serde_json::Value::Array(log).to_string())
                            .bind(message)
                            .execute(&mut *tx)
                            .await?;
                    }

                    let tombstone = new_id();
                    let now_us = micros(now);
                    for (step, table, sql) in erasure_steps() {
                        let n = execute(&mut tx, &sql, &[tenant, id, &tombstone], now_us).await?;
                        match step {
                            Step::Delete => bump(&mut report.deleted, table, n),
                            Step::Anonymise => bump(&mut report.anonymised, table, n),
                        }
                    }
                    tx.commit().await?;
                    Ok(report)
                }

                async fn suppressed_addresses(&self, tenant: &str, addresses: &[String]) -> StoreResult<Vec<String>> {
                    if addresses.is_empty() {
                        return Ok(Vec::new());
                    }
                    let Some(secret) = known_secret(self, tenant).await? else {
                        return Ok(Vec::new());
                    };
                    let mut found = Vec::new();
                    for chunk in addresses.chunks(500) {
                        let digests: Vec<(String, &String)> = chunk
                            .iter()
                            .map(|a| (suppression_digest(secret.as_bytes(), a), a))
                            .collect();
                        let mut q = sqlx::QueryBuilder::<Db>::new("SELECT digest FROM suppressions WHERE tenant_id = ");
                        q.push_bind(tenant).push(" AND digest IN (");
                        let mut sep = q.separated(", ");
                        for (d, _) in &digests {
                            sep.push_bind(d.clone());
                        }
                        q.push(")");
                        let rows = q.build().fetch_all(self.reader()).await?;
                        let hits: Vec<String> = rows.iter().map(|r| r.try_get::<String, _>("digest")).collect::<Result<_, _>>()?;
                        found.extend(digests.iter().filter(|(d, _)| hits.contains(d)).map(|(_, a)| (*a).clone()));
                    }
                    Ok(found)
                }

                async fn lift_suppression(&self, tenant: &str, addresses: &[String]) -> StoreResult<u64> {
                    let Some(secret) = known_secret(self, tenant).await? else {
                        return Ok(0);
                    };
                    let mut lifted = 0;
                    for address in addresses {
                        lifted += sqlx::query("DELETE FROM suppressions WHERE tenant_id = $1 AND digest = $2")
                            .bind(tenant)
                            .bind(suppression_digest(secret.as_bytes(), address))
                            .execute(self.writer())
                            .await?
                            .rows_affected();
                    }
                    Ok(lifted)
                }

                async fn purge_expired(&self, tenant: &str, cutoffs: &RetentionCutoffs) -> StoreResult<PurgeCounts> {
                    let mut counts = PurgeCounts::default();
                    let mut tx = self.begin_write().await?;
                    if let Some(before) = cutoffs.outbound_bodies_before {
                        counts.outbound_bodies = sqlx::query(
                            "UPDATE messages SET content = $1 WHERE tenant_id = $2 AND created_at < $3 AND content <> $1 \
                             AND status NOT IN ('accepted', 'scheduled', 'queued', 'sending')",
                        )
                        .bind(ERASED_CONTENT)
                        .bind(tenant)
                        .bind(micros(before))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    }
                    if let Some(before) = cutoffs.inbound_content_before {
                        counts.inbound_contents = sqlx::query(
                            "UPDATE inbound_messages SET text = $1, payload = NULL, annotations = NULL WHERE tenant_id = $2 AND received_at < $3 \
                             AND processed_at IS NOT NULL AND (text <> $1 OR payload IS NOT NULL OR annotations IS NOT NULL)",
                        )
                        .bind(ERASED)
                        .bind(tenant)
                        .bind(micros(before))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    }
                    if let Some(before) = cutoffs.attachments_before {
                        counts.attachments = sqlx::query("DELETE FROM media WHERE tenant_id = $1 AND created_at < $2")
                            .bind(tenant)
                            .bind(micros(before))
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                    }
                    tx.commit().await?;
                    Ok(counts)
                }

                async fn find_traces(&self, needles: &[String]) -> StoreResult<Vec<Trace>> {
                    // (table, column, is bytes)
                    let columns: Vec<(String, String, bool)> = match $backend {
                        Backend::Sqlite => {
                            let tables = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
                                .fetch_all(self.reader())
                                .await?;
                            let mut out = Vec::new();
                            for t in &tables {
                                let table: String = t.try_get("name")?;
                                let info = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT name, type FROM pragma_table_info('{}')", table.replace('\'', "''"))))
                                    .fetch_all(self.reader())
                                    .await?;
                                for c in &info {
                                    let name: String = c.try_get("name")?;
                                    let ty: String = c.try_get("type")?;
                                    let ty = ty.to_ascii_uppercase();
                                    if ty.contains("INT") || ty.contains("DOUBLE") || ty.contains("REAL") || ty.contains("BOOL") {
                                        continue;
                                    }
                                    out.push((table.clone(), name, ty.contains("BLOB")));
                                }
                            }
                            out
                        }
                        Backend::Postgres => {
                            let rows = sqlx::query(
                                "SELECT c.table_name::text AS t, c.column_name::text AS c, c.data_type::text AS d FROM information_schema.columns c \
                                 JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
                                 WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
                                   AND c.data_type NOT IN ('bigint', 'integer', 'smallint', 'double precision', 'real', 'numeric', 'boolean')",
                            )
                            .fetch_all(self.reader())
                            .await?;
                            rows.iter()
                                .map(|r| {
                                    let d: String = r.try_get("d")?;
                                    Ok((r.try_get("t")?, r.try_get("c")?, d == "bytea"))
                                })
                                .collect::<StoreResult<_>>()?
                        }
                    };
                    let mut traces = Vec::new();
                    for (table, column, bytes) in &columns {
                        let quoted_table = format!("\"{}\"", table.replace('"', "\"\""));
                        let quoted_column = format!("\"{}\"", column.replace('"', "\"\""));
                        for needle in needles {
                            if needle.is_empty() {
                                continue;
                            }
                            let sql = match ($backend, *bytes) {
                                (Backend::Sqlite, true) => format!("SELECT COUNT(*) AS n FROM {quoted_table} WHERE instr({quoted_column}, CAST($1 AS BLOB)) > 0"),
                                (Backend::Sqlite, false) => format!("SELECT COUNT(*) AS n FROM {quoted_table} WHERE instr(lower(CAST({quoted_column} AS TEXT)), lower($1)) > 0"),
                                (Backend::Postgres, true) => format!("SELECT COUNT(*) AS n FROM {quoted_table} WHERE position(convert_to($1, 'UTF8') in {quoted_column}) > 0"),
                                (Backend::Postgres, false) => format!("SELECT COUNT(*) AS n FROM {quoted_table} WHERE strpos(lower({quoted_column}::text), lower($1)) > 0"),
                            };
                            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(needle).fetch_one(self.reader()).await?;
                            let n: i64 = row.try_get("n")?;
                            if n > 0 {
                                traces.push(Trace { table: table.clone(), column: column.clone(), needle: needle.clone(), rows: n as u64 });
                            }
                        }
                    }
                    Ok(traces)
                }
            }
        }
    };
}

impl_privacy_store!(
    sqlite_privacy,
    crate::SqliteStore,
    sqlx::Sqlite,
    Backend::Sqlite
);
impl_privacy_store!(
    postgres_privacy,
    crate::PostgresStore,
    sqlx::Postgres,
    Backend::Postgres
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_binds_up_to_its_highest_parameter() {
        assert_eq!(parameters("SELECT $1, $2 WHERE x = $1"), 2);
        assert_eq!(parameters("UPDATE t SET a = $3 WHERE b = $10"), 10);
        assert_eq!(parameters("SELECT 1"), 0);
    }

    #[test]
    fn a_link_keeps_its_host_only() {
        assert_eq!(
            url_origin("https://shop.example/cart?email=ana%40x.fr"),
            "https://shop.example/"
        );
        assert_eq!(url_origin("https://u:p@h.example"), "https://h.example/");
        assert_eq!(url_origin("not a url"), "[erased]");
    }

    #[test]
    fn times_inside_stored_json_become_readable() {
        let mut v = serde_json::json!([{"status": "sent", "at": 1_790_000_000_000_000i64, "n": 3}]);
        readable_times(&mut v);
        assert_eq!(
            v,
            serde_json::json!([{"status": "sent", "at": "2026-09-21T14:13:20Z", "n": 3}])
        );
    }

    #[test]
    fn like_patterns_escape_their_wildcards() {
        assert_eq!(contains_pattern("a_b%c"), "%a\\_b\\%c%");
    }
}
