//! The daily quota counts every replica draws from: how much of an
//! agency's quota day has been leased out, kept in the registry so that a
//! restart or a second replica does not start the count again.
//!
//! ```text
//! quota_day(agency, day, leased)   day = days since 1970-01-01 in Vietnam;
//!                                  leased <= the agency's daily_quota
//! ```
//!
//! A replica leases a block at a time ([`crate::limits`] sizes it) and
//! counts requests against its block in memory; the sum of every lease of
//! a day never passes the quota, so replicas together never give an agency
//! more than its quota.

use rusqlite::{OptionalExtension, params};

use super::SqliteRegistry;
use crate::error::Result;

/// Days a count is kept after its day, for operators to read.
pub(crate) const KEPT_DAYS: u64 = 31;

/// Where the daily quota counts are kept.
pub trait QuotaLedger: Send + Sync + 'static {
    /// Leases more requests of `agency`'s quota `day`, of which at most
    /// `quota` are ever leased in all: up to `want` of them, and nothing
    /// unless at least `need` are left; returns how many this call got.
    fn lease(&self, agency: &str, day: u64, quota: u64, need: u64, want: u64) -> Result<u64>;
}

/// How many may be leased when `leased` of `quota` are, at least `need`
/// (else none) and at most `want`.
pub(crate) fn grantable(leased: u64, quota: u64, need: u64, want: u64) -> u64 {
    let left = quota.saturating_sub(leased);
    if left < need.max(1) {
        0
    } else {
        want.min(left)
    }
}

impl QuotaLedger for SqliteRegistry {
    fn lease(&self, agency: &str, day: u64, quota: u64, need: u64, want: u64) -> Result<u64> {
        self.with_writer(|conn| {
            let tx = conn.transaction()?;
            let leased: u64 = tx
                .query_row(
                    "SELECT leased FROM quota_day WHERE agency = ?1 AND day = ?2",
                    params![agency, day as i64],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?
                .map_or(0, |n| n as u64);
            let granted = grantable(leased, quota, need, want);
            if granted > 0 {
                tx.execute(
                    "INSERT INTO quota_day (agency, day, leased) VALUES (?1, ?2, ?3)
                     ON CONFLICT (agency, day) DO UPDATE SET leased = excluded.leased",
                    params![agency, day as i64, (leased + granted) as i64],
                )?;
                tx.execute(
                    "DELETE FROM quota_day WHERE day < ?1",
                    [day.saturating_sub(KEPT_DAYS) as i64],
                )?;
            }
            tx.commit()?;
            Ok(granted)
        })
    }
}
