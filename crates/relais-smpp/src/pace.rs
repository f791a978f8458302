//! How fast one bind submits when the SMSC throttles: a rate that backs off and creeps back
//! (AIMD), as a pure function of the answers and of the time they came at.
//!
//! Answers are counted per period (at least [`MIN_PERIOD`] and [`MIN_ANSWERS`] answers, or
//! [`MAX_PERIOD`]). A period that saw more `ESME_RTHROTTLED` than `base` (the share the SMSC
//! throttles whatever our rate, learnt below) cuts the rate to [`CUT_TO`] of what the SMSC
//! accepted in it: against a TPS limit, just under the limit. The next period checks that
//! cut: if throttling did not fall with the rate, the rate was not the cause (an SMSC that
//! throttles a random share), so the cut is undone and that share becomes `base`; the bind
//! then keeps its rate and only resends the throttled PDUs, and its goodput stays near
//! `ceiling × (1 − share)`. A share above [`MAX_BASE`] is never taken for randomness. A period without excess throttling raises the rate by [`STEP`]
//! of the ceiling (additive increase). At most one cut per period; the rate stays within
//! [`FLOOR`] and the ceiling (`max_rate` of the bind).
//!
//! Without a ceiling the bind starts unpaced; the first cut paces it, its steps are then a
//! share of the rate the SMSC accepted at the last cut, and it goes back to unpaced once the
//! rate climbs past the fastest answer rate seen.

use std::time::{Duration, Instant};

/// Shortest period over which throttling is measured (answers come in bursts of a read).
pub const MIN_PERIOD: Duration = Duration::from_millis(100);
/// Fewest answers a period needs: with 50, one share differs from another by 2 standard
/// deviations only when they are ~0.2 apart at 50 % throttling, enough to tell a cut that
/// worked from one that did not.
pub const MIN_ANSWERS: u32 = 50;
/// A slow bind closes its period after this long whatever its count.
pub const MAX_PERIOD: Duration = Duration::from_secs(2);
/// A cut sets the rate to this share of the rate the SMSC accepted: a little under a TPS
/// limit, so the SMSC's bucket refills and the check of the cut sees throttling stop.
pub const CUT_TO: f64 = 0.9;
/// Additive increase per period, as a share of the ceiling (or of the rate accepted at the
/// last cut when there is no ceiling): back from a cut in about two periods.
pub const STEP: f64 = 0.05;
/// The rate never goes below this many submits per second (or the ceiling if lower).
pub const FLOOR: f64 = 1.0;
/// Throttling must exceed `base` by at least this share to count.
const MIN_EXCESS: f64 = 0.02;
/// Beyond this share throttling is taken as congestion even when a cut did not reduce it
/// (an SMSC refusing nearly everything is full, not random): the bind stays slow.
const MAX_BASE: f64 = 0.8;
/// From this learnt share on, `base` follows the measured share up as well as down.
const TRACKED_BASE: f64 = 0.1;

#[derive(Debug, Clone)]
struct Period {
    start: Instant,
    answers: u32,
    throttled: u32,
}

/// A cut waiting for the next period to confirm it.
#[derive(Debug, Clone, Copy)]
struct Cut {
    before: Option<f64>,
    share: f64,
    answers: u32,
}

/// The submit rate of one bind.
#[derive(Debug, Clone)]
pub struct RateControl {
    ceiling: Option<f64>,
    floor: f64,
    rate: Option<f64>,
    base: f64,
    peak: f64,
    /// What [`STEP`] is a share of.
    step_of: f64,
    period: Period,
    cut: Option<Cut>,
}

impl RateControl {
    /// A bind allowed `ceiling` submits per second (`None`: as fast as its window allows).
    pub fn new(ceiling: Option<f64>, now: Instant) -> Self {
        let ceiling = ceiling.filter(|c| c.is_finite() && *c > 0.0);
        Self {
            ceiling,
            floor: ceiling.map_or(FLOOR, |c| c.min(FLOOR)),
            rate: ceiling,
            base: 0.0,
            peak: 0.0,
            step_of: ceiling.unwrap_or(FLOOR),
            period: Period {
                start: now,
                answers: 0,
                throttled: 0,
            },
            cut: None,
        }
    }

