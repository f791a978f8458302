//! Tracked links and their clicks: the URLs of outbound messages replaced by short links
//! (one row per code, written before the message it belongs to), and one row per click.
//!
//! A code resolves only when its row exists and its message still does: a forged code, or
//! the code of an erased message, finds nothing and records nothing.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;

/// A URL of a message replaced by a short link, to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTrackedLink {
    pub code: String,
    pub tenant_id: String,
    pub message_id: String,
    /// The URL the short link redirects to.
    pub url: String,
    /// Where it was in the content (`text`, `buttons[0].url`…).
    pub field: String,
    pub created_at: Timestamp,
}

/// A click that was recorded, with what the redirect needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedClick {
    pub tenant_id: String,
    pub message_id: String,
    /// The channel the message went on when it was clicked.
    pub channel: String,
    pub url: String,
}

/// One click on a link of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClick {
    pub code: String,
    pub url: String,
    pub channel: String,
    pub user_agent: Option<String>,
    pub at: Timestamp,
}

/// Messages created in a period that were clicked at least once, by channel and campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickedCount {
    pub channel: String,
    pub campaign: Option<String>,
    pub messages: i64,
}

/// Storage for tracked links; a supertrait of [`crate::Store`].
#[async_trait]
pub trait LinkStore: Send + Sync {
    /// Stores links (a code already stored is a `Conflict`: codes are drawn at random,
    /// so it means a bug, never a coincidence worth hiding).
    async fn insert_tracked_links(&self, links: &[NewTrackedLink]) -> StoreResult<()>;
    /// The link `code` names, as a click would find it, without recording anything (for a
    /// link preview fetched by a messaging app).
    async fn resolve_link(&self, code: &str) -> StoreResult<Option<RecordedClick>>;
    /// Records a click on `code` at `at`; `None`, with nothing recorded, when no stored
    /// link (of a message that still exists) has this code.
    async fn record_click(
        &self,
        code: &str,
        at: Timestamp,
        user_agent: Option<&str>,
    ) -> StoreResult<Option<RecordedClick>>;
    /// The clicks on the message's links, oldest first.
    async fn clicks_of_message(
        &self,
        tenant: &str,
        message_id: &str,
    ) -> StoreResult<Vec<LinkClick>>;
    /// The message's links as `(code, url)`, in the order they were written.
    async fn tracked_links_of_message(
        &self,
        tenant: &str,
        message_id: &str,
    ) -> StoreResult<Vec<(String, String)>>;
    /// Messages created in `[since, until)` clicked at least once, by channel and campaign.
    async fn clicked_counts(
        &self,
        tenant: &str,
        since: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Vec<ClickedCount>>;
}

macro_rules! impl_link_store {
    ($modname:ident, $store:ty, $db:ty) => {
        mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros};
            use sqlx::Row;

            type Db = $db;

            #[async_trait]
            impl LinkStore for $store {
                async fn insert_tracked_links(&self, links: &[NewTrackedLink]) -> StoreResult<()> {
                    for chunk in links.chunks(crate::ROWS_PER_STATEMENT) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "INSERT INTO tracked_links (code, tenant_id, message_id, url, field, created_at) ",
                        );
                        q.push_values(chunk, |mut row, link| {
                            row.push_bind(link.code.as_str())
                                .push_bind(link.tenant_id.as_str())
                                .push_bind(link.message_id.as_str())
                                .push_bind(link.url.as_str())
                                .push_bind(link.field.as_str())
                                .push_bind(micros(link.created_at));
                        });
                        q.build().execute(self.writer()).await.map_err(|e| match e {
                            sqlx::Error::Database(db)
                                if $crate::noted(db.is_unique_violation()) =>
                            {
                                StoreError::Conflict("a tracked link code is taken".into())
                            }
                            other => other.into(),
                        })?;
                    }
                    Ok(())
                }

