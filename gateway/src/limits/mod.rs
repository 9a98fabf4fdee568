//! Per-agency request rates and daily quotas, sized by the policy in force.
//!
//! ```text
//! bucket: up to `burst` tokens, refilled at `requests_per_second`;
//!         a request takes one token, or is refused with the time until one
//! quota:  `daily_quota` requests per calendar day in Vietnam (UTC+7);
//!         the count starts again at midnight; each claim of a
//!         VerifyBatch counts as one request (and the stream as one more)
//! ```
//!
//! Each agency has its own bucket and count, so one agency over its limit
//! never slows another. A policy reload applies new sizes to the existing
//! buckets. A request the rate refuses does not count against the quota.
//! Counts live in memory: a restart starts the day's count again.

mod shares;

pub(crate) use shares::{Held, Shares};

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::policy::{LivePolicy, RateLimit};

/// Vietnam's offset from UTC, where quota days begin.
const DAY_OFFSET_SECS: u64 = 7 * 3600;
const DAY_SECS: u64 = 86_400;

/// The request rates of every agency.
pub struct AgencyRates {
    policy: LivePolicy,
    buckets: Mutex<HashMap<String, Bucket>>,
    days: Mutex<HashMap<String, DayCount>>,
}

/// Requests counted on one quota day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DayCount {
    day: u64,
    used: u64,
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
            days: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `agency`'s allowance, or refuses it with
    /// `RateLimited` or `QuotaExceeded` saying how long until one is
    /// available. Agencies without limits (or not in the policy, which the
    /// services refuse anyway) are not counted.
    pub fn take(&self, agency: &str) -> Result<(), Error> {
        let policy = self.policy.current();
        let Some(a) = policy.agencies.get(agency) else {
            return Ok(());
        };
        if let Some(limit) = a.rate_limit {
            let now = Instant::now();
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            let bucket = buckets.entry(agency.to_owned()).or_insert(Bucket {
                tokens: limit.burst as f64,
                at: now,
            });
            take(bucket, limit, now).map_err(|retry_after| Error::RateLimited {
                agency: agency.to_owned(),
                retry_after,
            })?;
        }
        self.charge(agency, 1)
    }

    /// Counts `requests` more from `agency` (a batch's claims) against its
    /// daily quota, all or none, or refuses them with `QuotaExceeded`.
    pub fn charge(&self, agency: &str, requests: u64) -> Result<(), Error> {
        let policy = self.policy.current();
        let Some(quota) = policy.agencies.get(agency).and_then(|a| a.daily_quota) else {
            return Ok(());
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut days = self.days.lock().unwrap_or_else(|e| e.into_inner());
        let count = days
            .entry(agency.to_owned())
            .or_insert(DayCount { day: 0, used: 0 });
        count_many(count, quota, requests, now).map_err(|retry_after| Error::QuotaExceeded {
            agency: agency.to_owned(),
            retry_after,
        })
    }
}

/// Counts `n` requests at unix time `now` against `quota`, or says how long
/// until the next quota day.
fn count_many(count: &mut DayCount, quota: u64, n: u64, now: u64) -> Result<(), Duration> {
    let local = now + DAY_OFFSET_SECS;
    let day = local / DAY_SECS;
    if count.day != day {
        *count = DayCount { day, used: 0 };
    }
    if count.used.saturating_add(n) <= quota {
        count.used += n;
        Ok(())
    } else {
        Err(Duration::from_secs(DAY_SECS - local % DAY_SECS))
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
    fn a_quota_day_ends_at_midnight_in_vietnam() {
        // 2026-11-23T16:59:59Z is 23:59:59 in Hà Nội.
        let before_midnight = 1_795_453_199;
        let mut c = DayCount { day: 0, used: 0 };
        assert_eq!(count_many(&mut c, 2, 1, before_midnight - 60), Ok(()));
        assert_eq!(count_many(&mut c, 2, 1, before_midnight - 30), Ok(()));
        assert_eq!(
            count_many(&mut c, 2, 1, before_midnight),
            Err(Duration::from_secs(1))
        );
        assert_eq!(count_many(&mut c, 2, 1, before_midnight + 1), Ok(()));
        assert_eq!(c.used, 1);
    }

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
