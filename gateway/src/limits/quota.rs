//! Daily quotas that hold for a cluster: each replica leases blocks of an
//! agency's quota day from the registry's [`QuotaLedger`] and counts its
//! requests against its block in memory.
//!
//! ```text
//! ledger (registry)      quota_day(agency, day) leased <= daily_quota
//!        │ lease(want)   one at a time per agency and replica; the ledger
//!        ▼               grants what is left of the quota, maybe less
//! replica                left: requests of its blocks not yet counted
//!                        spent: the ledger had no more for this quota
//! request                counted against `left` without a round trip;
//!                        a lease only when `left` runs out
//! ```
//!
//! A lease asks for a block, 1/64 of the quota and at most [`MAX_BLOCK`]
//! requests (or a batch's claims, when more): replicas together never give
//! an agency more than its quota; what they leased and did not use (a
//! replica stopped, or holding part of a block when the day ran out
//! elsewhere) is less than one block a replica, refused though not used. A
//! quota under 64 is leased a request at a time, exactly. A policy raising
//! the quota leases again; lowering it stops new leases.
//!
//! While the ledger cannot be reached an agency goes on for at most one
//! block on credit — charged to the ledger once it answers — then gets
//! `STORE_UNAVAILABLE` until it does: a database outage does not stop
//! verification, nor lifts the quota.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::blocking::off_runtime;
use crate::error::Error;
use crate::registry::QuotaLedger;

/// The largest block a replica leases at once.
pub(crate) const MAX_BLOCK: u64 = 1024;

/// How long after a failed lease the ledger is asked again.
const LEDGER_RETRY: Duration = Duration::from_secs(1);

/// The block a replica leases of `quota`.
pub(crate) fn block(quota: u64) -> u64 {
    (quota / 64).clamp(1, MAX_BLOCK)
}

/// Every agency's allowance on this replica.
pub(super) struct DailyQuotas {
    ledger: Arc<dyn QuotaLedger>,
    agencies: Mutex<HashMap<String, Arc<Allowance>>>,
    /// Until when requests go on on credit: [`LEDGER_RETRY`] after the
    /// ledger last failed.
    ledger_down_until: Mutex<Option<Instant>>,
}

/// One agency's allowance: its count, and the gate its leases pass one at
/// a time.
struct Allowance {
    held: Mutex<Held>,
    leasing: tokio::sync::Mutex<()>,
}

/// What this replica holds of one agency's quota day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Held {
    pub(super) day: u64,
    /// Leased and not yet counted.
    pub(super) left: u64,
    /// The quota for which the ledger had no more today.
    pub(super) spent_at: Option<u64>,
    /// Counted while the ledger could not be reached, not yet leased.
    pub(super) credit: u64,
}

/// What a replica can decide without the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Counted.
    Counted,
    /// The day's quota is used up.
    Spent,
    /// The ledger must be asked for `want` more.
    Lease { want: u64 },
}

impl Held {
    /// Counts `n` requests on `day` against what is held of `quota`, or says
    /// what is missing. `credit` allows going on without the ledger.
    pub(super) fn decide(&mut self, day: u64, quota: u64, n: u64, credit: bool) -> Decision {
        if self.day != day {
            *self = Held {
                day,
                ..Held::default()
            };
        }
        if self.left >= n {
            self.left -= n;
            return Decision::Counted;
        }
        if self.spent_at == Some(quota) {
            return Decision::Spent;
        }
        if credit && self.credit + n <= block(quota) {
            self.credit += n;
            return Decision::Counted;
        }
        Decision::Lease {
            want: (n - self.left + self.credit).max(block(quota)),
        }
    }

    /// Takes in what the ledger granted of `want`: the credit is paid first.
    pub(super) fn granted(&mut self, quota: u64, want: u64, granted: u64) {
        let paid = granted.min(self.credit);
        self.credit -= paid;
        self.left += granted - paid;
        if granted < want {
            self.spent_at = Some(quota);
        }
    }
}

impl DailyQuotas {
    pub(super) fn new(ledger: Arc<dyn QuotaLedger>) -> Self {
        Self {
            ledger,
            agencies: Mutex::new(HashMap::new()),
            ledger_down_until: Mutex::new(None),
        }
    }

    fn allowance(&self, agency: &str) -> Arc<Allowance> {
        let mut agencies = self.agencies.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = agencies.get(agency) {
            return a.clone();
        }
        let a = Arc::new(Allowance {
            held: Mutex::new(Held::default()),
            leasing: tokio::sync::Mutex::new(()),
        });
        agencies.insert(agency.to_owned(), a.clone());
        a
    }

