//! Segments: a tenant's saved filters (`/v1/segments`), and the contacts a filter holds,
//! counted or listed in pages, read by SQL that each backend runs itself.
//!
//! A [`Filter`] is compiled here into a condition on the contact row `c`, with the
//! meaning `relais_core::segment` gives each comparison; the two dialects differ only in
//! how they read JSON and text, and the conformance suite checks that they find the same
//! contacts. Every clause is wrapped so that it is true or false, never NULL: `not` then
//! means what it says for contacts that lack a value.

use crate::{Backend, StoreResult};
use async_trait::async_trait;
use jiff::Timestamp;
use relais_core::consent::Purpose;
use relais_core::segment::{Behaviour, Comparison, Field, Filter, Value};
use serde::Serialize;

/// A saved segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentRecord {
    pub id: String,
    pub name: String,
    /// The filter's text, as given (it parsed when it was saved).
    pub filter: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Storage for segments; a supertrait of [`crate::Store`].
#[async_trait]
pub trait SegmentStore: Send + Sync {
    /// Saves a segment; `Conflict` when the tenant has one of that name.
    async fn insert_segment(
        &self,
        tenant: &str,
        name: &str,
        filter: &str,
        now: Timestamp,
    ) -> StoreResult<SegmentRecord>;
    /// The segment with this id, or else this name.
    async fn segment(&self, tenant: &str, id_or_name: &str) -> StoreResult<Option<SegmentRecord>>;
    /// The tenant's segments by name.
    async fn list_segments(&self, tenant: &str) -> StoreResult<Vec<SegmentRecord>>;
    /// Replaces a segment's filter; `None` when there is no such segment.
    async fn update_segment(
        &self,
        tenant: &str,
        id: &str,
        filter: &str,
        now: Timestamp,
    ) -> StoreResult<Option<SegmentRecord>>;
    async fn delete_segment(&self, tenant: &str, id: &str) -> StoreResult<bool>;
    /// How many of the tenant's contacts `filter` holds at `now` (behaviours are counted
    /// back from it).
    async fn count_matching(
        &self,
        tenant: &str,
        filter: &Filter,
        now: Timestamp,
    ) -> StoreResult<i64>;
    /// The ids of up to `limit` contacts `filter` holds, in id order, after `after`.
    async fn matching_contacts(
        &self,
        tenant: &str,
        filter: &Filter,
        now: Timestamp,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<String>>;
}

/// A piece of a compiled condition: SQL text, or a value bound in its place.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    Sql(String),
    Text(String),
    Real(f64),
    Int(i64),
}

/// A filter as SQL for one backend: a condition on the contact row `c`.
#[derive(Debug, Default)]
pub(crate) struct Condition {
    pub(crate) pieces: Vec<Piece>,
}

impl Condition {
    fn sql(&mut self, text: &str) -> &mut Self {
        match self.pieces.last_mut() {
            Some(Piece::Sql(last)) => last.push_str(text),
            _ => self.pieces.push(Piece::Sql(text.to_owned())),
        }
        self
    }

    fn text(&mut self, value: &str) -> &mut Self {
        self.pieces.push(Piece::Text(value.to_owned()));
        self
    }

    fn value(&mut self, value: &Value) -> &mut Self {
        self.pieces.push(match value {
            Value::Text(t) => Piece::Text(t.clone()),
            Value::Number(n) => Piece::Real(*n),
            Value::Bool(b) => Piece::Text(b.to_string()),
        });
        self
    }

    fn int(&mut self, value: i64) -> &mut Self {
        self.pieces.push(Piece::Int(value));
        self
    }
}

/// Compiles `filter` for `backend`, with behaviours counted back from `now`.
pub(crate) fn compile(filter: &Filter, backend: Backend, now: Timestamp) -> Condition {
    let mut out = Condition::default();
    Compiler { backend, now }.filter(filter, &mut out);
    out
}

