//! A circuit breaker for one sector adapter: after a run of failures the
//! adapter gets no calls for a cool-down, then one trial call decides.
//!
//! ```text
//!   closed ──N failures in a row──▶ open ──cool-down over──▶ half-open
//!     ▲                               ▲                         │ one trial call
//!     └──────────── success ──────────┴──────── failure ────────┘
//! ```
//!
//! While open, a query is refused at once (SECTOR_UNAVAILABLE with the
//! time left as RetryInfo): a dead adapter costs callers nothing and gets
//! no pile of calls when it comes back.

use std::time::{Duration, Instant};

/// The breaker's state. Pure logic: the caller passes the time.
#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    open_until: Option<Instant>,
    /// When the half-open trial call started, if one is out.
    trial: Option<Instant>,
}

impl Breaker {
    /// Opens after `threshold` failures in a row, for `cooldown`.
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            failures: 0,
            open_until: None,
            trial: None,
        }
    }

    /// Whether a call may go now; if not, how long until one may.
    pub(crate) fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        let Some(until) = self.open_until else {
            return Ok(());
        };
        if now < until {
            return Err(until - now);
        }
        // Half-open: one trial at a time. A trial that never reported (its
        // caller went away) is given up after a cool-down.
        match self.trial {
            Some(started) if now < started + self.cooldown => Err(started + self.cooldown - now),
            _ => {
                self.trial = Some(now);
                Ok(())
            }
        }
    }

    /// The adapter answered.
    pub(crate) fn success(&mut self) {
        self.failures = 0;
        self.open_until = None;
        self.trial = None;
    }

    /// The adapter failed or did not answer in time.
    pub(crate) fn failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        self.trial = None;
        if self.open_until.is_some() || self.failures >= self.threshold {
            self.open_until = Some(now + self.cooldown);
        }
    }

    /// Whether calls are going through (closed).
    pub(crate) fn is_closed(&self) -> bool {
        self.open_until.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(1);

    #[test]
    fn opens_after_the_threshold_and_a_trial_decides() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, COOL);
        for _ in 0..2 {
            assert!(b.admit(t0).is_ok());
            b.failure(t0);
        }
        assert!(b.is_closed(), "two failures keep it closed");
        b.admit(t0).unwrap();
        b.failure(t0);
        assert!(!b.is_closed());
        assert_eq!(
            b.admit(t0 + Duration::from_millis(400)),
            Err(Duration::from_millis(600))
        );
        // Cool-down over: one trial, the next caller waits.
        let t1 = t0 + COOL;
        assert!(b.admit(t1).is_ok());
        assert!(b.admit(t1).is_err());
        // The trial fails: open again for a whole cool-down.
        b.failure(t1);
        assert!(b.admit(t1 + Duration::from_millis(999)).is_err());
        let t2 = t1 + COOL;
        assert!(b.admit(t2).is_ok());
        b.success();
        assert!(b.is_closed());
        assert!(b.admit(t2).is_ok() && b.admit(t2).is_ok());
    }

    #[test]
    fn a_success_resets_the_count_and_a_lost_trial_is_given_up() {
        let t0 = Instant::now();
        let mut b = Breaker::new(2, COOL);
        b.failure(t0);
        b.success();
        b.failure(t0);
        assert!(b.is_closed(), "failures must be in a row");
        b.failure(t0);
        let t1 = t0 + COOL;
        assert!(b.admit(t1).is_ok());
        // The trial's caller went away without a report.
        assert!(b.admit(t1 + COOL / 2).is_err());
        assert!(b.admit(t1 + COOL).is_ok());
    }
}
