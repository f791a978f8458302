//! Click-to-chat entry points, and the conversations each one brought.
//!
//! A referral code is unique within its tenant (compared in upper case, as
//! [`relais_core::entry_point::ReferralCode`] keeps it), so an inbound message's tag names at
//! most one entry point. An attribution is keyed by the inbound message that carried the
//! tag: the same message processed again attributes once.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;
use relais_core::campaign::CampaignLabel;
use relais_core::entry_point::{Destination, EntryChannel, ReferralCode};

/// A stored entry point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPoint {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub channel: EntryChannel,
    pub destination: Destination,
    pub referral: ReferralCode,
    /// The tenant's words before the referral tag in the prefilled text.
    pub text: Option<String>,
    /// The flow a conversation it opens starts.
    pub flow: Option<String>,
    /// The campaign its conversations are attributed to.
    pub campaign: Option<CampaignLabel>,
    pub created_at: Timestamp,
}

/// A conversation brought by an entry point (one per inbound message carrying its tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    pub tenant_id: String,
    /// The inbound message that carried the referral.
    pub inbound_id: String,
    pub conversation_id: String,
    pub entry_point_id: String,
    pub campaign: Option<CampaignLabel>,
    pub contact_id: String,
    pub at: Timestamp,
}

/// Storage for entry points; a supertrait of [`crate::Store`].
#[async_trait]
pub trait EntryPointStore: Send + Sync {
    /// `Conflict` when the tenant has an entry point with this referral code already.
    async fn create_entry_point(&self, entry: &EntryPoint) -> StoreResult<()>;
    async fn entry_point(&self, tenant: &str, id: &str) -> StoreResult<Option<EntryPoint>>;
    /// The tenant's entry points, oldest first.
    async fn entry_points(&self, tenant: &str) -> StoreResult<Vec<EntryPoint>>;
    async fn entry_point_by_referral(
        &self,
        tenant: &str,
        referral: &ReferralCode,
    ) -> StoreResult<Option<EntryPoint>>;
    async fn delete_entry_point(&self, tenant: &str, id: &str) -> StoreResult<bool>;
    /// Records that a conversation came through an entry point (a second record for the
    /// same inbound message is ignored).
    async fn attribute_conversation(&self, attribution: &Attribution) -> StoreResult<()>;
    /// The conversations an entry point brought, oldest first.
    async fn attributions(
        &self,
        tenant: &str,
        entry_point_id: &str,
    ) -> StoreResult<Vec<Attribution>>;
    /// The latest entry point that brought this conversation, if any.
    async fn conversation_attribution(
        &self,
        tenant: &str,
        conversation_id: &str,
    ) -> StoreResult<Option<Attribution>>;
}

const COLUMNS: &str =
    "id, tenant_id, name, channel, destination, referral, text, flow, campaign, created_at";
const ATTRIBUTION_COLUMNS: &str =
    "tenant_id, inbound_id, conversation_id, entry_point_id, campaign, contact_id, at";

fn campaign_from_db(raw: Option<String>) -> StoreResult<Option<CampaignLabel>> {
    raw.map(|c| {
        CampaignLabel::parse(&c).map_err(|e| crate::StoreError::Corrupt(format!("campaign: {e}")))
    })
    .transpose()
}

