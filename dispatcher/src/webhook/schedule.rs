//! When to try a failed delivery again: exponential backoff with jitter (the `backoff`
//! crate), for at most a configured period counted from the job's end.

use backoff::ExponentialBackoffBuilder;
use backoff::backoff::Backoff;
use std::time::Duration;
use tether_protocol::UnixMillis;

/// The retry policy. With the defaults, attempts follow about 5 s, 10 s, 20 s, … apart,
/// at most an hour apart, for 24 hours: about 30 attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    /// Wait after the first failed attempt.
    pub initial: Duration,
    /// Each wait is this many times the previous one.
    pub multiplier: f64,
    /// Cap on the (un-jittered) wait.
    pub max_interval: Duration,
    /// Jitter: each wait is drawn from `wait × [1 - r, 1 + r]`, so that receivers
    /// recovering from an outage are not hit by every sender at once.
    pub randomization: f64,
    /// No attempt is made later than this after the delivery was queued; a delivery that
    /// would need one is given up.
    pub max_period: Duration,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(5),
            multiplier: 2.0,
            max_interval: Duration::from_secs(3600),
            randomization: 0.5,
            max_period: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetrySchedule {
    /// The wait after `failed` consecutive failed attempts (1 = after the first).
    /// The delivery's state lives in the store, not in a backoff object, so the wait is
    /// recomputed from the attempt count: the `failed`-th step of a fresh backoff.
    pub fn delay_after(&self, failed: u32) -> Duration {
        let mut backoff = ExponentialBackoffBuilder::new()
            .with_initial_interval(self.initial)
            .with_multiplier(self.multiplier)
            .with_max_interval(self.max_interval)
            .with_randomization_factor(self.randomization)
            .with_max_elapsed_time(None)
            .build();
        let mut delay = self.initial;
        for _ in 0..failed.max(1) {
            delay = backoff.next_backoff().unwrap_or(self.max_interval);
        }
        delay
    }

    /// When to try again after `failed` failed attempts of a delivery queued at `queued`,
    /// now being `now`; `None` once that would fall past the retry period. A receiver's
    /// `Retry-After` is honoured when it asks for longer (up to `max_interval`).
    pub fn next_attempt(
        &self,
        queued: UnixMillis,
        now: UnixMillis,
        failed: u32,
        retry_after: Option<Duration>,
    ) -> Option<UnixMillis> {
        let mut delay = self.delay_after(failed);
        if let Some(asked) = retry_after {
            delay = delay.max(asked.min(self.max_interval));
        }
        let at = now.0.saturating_add(millis(delay));
        let end = queued.0.saturating_add(millis(self.max_period));
        (at <= end).then_some(UnixMillis(at))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact() -> RetrySchedule {
        RetrySchedule {
            randomization: 0.0,
            ..RetrySchedule::default()
        }
    }

    #[test]
    fn doubles_up_to_the_cap() {
        let s = exact();
        let waits: Vec<u64> = (1..=12).map(|n| s.delay_after(n).as_secs()).collect();
        assert_eq!(
            waits,
            vec![5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let s = RetrySchedule::default();
        for n in 1..=8 {
            let base = exact().delay_after(n).as_secs_f64();
            let mut seen = std::collections::HashSet::new();
            for _ in 0..50 {
                let d = s.delay_after(n).as_secs_f64();
                assert!(
                    d >= base * 0.5 - 1e-3 && d <= base * 1.5 + 1e-3,
                    "{n}: {d} vs {base}"
                );
                seen.insert(d.to_bits());
            }
            assert!(seen.len() > 1, "no jitter at step {n}");
        }
    }

    #[test]
    fn gives_up_after_the_period_with_about_thirty_attempts() {
        let s = exact();
        let queued = UnixMillis(0);
        let mut now = queued;
        let mut attempts = 1;
        while let Some(at) = s.next_attempt(queued, now, attempts, None) {
            assert!(at.0 - queued.0 <= 24 * 3600 * 1000);
            now = at;
            attempts += 1;
        }
        assert!((25..=35).contains(&attempts), "{attempts} attempts in 24 h");
    }

    #[test]
    fn honours_retry_after_within_the_cap() {
        let s = exact();
        let at = s.next_attempt(
            UnixMillis(0),
            UnixMillis(0),
            1,
            Some(Duration::from_secs(60)),
        );
        assert_eq!(at, Some(UnixMillis(60_000)));
        let at = s.next_attempt(
            UnixMillis(0),
            UnixMillis(0),
            1,
            Some(Duration::from_secs(1)),
        );
        assert_eq!(at, Some(UnixMillis(5_000)));
        let at = s.next_attempt(
            UnixMillis(0),
            UnixMillis(0),
            1,
            Some(Duration::from_secs(86_400 * 7)),
        );
        assert_eq!(at, Some(UnixMillis(3_600_000)));
    }
}
