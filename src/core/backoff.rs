//! Reconnect delays: capped exponential backoff with jitter.
//!
//! Jitter keeps a fleet of lamps that lost the broker at the same moment from all reconnecting
//! at the same moment. The random source is a parameter so the schedule is testable.

use std::time::Duration;

use rand::Rng;

#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// "Equal jitter": half the exponential delay is fixed, half is random, so retries never
    /// come faster than half the schedule and never slower than the cap.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let exponential = self
            .initial
            .saturating_mul(1u32.checked_shl(self.attempt).unwrap_or(u32::MAX))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = exponential / 2;
        half + half.mul_f64(rng.random::<f64>())
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn grows_then_caps_and_stays_within_bounds() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut ceiling = Duration::from_millis(100);
        for _ in 0..40 {
            let delay = backoff.next_delay(&mut rng);
            assert!(delay >= ceiling / 2 && delay <= ceiling, "{delay:?} vs {ceiling:?}");
            ceiling = (ceiling * 2).min(Duration::from_secs(5));
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        for _ in 0..10 {
            backoff.next_delay(&mut rng);
        }
        backoff.reset();
        assert!(backoff.next_delay(&mut rng) <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_a_fleet() {
        let mut rng = StdRng::seed_from_u64(3);
        let delays: std::collections::HashSet<Duration> = (0..50)
            .map(|_| Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).next_delay(&mut rng))
            .collect();
        assert!(delays.len() > 40);
    }
}
