//! The retention sweeper: for every tenant whose `retention` settings section names a
//! period, purges the content older than it (outbound bodies, inbound content, media)
//! and keeps what the sweep purged, as a count, where `GET /v1/privacy/retention` reads it.
//!
//! [`sweep_once`] is the step (tests call it); [`run_forever`] only schedules it. Each
//! purge is a single idempotent statement per kind, so several nodes sweeping at once
//! purge nothing twice (the second finds nothing left to count).

use jiff::Timestamp;
use relais_core::clock::Clock;
use relais_core::privacy::RetentionPolicy;
use relais_store::{PurgeCounts, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The store key (beside the settings sections) of a tenant's last sweep.
pub const LAST_SWEEP_KEY: &str = "retention_last_sweep";

/// How often `relais serve` sweeps: content is kept "N days", so an hour late is nothing.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// What one sweep of a tenant did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sweep {
    pub at: Timestamp,
    #[serde(flatten)]
    pub purged: PurgeCounts,
}

/// A tenant's policy and its last sweep, as the API shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetentionStatus {
    pub policy: RetentionPolicy,
    /// `null` until a sweep ran for the tenant under a policy that purges.
    pub last_sweep: Option<Sweep>,
}

/// Purges one tenant's expired content now and records the sweep.
pub async fn sweep_tenant(
    store: &dyn Store,
    tenant: &str,
    now: Timestamp,
) -> Result<Option<Sweep>, StoreError> {
    let policy = crate::settings::retention_of(store, tenant).await?;
    if !policy.purges() {
        return Ok(None);
    }
    let purged = store.purge_expired(tenant, &policy.cutoffs(now)).await?;
    let sweep = Sweep { at: now, purged };
    let value = serde_json::to_value(sweep)
        .map_err(|e| StoreError::Invalid(format!("retention sweep: {e}")))?;
    store
        .put_setting(tenant, LAST_SWEEP_KEY, &value, now)
        .await?;
    for (kind, n) in [
        ("outbound_bodies", purged.outbound_bodies),
        ("inbound_contents", purged.inbound_contents),
        ("attachments", purged.attachments),
    ] {
        metrics::counter!("relais_retention_purged_total", "kind" => kind).increment(n);
    }
    if purged.total() > 0 {
        tracing::info!(
            tenant,
            outbound_bodies = purged.outbound_bodies,
            inbound_contents = purged.inbound_contents,
            attachments = purged.attachments,
            "retention sweep purged expired content"
        );
    }
    Ok(Some(sweep))
}

/// Sweeps every tenant once; a tenant that fails is logged and the others go on.
pub async fn sweep_once(
    store: &dyn Store,
    now: Timestamp,
) -> Result<Vec<(String, Sweep)>, StoreError> {
    let mut done = Vec::new();
    for tenant in store.list_tenants().await? {
        match sweep_tenant(store, &tenant.id, now).await {
            Ok(Some(sweep)) => done.push((tenant.id, sweep)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(tenant = %tenant.name, error = %e, "cannot sweep the tenant's expired content")
            }
        }
    }
    Ok(done)
}

/// The tenant's policy and last sweep.
pub async fn status(store: &dyn Store, tenant: &str) -> Result<RetentionStatus, StoreError> {
    let policy = crate::settings::retention_of(store, tenant).await?;
    let last_sweep =
        match store.setting(tenant, LAST_SWEEP_KEY).await? {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(serde_json::from_value(v).map_err(|e| {
                StoreError::Corrupt(format!("the tenant's last retention sweep: {e}"))
            })?),
        };
    Ok(RetentionStatus { policy, last_sweep })
}

/// [`sweep_once`] at once, then every `every`, for as long as the task runs.
pub async fn run_forever(store: Arc<dyn Store>, clock: Arc<dyn Clock>, every: Duration) {
    loop {
        if let Err(e) = sweep_once(&*store, clock.now()).await {
            tracing::warn!(error = %e, "cannot run the retention sweep");
        }
        tokio::time::sleep(every).await;
    }
}
