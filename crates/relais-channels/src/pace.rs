//! How an HTTP channel keeps within its provider's limits: sends spaced at its `max_rate`
//! (providers throttle past it: Meta's 130429 and 613, Google's `RESOURCE_EXHAUSTED`), and
//! a pause after the provider refused its credentials, during which the channel says it
//! is not ready, so its messages wait in the outbox without spending attempts until the
//! operator has fixed the token.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Turns spaced `1 / max_rate` apart, taken in the order they are asked for.
#[derive(Debug)]
pub struct Pace {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pace {
    /// `max_rate` in turns per second; the channels' configs bound it (one a day to
    /// 10,000 a second), so the interval always fits a timer.
    pub fn new(max_rate: f64) -> Pace {
        Pace {
            interval: Duration::from_secs_f64(1.0 / max_rate),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this caller's turn.
    pub async fn wait_for_turn(&self) {
        let turn = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let turn = (*next).max(Instant::now());
            *next = turn + self.interval;
            turn
        };
        tokio::time::sleep_until(turn).await;
    }
}

/// Until when a channel is paused after its provider refused its credentials.
#[derive(Debug, Default)]
pub struct AuthPause {
    until: Mutex<Option<Instant>>,
}

impl AuthPause {
    /// Pauses the channel for `pause` from now.
    pub fn pause(&self, pause: Duration) {
        *self.until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + pause);
    }

    /// Whether no pause holds the channel now.
    pub fn is_over(&self) -> bool {
        self.until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none_or(|until| Instant::now() >= until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_are_spaced_at_the_rate() {
        let pace = Pace::new(50.0);
        let start = Instant::now();
        for _ in 0..3 {
            pace.wait_for_turn().await;
        }
        // The first goes at once, the next two 20 ms apart.
        assert!(start.elapsed() >= Duration::from_millis(40));
    }

    #[test]
    fn a_pause_holds_until_it_is_over() {
        let auth = AuthPause::default();
        assert!(auth.is_over());
        auth.pause(Duration::from_secs(60));
        assert!(!auth.is_over());
        auth.pause(Duration::ZERO);
        assert!(auth.is_over(), "over once its time has passed");
    }
}
