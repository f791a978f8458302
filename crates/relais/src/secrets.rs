//! The master key that seals channel and webhook secrets at rest (relais-engine's
//! `secrets`): `RELAIS_MASTER_KEY` (base64 of 32 bytes), or else `<data-dir>/master-key`,
//! created (0600) at first start. Nodes sharing one PostgreSQL must share the key: set
//! `RELAIS_MASTER_KEY` on each.

use crate::config::Config;
use anyhow::Context;
use relais_engine::secrets::{SealError, SecretBox, install, seal_stored};
use relais_store::Store;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

pub const KEY_FILE: &str = "master-key";

/// The master key and where it came from, for messages.
pub struct MasterKey {
    secrets: SecretBox,
    source: String,
}

/// Reads the master key, creating the key file when there is none; the process uses it from
/// now on.
pub fn load(config: &Config) -> anyhow::Result<MasterKey> {
    let key = match &config.master_key {
        Some(text) => MasterKey {
            secrets: SecretBox::from_base64(text).context("RELAIS_MASTER_KEY")?,
            source: "RELAIS_MASTER_KEY".into(),
        },
        None => from_file(config)?,
    };
    install(key.secrets.clone()).context("cannot use the master key")?;
    Ok(key)
}

fn from_file(config: &Config) -> anyhow::Result<MasterKey> {
    let path = config.data_dir.join(KEY_FILE);
    let source = path.display().to_string();
    let (generated, text) = SecretBox::generate();
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    match created {
        Ok(mut file) => {
            file.write_all(format!("{text}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write the master key to {source}"))?;
            tracing::warn!(path = %source, "created the master key that seals channel and webhook secrets: back it up with the database, which is unreadable without it");
            Ok(MasterKey {
                secrets: generated,
                source,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the master key {source}"))?;
            let secrets = SecretBox::from_base64(&text).with_context(|| source.clone())?;
            Ok(MasterKey { secrets, source })
        }
        Err(e) => Err(e).with_context(|| format!("cannot create the master key {source}")),
    }
}

/// Checks that the stored secrets open with the key and seals those stored in plain text
/// before encryption at rest.
pub async fn seal(store: &dyn Store, key: &MasterKey) -> anyhow::Result<()> {
    match seal_stored(store, &key.secrets).await {
        Ok(done) => {
            if done.channels + done.webhooks > 0 {
                tracing::info!(
                    channels = done.channels,
                    webhooks = done.webhooks,
                    "sealed the secrets stored in plain text before encryption at rest"
                );
            }
            Ok(())
        }
        Err(e @ SealError::WrongKey(_)) => Err(anyhow::anyhow!(
            "{e}. The master key in use comes from {}; start with the key they were sealed with",
            key.source
        )),
        Err(SealError::Store(e)) => Err(e).context("cannot read the stored secrets"),
    }
}