    /// Submits per second now; `None` = unpaced.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// The share of submits the SMSC throttles whatever our rate, as learnt so far.
    pub fn base(&self) -> f64 {
        self.base
    }

    /// One answer to a submit: throttled (`ESME_RTHROTTLED`, `ESME_RMSGQFUL`) or not.
    pub fn on_answer(&mut self, throttled: bool, now: Instant) {
        if self.period.answers == 0 && now.duration_since(self.period.start) > MAX_PERIOD {
            // Idle: the period starts with its first answer, not with the silence.
            self.period.start = now;
        }
        self.period.answers += 1;
        self.period.throttled += u32::from(throttled);
        let elapsed = now.duration_since(self.period.start);
        if (elapsed >= MIN_PERIOD && self.period.answers >= MIN_ANSWERS) || elapsed >= MAX_PERIOD {
            self.close_period(now);
        }
    }

    fn close_period(&mut self, now: Instant) {
        let p = std::mem::replace(
            &mut self.period,
            Period {
                start: now,
                answers: 0,
                throttled: 0,
            },
        );
        let secs = now.duration_since(p.start).as_secs_f64().max(1e-3);
        let n = f64::from(p.answers);
        let share = f64::from(p.throttled) / n;
        let answer_rate = n / secs;
        let accepted_rate = f64::from(p.answers - p.throttled) / secs;
        self.peak = self.peak.max(answer_rate);

        if let Some(cut) = self.cut.take() {
            let noise =
                2.0 * (variance(cut.share, cut.answers) + variance(share, p.answers)).sqrt();
            if cut.share <= MAX_BASE && share >= cut.share - noise.max(MIN_EXCESS) {
                // Throttling did not follow our rate down: it is not our rate.
                self.rate = cut.before;
                self.base = if self.base == 0.0 {
                    share
                } else {
                    (self.base + share) / 2.0
                };
            }
            return;
        }
        let excess = (2.0 * variance(self.base, p.answers).sqrt()).max(MIN_EXCESS);
        if share > self.base + excess {
            let sustainable = accepted_rate / (1.0 - self.base).max(0.05);
            if self.ceiling.is_none() {
                self.step_of = sustainable.max(FLOOR);
            }
            let current = self.rate.map_or(answer_rate, |r| r.min(answer_rate));
            let mut new = (sustainable * CUT_TO).min(current).max(self.floor);
            if let Some(c) = self.ceiling {
                new = new.min(c);
            }
            self.cut = Some(Cut {
                before: self.rate,
                share,
                answers: p.answers,
            });
            self.rate = Some(new);
            return;
        }
        if share < self.base || self.base >= TRACKED_BASE {
            // Follow the random share (both ways once it is clearly there, so noise does not
            // leave it low and trigger cuts); below that only down, so the small throttling
            // just over a TPS limit never creeps into it.
            self.base = 0.8 * self.base + 0.2 * share;
        }
        if let Some(r) = self.rate {
            let up = r + STEP * self.step_of.max(self.floor);
            self.rate = match self.ceiling {
                Some(c) => Some(up.min(c)),
                None if up > self.peak => None,
                None => Some(up),
            };
        }
    }
}

