//! Tenants and API keys.
//!
//! A key is shown once at creation; the store keeps only its SHA-256 digest, so a leaked
//! database does not leak usable keys. Keys are 256 bits of randomness, which makes a fast
//! unsalted digest safe (there is nothing to brute-force, unlike a password).

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

pub const DEFAULT_TENANT: &str = "default";
const KEY_PREFIX: &str = "rl_";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Run the installation: create tenants. Not tied to the key's tenant data.
    Operator,
    /// Everything within the key's tenant, including keys and channels.
    Admin,
    /// Send messages and manage contacts.
    Send,
    /// Read-only access to the tenant's data.
    Read,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Operator => "operator",
            Scope::Admin => "admin",
            Scope::Send => "send",
            Scope::Read => "read",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope `{0}`; expected operator, admin, send or read")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "operator" => Ok(Scope::Operator),
            "admin" => Ok(Scope::Admin),
            "send" => Ok(Scope::Send),
            "read" => Ok(Scope::Read),
            other => Err(UnknownScope(other.to_owned())),
        }
    }
}

/// The scopes a key holds. `admin` implies `send` and `read`; `send` implies `read`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Self {
        Scopes(scopes.into_iter().collect())
    }

    pub fn allows(&self, needed: Scope) -> bool {
        let has = |s| self.0.contains(&s);
        match needed {
            Scope::Operator => has(Scope::Operator),
            Scope::Admin => has(Scope::Admin),
            Scope::Send => has(Scope::Admin) || has(Scope::Send),
            Scope::Read => has(Scope::Admin) || has(Scope::Send) || has(Scope::Read),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// Stored form: `admin,send`.
    pub fn to_db(&self) -> String {
        self.0
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn from_db(s: &str) -> Result<Self, UnknownScope> {
        s.split(',')
            .filter(|p| !p.is_empty())
            .map(Scope::from_str)
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Scopes)
    }
}

/// A freshly generated API key: the secret is shown once, only the hash is stored.
#[derive(Clone)]
pub struct GeneratedKey {
    pub secret: String,
    pub hash: String,
    /// First characters of the secret, stored in clear so a user can tell keys apart.
    pub prefix: String,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

pub fn generate_api_key() -> GeneratedKey {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("{KEY_PREFIX}{}", hex::encode(bytes));
    GeneratedKey::from_secret(secret)
}

impl GeneratedKey {
    /// Wraps a preset secret (`RELAIS_ADMIN_KEY`).
    pub fn from_secret(secret: String) -> Self {
        let hash = hash_api_key(&secret);
        let prefix = secret.chars().take(KEY_PREFIX.len() + 8).collect();
        GeneratedKey {
            secret,
            hash,
            prefix,
        }
    }
}

pub fn hash_api_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A tenant name: lowercase letters, digits, `-` and `_`, 1 to 63 characters.
pub fn validate_tenant_name(name: &str) -> Result<(), String> {
    let ok_len = (1..=63).contains(&name.len());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(format!(
            "tenant name `{name}` must be 1 to 63 characters of lowercase letters, digits, `-` or `_`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_only_the_hash_matches() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with("rl_") && a.secret.len() == 67);
        assert_eq!(a.hash, hash_api_key(&a.secret));
        assert_ne!(a.hash, a.secret);
        assert!(!a.hash.contains(&a.secret[3..]));
        assert_ne!(hash_api_key(&a.secret), hash_api_key(&b.secret));
        assert!(!format!("{a:?}").contains(&a.secret));
    }

    #[test]
    fn scopes_imply_weaker_ones() {
        let admin = Scopes::new([Scope::Admin]);
        assert!(admin.allows(Scope::Send) && admin.allows(Scope::Read));
        assert!(!admin.allows(Scope::Operator));
        let read = Scopes::new([Scope::Read]);
        assert!(!read.allows(Scope::Send));
        assert_eq!(Scopes::from_db(&admin.to_db()).unwrap(), admin);
        assert!(Scopes::from_db("admin,root").is_err());
    }

    #[test]
    fn tenant_names_are_checked() {
        assert!(validate_tenant_name("acme-fr").is_ok());
        assert!(validate_tenant_name("").is_err());
        assert!(validate_tenant_name("Acme").is_err());
        assert!(validate_tenant_name("a b").is_err());
    }
}