                async fn resolve_link(&self, code: &str) -> StoreResult<Option<RecordedClick>> {
                    let Some(row) = sqlx::query(
                        "SELECT l.tenant_id, l.message_id, l.url, m.channel FROM tracked_links l \
                         JOIN messages m ON m.id = l.message_id AND m.tenant_id = l.tenant_id \
                         WHERE l.code = $1",
                    )
                    .bind(code)
                    .fetch_optional(self.writer())
                    .await?
                    else {
                        return Ok(None);
                    };
                    Ok(Some(RecordedClick {
                        tenant_id: row.try_get("tenant_id")?,
                        message_id: row.try_get("message_id")?,
                        channel: row.try_get("channel")?,
                        url: row.try_get("url")?,
                    }))
                }

                async fn record_click(
                    &self,
                    code: &str,
                    at: Timestamp,
                    user_agent: Option<&str>,
                ) -> StoreResult<Option<RecordedClick>> {
                    let Some(click) = self.resolve_link(code).await? else {
                        return Ok(None);
                    };
                    sqlx::query(
                        "INSERT INTO link_clicks (id, code, tenant_id, message_id, channel, user_agent, clicked_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(crate::new_id())
                    .bind(code)
                    .bind(click.tenant_id.as_str())
                    .bind(click.message_id.as_str())
                    .bind(click.channel.as_str())
                    .bind(user_agent)
                    .bind(micros(at))
                    .execute(self.writer())
                    .await?;
                    Ok(Some(click))
                }

                async fn clicks_of_message(
                    &self,
                    tenant: &str,
                    message_id: &str,
                ) -> StoreResult<Vec<LinkClick>> {
                    let rows = sqlx::query(
                        "SELECT c.code, l.url, c.channel, c.user_agent, c.clicked_at FROM link_clicks c \
                         JOIN tracked_links l ON l.code = c.code \
                         WHERE c.tenant_id = $1 AND c.message_id = $2 ORDER BY c.clicked_at, c.id",
                    )
                    .bind(tenant)
                    .bind(message_id)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter()
                        .map(|row| {
                            Ok(LinkClick {
                                code: row.try_get("code")?,
                                url: row.try_get("url")?,
                                channel: row.try_get("channel")?,
                                user_agent: row.try_get("user_agent")?,
                                at: from_micros(row.try_get("clicked_at")?)?,
                            })
                        })
                        .collect::<Result<_, StoreError>>()
                }

                async fn tracked_links_of_message(
                    &self,
                    tenant: &str,
                    message_id: &str,
                ) -> StoreResult<Vec<(String, String)>> {
                    let rows = sqlx::query(
                        "SELECT code, url FROM tracked_links WHERE tenant_id = $1 AND message_id = $2 \
                         ORDER BY created_at, field, code",
                    )
                    .bind(tenant)
                    .bind(message_id)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter()
                        .map(|row| Ok((row.try_get("code")?, row.try_get("url")?)))
                        .collect::<Result<_, StoreError>>()
                }

                async fn clicked_counts(
                    &self,
                    tenant: &str,
                    since: Timestamp,
                    until: Timestamp,
                ) -> StoreResult<Vec<ClickedCount>> {
                    let rows = sqlx::query(
                        "SELECT m.channel, m.campaign, COUNT(*) AS n FROM messages m \
                         WHERE m.tenant_id = $1 AND m.id >= $4 AND m.created_at >= $2 AND m.created_at < $3 \
                         AND EXISTS (SELECT 1 FROM link_clicks c WHERE c.tenant_id = $1 AND c.message_id = m.id) \
                         GROUP BY m.channel, m.campaign",
                    )
                    .bind(tenant)
                    .bind(micros(since))
                    .bind(micros(until))
                    .bind(crate::analytics::lowest_id_at(since))
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter()
                        .map(|row| {
                            Ok(ClickedCount {
                                channel: row.try_get("channel")?,
                                campaign: row.try_get("campaign")?,
                                messages: row.try_get("n")?,
                            })
                        })
                        .collect::<Result<_, StoreError>>()
                }
            }
        }
    };
}

impl_link_store!(sqlite_links, crate::SqliteStore, sqlx::Sqlite);
impl_link_store!(postgres_links, crate::PostgresStore, sqlx::Postgres);
