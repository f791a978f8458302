//! `relais tenants …`: operator commands, straight on the store.

use crate::config::Config;
use anyhow::Context;
use clap::Subcommand;
use relais_core::audit::AuditAction;

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant and print its first admin API key (shown once).
    Create { name: String },
    /// List tenants.
    List,
    /// Print a tenant's Twilio account SID and auth token (docs/twilio.md), issuing them
    /// the first time.
    Twilio {
        name: String,
        /// Replace the auth token (the old one stops working within 10 seconds).
        #[arg(long)]
        new_token: bool,
    },
}

pub async fn run(cmd: TenantsCommand, config: Config) -> anyhow::Result<()> {
    let store = config.open_store().await?;
    let now = jiff::Timestamp::now();
    crate::bootstrap::announce(&*store, &config, now, crate::bootstrap::Announce::Stderr).await?;
    match cmd {
        TenantsCommand::Create { name } => {
            let (tenant, key) = relais_engine::tenants::create_tenant(&*store, &name, now).await?;
            record(&*store, &tenant.id, AuditAction::TenantCreate, now).await?;
            record(&*store, &tenant.id, AuditAction::KeyCreate, now).await?;
            println!("created tenant `{}` ({})", tenant.name, tenant.id);
            println!("admin API key (shown once): {}", key.secret);
        }
        TenantsCommand::List => {
            for t in store.list_tenants().await? {
                println!("{}\t{}\t{}", t.name, t.id, t.created_at);
            }
        }
        TenantsCommand::Twilio { name, new_token } => {
            use relais_engine::twilio::accounts::{issue, show};
            // The auth token is kept sealed with the master key.
            crate::secrets::load(&config)?;
            let tenant = store
                .tenant_by_name(&name)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no tenant named `{name}`"))?;
            let credentials = match show(&*store, &tenant.id).await? {
                Some(shown) if !new_token => shown.credentials,
                _ => {
                    let issued = issue(&*store, &tenant.id, now).await?;
                    record(&*store, &tenant.id, AuditAction::CredentialsIssue, now).await?;
                    issued
                }
            };
            println!("account SID: {}", credentials.account_sid);
            println!("auth token:  {}", credentials.auth_token);
        }
    }
    Ok(())
}

/// Records an act of this command in the tenant's audit log (docs/audit.md).
async fn record(
    store: &dyn relais_store::Store,
    tenant_id: &str,
    action: AuditAction,
    now: jiff::Timestamp,
) -> anyhow::Result<()> {
    relais_engine::audit::record_cli(store, tenant_id, action, None, now)
        .await
        .with_context(|| format!("the audit log could not record `{action}`"))
}
