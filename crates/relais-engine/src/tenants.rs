//! Tenants come with their first admin key; the installation's first start creates
//! tenant `default` with an operator key.

use jiff::Timestamp;
use relais_core::tenant::{
    DEFAULT_TENANT, GeneratedKey, Scope, Scopes, generate_api_key, validate_tenant_name,
};
use relais_store::{NewApiKey, Store, StoreError, Tenant};

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("{0}")]
    InvalidName(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a tenant and its first admin key; the secret is returned once and not stored.
pub async fn create_tenant(
    store: &dyn Store,
    name: &str,
    now: Timestamp,
) -> Result<(Tenant, GeneratedKey), TenantError> {
    validate_tenant_name(name).map_err(TenantError::InvalidName)?;
    let tenant = store.create_tenant(name, now).await?;
    let key = generate_api_key();
    issue_key(
        store,
        &tenant.id,
        &key,
        Scopes::new([Scope::Admin]),
        "first admin key",
        now,
    )
    .await?;
    Ok((tenant, key))
}

pub async fn issue_key(
    store: &dyn Store,
    tenant_id: &str,
    key: &GeneratedKey,
    scopes: Scopes,
    label: &str,
    now: Timestamp,
) -> Result<relais_store::ApiKeyRecord, StoreError> {
    store
        .insert_api_key(
            &NewApiKey {
                tenant_id: tenant_id.to_owned(),
                key_hash: key.hash.clone(),
                prefix: key.prefix.clone(),
                scopes,
                label: Some(label.to_owned()),
            },
            now,
        )
        .await
}

/// What the first start did.
pub enum Bootstrap {
    /// Tenant `default` was created with this operator + admin key (show it once).
    Created(GeneratedKey),
    /// The preset key (`RELAIS_ADMIN_KEY`) was registered.
    PresetRegistered,
    /// Nothing to do.
    AlreadyDone,
}

/// Makes sure tenant `default` exists with an operator key. Safe when several nodes start
/// at once on one PostgreSQL: the loser of the race sees the tenant and does nothing.
pub async fn bootstrap(
    store: &dyn Store,
    preset: Option<&str>,
    now: Timestamp,
) -> Result<Bootstrap, StoreError> {
    let scopes = || Scopes::new([Scope::Operator, Scope::Admin]);
    if let Some(tenant) = store.tenant_by_name(DEFAULT_TENANT).await? {
        if let Some(secret) = preset {
            let key = GeneratedKey::from_secret(secret.to_owned());
            if store.api_key_by_hash(&key.hash).await?.is_none() {
                issue_key(store, &tenant.id, &key, scopes(), "RELAIS_ADMIN_KEY", now).await?;
                return Ok(Bootstrap::PresetRegistered);
            }
        }
        return Ok(Bootstrap::AlreadyDone);
    }
    let tenant = match store.create_tenant(DEFAULT_TENANT, now).await {
        Ok(t) => t,
        Err(StoreError::Conflict(_)) => return Ok(Bootstrap::AlreadyDone),
        Err(e) => return Err(e),
    };
    let key = match preset {
        Some(secret) => GeneratedKey::from_secret(secret.to_owned()),
        None => generate_api_key(),
    };
    issue_key(
        store,
        &tenant.id,
        &key,
        scopes(),
        "operator key created at first start",
        now,
    )
    .await?;
    Ok(if preset.is_some() {
        Bootstrap::PresetRegistered
    } else {
        Bootstrap::Created(key)
    })
}
