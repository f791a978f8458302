//! Templates: the tenant's stored templates (`/v1/templates`, one row per name with its
//! language variants as JSON), and the provider templates a configured channel's account
//! holds (WhatsApp's message templates, with their category and approval status), as the
//! last synchronisation found them.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;
use relais_core::stored_template::{StoredTemplate, TemplateVariant};
use serde::Serialize;
use serde_json::Value;

/// A stored template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateRecord {
    pub name: String,
    pub variants: Vec<TemplateVariant>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl TemplateRecord {
    /// The template, as the accept path chooses its variant.
    pub fn template(&self) -> StoredTemplate {
        StoredTemplate {
            name: self.name.clone(),
            variants: self.variants.clone(),
        }
    }
}

/// A template of a provider account (one name in one language), as synchronised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderTemplate {
    /// The configured channel whose account holds it.
    pub channel_id: String,
    pub name: String,
    /// The provider's locale code (`fr`, `en_US`).
    pub language: String,
    /// `MARKETING`, `UTILITY`, `AUTHENTICATION`, as the provider wrote it.
    pub category: String,
    /// `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, `DISABLED`…, as the provider wrote it.
    pub status: String,
    /// Header, body, footer and buttons, as the provider wrote them.
    pub components: Value,
    pub synced_at: Timestamp,
}

impl ProviderTemplate {
    /// The provider approved it: it may be sent.
    pub fn is_approved(&self) -> bool {
        self.status == "APPROVED"
    }
}

/// Storage for templates; a supertrait of [`crate::Store`].
#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// Creates the tenant's template `template.name`; `Conflict` when the name is taken.
    async fn insert_template(
        &self,
        tenant: &str,
        template: &StoredTemplate,
        at: Timestamp,
    ) -> StoreResult<TemplateRecord>;
    /// Creates or replaces the template; `true` when it was created.
    async fn put_template(
        &self,
        tenant: &str,
        template: &StoredTemplate,
        at: Timestamp,
    ) -> StoreResult<(TemplateRecord, bool)>;
    async fn template(&self, tenant: &str, name: &str) -> StoreResult<Option<TemplateRecord>>;
    /// Those of `names` the tenant has, in no order (the accept path reads a group's at once).
    async fn templates_named(
        &self,
        tenant: &str,
        names: &[&str],
    ) -> StoreResult<Vec<TemplateRecord>>;
    /// By name.
    async fn list_templates(&self, tenant: &str) -> StoreResult<Vec<TemplateRecord>>;
    /// `false` when there was no such template.
    async fn delete_template(&self, tenant: &str, name: &str) -> StoreResult<bool>;

    /// Replaces the channel's provider templates by `templates` (all of the channel's),
    /// in one transaction: a template the provider deleted disappears.
    async fn replace_provider_templates(
        &self,
        tenant: &str,
        channel_id: &str,
        templates: &[ProviderTemplate],
    ) -> StoreResult<()>;
    /// The channel's provider templates, by name then language.
    async fn provider_templates(
        &self,
        tenant: &str,
        channel_id: &str,
    ) -> StoreResult<Vec<ProviderTemplate>>;
    /// The provider templates named `names` on any of the tenant's channels, in no order.
    async fn provider_templates_named(
        &self,
        tenant: &str,
        names: &[&str],
    ) -> StoreResult<Vec<ProviderTemplate>>;
}