/// Variance of a share measured over `n` answers.
fn variance(share: f64, n: u32) -> f64 {
    share * (1.0 - share) / f64::from(n.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stand-in for randomness: the same sequence on every run.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    enum Smsc {
        /// Token bucket: `tps` per second, a burst of `tps / 10`.
        Tps {
            tps: f64,
            tokens: f64,
        },
        Random {
            share: f64,
            rng: Lcg,
        },
    }

    impl Smsc {
        fn tick(&mut self, dt: f64) {
            if let Smsc::Tps { tps, tokens } = self {
                *tokens = (*tokens + *tps * dt).min((*tps / 10.0).max(1.0));
            }
        }
        fn throttles(&mut self) -> bool {
            match self {
                Smsc::Tps { tokens, .. } => {
                    if *tokens >= 1.0 {
                        *tokens -= 1.0;
                        false
                    } else {
                        true
                    }
                }
                Smsc::Random { share, rng } => rng.next() < *share,
            }
        }
    }

    /// Runs a bind that always has messages to send against `smsc` for `secs` seconds in
    /// 1 ms steps, answers arriving 1 ms after the submit. Returns (submits/s, accepted/s)
    /// over the second half.
    fn run(ceiling: Option<f64>, mut smsc: Smsc, secs: u64) -> (f64, f64, RateControl) {
        let t0 = Instant::now();
        let mut ctl = RateControl::new(ceiling, t0);
        let mut credit = 0.0;
        let (mut sent, mut accepted) = (0u64, 0u64);
        let steps = secs * 1000;
        let mut answers: Vec<bool> = Vec::new();
        for step in 0..steps {
            let now = t0 + Duration::from_millis(step);
            smsc.tick(0.001);
            for throttled in answers.drain(..) {
                ctl.on_answer(throttled, now);
            }
            // Unpaced: the window (here 20 per ms) is the limit.
            credit += ctl.rate().map_or(20.0, |r| r / 1000.0);
            credit = credit.min(20.0);
            while credit >= 1.0 {
                credit -= 1.0;
                let throttled = smsc.throttles();
                answers.push(throttled);
                if step >= steps / 2 {
                    sent += 1;
                    accepted += u64::from(!throttled);
                }
            }
        }
        let half = (secs / 2) as f64;
        (sent as f64 / half, accepted as f64 / half, ctl)
    }

    #[test]
    fn against_a_tps_limit_the_rate_settles_just_under_the_limit() {
        let (sent, accepted, _) = run(
            Some(300.0),
            Smsc::Tps {
                tps: 200.0,
                tokens: 0.0,
            },
            60,
        );
        assert!(accepted >= 0.85 * 200.0, "accepted {accepted:.0}/s");
        assert!(
            sent <= 1.1 * 200.0,
            "submitted {sent:.0}/s against a limit of 200"
        );
    }

    #[test]
    fn under_random_throttling_the_rate_stays_at_the_ceiling() {
        for share in [0.2, 0.5] {
            let (sent, accepted, ctl) = run(
                Some(300.0),
                Smsc::Random {
                    share,
                    rng: Lcg(42),
                },
                60,
            );
            assert!(sent >= 0.9 * 300.0, "share {share}: submitted {sent:.0}/s");
            assert!(
                accepted >= 0.85 * 300.0 * (1.0 - share),
                "share {share}: accepted {accepted:.0}/s"
            );
            assert!((ctl.base() - share).abs() < 0.1, "learnt {}", ctl.base());
        }
    }

    #[test]
    fn an_unpaced_bind_is_paced_under_a_tps_limit() {
        let (sent, accepted, ctl) = run(
            None,
            Smsc::Tps {
                tps: 500.0,
                tokens: 0.0,
            },
            60,
        );
        assert!(ctl.rate().is_some(), "paced");
        assert!(accepted >= 0.85 * 500.0, "accepted {accepted:.0}/s");
        assert!(sent <= 1.1 * 500.0, "submitted {sent:.0}/s");
    }

    #[test]
    fn the_rate_stays_between_the_floor_and_the_ceiling() {
        let t0 = Instant::now();
        let mut ctl = RateControl::new(Some(300.0), t0);
        for i in 0..10_000u64 {
            ctl.on_answer(true, t0 + Duration::from_millis(i * 10));
            let r = ctl.rate().unwrap_or(f64::INFINITY);
            assert!((FLOOR..=300.0).contains(&r), "{r}");
        }
        let mut ctl = RateControl::new(Some(300.0), t0);
        for i in 0..10_000u64 {
            ctl.on_answer(false, t0 + Duration::from_millis(i));
            assert_eq!(ctl.rate(), Some(300.0));
        }
    }

    #[test]
    fn a_cut_happens_at_most_once_per_period() {
        let t0 = Instant::now();
        let mut ctl = RateControl::new(Some(300.0), t0);
        // 49 throttled answers in the first 100 ms: the period is not over, no cut yet.
        for i in 0..49u64 {
            ctl.on_answer(true, t0 + Duration::from_millis(i));
        }
        assert_eq!(ctl.rate(), Some(300.0));
        ctl.on_answer(true, t0 + Duration::from_millis(100));
        let after_one = ctl.rate();
        assert!(after_one < Some(300.0));
        ctl.on_answer(true, t0 + Duration::from_millis(101));
        assert_eq!(ctl.rate(), after_one);
    }
}
