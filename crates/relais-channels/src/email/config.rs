//! An `email` channel's `config`, read and checked once where it enters.
//!
//! Every key is checked here and an unknown key is refused. Errors point at the key with
//! a JSON pointer (`/from`). The secrets (`password`, `inbound_secret`,
//! `dkim_private_key`) never show in `Debug` output.

use super::dkim::DkimKey;
use crate::config_keys::{self, checked_url, error, refuse_unknown_keys, secret, string};
use serde_json::Value;
use std::fmt;

pub use crate::configured::ConfigError;

/// Messages per second when `max_rate` is absent: what a small relay takes without
/// greylisting a sender.
pub const DEFAULT_MAX_RATE: f64 = 10.0;

const KEYS: [&str; 13] = [
    "host",
    "port",
    "tls",
    "username",
    "password",
    "from",
    "from_name",
    "public_url",
    "inbound_secret",
    "dkim_domain",
    "dkim_selector",
    "dkim_private_key",
    "max_rate",
];

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain text (a relay on the same host or network); port 25 by default.
    None,
    /// `STARTTLS`, required (the server must offer it); port 587 by default.
    StartTls,
    /// TLS from the first byte (SMTPS); port 465 by default.
    Tls,
}

impl TlsMode {
    fn default_port(self) -> u16 {
        match self {
            TlsMode::None => 25,
            TlsMode::StartTls => 587,
            TlsMode::Tls => 465,
        }
    }
}

/// A checked `email` channel configuration.
#[derive(Clone)]
pub struct EmailConfig {
    host: String,
    port: u16,
    tls: TlsMode,
    credentials: Option<(String, String)>,
    from: String,
    from_name: Option<String>,
    public_url: Option<String>,
    inbound_secret: Option<String>,
    dkim: Option<DkimKey>,
    max_rate: f64,
}

impl EmailConfig {
    /// Reads and checks a channel's `config` object.
    pub fn parse(value: &Value) -> Result<EmailConfig, ConfigError> {
        let object = value
            .as_object()
            .ok_or_else(|| error("", "the config must be a JSON object"))?;
        refuse_unknown_keys(object, &KEYS)?;
        let host = secret(object, "host")?.trim().to_owned();
        if host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == ':')
        {
            return Err(error(
                "/host",
                "`host` must be the SMTP server's name or IP address, such as smtp.example.com",
            ));
        }
        let tls = match string(object, "tls")? {
            None => TlsMode::StartTls,
            Some("none") => TlsMode::None,
            Some("starttls") => TlsMode::StartTls,
            Some("tls") => TlsMode::Tls,
            Some(_) => {
                return Err(error(
                    "/tls",
                    "`tls` must be `none`, `starttls` (the default) or `tls`",
                ));
            }
        };
        let port = match object.get("port") {
            None | Some(Value::Null) => tls.default_port(),
            Some(port) => port
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| error("/port", "`port` must be a whole number from 1 to 65535"))?,
        };
        let credentials = match (string(object, "username")?, string(object, "password")?) {
            (None, None) => None,
            (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => {
                Some((user.to_owned(), password.to_owned()))
            }
            (_, None) | (_, Some("")) => {
                return Err(error("/password", "`username` needs a `password`"));
            }
            (None, Some(_)) | (Some(_), Some(_)) => {
                return Err(error("/username", "`password` needs a `username`"));
            }
        };
        let from = secret(object, "from")?.trim().to_owned();
        if !is_address(&from) {
            return Err(error(
                "/from",
                "`from` must be an e-mail address, such as news@example.com",
            ));
        }
        let from_name = string(object, "from_name")?
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned);
        if from_name
            .as_deref()
            .is_some_and(|n| n.chars().any(char::is_control))
        {
            return Err(error("/from_name", "`from_name` must be one line of text"));
        }
        let public_url = string(object, "public_url")?
            .map(|url| checked_url("/public_url", url, "https://relais.example.com"))
            .transpose()?;
        let inbound_secret = match string(object, "inbound_secret")? {
            None => None,
            Some(_) => Some(secret(object, "inbound_secret")?),
        };
        let dkim = dkim_of(object)?;
        let max_rate = config_keys::max_rate(object, DEFAULT_MAX_RATE)?;
        Ok(EmailConfig {
            host,
            port,
            tls,
            credentials,
            from,
            from_name,
            public_url,
            inbound_secret,
            dkim,
            max_rate,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn tls(&self) -> TlsMode {
        self.tls
    }
    /// `username` and `password`, when the server wants a login.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }
    pub fn from(&self) -> &str {
        &self.from
    }
    pub fn from_name(&self) -> Option<&str> {
        self.from_name.as_deref()
    }
    /// The domain of `from`: the right-hand side of every `Message-ID`.
    pub fn from_domain(&self) -> &str {
        self.from.rsplit('@').next().unwrap_or(&self.from)
    }
    pub fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }
    /// The secret a relay posting inbound mail must show; no inbound mail without it.
    pub fn inbound_secret(&self) -> Option<&str> {
        self.inbound_secret.as_deref()
    }
    pub fn dkim(&self) -> Option<&DkimKey> {
        self.dkim.as_ref()
    }
    pub fn max_rate(&self) -> f64 {
        self.max_rate
    }
}

