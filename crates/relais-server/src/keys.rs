//! API keys seen recently, so that a client sending one message per request does not cost
//! a store read per request to authenticate. Keys cannot be revoked through the API today;
//! an entry lives [`KEY_TTL`] at most, so a key removed from the store stops working
//! within that time.

use relais_store::ApiKeyRecord;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a key found in the store is trusted without asking again.
pub const KEY_TTL: Duration = Duration::from_secs(10);

/// Keys remembered at most; past it the cache starts over (a flood of distinct valid
/// keys is not a pattern worth more).
const MAX_KEYS: usize = 10_000;

#[derive(Default)]
pub struct KeyCache {
    keys: Mutex<HashMap<String, (ApiKeyRecord, Instant)>>,
}

impl KeyCache {
    /// The key with this digest, if it was found in the store less than [`KEY_TTL`] ago.
    pub fn get(&self, hash: &str) -> Option<ApiKeyRecord> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.get(hash)
            .filter(|(_, at)| at.elapsed() < KEY_TTL)
            .map(|(key, _)| key.clone())
    }

    pub fn put(&self, hash: String, key: ApiKeyRecord) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= MAX_KEYS {
            keys.clear();
        }
        keys.insert(hash, (key, Instant::now()));
    }
}
