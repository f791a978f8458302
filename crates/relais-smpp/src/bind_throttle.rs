//! Slows down password guessing on binds: each source address and each `system_id` with
//! recent failures waits longer before its next bind is checked (100 ms after the first
//! failure, doubling up to 5 s), and binds arriving together from one of them queue behind
//! each other instead of being checked in parallel.
//!
//! Invariants: a source and a `system_id` that have not failed are never slowed down (a
//! bind from elsewhere for another `system_id` does not wait for someone else's failures);
//! a success forgets the failures of its source and `system_id`, and so does a quiet
//! period without failure; each table holds at most [`BindThrottleConfig::capacity`]
//! entries. The wait applies before the credentials are checked, whatever they turn out
//! to be, so that a guess cannot be read from how fast the answer comes. Time comes in as
//! an argument: the decisions are tested without sleeping.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;
use tokio::time::Instant;

/// How binds are slowed down after failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindThrottleConfig {
    /// The wait after one failure; it doubles with each further failure.
    pub first_delay: Duration,
    /// The longest wait one failure adds.
    pub max_delay: Duration,
    /// Failures older than this, with none since, are forgotten.
    pub quiet_period: Duration,
    /// A bind that would wait longer than this behind others from the same source or for
    /// the same `system_id` is refused at once, unchecked.
    pub max_wait: Duration,
    /// Sources, and `system_id`s, remembered at most; past it the least recent go.
    pub capacity: usize,
}

impl Default for BindThrottleConfig {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(100),
            // An ESME reconnecting with a stale password after a rotation binds again within
            // seconds of the fix; 5 s still holds a guesser to 12 tries a minute per source.
            max_delay: Duration::from_secs(5),
            quiet_period: Duration::from_secs(15 * 60),
            max_wait: Duration::from_secs(30),
            capacity: 10_000,
        }
    }
}

impl BindThrottleConfig {
    /// The wait that `failures` consecutive failures impose on the next bind.
    pub fn delay_after(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        self.first_delay
            .checked_mul(factor)
            .map_or(self.max_delay, |d| d.min(self.max_delay))
    }
}

/// What to do with a bind before its credentials are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Check it after this wait (zero when neither its source nor its `system_id` failed
    /// recently).
    After(Duration),
    /// Too many binds from its source or for its `system_id` are already waiting: refuse
    /// it without checking.
    Refuse,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    /// No bind of this source or `system_id` is checked before this instant.
    free_at: Instant,
}

/// The failure tables of one server.
#[derive(Debug)]
pub struct BindThrottle {
    config: BindThrottleConfig,
    sources: HashMap<IpAddr, Failures>,
    system_ids: HashMap<String, Failures>,
}

