//! What the anti-phishing checks found in outbound messages (`relais_core::content_check`):
//! one row per message whose score was above 0, written before the message (a row whose
//! message was never stored is never read), read back with the message.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;
use relais_core::content_check::Reason;

/// The checks' findings on one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentCheckRecord {
    pub message_id: String,
    pub tenant_id: String,
    pub score: u32,
    pub reasons: Vec<Reason>,
    /// `send` or `hold`: what the checks decided (a refused message is never stored).
    pub verdict: String,
    pub created_at: Timestamp,
}

/// Storage for the checks' findings; a supertrait of [`crate::Store`].
#[async_trait]
pub trait ContentCheckStore: Send + Sync {
    async fn insert_content_checks(&self, checks: &[ContentCheckRecord]) -> StoreResult<()>;
    /// The findings on the tenant's message, if it scored.
    async fn content_check(
        &self,
        tenant: &str,
        message_id: &str,
    ) -> StoreResult<Option<ContentCheckRecord>>;
}

macro_rules! impl_content_check_store {
    ($modname:ident, $store:ty, $db:ty) => {
        mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros};
            use sqlx::Row;

            type Db = $db;

            #[async_trait]
            impl ContentCheckStore for $store {
                async fn insert_content_checks(&self, checks: &[ContentCheckRecord]) -> StoreResult<()> {
                    for chunk in checks.chunks(crate::ROWS_PER_STATEMENT) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "INSERT INTO content_checks (message_id, tenant_id, score, reasons, verdict, created_at) ",
                        );
                        let reasons: Vec<String> = chunk
                            .iter()
                            .map(|c| serde_json::to_string(&c.reasons))
                            .collect::<Result<_, _>>()
                            .map_err(|e| StoreError::Invalid(format!("content check reasons: {e}")))?;
                        q.push_values(chunk.iter().zip(&reasons), |mut row, (check, reasons)| {
                            row.push_bind(check.message_id.as_str())
                                .push_bind(check.tenant_id.as_str())
                                .push_bind(i64::from(check.score))
                                .push_bind(reasons.as_str())
                                .push_bind(check.verdict.as_str())
                                .push_bind(micros(check.created_at));
                        });
                        q.build().execute(self.writer()).await?;
                    }
                    Ok(())
                }

                async fn content_check(
                    &self,
                    tenant: &str,
                    message_id: &str,
                ) -> StoreResult<Option<ContentCheckRecord>> {
                    let Some(row) = sqlx::query(
                        "SELECT message_id, tenant_id, score, reasons, verdict, created_at \
                         FROM content_checks WHERE tenant_id = $1 AND message_id = $2",
                    )
                    .bind(tenant)
                    .bind(message_id)
                    .fetch_optional(self.reader())
                    .await?
                    else {
                        return Ok(None);
                    };
                    let score: i64 = row.try_get("score")?;
                    let reasons: String = row.try_get("reasons")?;
                    let corrupt = |what: String| {
                        StoreError::Corrupt(format!("the content check of message {message_id}: {what}"))
                    };
                    Ok(Some(ContentCheckRecord {
                        message_id: row.try_get("message_id")?,
                        tenant_id: row.try_get("tenant_id")?,
                        score: u32::try_from(score).map_err(|e| corrupt(e.to_string()))?,
                        reasons: serde_json::from_str(&reasons).map_err(|e| corrupt(e.to_string()))?,
                        verdict: row.try_get("verdict")?,
                        created_at: from_micros(row.try_get("created_at")?)?,
                    }))
                }
            }
        }
    };
}

impl_content_check_store!(sqlite_content_checks, crate::SqliteStore, sqlx::Sqlite);
impl_content_check_store!(
    postgres_content_checks,
    crate::PostgresStore,
    sqlx::Postgres
);
