//! `relais tenants …`: operator commands, straight on the store.

use crate::config::Config;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant and print its first admin API key (shown once).
    Create { name: String },
    /// List tenants.
    List,
}

pub async fn run(cmd: TenantsCommand, config: Config) -> anyhow::Result<()> {
    let store = config.open_store().await?;
    let now = jiff::Timestamp::now();
    crate::bootstrap::announce(&*store, &config, now, crate::bootstrap::Announce::Stderr).await?;
    match cmd {
        TenantsCommand::Create { name } => {
            let (tenant, key) = relais_engine::tenants::create_tenant(&*store, &name, now).await?;
            println!("created tenant `{}` ({})", tenant.name, tenant.id);
            println!("admin API key (shown once): {}", key.secret);
        }
        TenantsCommand::List => {
            for t in store.list_tenants().await? {
                println!("{}\t{}\t{}", t.name, t.id, t.created_at);
            }
        }
    }
    Ok(())
}
