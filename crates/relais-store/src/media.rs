//! Media customers sent: the images web chat visitors upload, with who uploaded them (the
//! visitor's address on the channel), kept whole in the store and read back by id within
//! the tenant.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;

/// An upload to store, as the upload route checked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMedia {
    pub id: String,
    pub tenant_id: String,
    /// The configured channel it was uploaded on.
    pub channel_id: String,
    /// Who uploaded it: the visitor's address on the channel.
    pub owner_address: String,
    pub mime_type: String,
    pub bytes: Vec<u8>,
    pub created_at: Timestamp,
}

/// A stored upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub id: String,
    pub tenant_id: String,
    pub channel_id: String,
    pub owner_address: String,
    pub mime_type: String,
    pub size: u64,
    pub bytes: Vec<u8>,
    pub created_at: Timestamp,
}

impl Media {
    /// The reference an inbound message carrying it keeps.
    pub fn reference(&self) -> relais_core::media::MediaRef {
        relais_core::media::MediaRef {
            id: self.id.clone(),
            mime_type: self.mime_type.clone(),
            size: self.size,
        }
    }
}

/// Someone's recent uploads, as [`MediaStore::uploads_since`] counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecentUploads {
    pub count: u64,
    /// The earliest of them: the first to leave the window.
    pub oldest: Option<Timestamp>,
}

/// Storage for media; a supertrait of [`crate::Store`].
#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Stores an upload; `Conflict` when its id is taken (a caller bug).
    async fn insert_media(&self, media: &NewMedia) -> StoreResult<Media>;
    /// The tenant's upload `id`, bytes included; `None` for another tenant's.
    async fn media(&self, tenant: &str, id: &str) -> StoreResult<Option<Media>>;
    /// The uploads `owner` made on the tenant's channel after `since` (a rate limit's
    /// window).
    async fn uploads_since(
        &self,
        tenant: &str,
        owner: &str,
        since: Timestamp,
    ) -> StoreResult<RecentUploads>;
}

macro_rules! impl_media_store {
    ($modname:ident, $store:ty, $db:ty) => {
        mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros};
            use sqlx::Row;

            type DbRow = <$db as sqlx::Database>::Row;

            fn media_from_row(row: &DbRow) -> StoreResult<Media> {
                let size: i64 = row.try_get("size")?;
                Ok(Media {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    channel_id: row.try_get("channel_id")?,
                    owner_address: row.try_get("owner_address")?,
                    mime_type: row.try_get("mime_type")?,
                    size: u64::try_from(size)
                        .map_err(|_| StoreError::Corrupt(format!("media size {size}")))?,
                    bytes: row.try_get("bytes")?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                })
            }

            #[async_trait]
            impl MediaStore for $store {
                async fn insert_media(&self, m: &NewMedia) -> StoreResult<Media> {
                    let size = i64::try_from(m.bytes.len())
                        .map_err(|_| StoreError::Invalid("the media is too large".into()))?;
                    sqlx::query(
                        "INSERT INTO media (id, tenant_id, channel_id, owner_address, mime_type, size, bytes, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&m.id)
                    .bind(&m.tenant_id)
                    .bind(&m.channel_id)
                    .bind(&m.owner_address)
                    .bind(&m.mime_type)
                    .bind(size)
                    .bind(m.bytes.as_slice())
                    .bind(micros(m.created_at))
                    .execute(self.writer())
                    .await
                    .map_err(|e| match &e {
                        sqlx::Error::Database(db) if crate::noted(db.is_unique_violation()) => {
                            StoreError::Conflict(format!("media {} already exists", m.id))
                        }
                        _ => e.into(),
                    })?;
                    Ok(Media {
                        id: m.id.clone(),
                        tenant_id: m.tenant_id.clone(),
                        channel_id: m.channel_id.clone(),
                        owner_address: m.owner_address.clone(),
                        mime_type: m.mime_type.clone(),
                        size: m.bytes.len() as u64,
                        bytes: m.bytes.clone(),
                        created_at: m.created_at,
                    })
                }

                async fn media(&self, tenant: &str, id: &str) -> StoreResult<Option<Media>> {
                    sqlx::query(
                        "SELECT id, tenant_id, channel_id, owner_address, mime_type, size, bytes, created_at \
                         FROM media WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(media_from_row)
                    .transpose()
                }

                async fn uploads_since(
                    &self,
                    tenant: &str,
                    owner: &str,
                    since: Timestamp,
                ) -> StoreResult<RecentUploads> {
                    let row = sqlx::query(
                        "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM media \
                         WHERE tenant_id = $1 AND owner_address = $2 AND created_at > $3",
                    )
                    .bind(tenant)
                    .bind(owner)
                    .bind(micros(since))
                    .fetch_one(self.reader())
                    .await?;
                    let n: i64 = row.try_get("n")?;
                    let oldest: Option<i64> = row.try_get("oldest")?;
                    Ok(RecentUploads {
                        count: u64::try_from(n).unwrap_or(0),
                        oldest: oldest.map(from_micros).transpose()?,
                    })
                }
            }
        }
    };
}

impl_media_store!(sqlite_media, crate::SqliteStore, sqlx::Sqlite);
impl_media_store!(postgres_media, crate::PostgresStore, sqlx::Postgres);