/// The address failures are counted on: an IPv6 host usually holds a whole /64, so its
/// addresses count as one source; an IPv4-mapped address is its IPv4 address.
pub fn source_of(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl BindThrottle {
    pub fn new(config: BindThrottleConfig) -> Self {
        Self {
            config,
            sources: HashMap::new(),
            system_ids: HashMap::new(),
        }
    }

    pub fn config(&self) -> &BindThrottleConfig {
        &self.config
    }

    /// Decides when a bind from `peer` for `system_id` is checked, and keeps its turn: the
    /// next bind from the same source or for the same `system_id` waits one more delay.
    pub fn admit(&mut self, peer: IpAddr, system_id: &str, now: Instant) -> Admission {
        let source = source_of(peer);
        let quiet = self.config.quiet_period;
        let live = |f: &&mut Failures| now.saturating_duration_since(f.last) < quiet;
        let mut entries: Vec<&mut Failures> = [
            self.sources.get_mut(&source),
            self.system_ids.get_mut(system_id),
        ]
        .into_iter()
        .flatten()
        .filter(|f| live(f))
        .collect();
        if entries.is_empty() {
            return Admission::After(Duration::ZERO);
        }
        let start = entries.iter().map(|f| f.free_at).fold(now, Instant::max);
        let wait = start.saturating_duration_since(now);
        if wait > self.config.max_wait {
            return Admission::Refuse;
        }
        for f in &mut entries {
            f.free_at = start + self.config.delay_after(f.count);
        }
        Admission::After(wait)
    }

    /// The wait [`BindThrottle::admit`] would decide now, without taking a turn.
    pub fn pending(&self, peer: IpAddr, system_id: &str, now: Instant) -> Duration {
        let quiet = self.config.quiet_period;
        [
            self.sources.get(&source_of(peer)),
            self.system_ids.get(system_id),
        ]
        .into_iter()
        .flatten()
        .filter(|f| now.saturating_duration_since(f.last) < quiet)
        .map(|f| f.free_at.saturating_duration_since(now))
        .max()
        .unwrap_or(Duration::ZERO)
    }

    /// Counts a refused bind against its source and its `system_id`; the consecutive
    /// failures of whichever of the two failed most.
    pub fn failed(&mut self, peer: IpAddr, system_id: &str, now: Instant) -> u32 {
        let config = self.config.clone();
        let source = record(&mut self.sources, source_of(peer), now, &config);
        let by_id = record(&mut self.system_ids, system_id.to_owned(), now, &config);
        source.max(by_id)
    }

    /// A bind succeeded: its source and its `system_id` start afresh.
    pub fn succeeded(&mut self, peer: IpAddr, system_id: &str) {
        self.sources.remove(&source_of(peer));
        self.system_ids.remove(system_id);
    }

    /// Sources and `system_id`s currently remembered.
    pub fn len(&self) -> (usize, usize) {
        (self.sources.len(), self.system_ids.len())
    }
}

fn record<K: std::hash::Hash + Eq + Clone>(
    table: &mut HashMap<K, Failures>,
    key: K,
    now: Instant,
    config: &BindThrottleConfig,
) -> u32 {
    if !table.contains_key(&key) && table.len() >= config.capacity.max(1) {
        make_room(table, now, config);
    }
    let f = table.entry(key).or_insert(Failures {
        count: 0,
        last: now,
        free_at: now,
    });
    if now.saturating_duration_since(f.last) >= config.quiet_period {
        f.count = 0;
    }
    f.count = f.count.saturating_add(1);
    f.last = now;
    f.free_at = f.free_at.max(now + config.delay_after(f.count));
    f.count
}

/// Forgets the quiet entries, or else the least recent one.
fn make_room<K: std::hash::Hash + Eq + Clone>(
    table: &mut HashMap<K, Failures>,
    now: Instant,
    config: &BindThrottleConfig,
) {
    table.retain(|_, f| now.saturating_duration_since(f.last) < config.quiet_period);
    if table.len() < config.capacity.max(1) {
        return;
    }
    let oldest = table
        .iter()
        .min_by_key(|(_, f)| f.last)
        .map(|(k, _)| k.clone());
    if let Some(oldest) = oldest {
        table.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A client that binds again as soon as it is answered, always with a wrong password;
    /// the waits the throttle decides for each of its binds.
    fn waits_of_a_guesser(throttle: &mut BindThrottle, binds: usize, start: Instant) -> Vec<u64> {
        let mut now = start;
        let mut waits = Vec::new();
        for _ in 0..binds {
            match throttle.admit(ip("203.0.113.7"), "shop", now) {
                Admission::After(wait) => {
                    waits.push(u64::try_from(wait.as_millis()).unwrap());
                    now += wait;
                }
                Admission::Refuse => panic!("a lone guesser is never refused"),
            }
            throttle.failed(ip("203.0.113.7"), "shop", now);
        }
        waits
    }

    #[test]
    fn each_wrong_bind_waits_twice_as_long_as_the_last_up_to_five_seconds() {
        let mut throttle = BindThrottle::new(BindThrottleConfig::default());
        let waits = waits_of_a_guesser(&mut throttle, 10, Instant::now());
        assert_eq!(waits, [0, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    }

    #[test]
    fn a_success_forgets_the_failures_of_its_source_and_system_id() {
        let mut throttle = BindThrottle::new(BindThrottleConfig::default());
        let start = Instant::now();
        waits_of_a_guesser(&mut throttle, 5, start);
        let now = start + Duration::from_secs(10);
        assert_eq!(
            throttle.admit(ip("203.0.113.7"), "shop", now),
            Admission::After(Duration::ZERO),
            "the guesser's turn has come"
        );
        throttle.succeeded(ip("203.0.113.7"), "shop");
        assert_eq!(throttle.len(), (0, 0));
        assert_eq!(
            throttle.admit(ip("203.0.113.7"), "shop", now),
            Admission::After(Duration::ZERO)
        );
    }

    #[test]
    fn a_bind_from_elsewhere_for_another_system_id_does_not_wait() {
        let mut throttle = BindThrottle::new(BindThrottleConfig::default());
        let start = Instant::now();
        waits_of_a_guesser(&mut throttle, 8, start);
        assert_eq!(
            throttle.admit(ip("198.51.100.1"), "bank", start),
            Admission::After(Duration::ZERO)
        );
        // The same system_id from elsewhere, or another one from the guesser, waits.
        assert!(throttle.pending(ip("198.51.100.1"), "shop", start) > Duration::ZERO);
        assert!(throttle.pending(ip("203.0.113.7"), "bank", start) > Duration::ZERO);
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_period() {
        let config = BindThrottleConfig::default();
        let quiet = config.quiet_period;
        let mut throttle = BindThrottle::new(config);
        let start = Instant::now();
        waits_of_a_guesser(&mut throttle, 6, start);
        let later = start + quiet + Duration::from_secs(60);
        assert_eq!(
            throttle.admit(ip("203.0.113.7"), "shop", later),
            Admission::After(Duration::ZERO)
        );
        assert_eq!(throttle.failed(ip("203.0.113.7"), "shop", later), 1);
    }

    #[test]
    fn binds_arriving_together_queue_and_the_queue_is_bounded() {
        let mut throttle = BindThrottle::new(BindThrottleConfig::default());
        let now = Instant::now();
        throttle.failed(ip("203.0.113.7"), "shop", now);
        // Twenty connections bind at the same instant: each takes the next turn.
        let waits: Vec<Admission> = (0..20)
            .map(|_| throttle.admit(ip("203.0.113.7"), "shop", now))
            .collect();
        assert_eq!(waits[0], Admission::After(ms(100)));
        assert_eq!(waits[1], Admission::After(ms(200)));
        assert_eq!(waits[2], Admission::After(ms(300)));
        assert_eq!(waits[19], Admission::After(ms(2000)));
        // With a long queue, a bind is refused rather than held for minutes.
        for _ in 0..5 {
            throttle.failed(ip("203.0.113.7"), "shop", now);
        }
        let refused = (0..100)
            .map(|_| throttle.admit(ip("203.0.113.7"), "shop", now))
            .filter(|a| *a == Admission::Refuse)
            .count();
        assert!(refused > 50, "{refused}");
    }

    #[test]
    fn the_addresses_of_one_ipv6_network_count_as_one_source() {
        let mut throttle = BindThrottle::new(BindThrottleConfig::default());
        let now = Instant::now();
        throttle.failed(ip("2001:db8:1:2::1"), "a", now);
        assert_eq!(throttle.failed(ip("2001:db8:1:2:ffff::9"), "b", now), 2);
        assert_eq!(throttle.failed(ip("2001:db8:1:3::1"), "c", now), 1);
        assert_eq!(
            source_of(ip("::ffff:192.0.2.1")),
            ip("192.0.2.1"),
            "an IPv4-mapped address is its IPv4 source"
        );
    }

    #[test]
    fn the_tables_stay_within_their_capacity() {
        let mut throttle = BindThrottle::new(BindThrottleConfig {
            capacity: 100,
            ..BindThrottleConfig::default()
        });
        let start = Instant::now();
        for i in 0..1000u32 {
            let peer = IpAddr::from(i.to_be_bytes());
            throttle.failed(peer, &format!("id{i}"), start + ms(u64::from(i)));
        }
        assert_eq!(throttle.len(), (100, 100));
        // The most recent are the ones kept.
        assert_eq!(
            throttle.failed(
                IpAddr::from(999u32.to_be_bytes()),
                "id999",
                start + ms(1000)
            ),
            2
        );
    }
}
