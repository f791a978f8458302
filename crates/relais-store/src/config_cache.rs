//! A tenant's configuration as the hot paths read it (settings, the live NLU model's
//! version, the flows' revisions), remembered for [`CONFIG_FRESH_FOR`]: every inbound
//! message reads it, and it changes a few times a day.
//!
//! Invariant: a change written through this store is seen by its next read (the write
//! forgets the entry); a change written by another node or process sharing the database
//! is seen within [`CONFIG_FRESH_FOR`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a read of the configuration is reused.
pub const CONFIG_FRESH_FOR: Duration = Duration::from_secs(1);

/// Entries kept at most per kind; past it the cache starts over (a server with more
/// tenants than this reads the store more often, nothing else).
const MOST_ENTRIES: usize = 10_000;

/// Entries by (tenant, key): when each was read (or, with no value, last written through
/// this store).
type Entries<V> = HashMap<(String, String), (Instant, Option<V>)>;

/// One kind of configuration by (tenant, key).
pub(crate) struct Remembered<V> {
    entries: Mutex<Entries<V>>,
}

impl<V: Clone> Default for Remembered<V> {
    fn default() -> Self {
        Remembered {
            entries: Mutex::default(),
        }
    }
}

impl<V: Clone> Remembered<V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<V>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value read less than [`CONFIG_FRESH_FOR`] ago, if any.
    pub(crate) fn fresh(&self, tenant: &str, key: &str) -> Option<V> {
        let entries = self.lock();
        let (read_at, value) = entries.get(&(tenant.to_owned(), key.to_owned()))?;
        if read_at.elapsed() < CONFIG_FRESH_FOR {
            value.clone()
        } else {
            None
        }
    }

    /// Remembers `value`, read by a read that started at `read_at`; not when this store
    /// wrote the entry since (the read may have missed the write).
    pub(crate) fn keep(&self, tenant: &str, key: &str, read_at: Instant, value: V) {
        let mut entries = self.lock();
        if entries.len() >= MOST_ENTRIES {
            entries.clear();
        }
        let entry = (tenant.to_owned(), key.to_owned());
        if entries
            .get(&entry)
            .is_some_and(|(at, v)| v.is_none() && *at >= read_at)
        {
            return;
        }
        entries.insert(entry, (read_at, Some(value)));
    }

    /// Called after this store wrote the entry: the next read goes to the store.
    pub(crate) fn forget(&self, tenant: &str, key: &str) {
        self.lock()
            .insert((tenant.to_owned(), key.to_owned()), (Instant::now(), None));
    }
}

/// The configuration a store remembers.
#[derive(Default)]
pub(crate) struct ConfigCache {
    pub(crate) settings: Remembered<Option<serde_json::Value>>,
    pub(crate) model_versions: Remembered<Option<i64>>,
    pub(crate) flow_revisions: Remembered<Vec<(String, i64)>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_reused_until_it_is_forgotten_or_too_old() {
        let cache: Remembered<i64> = Remembered::default();
        assert_eq!(cache.fresh("t", "k"), None);
        cache.keep("t", "k", Instant::now(), 7);
        assert_eq!(cache.fresh("t", "k"), Some(7));
        assert_eq!(cache.fresh("other", "k"), None);
        cache.forget("t", "k");
        assert_eq!(cache.fresh("t", "k"), None);
        // A read that started before the write does not bring the old value back.
        let read_at = Instant::now() - Duration::from_millis(5);
        cache.forget("t", "k");
        cache.keep("t", "k", read_at, 6);
        assert_eq!(cache.fresh("t", "k"), None);
        cache.keep("t", "k", Instant::now(), 9);
        assert_eq!(cache.fresh("t", "k"), Some(9));
        let long_ago = Instant::now() - CONFIG_FRESH_FOR - Duration::from_millis(1);
        cache.keep("t", "k", long_ago, 8);
        assert_eq!(cache.fresh("t", "k"), None);
    }
}
