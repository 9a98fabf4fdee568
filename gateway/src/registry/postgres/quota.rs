//! The daily quota counts in the shared registry: the `quota_day` table,
//! whose row for an agency's day is locked while a replica leases from it.

use super::PostgresRegistry;
use crate::error::Result;
use crate::registry::QuotaLedger;
use crate::registry::quota::{KEPT_DAYS, grantable};

impl QuotaLedger for PostgresRegistry {
    fn lease(&self, agency: &str, day: u64, quota: u64, need: u64, want: u64) -> Result<u64> {
        self.with_client(|client| {
            let mut tx = client.transaction()?;
            // The row exists before it is locked, so two replicas leasing
            // the first block of a day wait for each other.
            let inserted = tx.execute(
                "INSERT INTO quota_day (agency, day, leased) VALUES ($1, $2, 0)
                 ON CONFLICT (agency, day) DO NOTHING",
                &[&agency, &(day as i64)],
            )?;
            let leased: i64 = tx
                .query_one(
                    "SELECT leased FROM quota_day WHERE agency = $1 AND day = $2 FOR UPDATE",
                    &[&agency, &(day as i64)],
                )?
                .get(0);
            let granted = grantable(leased as u64, quota, need, want);
            if granted > 0 {
                tx.execute(
                    "UPDATE quota_day SET leased = leased + $3 WHERE agency = $1 AND day = $2",
                    &[&agency, &(day as i64), &(granted as i64)],
                )?;
            }
            if inserted == 1 {
                tx.execute(
                    "DELETE FROM quota_day WHERE day < $1",
                    &[&(day.saturating_sub(KEPT_DAYS) as i64)],
                )?;
            }
            tx.commit()?;
            Ok(granted)
        })
    }
}
