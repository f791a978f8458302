//! First start: the `default` tenant and its operator key, shown once and kept in
//! `<data-dir>/admin-api-key`. Every command that opens the store goes through here, so the
//! key is never created without being shown.

use crate::config::Config;
use anyhow::Context;
use jiff::Timestamp;
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_store::Store;
use std::path::Path;

/// Where the one-time key announcement goes: `serve` prints it on stdout; commands whose
/// stdout is data (`contacts import --json`) print it on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    Stdout,
    Stderr,
}

pub async fn announce(
    store: &dyn Store,
    config: &Config,
    now: Timestamp,
    to: Announce,
) -> anyhow::Result<()> {
    match bootstrap(store, config.admin_key.as_deref(), now).await? {
        Bootstrap::Created(key) => {
            let path = write_admin_key(&config.data_dir, &key.secret)?;
            let text = format!(
                "Relais created tenant `default` and its operator API key. It is shown once:\n\n    {}\n\nIt is also in {} (mode 0600).",
                key.secret,
                path.display()
            );
            match to {
                Announce::Stdout => println!("{text}"),
                Announce::Stderr => eprintln!("{text}"),
            }
        }
        Bootstrap::PresetRegistered => {
            write_admin_key(
                &config.data_dir,
                config.admin_key.as_deref().unwrap_or_default(),
            )?;
            tracing::info!("registered the admin key from RELAIS_ADMIN_KEY");
        }
        Bootstrap::AlreadyDone => {}
    }
    Ok(())
}

fn write_admin_key(dir: &Path, secret: &str) -> anyhow::Result<std::path::PathBuf> {
    use std::io::Write;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("admin-api-key");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(format!("{secret}\n").as_bytes())?;
    Ok(path)
}