struct Compiler {
    backend: Backend,
    now: Timestamp,
}

/// Message statuses that say a message left Relais, and those that say it arrived.
const SENT: &str = "('sent', 'delivered', 'read')";
const DELIVERED: &str = "('delivered', 'read')";

impl Compiler {
    fn sqlite(&self) -> bool {
        self.backend == Backend::Sqlite
    }

    fn filter(&self, filter: &Filter, out: &mut Condition) {
        match filter {
            Filter::And(a, b) | Filter::Or(a, b) => {
                let join = if matches!(filter, Filter::And(..)) {
                    " AND "
                } else {
                    " OR "
                };
                out.sql("(");
                self.filter(a, out);
                out.sql(join);
                self.filter(b, out);
                out.sql(")");
            }
            Filter::Not(inner) => {
                out.sql("(NOT ");
                self.filter(inner, out);
                out.sql(")");
            }
            Filter::Compare {
                field,
                op: Comparison::NotEqual,
                value,
            } => {
                out.sql("(NOT ");
                self.compare(field, Comparison::Equal, value, out);
                out.sql(")");
            }
            Filter::Compare { field, op, value } => self.compare(field, *op, value, out),
            Filter::In { field, values } => {
                out.sql("(");
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        out.sql(" OR ");
                    }
                    self.compare(field, Comparison::Equal, value, out);
                }
                out.sql(")");
            }
            Filter::Contains { field, value } => self.contains(field, value, out),
            Filter::Exists(field) => self.exists(field, out),
            Filter::Within { behaviour, period } => {
                let since = self
                    .now
                    .checked_sub(*period)
                    .unwrap_or(Timestamp::MIN)
                    .as_microsecond();
                self.within(behaviour, since, out);
            }
        }
    }

    /// The JSON value at an attribute's path, as an SQL expression (PostgreSQL), or the
    /// path bound for `json_type` / `json_extract` (SQLite).
    fn json_path(&self, path: &[String], out: &mut Condition) {
        if self.sqlite() {
            let mut p = String::from("$");
            for name in path {
                p.push_str(".\"");
                p.push_str(&name.replace('"', "\\\""));
                p.push('"');
            }
            out.text(&p);
        } else {
            out.sql("jsonb_extract_path(c.attributes::jsonb");
            for name in path {
                out.sql(", ").text(name);
            }
            out.sql(")");
        }
    }

    /// `json_type` of SQLite, or `jsonb_typeof` of PostgreSQL, of an attribute.
    fn json_type(&self, path: &[String], out: &mut Condition) {
        if self.sqlite() {
            out.sql("json_type(c.attributes, ");
            self.json_path(path, out);
            out.sql(")");
        } else {
            out.sql("jsonb_typeof(");
            self.json_path(path, out);
            out.sql(")");
        }
    }

    /// An attribute's scalar value: its text, or its number's text (PostgreSQL).
    fn json_scalar(&self, path: &[String], out: &mut Condition) {
        if self.sqlite() {
            out.sql("json_extract(c.attributes, ");
            self.json_path(path, out);
            out.sql(")");
        } else {
            out.sql("(");
            self.json_path(path, out);
            out.sql(" #>> '{}')");
        }
    }

    /// The type names of a JSON string, number and the two booleans.
    fn type_names(&self) -> (&'static str, &'static str, &'static str, &'static str) {
        if self.sqlite() {
            ("'text'", "('integer', 'real')", "'true'", "'false'")
        } else {
            ("'string'", "('number')", "'boolean'", "'boolean'")
        }
    }

    /// Text comparison byte by byte on both backends (PostgreSQL's default collation
    /// would sort by the locale's rules).
    fn text_collation(&self) -> &'static str {
        if self.sqlite() { "" } else { " COLLATE \"C\"" }
    }

    fn compare(&self, field: &Field, op: Comparison, value: &Value, out: &mut Condition) {
        let collate = self.text_collation();
        match field {
            Field::Attribute(path) => {
                let (text, number, yes, no) = self.type_names();
                out.sql("COALESCE(");
                match value {
                    Value::Text(_) => {
                        self.json_type(path, out);
                        out.sql(&format!(" = {text} AND "));
                        self.json_scalar(path, out);
                        out.sql(&format!("{collate} {} ", op.sql())).value(value);
                    }
                    Value::Number(_) => {
                        if self.sqlite() {
                            self.json_type(path, out);
                            out.sql(&format!(" IN {number} AND "));
                            self.json_scalar(path, out);
                            out.sql(&format!(" {} ", op.sql())).value(value);
                        } else {
                            // The cast runs only on numbers: CASE keeps the order.
                            out.sql("CASE WHEN ");
                            self.json_type(path, out);
                            out.sql(" = 'number' THEN ");
                            self.json_scalar(path, out);
                            out.sql(&format!("::double precision {} ", op.sql()))
                                .value(value)
                                .sql(" ELSE FALSE END");
                        }
                    }
                    Value::Bool(b) => {
                        self.json_type(path, out);
                        if self.sqlite() {
                            out.sql(&format!(" = {}", if *b { yes } else { no }));
                        } else {
                            out.sql(&format!(" = {yes} AND "));
                            self.json_scalar(path, out);
                            out.sql(" = ").value(value);
                        }
                    }
                }
                out.sql(", FALSE)");
            }
            Field::Timezone | Field::Locale => {
                let column = if *field == Field::Timezone {
                    "c.timezone"
                } else {
                    "c.locale"
                };
                out.sql(&format!("COALESCE({column}{collate} {} ", op.sql()))
                    .value(value)
                    .sql(", FALSE)");
            }
            Field::Identity(channel) => {
                self.identity(channel.as_str(), out);
                out.sql(&format!(" AND i.address{collate} {} ", op.sql()))
                    .value(value)
                    .sql(")");
            }
            Field::Consent { channel, purpose } => {
                out.sql("COALESCE(");
                self.consent(channel.as_str(), purpose, out);
                out.sql(&format!("{collate} {} ", op.sql()))
                    .value(value)
                    .sql(", FALSE)");
            }
        }
    }

    fn substring(&self, haystack: &str, out: &mut Condition, value: &Value) {
        if self.sqlite() {
            out.sql(&format!("instr({haystack}, "))
                .value(value)
                .sql(") > 0");
        } else {
            out.sql(&format!("strpos({haystack}, "))
                .value(value)
                .sql(") > 0");
        }
    }

    fn contains(&self, field: &Field, value: &Value, out: &mut Condition) {
        match field {
            Field::Attribute(path) => {
                out.sql("COALESCE(");
                match (self.sqlite(), value) {
                    (true, Value::Text(_)) => {
                        out.sql("CASE ");
                        self.json_type(path, out);
                        out.sql(" WHEN 'text' THEN instr(");
                        self.json_scalar(path, out);
                        out.sql(", ").value(value).sql(") > 0 WHEN 'array' THEN EXISTS (SELECT 1 FROM json_each(c.attributes, ");
                        self.json_path(path, out);
                        out.sql(") e WHERE e.type = 'text' AND e.value = ")
                            .value(value)
                            .sql(") ELSE FALSE END");
                    }
                    (true, _) => {
                        self.json_type(path, out);
                        out.sql(" = 'array' AND EXISTS (SELECT 1 FROM json_each(c.attributes, ");
                        self.json_path(path, out);
                        out.sql(") e WHERE e.type IN ('integer', 'real') AND e.value = ")
                            .value(value)
                            .sql(")");
                    }
                    (false, Value::Text(_)) => {
                        out.sql("CASE ");
                        self.json_type(path, out);
                        out.sql(" WHEN 'string' THEN strpos(");
                        self.json_scalar(path, out);
                        out.sql(", ").value(value).sql(") > 0 WHEN 'array' THEN ");
                        self.json_path(path, out);
                        out.sql(" @> jsonb_build_array(")
                            .value(value)
                            .sql("::text) ELSE FALSE END");
                    }
                    (false, _) => {
                        out.sql("CASE WHEN ");
                        self.json_type(path, out);
                        out.sql(" = 'array' THEN ");
                        self.json_path(path, out);
                        out.sql(" @> jsonb_build_array(")
                            .value(value)
                            .sql("::double precision) ELSE FALSE END");
                    }
                }
                out.sql(", FALSE)");
            }
            Field::Timezone | Field::Locale => {
                let column = if *field == Field::Timezone {
                    "c.timezone"
                } else {
                    "c.locale"
                };
                out.sql("COALESCE(");
                self.substring(column, out, value);
                out.sql(", FALSE)");
            }
            Field::Identity(channel) => {
                self.identity(channel.as_str(), out);
                out.sql(" AND ");
                self.substring("i.address", out, value);
                out.sql(")");
            }
            Field::Consent { channel, purpose } => {
                let mut status = Condition::default();
                self.consent(channel.as_str(), purpose, &mut status);
                out.sql("COALESCE(");
                out.sql(if self.sqlite() { "instr(" } else { "strpos(" });
                out.pieces.extend(status.pieces);
                out.sql(", ").value(value).sql(") > 0, FALSE)");
            }
        }
    }

    fn exists(&self, field: &Field, out: &mut Condition) {
        match field {
            Field::Attribute(path) => {
                out.sql("COALESCE(");
                self.json_type(path, out);
                out.sql(" <> 'null', FALSE)");
            }
            Field::Timezone => {
                out.sql("(c.timezone IS NOT NULL)");
            }
            Field::Locale => {
                out.sql("(c.locale IS NOT NULL)");
            }
            Field::Identity(channel) => {
                self.identity(channel.as_str(), out);
                out.sql(")");
            }
            Field::Consent { channel, purpose } => {
                out.sql("(");
                self.consent(channel.as_str(), purpose, out);
                out.sql(" IS NOT NULL)");
            }
        }
    }

    /// `EXISTS (SELECT 1 FROM identities i WHERE … channel`, left open for a condition
    /// on `i.address` and the closing parenthesis.
    fn identity(&self, channel: &str, out: &mut Condition) {
        out.sql("EXISTS (SELECT 1 FROM identities i WHERE i.tenant_id = c.tenant_id AND i.contact_id = c.id AND i.channel = ")
            .text(channel);
    }

    /// The status of the latest consent record that speaks to `channel` and `purpose`
    /// (the records the send path's `may_send` weighs), as a scalar subquery.
    fn consent(&self, channel: &str, purpose: &Purpose, out: &mut Condition) {
        out.sql("(SELECT k.status FROM consents k WHERE k.tenant_id = c.tenant_id AND k.contact_id = c.id AND (k.channel IS NULL OR k.channel = ")
            .text(channel)
            .sql(") AND k.purpose IN (")
            .text(purpose.as_str())
            .sql(", 'all'");
        if matches!(purpose, Purpose::Topic(_)) {
            out.sql(", 'marketing'");
        }
        out.sql(") ORDER BY k.recorded_at DESC, k.id DESC LIMIT 1)");
    }

    fn within(&self, behaviour: &Behaviour, since: i64, out: &mut Condition) {
        let messages = |statuses: &str, out: &mut Condition| {
            out.sql("EXISTS (SELECT 1 FROM messages m WHERE m.tenant_id = c.tenant_id AND m.contact_id = c.id AND m.created_at >= ")
                .int(since)
                .sql(&format!(" AND m.status IN {statuses})"));
        };
        match behaviour {
            Behaviour::Inbound => {
                out.sql("EXISTS (SELECT 1 FROM inbound_messages w WHERE w.tenant_id = c.tenant_id AND w.contact_id = c.id AND w.received_at >= ")
                    .int(since)
                    .sql(")");
            }
            Behaviour::Sent => messages(SENT, out),
            Behaviour::Delivered => messages(DELIVERED, out),
            Behaviour::Read => messages("('read')", out),
            Behaviour::Replied => {
                out.sql("EXISTS (SELECT 1 FROM inbound_messages w WHERE w.tenant_id = c.tenant_id AND w.contact_id = c.id AND w.received_at >= ")
                    .int(since)
                    .sql(&format!(
                        " AND EXISTS (SELECT 1 FROM messages m WHERE m.tenant_id = c.tenant_id AND m.contact_id = c.id AND m.created_at <= w.received_at AND m.status IN {SENT}))"
                    ));
            }
            Behaviour::Clicked => {
                out.sql("EXISTS (SELECT 1 FROM messages m JOIN link_clicks k ON k.tenant_id = m.tenant_id AND k.message_id = m.id WHERE m.tenant_id = c.tenant_id AND m.contact_id = c.id AND k.clicked_at >= ")
                    .int(since)
                    .sql(")");
            }
            Behaviour::Event(name) => {
                out.sql("EXISTS (SELECT 1 FROM contact_events e WHERE e.tenant_id = c.tenant_id AND e.contact_id = c.id AND e.name = ")
                    .text(name)
                    .sql(" AND e.at >= ")
                    .int(since)
                    .sql(")");
            }
        }
    }
}

