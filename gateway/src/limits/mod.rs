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
//! Buckets are per replica; quota counts hold for every replica sharing
//! the registry ([`quota`]) and outlive a restart.

mod quota;
mod shares;

pub(crate) use shares::{Held, Shares};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::policy::{LivePolicy, RateLimit};
use crate::registry::QuotaLedger;
use quota::DailyQuotas;

/// Vietnam's offset from UTC, where quota days begin.
const DAY_OFFSET_SECS: u64 = 7 * 3600;
const DAY_SECS: u64 = 86_400;

/// The request rates and daily quotas of every agency.
pub struct AgencyRates {
    policy: LivePolicy,
    buckets: Mutex<HashMap<String, Bucket>>,
    quotas: DailyQuotas,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl AgencyRates {
    /// Rates as `policy` sets them, quotas counted in `ledger`.
    pub fn new(policy: LivePolicy, ledger: Arc<dyn QuotaLedger>) -> Self {
        Self {
            policy,
            buckets: Mutex::new(HashMap::new()),
            quotas: DailyQuotas::new(ledger),
        }
    }

    /// Takes one request from `agency`'s allowance, or refuses it with
    /// `RateLimited` or `QuotaExceeded` saying how long until one is
    /// available; `None` when the quota must be leased first
    /// ([`AgencyRates::charge`] for one request, the rate already taken).
    /// Agencies without limits (or not in the policy, which the services
    /// refuse anyway) are not counted.
    pub(crate) fn take_now(&self, agency: &str) -> Option<Result<(), Error>> {
        let policy = self.policy.current();
        let Some(a) = policy.agencies.get(agency) else {
            return Some(Ok(()));
        };
        if let Some(limit) = a.rate_limit {
            let now = Instant::now();
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            if !buckets.contains_key(agency) {
                let full = Bucket {
                    tokens: limit.burst as f64,
                    at: now,
                };
                buckets.insert(agency.to_owned(), full);
            }
            let bucket = buckets.get_mut(agency)?;
            if let Err(retry_after) = take(bucket, limit, now) {
                return Some(Err(Error::RateLimited {
                    agency: agency.to_owned(),
                    retry_after,
                }));
            }
        }
        let Some(quota) = a.daily_quota else {
            return Some(Ok(()));
        };
        let (day, until_midnight) = quota_day(unix_now());
        self.quotas
            .count_now(agency, day, quota, 1)
            .map(|counted| within(counted, agency, until_midnight))
    }

    /// Counts `requests` more from `agency` (a batch's claims) against its
    /// daily quota, all or none, or refuses them with `QuotaExceeded`.
    pub async fn charge(&self, agency: &str, requests: u64) -> Result<(), Error> {
        let Some(quota) = self
            .policy
            .current()
            .agencies
            .get(agency)
            .and_then(|a| a.daily_quota)
        else {
            return Ok(());
        };
        let (day, until_midnight) = quota_day(unix_now());
        let counted = match self.quotas.count_now(agency, day, quota, requests) {
            Some(counted) => counted,
            None => self.quotas.count(agency, day, quota, requests).await,
        };
        within(counted, agency, until_midnight)
    }
}

/// A count's outcome as the caller gets it: `QuotaExceeded` (retry at
/// midnight) when the day could not cover the requests.
fn within(
    counted: Result<bool, Error>,
    agency: &str,
    until_midnight: Duration,
) -> Result<(), Error> {
    match counted? {
        true => Ok(()),
        false => Err(Error::QuotaExceeded {
            agency: agency.to_owned(),
            retry_after: until_midnight,
        }),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The quota day (days since 1970-01-01 in Vietnam) at unix time `now`, and
/// the time until the next one.
fn quota_day(now: u64) -> (u64, Duration) {
    let local = now + DAY_OFFSET_SECS;
    (
        local / DAY_SECS,
        Duration::from_secs(DAY_SECS - local % DAY_SECS),
    )
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
        let (day, left) = quota_day(before_midnight);
        assert_eq!(left, Duration::from_secs(1));
        assert_eq!(quota_day(before_midnight - 3600).0, day);
        assert_eq!(
            quota_day(before_midnight + 1),
            (day + 1, Duration::from_secs(DAY_SECS))
        );
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