/// `dkim_domain`, `dkim_selector` and `dkim_private_key` come together or not at all.
fn dkim_of(object: &serde_json::Map<String, Value>) -> Result<Option<DkimKey>, ConfigError> {
    let domain = string(object, "dkim_domain")?;
    let selector = string(object, "dkim_selector")?;
    let key = string(object, "dkim_private_key")?;
    match (domain, selector, key) {
        (None, None, None) => Ok(None),
        (Some(domain), Some(selector), Some(key)) => {
            let label = |s: &str| {
                !s.is_empty()
                    && s.split('.').all(|part| {
                        !part.is_empty()
                            && part
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    })
            };
            if !label(domain) {
                return Err(error(
                    "/dkim_domain",
                    "`dkim_domain` must be a domain name, such as example.com",
                ));
            }
            if !label(selector) {
                return Err(error(
                    "/dkim_selector",
                    "`dkim_selector` must be a DNS label, such as relais2026",
                ));
            }
            DkimKey::new(domain, selector, key)
                .map(Some)
                .map_err(|e| error("/dkim_private_key", e.to_string()))
        }
        _ => {
            let missing = [
                ("dkim_domain", domain.is_none()),
                ("dkim_selector", selector.is_none()),
                ("dkim_private_key", key.is_none()),
            ]
            .into_iter()
            .find(|(_, missing)| *missing)
            .map_or("dkim_domain", |(key, _)| key);
            Err(error(
                &config_keys::pointer(missing),
                "`dkim_domain`, `dkim_selector` and `dkim_private_key` go together",
            ))
        }
    }
}

/// A plain `local@domain` address: one `@`, no spaces, brackets or control characters.
pub(crate) fn is_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\"\\".contains(c))
        && !local.contains('@')
}

impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.credentials.as_ref().map(|(u, _)| u))
            .field("password", &self.credentials.as_ref().map(|_| "***"))
            .field("from", &self.from)
            .field("from_name", &self.from_name)
            .field("public_url", &self.public_url)
            .field(
                "inbound_secret",
                &self.inbound_secret.as_ref().map(|_| "***"),
            )
            .field("dkim", &self.dkim)
            .field("max_rate", &self.max_rate)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_starttls_on_587_and_keys_point_at_their_error() {
        let config =
            EmailConfig::parse(&json!({"host": "smtp.example.com", "from": "news@example.com"}))
                .unwrap();
        assert_eq!((config.tls(), config.port()), (TlsMode::StartTls, 587));
        assert_eq!(config.from_domain(), "example.com");
        let at = |v: Value| EmailConfig::parse(&v).unwrap_err().pointer;
        assert_eq!(at(json!({"from": "a@b.fr"})), "/host");
        assert_eq!(at(json!({"host": "h", "from": "not an address"})), "/from");
        assert_eq!(
            at(json!({"host": "h", "from": "a@b.fr", "tls": "ssl"})),
            "/tls"
        );
        assert_eq!(
            at(json!({"host": "h", "from": "a@b.fr", "port": 70000})),
            "/port"
        );
        assert_eq!(
            at(json!({"host": "h", "from": "a@b.fr", "username": "u"})),
            "/password"
        );
        assert_eq!(
            at(json!({"host": "h", "from": "a@b.fr", "dkim_domain": "b.fr"})),
            "/dkim_selector"
        );
        assert_eq!(
            at(json!({"host": "h", "from": "a@b.fr", "pasword": "x"})),
            "/pasword"
        );
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let config = EmailConfig::parse(&json!({"host": "h", "from": "a@b.fr", "username": "u",
            "password": "hunter2", "inbound_secret": "s3cr3t-relay"}))
        .unwrap();
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cr3t-relay"),
            "{shown}"
        );
    }
}
