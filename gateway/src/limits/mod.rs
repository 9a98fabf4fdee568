//! Per-agency request rates: a token bucket per agency, sized by the policy
//! in force.
//!
//! ```text
//! bucket: up to `burst` tokens, refilled at `requests_per_second`;
//!         a request takes one token, or is refused with the time until one
//! ```
//!
//! Each agency has its own bucket, so one agency over its limit never slows
//! another. A policy reload applies new sizes to the existing buckets.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::policy::{LivePolicy, RateLimit};

/// The request rates of every agency.
pub struct AgencyRates {
    policy: LivePolicy,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl AgencyRates {
    /// Rates as `policy` sets them.
    pub fn new(policy: LivePolicy) -> Self {
        Self {
            policy,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `agency`'s allowance, or says how long until
    /// one is available. Agencies without a limit (or not in the policy,
    /// which the services refuse anyway) are not counted.
    pub fn take(&self, agency: &str) -> Result<(), Duration> {
        let policy = self.policy.current();
        let Some(limit) = policy.agencies.get(agency).and_then(|a| a.rate_limit) else {
            return Ok(());
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(agency.to_owned()).or_insert(Bucket {
            tokens: limit.burst as f64,
            at: now,
        });
        take(bucket, limit, now)
    }
}

/// Refills `bucket` up to `now` and takes a token from it.
fn take(bucket: &mut Bucket, limit: RateLimit, now: Instant) -> Result<(), Duration> {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * limit.requests_per_second).min(limit.burst as f64);
    bucket.at = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        Ok(())
    } else {
        let wait = (1.0 - bucket.tokens) / limit.requests_per_second;
        Err(Duration::from_secs_f64(wait.min(86_400.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limit = RateLimit {
            requests_per_second: 10.0,
            burst: 3,
        };
        let t0 = Instant::now();
        let mut b = Bucket {
            tokens: 3.0,
            at: t0,
        };
        for _ in 0..3 {
            assert_eq!(take(&mut b, limit, t0), Ok(()));
        }
        let wait = take(&mut b, limit, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // A tenth of a second later, one more; a long pause refills to the burst only.
        assert_eq!(take(&mut b, limit, t0 + Duration::from_millis(100)), Ok(()));
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(take(&mut b, limit, later), Ok(()));
        }
        assert!(take(&mut b, limit, later).is_err());
    }
}
