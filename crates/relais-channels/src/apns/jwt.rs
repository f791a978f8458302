//! The provider authentication token of APNs's token-based auth: a JWT signed `ES256`
//! with the `.p8` key, header `{alg: ES256, kid: key_id}`, claims `{iss: team_id, iat}`.
//!
//! Apple refuses a token older than an hour (`ExpiredProviderToken`) and one replaced
//! more often than every 20 minutes (`TooManyProviderTokenUpdates`): [`ProviderToken`]
//! keeps one for [`REFRESH_AFTER`] (50 min), and replaces it early, when APNs refused it,
//! only if the last early replacement is [`MIN_REFRESH`] (20 min) old.

use super::config::ApnsConfig;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use serde_json::json;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A token is replaced once this old.
pub const REFRESH_AFTER: Duration = Duration::from_secs(50 * 60);

/// Never replaced more often than this.
pub const MIN_REFRESH: Duration = Duration::from_secs(20 * 60);

/// The signature could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the .p8 key could not sign the provider token")]
pub struct SignError;

/// The signed token for `config` at `iat` (seconds since the epoch).
pub fn sign(config: &ApnsConfig, iat: i64) -> Result<String, SignError> {
    let header = json!({"alg": "ES256", "kid": config.key_id()});
    let claims = json!({"iss": config.team_id(), "iat": iat});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = config
        .key()
        .sign(&SystemRandom::new(), input.as_bytes())
        .map_err(|_| SignError)?;
    Ok(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    ))
}

#[derive(Debug)]
struct Current {
    token: String,
    made: Instant,
}

/// The channel's current provider token.
#[derive(Debug, Default)]
pub struct ProviderToken {
    current: Mutex<Option<Current>>,
    last_forced: Mutex<Option<Instant>>,
}

impl ProviderToken {
    /// The token to send with, made anew once [`REFRESH_AFTER`] old.
    pub fn get(&self, config: &ApnsConfig) -> Result<String, SignError> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(usable) = current
            .as_ref()
            .filter(|c| c.made.elapsed() < REFRESH_AFTER)
        {
            return Ok(usable.token.clone());
        }
        let token = sign(config, jiff::Timestamp::now().as_second())?;
        *current = Some(Current {
            token: token.clone(),
            made: Instant::now(),
        });
        Ok(token)
    }

    /// After APNs refused the token: drops it so the next [`Self::get`] makes a new
    /// one, unless the last early replacement is younger than [`MIN_REFRESH`]. Whether
    /// it was dropped.
    pub fn refresh_early(&self) -> bool {
        let mut last = self.last_forced.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| at.elapsed() < MIN_REFRESH) {
            return false;
        }
        *last = Some(Instant::now());
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        true
    }
}
