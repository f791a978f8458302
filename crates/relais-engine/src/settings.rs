//! A tenant's operating settings as the engine reads and writes them (`/v1/settings`):
//! each section under its own store key, read through the store's configuration cache
//! (so a change is seen by this node at its next read, by the others within
//! `CONFIG_FRESH_FOR`), written only once the whole document was checked.
//!
//! A section the tenant never set reads as its default. A stored section that no longer
//! parses is `StoreError::Corrupt`: every write goes through the checks of
//! `relais_core::settings`, so only a hand-edited database gets there.

use jiff::Timestamp;
use relais_core::content_check::ContentChecks;
use relais_core::frequency_cap::FrequencyCap;
use relais_core::prices::PriceTable;
use relais_core::privacy::{RETENTION_KEY, RetentionPolicy};
use relais_core::quiet_hours::QuietHours;
use relais_core::sender_rates::SenderRates;
use relais_core::settings::{
    CONTENT_CHECKS_KEY, FREQUENCY_CAP_KEY, PRICES_KEY, QUIET_HOURS_KEY, SENDER_RATES_KEY,
    SENDERS_KEY, SenderRules, SettingsPatch, TenantSettings,
};
use relais_store::{Store, StoreError};
use serde::de::DeserializeOwned;

/// One section: its default when unset or set to nothing.
async fn section<T: DeserializeOwned + Default>(
    store: &dyn Store,
    tenant: &str,
    key: &str,
) -> Result<T, StoreError> {
    match store.setting(tenant, key).await? {
        None | Some(serde_json::Value::Null) => Ok(T::default()),
        Some(value) => serde_json::from_value(value).map_err(|e| {
            StoreError::Corrupt(format!("the tenant's setting `{key}` cannot be read: {e}"))
        }),
    }
}

pub async fn quiet_hours_of(store: &dyn Store, tenant: &str) -> Result<QuietHours, StoreError> {
    section(store, tenant, QUIET_HOURS_KEY).await
}

pub async fn sender_rates_of(store: &dyn Store, tenant: &str) -> Result<SenderRates, StoreError> {
    section(store, tenant, SENDER_RATES_KEY).await
}

pub async fn frequency_cap_of(
    store: &dyn Store,
    tenant: &str,
) -> Result<Option<FrequencyCap>, StoreError> {
    section(store, tenant, FREQUENCY_CAP_KEY).await
}

pub async fn prices_of(store: &dyn Store, tenant: &str) -> Result<PriceTable, StoreError> {
    section(store, tenant, PRICES_KEY).await
}

pub async fn retention_of(store: &dyn Store, tenant: &str) -> Result<RetentionPolicy, StoreError> {
    section(store, tenant, RETENTION_KEY).await
}

pub async fn content_checks_of(
    store: &dyn Store,
    tenant: &str,
) -> Result<ContentChecks, StoreError> {
    section(store, tenant, CONTENT_CHECKS_KEY).await
}

pub async fn sender_rules_of(store: &dyn Store, tenant: &str) -> Result<SenderRules, StoreError> {
    section(store, tenant, SENDERS_KEY).await
}

/// Every section, as `GET /v1/settings` shows it.
pub async fn settings_of(store: &dyn Store, tenant: &str) -> Result<TenantSettings, StoreError> {
    let (quiet_hours, sender_rates, frequency_cap, prices, retention, content_checks, senders) = tokio::try_join!(
        quiet_hours_of(store, tenant),
        sender_rates_of(store, tenant),
        frequency_cap_of(store, tenant),
        prices_of(store, tenant),
        retention_of(store, tenant),
        content_checks_of(store, tenant),
        sender_rules_of(store, tenant),
    )?;
    Ok(TenantSettings {
        quiet_hours,
        sender_rates,
        frequency_cap,
        prices,
        retention,
        content_checks,
        senders,
    })
}

fn encode(
    key: &'static str,
    value: impl serde::Serialize,
) -> Result<(&'static str, serde_json::Value), StoreError> {
    serde_json::to_value(value)
        .map(|value| (key, value))
        .map_err(|e| StoreError::Invalid(format!("setting `{key}`: {e}")))
}

/// Replaces every section at once (`PUT`); sections the document left out go back to
/// their defaults.
pub async fn replace(
    store: &dyn Store,
    tenant: &str,
    settings: &TenantSettings,
    now: Timestamp,
) -> Result<(), StoreError> {
    let sections = settings
        .sections()
        .map_err(|e| StoreError::Invalid(format!("settings: {e}")))?;
    store.put_settings(tenant, &sections, now).await
}

/// Replaces the sections `patch` names, at once (`PATCH`), and gives every section as
/// they now are. Only the named sections are written: a concurrent change to another
/// section is kept.
pub async fn patch(
    store: &dyn Store,
    tenant: &str,
    patch: SettingsPatch,
    now: Timestamp,
) -> Result<TenantSettings, StoreError> {
    let mut sections = Vec::new();
    if let Some(quiet_hours) = &patch.quiet_hours {
        sections.push(encode(QUIET_HOURS_KEY, quiet_hours)?);
    }
    if let Some(sender_rates) = &patch.sender_rates {
        sections.push(encode(SENDER_RATES_KEY, sender_rates)?);
    }
    if let Some(frequency_cap) = &patch.frequency_cap {
        sections.push(encode(FREQUENCY_CAP_KEY, frequency_cap)?);
    }
    if let Some(prices) = &patch.prices {
        sections.push(encode(PRICES_KEY, prices)?);
    }
    if let Some(retention) = &patch.retention {
        sections.push(encode(RETENTION_KEY, retention)?);
    }
    if let Some(content_checks) = &patch.content_checks {
        sections.push(encode(CONTENT_CHECKS_KEY, content_checks)?);
    }
    if let Some(senders) = &patch.senders {
        sections.push(encode(SENDERS_KEY, senders)?);
    }
    store.put_settings(tenant, &sections, now).await?;
    settings_of(store, tenant).await
}
