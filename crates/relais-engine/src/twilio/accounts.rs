//! Each tenant's Twilio account: an account SID (`AC` + 32 hex digits, kept for the
//! tenant's life) and an auth token (32 hex digits, replaced on demand). The store keeps
//! the token's SHA-256 to check HTTP Basic credentials, and the token itself sealed with
//! the master key ([`crate::secrets`]), since signing callbacks needs it in clear.
//!
//! Credentials checked are remembered [`AUTH_TTL`], so that a client sending one message
//! per request (as the SDKs do) costs no store read per request; a rotated token stops
//! working within that time.

use super::TwilioError;
use jiff::Timestamp;
use relais_core::twilio::{AccountSid, generate_auth_token};
use relais_store::{Store, StoreError, TwilioAccount};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The field name the auth token is sealed under.
pub const AUTH_TOKEN_FIELD: &str = "twilio_auth_token";

/// How long checked credentials are trusted without asking the store again.
pub const AUTH_TTL: Duration = Duration::from_secs(10);

/// Credentials remembered at most; past it the memory starts over.
const MAX_REMEMBERED: usize = 10_000;

/// A tenant's credentials, as shown to its admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub account_sid: AccountSid,
    pub auth_token: String,
}

/// The tenant that credentials authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub tenant_id: String,
    pub account_sid: AccountSid,
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Gives the tenant a new auth token (and its account SID, the first time); the previous
/// token stops working.
pub async fn issue(
    store: &dyn Store,
    tenant: &str,
    now: Timestamp,
) -> Result<Credentials, StoreError> {
    let existing = store.twilio_account(tenant).await?;
    let token = generate_auth_token();
    let (sid, created_at) = match &existing {
        Some(account) => (
            AccountSid::parse(&account.account_sid)
                .map_err(|e| StoreError::Corrupt(format!("twilio account: {e}")))?,
            account.created_at,
        ),
        None => (AccountSid::generate(), now),
    };
    store
        .put_twilio_account(&TwilioAccount {
            tenant_id: tenant.to_owned(),
            account_sid: sid.to_string(),
            token_hash: digest(&token),
            auth_token: crate::secrets::current().seal(AUTH_TOKEN_FIELD, &token),
            created_at,
            updated_at: now,
            inbound_url: None,
            inbound_error: None,
        })
        .await?;
    Ok(Credentials {
        account_sid: sid,
        auth_token: token,
    })
}

/// A tenant's account as its admin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub credentials: Credentials,
    /// Where inbound messages are posted.
    pub inbound_url: Option<String>,
    /// Why the last inbound message was not answered as asked, if it was not.
    pub inbound_error: Option<String>,
}

/// The tenant's account, if it was issued one.
pub async fn show(store: &dyn Store, tenant: &str) -> Result<Option<Shown>, StoreError> {
    let Some(account) = store.twilio_account(tenant).await? else {
        return Ok(None);
    };
    Ok(Some(Shown {
        credentials: open(&account)?,
        inbound_url: account.inbound_url,
        inbound_error: account.inbound_error,
    }))
}

/// The credentials a stored account holds.
pub fn open(account: &TwilioAccount) -> Result<Credentials, StoreError> {
    let account_sid = AccountSid::parse(&account.account_sid)
        .map_err(|e| StoreError::Corrupt(format!("twilio account: {e}")))?;
    let auth_token = crate::secrets::current()
        .open(AUTH_TOKEN_FIELD, &account.auth_token)
        .map_err(|e| StoreError::Corrupt(format!("twilio auth token of {account_sid}: {e}")))?;
    Ok(Credentials {
        account_sid,
        auth_token,
    })
}

/// Credentials found good, by account SID and token digest, with when.
type Checked = HashMap<(String, String), (Authenticated, Instant)>;

/// Checks HTTP Basic credentials, remembering those found good for [`AUTH_TTL`].
#[derive(Clone, Default)]
pub struct Authenticator {
    checked: Arc<Mutex<Checked>>,
}

impl Authenticator {
    /// The tenant whose account SID is `sid` and auth token `token`; anything else is
    /// [`TwilioError::Unauthenticated`], whatever was wrong.
    pub async fn authenticate(
        &self,
        store: &dyn Store,
        sid: &str,
        token: &str,
    ) -> Result<Authenticated, TwilioError> {
        let key = (sid.to_owned(), digest(token));
        if let Some(found) = self.remembered(&key) {
            return Ok(found);
        }
        let sid = AccountSid::parse(sid).map_err(|_| TwilioError::Unauthenticated)?;
        let account = store
            .twilio_account_by_sid(sid.as_str())
            .await?
            .ok_or(TwilioError::Unauthenticated)?;
        if !constant_time_eq(account.token_hash.as_bytes(), key.1.as_bytes()) {
            return Err(TwilioError::Unauthenticated);
        }
        let found = Authenticated {
            tenant_id: account.tenant_id,
            account_sid: sid,
        };
        let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
        if checked.len() >= MAX_REMEMBERED {
            checked.clear();
        }
        checked.insert(key, (found.clone(), Instant::now()));
        Ok(found)
    }

    fn remembered(&self, key: &(String, String)) -> Option<Authenticated> {
        let checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
        checked
            .get(key)
            .filter(|(_, at)| at.elapsed() < AUTH_TTL)
            .map(|(found, _)| found.clone())
    }
}

/// The user name and password of an `Authorization: Basic …` header value.
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let pair = String::from_utf8(decoded).ok()?;
    pair.split_once(':')
        .map(|(user, password)| (user.to_owned(), password.to_owned()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
