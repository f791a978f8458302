//! Several tenant settings written at once: an operator's `PUT /v1/settings` replaces
//! every section, and a failure halfway (a full disk, a lost connection) must not leave
//! quiet hours from the new document beside sender rates from the old. Each key is read
//! back with [`crate::Store::setting`], which sees a write through this store at once.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;

/// Storage for grouped setting writes; a supertrait of [`crate::Store`].
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// Writes every `(key, value)` of `settings` for `tenant` in one transaction: all of
    /// them or, on an error, none.
    async fn put_settings(
        &self,
        tenant: &str,
        settings: &[(&str, serde_json::Value)],
        now: Timestamp,
    ) -> StoreResult<()>;
}

macro_rules! impl_settings_store {
    ($modname:ident, $store:ty) => {
        mod $modname {
            use super::*;
            use crate::micros;

            #[async_trait]
            impl SettingsStore for $store {
                async fn put_settings(
                    &self,
                    tenant: &str,
                    settings: &[(&str, serde_json::Value)],
                    now: Timestamp,
                ) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    for (key, value) in settings {
                        sqlx::query(
                            "INSERT INTO tenant_settings (tenant_id, key, value, updated_at) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (tenant_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                        )
                        .bind(tenant)
                        .bind(*key)
                        .bind(value.to_string())
                        .bind(micros(now))
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    // Forgotten only once committed: a read in between gets the old
                    // values, which were still the ones in force.
                    for (key, _) in settings {
                        self.config().settings.forget(tenant, key);
                    }
                    Ok(())
                }
            }
        }
    };
}

impl_settings_store!(sqlite_settings, crate::SqliteStore);
impl_settings_store!(postgres_settings, crate::PostgresStore);