/// Appends a compiled condition to a query of either backend.
pub(crate) fn push_condition<DB>(q: &mut sqlx::QueryBuilder<DB>, condition: Condition)
where
    DB: sqlx::Database,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> f64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    for piece in condition.pieces {
        match piece {
            Piece::Sql(sql) => {
                q.push(sql);
            }
            Piece::Text(t) => {
                q.push_bind(t);
            }
            Piece::Real(r) => {
                q.push_bind(r);
            }
            Piece::Int(i) => {
                q.push_bind(i);
            }
        }
    }
}

macro_rules! impl_segment_store {
    ($modname:ident, $store:ty, $db:ty) => {
        mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros, new_id};
            use sqlx::Row;

            type Db = $db;

            fn segment_from_row(row: &<Db as sqlx::Database>::Row) -> StoreResult<SegmentRecord> {
                Ok(SegmentRecord {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    filter: row.try_get("filter")?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                    updated_at: from_micros(row.try_get("updated_at")?)?,
                })
            }

            const COLUMNS: &str = "id, name, filter, created_at, updated_at";

            #[async_trait]
            impl SegmentStore for $store {
                async fn insert_segment(
                    &self,
                    tenant: &str,
                    name: &str,
                    filter: &str,
                    now: Timestamp,
                ) -> StoreResult<SegmentRecord> {
                    let record = SegmentRecord {
                        id: new_id(),
                        name: name.to_owned(),
                        filter: filter.to_owned(),
                        created_at: now,
                        updated_at: now,
                    };
                    let inserted = sqlx::query(
                        "INSERT INTO segments (id, tenant_id, name, filter, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (tenant_id, name) DO NOTHING",
                    )
                    .bind(&record.id)
                    .bind(tenant)
                    .bind(name)
                    .bind(filter)
                    .bind(micros(now))
                    .execute(self.writer())
                    .await?;
                    if inserted.rows_affected() == 0 {
                        return Err(StoreError::Conflict(format!(
                            "a segment named `{name}` exists"
                        )));
                    }
                    Ok(record)
                }

                async fn segment(
                    &self,
                    tenant: &str,
                    id_or_name: &str,
                ) -> StoreResult<Option<SegmentRecord>> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM segments WHERE tenant_id = $1 AND (id = $2 OR name = $2) \
                         ORDER BY CASE WHEN id = $2 THEN 0 ELSE 1 END LIMIT 1"
                    )))
                    .bind(tenant)
                    .bind(id_or_name)
                    .fetch_optional(self.reader())
                    .await?;
                    row.as_ref().map(segment_from_row).transpose()
                }

                async fn list_segments(&self, tenant: &str) -> StoreResult<Vec<SegmentRecord>> {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM segments WHERE tenant_id = $1 ORDER BY name"
                    )))
                    .bind(tenant)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter().map(segment_from_row).collect()
                }

                async fn update_segment(
                    &self,
                    tenant: &str,
                    id: &str,
                    filter: &str,
                    now: Timestamp,
                ) -> StoreResult<Option<SegmentRecord>> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE segments SET filter = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2 \
                         RETURNING {COLUMNS}"
                    )))
                    .bind(tenant)
                    .bind(id)
                    .bind(filter)
                    .bind(micros(now))
                    .fetch_optional(self.writer())
                    .await?;
                    row.as_ref().map(segment_from_row).transpose()
                }

                async fn delete_segment(&self, tenant: &str, id: &str) -> StoreResult<bool> {
                    let done = sqlx::query("DELETE FROM segments WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant)
                        .bind(id)
                        .execute(self.writer())
                        .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn count_matching(
                    &self,
                    tenant: &str,
                    filter: &Filter,
                    now: Timestamp,
                ) -> StoreResult<i64> {
                    let mut q = sqlx::QueryBuilder::<Db>::new(
                        "SELECT COUNT(*) AS n FROM contacts c WHERE c.tenant_id = ",
                    );
                    q.push_bind(tenant.to_owned()).push(" AND ");
                    push_condition(&mut q, compile(filter, crate::Store::backend(self), now));
                    let row = q.build().fetch_one(self.reader()).await?;
                    Ok(row.try_get("n")?)
                }

                async fn matching_contacts(
                    &self,
                    tenant: &str,
                    filter: &Filter,
                    now: Timestamp,
                    after: Option<&str>,
                    limit: i64,
                ) -> StoreResult<Vec<String>> {
                    let mut q = sqlx::QueryBuilder::<Db>::new(
                        "SELECT c.id FROM contacts c WHERE c.tenant_id = ",
                    );
                    q.push_bind(tenant.to_owned());
                    if let Some(after) = after {
                        q.push(" AND c.id > ").push_bind(after.to_owned());
                    }
                    q.push(" AND ");
                    push_condition(&mut q, compile(filter, crate::Store::backend(self), now));
                    q.push(" ORDER BY c.id LIMIT ").push_bind(limit.max(0));
                    let rows = q.build().fetch_all(self.reader()).await?;
                    rows.iter()
                        .map(|r| r.try_get::<String, _>("id").map_err(StoreError::from))
                        .collect()
                }
            }
        }
    };
}

impl_segment_store!(sqlite_segments, crate::SqliteStore, sqlx::Sqlite);
impl_segment_store!(postgres_segments, crate::PostgresStore, sqlx::Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    fn sql_of(filter: &str, backend: Backend) -> String {
        let filter = Filter::parse(filter).unwrap();
        compile(&filter, backend, Timestamp::UNIX_EPOCH)
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Sql(s) => s.clone(),
                _ => "?".into(),
            })
            .collect()
    }

    #[test]
    fn values_are_bound_never_spliced_into_the_sql() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let sql = sql_of(
                "attributes.city = 'Lyon''; DROP TABLE contacts; --' or locale contains 'x'",
                backend,
            );
            assert!(!sql.contains("DROP"), "{sql}");
            assert!(!sql.contains("Lyon"), "{sql}");
        }
    }

    #[test]
    fn not_equal_is_the_negation_of_equal() {
        let sql = sql_of("locale != 'fr'", Backend::Sqlite);
        assert!(sql.starts_with("(NOT COALESCE(c.locale = ?"), "{sql}");
    }
}
