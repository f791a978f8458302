//! Effective configuration: flags over `RELAIS_*` environment variables over the TOML file
//! (`--config FILE` or `RELAIS_CONFIG`) over documented defaults.

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./relais-data";
/// Days finished webhook deliveries stay in the log unless configured.
pub const DEFAULT_WEBHOOK_LOG_DAYS: u32 = 30;
/// A century: beyond it, say 0 (forever).
const MAX_WEBHOOK_LOG_DAYS: u32 = 36_500;

/// Options shared by every command that touches the store.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// Data directory for the embedded SQLite database and the admin key file.
    #[arg(long, env = "RELAIS_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` to use PostgreSQL instead of the embedded SQLite.
    #[arg(
        long,
        env = "RELAIS_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// TOML configuration file.
    #[arg(long = "config", env = "RELAIS_CONFIG", global = true)]
    pub config_file: Option<PathBuf>,
    /// Country assumed for national phone numbers (ISO code, e.g. FR).
    #[arg(long, env = "RELAIS_DEFAULT_COUNTRY", global = true)]
    pub default_country: Option<String>,
    /// `normal` (a commit survives a crash of Relais) or `fsync` (every commit is on disk
    /// before it is answered, so it also survives a power cut).
    #[arg(long, env = "RELAIS_DURABILITY", global = true)]
    pub durability: Option<String>,
}

/// Options of `relais serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address of the HTTP API.
    #[arg(long, env = "RELAIS_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Also accept SMPP binds from applications on this address.
    #[arg(long, env = "RELAIS_SMPP_LISTEN")]
    pub smpp_listen: Option<SocketAddr>,
    /// Also take mail over SMTP on this address (e.g. 127.0.0.1:2525): replies and
    /// bounces for the `from` address of an e-mail channel, as its relay hook takes them.
    #[arg(long, env = "RELAIS_SMTP_LISTEN")]
    pub smtp_listen: Option<SocketAddr>,
}

/// The file's shape; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    smpp_listen: Option<SocketAddr>,
    smtp_listen: Option<SocketAddr>,
    default_country: Option<String>,
    admin_key: Option<String>,
    master_key: Option<String>,
    log: Option<String>,
    json_body_limit: Option<usize>,
    import_body_limit: Option<usize>,
    webhook_allow_private: Option<bool>,
    webhook_log_days: Option<u32>,
    durability: Option<String>,
    public_url: Option<String>,
    dns_resolver: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where the data lives; `sqlite://<data_dir>/relais.db` unless PostgreSQL is named.
    pub database_url: String,
    pub smpp_listen: Option<SocketAddr>,
    pub smtp_listen: Option<SocketAddr>,
    pub default_country: Option<String>,
    /// Preset admin key (`RELAIS_ADMIN_KEY`); never printed.
    #[serde(serialize_with = "redact_secret")]
    pub admin_key: Option<String>,
    /// The key sealing secrets at rest (`RELAIS_MASTER_KEY`, base64 of 32 bytes); when
    /// unset, `<data-dir>/master-key`. Never printed.
    #[serde(serialize_with = "redact_secret")]
    pub master_key: Option<String>,
    pub log: String,
    pub json_body_limit: usize,
    pub import_body_limit: usize,
    /// Tenants' webhooks may reach loopback, private and link-local addresses.
    pub webhook_allow_private: bool,
    /// Days finished webhook deliveries stay in the delivery log; 0 keeps them forever.
    pub webhook_log_days: u32,
    /// What a commit survives: `normal` (a crash of Relais) or `fsync` (a power cut too).
    #[serde(serialize_with = "durability_name")]
    pub durability: relais_store::Durability,
    /// Where this server is reached from the Internet (`RELAIS_PUBLIC_URL`,
    /// `https://relais.example.com`): the base of tracked short links and click-to-chat
    /// pages. Unset, links in messages are left as they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// The DNS resolver senders' domains are verified through (`RELAIS_DNS_RESOLVER`,
    /// `1.1.1.1` or `10.0.0.2:53`); unset, the first `nameserver` of `/etc/resolv.conf`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_resolver: Option<String>,
}

fn durability_name<S: serde::Serializer>(
    v: &relais_store::Durability,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}

fn redact_secret<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("***"),
        None => s.serialize_str(""),
    }
}