macro_rules! impl_template_store {
    ($modname:ident, $store:ty, $db:ty) => {
        mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros};
            use sqlx::Row;

            type DbRow = <$db as sqlx::Database>::Row;

            const COLUMNS: &str = "name, variants, created_at, updated_at";
            const PROVIDER_COLUMNS: &str =
                "channel_id, name, language, category, status, components, synced_at";

            fn template_from_row(row: &DbRow) -> StoreResult<TemplateRecord> {
                let name: String = row.try_get("name")?;
                let variants: String = row.try_get("variants")?;
                let variants: Vec<TemplateVariant> = serde_json::from_str(&variants)
                    .map_err(|e| StoreError::Corrupt(format!("the variants of template `{name}`: {e}")))?;
                if variants.is_empty() {
                    return Err(StoreError::Corrupt(format!("template `{name}` has no variant")));
                }
                Ok(TemplateRecord {
                    name,
                    variants,
                    created_at: from_micros(row.try_get("created_at")?)?,
                    updated_at: from_micros(row.try_get("updated_at")?)?,
                })
            }

            fn provider_from_row(row: &DbRow) -> StoreResult<ProviderTemplate> {
                let components: String = row.try_get("components")?;
                Ok(ProviderTemplate {
                    channel_id: row.try_get("channel_id")?,
                    name: row.try_get("name")?,
                    language: row.try_get("language")?,
                    category: row.try_get("category")?,
                    status: row.try_get("status")?,
                    components: serde_json::from_str(&components).map_err(|e| {
                        StoreError::Corrupt(format!("provider template components: {e}"))
                    })?,
                    synced_at: from_micros(row.try_get("synced_at")?)?,
                })
            }

            fn variants_json(template: &StoredTemplate) -> StoreResult<String> {
                serde_json::to_string(&template.variants)
                    .map_err(|e| StoreError::Invalid(format!("template variants: {e}")))
            }

            #[async_trait]
            impl TemplateStore for $store {
                async fn insert_template(
                    &self,
                    tenant: &str,
                    template: &StoredTemplate,
                    at: Timestamp,
                ) -> StoreResult<TemplateRecord> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO templates (tenant_id, name, variants, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $4) RETURNING {COLUMNS}"
                    )))
                    .bind(tenant)
                    .bind(&template.name)
                    .bind(variants_json(template)?)
                    .bind(micros(at))
                    .fetch_one(self.writer())
                    .await
                    .map_err(|e| match e {
                        sqlx::Error::Database(db) if $crate::noted(db.is_unique_violation()) => {
                            StoreError::Conflict(format!(
                                "a template named `{}` exists already",
                                template.name
                            ))
                        }
                        other => other.into(),
                    })?;
                    template_from_row(&row)
                }

                async fn put_template(
                    &self,
                    tenant: &str,
                    template: &StoredTemplate,
                    at: Timestamp,
                ) -> StoreResult<(TemplateRecord, bool)> {
                    let mut tx = self.begin_write().await?;
                    let existed = sqlx::query("SELECT 1 FROM templates WHERE tenant_id = $1 AND name = $2")
                        .bind(tenant)
                        .bind(&template.name)
                        .fetch_optional(&mut *tx)
                        .await?
                        .is_some();
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO templates (tenant_id, name, variants, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $4) \
                         ON CONFLICT (tenant_id, name) DO UPDATE SET variants = excluded.variants, \
                           updated_at = excluded.updated_at \
                         RETURNING {COLUMNS}"
                    )))
                    .bind(tenant)
                    .bind(&template.name)
                    .bind(variants_json(template)?)
                    .bind(micros(at))
                    .fetch_one(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok((template_from_row(&row)?, !existed))
                }

                async fn template(
                    &self,
                    tenant: &str,
                    name: &str,
                ) -> StoreResult<Option<TemplateRecord>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM templates WHERE tenant_id = $1 AND name = $2"
                    )))
                    .bind(tenant)
                    .bind(name)
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(template_from_row)
                    .transpose()
                }

                async fn templates_named(
                    &self,
                    tenant: &str,
                    names: &[&str],
                ) -> StoreResult<Vec<TemplateRecord>> {
                    let mut found = Vec::new();
                    for chunk in names.chunks(crate::ROWS_PER_STATEMENT) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                            "SELECT {COLUMNS} FROM templates WHERE tenant_id = "
                        ));
                        q.push_bind(tenant).push(" AND name IN (");
                        let mut list = q.separated(", ");
                        for name in chunk {
                            list.push_bind(*name);
                        }
                        q.push(")");
                        for row in q.build().fetch_all(self.reader()).await? {
                            found.push(template_from_row(&row)?);
                        }
                    }
                    Ok(found)
                }

                async fn list_templates(&self, tenant: &str) -> StoreResult<Vec<TemplateRecord>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM templates WHERE tenant_id = $1 ORDER BY name"
                    )))
                    .bind(tenant)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(template_from_row)
                    .collect()
                }

                async fn delete_template(&self, tenant: &str, name: &str) -> StoreResult<bool> {
                    let done = sqlx::query("DELETE FROM templates WHERE tenant_id = $1 AND name = $2")
                        .bind(tenant)
                        .bind(name)
                        .execute(self.writer())
                        .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn replace_provider_templates(
                    &self,
                    tenant: &str,
                    channel_id: &str,
                    templates: &[ProviderTemplate],
                ) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query("DELETE FROM provider_templates WHERE tenant_id = $1 AND channel_id = $2")
                        .bind(tenant)
                        .bind(channel_id)
                        .execute(&mut *tx)
                        .await?;
                    // 8 parameters a row.
                    for chunk in templates.chunks(crate::ROWS_PER_STATEMENT) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                            "INSERT INTO provider_templates (tenant_id, {PROVIDER_COLUMNS}) "
                        ));
                        q.push_values(chunk, |mut row, t| {
                            row.push_bind(tenant)
                                .push_bind(channel_id)
                                .push_bind(&t.name)
                                .push_bind(&t.language)
                                .push_bind(&t.category)
                                .push_bind(&t.status)
                                .push_bind(t.components.to_string())
                                .push_bind(micros(t.synced_at));
                        });
                        // The provider lists one name and language once; a repeat keeps the last.
                        q.push(
                            " ON CONFLICT (tenant_id, channel_id, name, language) DO UPDATE SET \
                             category = excluded.category, status = excluded.status, \
                             components = excluded.components, synced_at = excluded.synced_at",
                        );
                        q.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn provider_templates(
                    &self,
                    tenant: &str,
                    channel_id: &str,
                ) -> StoreResult<Vec<ProviderTemplate>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {PROVIDER_COLUMNS} FROM provider_templates \
                         WHERE tenant_id = $1 AND channel_id = $2 ORDER BY name, language"
                    )))
                    .bind(tenant)
                    .bind(channel_id)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(provider_from_row)
                    .collect()
                }

                async fn provider_templates_named(
                    &self,
                    tenant: &str,
                    names: &[&str],
                ) -> StoreResult<Vec<ProviderTemplate>> {
                    let mut found = Vec::new();
                    for chunk in names.chunks(crate::ROWS_PER_STATEMENT) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                            "SELECT {PROVIDER_COLUMNS} FROM provider_templates WHERE tenant_id = "
                        ));
                        q.push_bind(tenant).push(" AND name IN (");
                        let mut list = q.separated(", ");
                        for name in chunk {
                            list.push_bind(*name);
                        }
                        q.push(")");
                        for row in q.build().fetch_all(self.reader()).await? {
                            found.push(provider_from_row(&row)?);
                        }
                    }
                    Ok(found)
                }
            }
        }
    };
}

impl_template_store!(sqlite_templates, crate::SqliteStore, sqlx::Sqlite);
impl_template_store!(postgres_templates, crate::PostgresStore, sqlx::Postgres);