macro_rules! impl_entry_point_store {
    ($modname:ident, $store:ty, $db:ty) => {
        mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros};
            use sqlx::Row;

            type Row_ = <$db as sqlx::Database>::Row;

            fn entry_from_row(row: &Row_) -> StoreResult<EntryPoint> {
                let corrupt = |what: &str, e: String| StoreError::Corrupt(format!("entry point {what}: {e}"));
                let channel: String = row.try_get("channel")?;
                let channel = EntryChannel::parse(&channel)
                    .ok_or_else(|| corrupt("channel", channel.clone()))?;
                let destination: String = row.try_get("destination")?;
                let destination = match channel {
                    EntryChannel::Webchat => Destination::Page(destination),
                    EntryChannel::Whatsapp | EntryChannel::Sms => Destination::Number(destination),
                };
                let referral: String = row.try_get("referral")?;
                Ok(EntryPoint {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    name: row.try_get("name")?,
                    channel,
                    destination,
                    referral: ReferralCode::parse(&referral)
                        .map_err(|e| corrupt("referral", e.to_string()))?,
                    text: row.try_get("text")?,
                    flow: row.try_get("flow")?,
                    campaign: campaign_from_db(row.try_get("campaign")?)?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                })
            }

            fn attribution_from_row(row: &Row_) -> StoreResult<Attribution> {
                Ok(Attribution {
                    tenant_id: row.try_get("tenant_id")?,
                    inbound_id: row.try_get("inbound_id")?,
                    conversation_id: row.try_get("conversation_id")?,
                    entry_point_id: row.try_get("entry_point_id")?,
                    campaign: campaign_from_db(row.try_get("campaign")?)?,
                    contact_id: row.try_get("contact_id")?,
                    at: from_micros(row.try_get("at")?)?,
                })
            }

            #[async_trait]
            impl EntryPointStore for $store {
                async fn create_entry_point(&self, entry: &EntryPoint) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO entry_points (id, tenant_id, name, channel, destination, referral, text, flow, campaign, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(entry.id.as_str())
                    .bind(entry.tenant_id.as_str())
                    .bind(entry.name.as_str())
                    .bind(entry.channel.as_str())
                    .bind(entry.destination.as_str())
                    .bind(entry.referral.as_str())
                    .bind(entry.text.as_deref())
                    .bind(entry.flow.as_deref())
                    .bind(entry.campaign.as_ref().map(CampaignLabel::as_str))
                    .bind(micros(entry.created_at))
                    .execute(self.writer())
                    .await
                    .map_err(|e| match e {
                        sqlx::Error::Database(db) if $crate::noted(db.is_unique_violation()) => {
                            StoreError::Conflict(format!(
                                "an entry point with referral code `{}` exists already",
                                entry.referral
                            ))
                        }
                        other => other.into(),
                    })?;
                    Ok(())
                }

                async fn entry_point(&self, tenant: &str, id: &str) -> StoreResult<Option<EntryPoint>> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM entry_points WHERE tenant_id = $1 AND id = $2"
                    )))
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?;
                    row.as_ref().map(entry_from_row).transpose()
                }

                async fn entry_points(&self, tenant: &str) -> StoreResult<Vec<EntryPoint>> {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM entry_points WHERE tenant_id = $1 ORDER BY created_at, id"
                    )))
                    .bind(tenant)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter().map(entry_from_row).collect()
                }

                async fn entry_point_by_referral(
                    &self,
                    tenant: &str,
                    referral: &ReferralCode,
                ) -> StoreResult<Option<EntryPoint>> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM entry_points WHERE tenant_id = $1 AND referral = $2"
                    )))
                    .bind(tenant)
                    .bind(referral.as_str())
                    .fetch_optional(self.reader())
                    .await?;
                    row.as_ref().map(entry_from_row).transpose()
                }

                async fn delete_entry_point(&self, tenant: &str, id: &str) -> StoreResult<bool> {
                    let done = sqlx::query("DELETE FROM entry_points WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant)
                        .bind(id)
                        .execute(self.writer())
                        .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn attribute_conversation(&self, a: &Attribution) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO conversation_referrals (tenant_id, inbound_id, conversation_id, entry_point_id, campaign, contact_id, at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, inbound_id) DO NOTHING",
                    )
                    .bind(a.tenant_id.as_str())
                    .bind(a.inbound_id.as_str())
                    .bind(a.conversation_id.as_str())
                    .bind(a.entry_point_id.as_str())
                    .bind(a.campaign.as_ref().map(CampaignLabel::as_str))
                    .bind(a.contact_id.as_str())
                    .bind(micros(a.at))
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }

                async fn attributions(
                    &self,
                    tenant: &str,
                    entry_point_id: &str,
                ) -> StoreResult<Vec<Attribution>> {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {ATTRIBUTION_COLUMNS} FROM conversation_referrals \
                         WHERE tenant_id = $1 AND entry_point_id = $2 ORDER BY at, inbound_id"
                    )))
                    .bind(tenant)
                    .bind(entry_point_id)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter().map(attribution_from_row).collect()
                }

                async fn conversation_attribution(
                    &self,
                    tenant: &str,
                    conversation_id: &str,
                ) -> StoreResult<Option<Attribution>> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {ATTRIBUTION_COLUMNS} FROM conversation_referrals \
                         WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY at DESC, inbound_id DESC LIMIT 1"
                    )))
                    .bind(tenant)
                    .bind(conversation_id)
                    .fetch_optional(self.reader())
                    .await?;
                    row.as_ref().map(attribution_from_row).transpose()
                }
            }
        }
    };
}

impl_entry_point_store!(sqlite_entry_points, crate::SqliteStore, sqlx::Sqlite);
impl_entry_point_store!(postgres_entry_points, crate::PostgresStore, sqlx::Postgres);