impl Config {
    pub fn load(store: &StoreArgs, serve: &ServeArgs) -> anyhow::Result<Config> {
        let file = match &store.config_file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let data_dir = store
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = store
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("relais.db").display()));
        let default_country = store.default_country.clone().or(file.default_country);
        if let Some(c) = &default_country {
            relais_core::phone::parse_country(c)?;
        }
        let durability = match store.durability.clone().or(file.durability) {
            Some(name) => relais_store::Durability::parse(&name)
                .map_err(|e| anyhow::anyhow!("RELAIS_DURABILITY / durability: {e}"))?,
            None => relais_store::Durability::Normal,
        };
        let config = Config {
            listen: match serve.listen.or(file.listen) {
                Some(a) => a,
                None => DEFAULT_LISTEN.parse().context("default listen address")?,
            },
            data_dir,
            database_url,
            smpp_listen: serve.smpp_listen.or(file.smpp_listen),
            smtp_listen: serve.smtp_listen.or(file.smtp_listen),
            default_country,
            admin_key: env("RELAIS_ADMIN_KEY").or(file.admin_key),
            master_key: env("RELAIS_MASTER_KEY").or(file.master_key),
            log: env("RELAIS_LOG")
                .or(file.log)
                .unwrap_or_else(|| "info".into()),
            json_body_limit: file.json_body_limit.unwrap_or(1024 * 1024),
            import_body_limit: file.import_body_limit.unwrap_or(2 * 1024 * 1024 * 1024),
            webhook_allow_private: match env("RELAIS_WEBHOOK_ALLOW_PRIVATE") {
                Some(v) => parse_switch("RELAIS_WEBHOOK_ALLOW_PRIVATE", &v)?,
                None => file.webhook_allow_private.unwrap_or(false),
            },
            webhook_log_days: match env("RELAIS_WEBHOOK_LOG_DAYS") {
                Some(v) => v.trim().parse::<u32>().map_err(|_| {
                    anyhow::anyhow!(
                        "RELAIS_WEBHOOK_LOG_DAYS must be a whole number of days (0 keeps the log forever), not `{v}`"
                    )
                })?,
                None => file.webhook_log_days.unwrap_or(DEFAULT_WEBHOOK_LOG_DAYS),
            },
            durability,
            public_url: env("RELAIS_PUBLIC_URL").or(file.public_url),
            dns_resolver: env("RELAIS_DNS_RESOLVER").or(file.dns_resolver),
        };
        if let Some(resolver) = &config.dns_resolver
            && relais_engine::dns::Resolver::parse(resolver).is_none()
        {
            bail!(
                "RELAIS_DNS_RESOLVER / dns_resolver must be an IP address with an optional port (`1.1.1.1`, `10.0.0.2:53`), not `{resolver}`"
            );
        }
        if let Some(url) = &config.public_url {
            relais_core::tracked_link::PublicBase::parse(url)
                .map_err(|e| anyhow::anyhow!("RELAIS_PUBLIC_URL / public_url: {e}"))?;
        }
        if config.webhook_log_days > MAX_WEBHOOK_LOG_DAYS {
            bail!(
                "webhook_log_days must be at most {MAX_WEBHOOK_LOG_DAYS} (0 keeps the log forever)"
            );
        }
        if config.json_body_limit < 1024 {
            bail!("json_body_limit must be at least 1024 bytes");
        }
        Ok(config)
    }

    /// How long finished webhook deliveries stay in the log; `None`: forever.
    pub fn webhook_log_retention(&self) -> Option<jiff::SignedDuration> {
        (self.webhook_log_days > 0)
            .then(|| jiff::SignedDuration::from_hours(i64::from(self.webhook_log_days) * 24))
    }

    /// Opens the store this configuration names.
    pub async fn open_store(
        &self,
    ) -> Result<std::sync::Arc<dyn relais_store::Store>, relais_store::StoreError> {
        relais_store::open_with(
            &self.database_url,
            relais_store::StoreOptions {
                durability: self.durability,
            },
        )
        .await
    }

    /// The public base URL, checked by [`Config::load`].
    pub fn public_base(&self) -> Option<relais_core::tracked_link::PublicBase> {
        self.public_url
            .as_deref()
            .and_then(|url| relais_core::tracked_link::PublicBase::parse(url).ok())
    }

    /// The DNS resolver, checked by [`Config::load`]; the system's when unset.
    pub fn dns_resolver(&self) -> relais_engine::dns::Resolver {
        self.dns_resolver
            .as_deref()
            .and_then(relais_engine::dns::Resolver::parse)
            .unwrap_or_else(relais_engine::dns::Resolver::system)
    }

    pub fn country(&self) -> Option<phonenumber::country::Id> {
        self.default_country
            .as_deref()
            .and_then(|c| relais_core::phone::parse_country(c).ok())
    }

    /// The configuration as TOML, secrets redacted.
    pub fn render(&self) -> anyhow::Result<String> {
        let mut shown = self.clone();
        shown.database_url = relais_store::redact_url(&self.database_url);
        let mut text = toml::to_string_pretty(&shown)?;
        if self.admin_key.is_none() {
            text = text.replace("admin_key = \"\"\n", "");
        }
        if self.master_key.is_none() {
            text = text.replace("master_key = \"\"\n", "");
        }
        Ok(text)
    }
}