    /// Counts `n` requests of `agency` on `day` against `quota` if that
    /// needs no lease: `None` when it does.
    pub(super) fn count_now(
        &self,
        agency: &str,
        day: u64,
        quota: u64,
        n: u64,
    ) -> Option<Result<(), ()>> {
        let allowance = self.allowance(agency);
        let mut held = allowance.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.decide(day, quota, n, self.ledger_down()) {
            Decision::Counted => Some(Ok(())),
            Decision::Spent => Some(Err(())),
            Decision::Lease { .. } => None,
        }
    }

    /// Counts `n` requests of `agency` on `day` against `quota`, leasing
    /// from the ledger as needed: `Ok(false)` when the day is used up.
    pub(super) async fn count(
        &self,
        agency: &str,
        day: u64,
        quota: u64,
        n: u64,
    ) -> Result<bool, Error> {
        let allowance = self.allowance(agency);
        let _leasing = allowance.leasing.lock().await;
        let want = {
            let mut held = allowance.held.lock().unwrap_or_else(|e| e.into_inner());
            match held.decide(day, quota, n, self.ledger_down()) {
                Decision::Counted => return Ok(true),
                Decision::Spent => return Ok(false),
                Decision::Lease { want } => want,
            }
        };
        let ledger = self.ledger.clone();
        let name = agency.to_owned();
        let leased = off_runtime(move || ledger.lease(&name, day, quota, want)).await;
        let mut held = allowance.held.lock().unwrap_or_else(|e| e.into_inner());
        match leased {
            Ok(granted) => held.granted(quota, want, granted),
            Err(e) => {
                tracing::warn!(agency, error = %e, "the quota ledger did not answer; counting on credit");
                *self
                    .ledger_down_until
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + LEDGER_RETRY);
                return match held.decide(day, quota, n, true) {
                    Decision::Counted => Ok(true),
                    Decision::Spent => Ok(false),
                    Decision::Lease { .. } => Err(e),
                };
            }
        }
        match held.decide(day, quota, n, false) {
            Decision::Counted => Ok(true),
            // Granted less than asked: the day is spent.
            Decision::Spent | Decision::Lease { .. } => Ok(false),
        }
    }

    /// Whether the ledger failed within the last [`LEDGER_RETRY`].
    fn ledger_down(&self) -> bool {
        self.ledger_down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|until| Instant::now() < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_counts_its_block_then_leases_the_next() {
        let mut held = Held::default();
        // Quota 640: blocks of 10, the call that asked among them.
        assert_eq!(held.decide(7, 640, 1, false), Decision::Lease { want: 10 });
        held.granted(640, 10, 10);
        for _ in 0..10 {
            assert_eq!(held.decide(7, 640, 1, false), Decision::Counted);
        }
        assert_eq!(held.left, 0);
        // A batch of 25 asks for itself.
        assert_eq!(held.decide(7, 640, 25, false), Decision::Lease { want: 25 });
        // The ledger had 20 left: the day is spent, the 20 kept for smaller calls.
        held.granted(640, 25, 20);
        assert_eq!(held.decide(7, 640, 25, false), Decision::Spent);
        assert_eq!(held.decide(7, 640, 20, false), Decision::Counted);
        assert_eq!(held.decide(7, 640, 1, false), Decision::Spent);
        // A raised quota leases again; a new day starts from nothing.
        assert_eq!(held.decide(7, 1280, 1, false), Decision::Lease { want: 20 });
        assert_eq!(held.decide(8, 640, 1, false), Decision::Lease { want: 10 });
        // A quota under 64 is leased a request at a time.
        assert_eq!(held.decide(8, 2, 1, false), Decision::Lease { want: 1 });
    }

    #[test]
    fn credit_lasts_one_block_and_is_paid_first() {
        let mut held = Held::default();
        for _ in 0..10 {
            assert_eq!(held.decide(7, 640, 1, true), Decision::Counted);
        }
        assert_eq!(held.decide(7, 640, 1, true), Decision::Lease { want: 11 });
        held.granted(640, 11, 11);
        assert_eq!((held.credit, held.left), (0, 1));
    }

    #[test]
    fn blocks_are_a_64th_of_the_quota_within_bounds() {
        assert_eq!(block(1), 1);
        assert_eq!(block(640), 10);
        assert_eq!(block(10_000_000), MAX_BLOCK);
    }
}
