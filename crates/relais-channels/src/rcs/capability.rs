//! [`CapabilityCache`]: which phones can take RCS from this agent, as Google last said,
//! so that a campaign to the same numbers asks once an hour rather than once a message.
//!
//! Invariants:
//! - An answer is used for [`CAPABILITY_TTL`] after it was given, then asked again: a
//!   phone gains or loses RCS when its owner changes phones or settings, rarely within
//!   an hour.
//! - The cache holds at most [`MAX_NUMBERS`] numbers, the oldest answers leaving first,
//!   so a campaign to millions of numbers costs a few megabytes, not gigabytes.
//! - Time comes in as an argument, so the rules are tested without sleeping.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// How long an answer is used.
pub const CAPABILITY_TTL: Duration = Duration::from_secs(3600);

/// Numbers remembered at most: about 60 bytes each, some 6 MB in all.
pub const MAX_NUMBERS: usize = 100_000;

/// The last answers of the capability check, by number.
#[derive(Debug)]
pub struct CapabilityCache {
    ttl: Duration,
    max: usize,
    answers: HashMap<String, (bool, Instant)>,
    /// Numbers in the order they were answered, with when: the oldest leave first. A
    /// number answered again has an older record here that no longer matches its entry.
    order: VecDeque<(String, Instant)>,
}

impl CapabilityCache {
    pub fn new(ttl: Duration, max: usize) -> CapabilityCache {
        CapabilityCache {
            ttl,
            max: max.max(1),
            answers: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `msisdn` can take RCS, if Google said so less than the TTL ago.
    pub fn get(&self, msisdn: &str, now: Instant) -> Option<bool> {
        self.answers
            .get(msisdn)
            .filter(|(_, at)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(reachable, _)| *reachable)
    }

    /// Records Google's answer for `msisdn`, given at `now`.
    pub fn put(&mut self, msisdn: &str, reachable: bool, now: Instant) {
        self.answers.insert(msisdn.to_owned(), (reachable, now));
        self.order.push_back((msisdn.to_owned(), now));
        // Records of answers given again are dropped with the rest; the queue never
        // holds more than twice the numbers.
        while let Some((number, at)) = self.order.front() {
            let expired = now.saturating_duration_since(*at) >= self.ttl;
            let over = self.answers.len() > self.max || self.order.len() > 2 * self.max;
            if !expired && !over {
                break;
            }
            if self
                .answers
                .get(number)
                .is_some_and(|(_, given)| given == at)
            {
                self.answers.remove(number);
            }
            self.order.pop_front();
        }
    }

    /// Numbers with an answer, expired or not.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }
}

impl Default for CapabilityCache {
    fn default() -> Self {
        CapabilityCache::new(CAPABILITY_TTL, MAX_NUMBERS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn an_answer_is_used_for_an_hour_then_asked_again() {
        let start = Instant::now();
        let mut cache = CapabilityCache::default();
        cache.put("+33612345678", true, start);
        cache.put("+33600000404", false, start);
        assert_eq!(cache.get("+33612345678", start + 59 * MINUTE), Some(true));
        assert_eq!(cache.get("+33600000404", start + 59 * MINUTE), Some(false));
        assert_eq!(cache.get("+33612345678", start + 60 * MINUTE), None);
        assert_eq!(cache.get("+33699999999", start), None);
    }

    #[test]
    fn a_new_answer_replaces_the_old_one_and_lives_its_own_hour() {
        let start = Instant::now();
        let mut cache = CapabilityCache::new(CAPABILITY_TTL, 10);
        cache.put("+33612345678", true, start);
        cache.put("+33612345678", false, start + 30 * MINUTE);
        // The first record expires; the second answer stays.
        cache.put("+33611111111", true, start + 61 * MINUTE);
        assert_eq!(cache.get("+33612345678", start + 61 * MINUTE), Some(false));
    }

    #[test]
    fn the_oldest_numbers_leave_when_the_cache_is_full() {
        let start = Instant::now();
        let mut cache = CapabilityCache::new(CAPABILITY_TTL, 3);
        for n in 0..5u64 {
            cache.put(
                &format!("+3361234567{n}"),
                true,
                start + Duration::from_secs(n),
            );
        }
        assert_eq!(cache.len(), 3);
        let now = start + Duration::from_secs(5);
        assert_eq!(cache.get("+33612345670", now), None);
        assert_eq!(cache.get("+33612345671", now), None);
        assert_eq!(cache.get("+33612345674", now), Some(true));
    }

    #[test]
    fn answering_one_number_again_and_again_keeps_the_queue_bounded() {
        let start = Instant::now();
        let mut cache = CapabilityCache::new(CAPABILITY_TTL, 2);
        for n in 0..100u64 {
            cache.put("+33612345678", n % 2 == 0, start + Duration::from_secs(n));
        }
        assert!(cache.order.len() <= 4, "{}", cache.order.len());
        assert_eq!(
            cache.get("+33612345678", start + Duration::from_secs(100)),
            Some(false)
        );
    }
}