/// `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`, in any case.
fn parse_switch(name: &str, value: &str) -> anyhow::Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => bail!("{name} must be 1 or 0 (true or false), not `{value}`"),
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_read_as_people_write_them() {
        for on in ["1", "true", "YES", " on "] {
            assert!(parse_switch("X", on).unwrap(), "{on}");
        }
        for off in ["0", "false", "No", "off"] {
            assert!(!parse_switch("X", off).unwrap(), "{off}");
        }
        let e = parse_switch("RELAIS_WEBHOOK_ALLOW_PRIVATE", "maybe").unwrap_err();
        assert!(
            e.to_string().contains("RELAIS_WEBHOOK_ALLOW_PRIVATE"),
            "{e}"
        );
    }

    #[test]
    fn durability_is_normal_unless_set_and_a_typo_is_an_error() {
        let args = StoreArgs::default();
        let config = Config::load(&args, &ServeArgs::default()).unwrap();
        assert_eq!(config.durability, relais_store::Durability::Normal);
        let fsync = StoreArgs {
            durability: Some("fsync".into()),
            ..StoreArgs::default()
        };
        let config = Config::load(&fsync, &ServeArgs::default()).unwrap();
        assert_eq!(config.durability, relais_store::Durability::Fsync);
        assert!(config.render().unwrap().contains("durability = \"fsync\""));
        let typo = StoreArgs {
            durability: Some("always".into()),
            ..StoreArgs::default()
        };
        let e = format!(
            "{:#}",
            Config::load(&typo, &ServeArgs::default()).unwrap_err()
        );
        assert!(e.contains("normal") && e.contains("fsync"), "{e}");
    }

    #[test]
    fn the_webhook_log_keeps_30_days_unless_the_file_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let load = |text: &str| {
            let path = dir.path().join("relais.toml");
            std::fs::write(&path, text).unwrap();
            let args = StoreArgs {
                config_file: Some(path),
                ..StoreArgs::default()
            };
            Config::load(&args, &ServeArgs::default())
        };
        let days = |d: i64| Some(jiff::SignedDuration::from_hours(d * 24));
        assert_eq!(load("").unwrap().webhook_log_retention(), days(30));
        assert_eq!(
            load("webhook_log_days = 7")
                .unwrap()
                .webhook_log_retention(),
            days(7)
        );
        assert_eq!(
            load("webhook_log_days = 0")
                .unwrap()
                .webhook_log_retention(),
            None,
            "0 keeps the log forever"
        );
        let e = format!("{:#}", load("webhook_log_days = 100000").unwrap_err());
        assert!(e.contains("webhook_log_days"), "{e}");
        let e = format!("{:#}", load("webhook_log_days = -1").unwrap_err());
        assert!(e.contains("webhook_log_days"), "{e}");
    }

    #[test]
    fn the_dns_resolver_is_the_files_or_the_systems_and_a_bad_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let load = |text: &str| {
            let path = dir.path().join("relais.toml");
            std::fs::write(&path, text).unwrap();
            let args = StoreArgs {
                config_file: Some(path),
                ..StoreArgs::default()
            };
            Config::load(&args, &ServeArgs::default())
        };
        let resolver = load("dns_resolver = \"10.0.0.2\"").unwrap().dns_resolver();
        assert_eq!(resolver.addr, "10.0.0.2:53".parse().unwrap());
        assert_eq!(
            load("").unwrap().dns_resolver(),
            relais_engine::dns::Resolver::system()
        );
        let e = format!("{:#}", load("dns_resolver = \"dns.example\"").unwrap_err());
        assert!(e.contains("RELAIS_DNS_RESOLVER"), "{e}");
    }

    #[test]
    fn webhooks_reach_private_addresses_only_when_the_file_says_so() {
        let file: FileConfig = toml::from_str("webhook_allow_private = true").unwrap();
        assert_eq!(file.webhook_allow_private, Some(true));
        assert_eq!(
            FileConfig::default().webhook_allow_private,
            None,
            "off unless set"
        );
    }
}
