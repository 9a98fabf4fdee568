//! Daily quotas that hold for a cluster: each replica leases blocks of an
//! agency's quota day from the registry's [`QuotaLedger`] and counts its
//! requests against its block in memory.
//!
//! ```text
//! ledger (registry)      quota_day(agency, day) leased <= daily_quota
//!        │ lease(need,   one at a time per agency and replica; the ledger
//!        ▼       want)   grants up to `want` of what is left, none if
//!                        fewer than `need` (the call's own) are left
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
//! elsewhere) is less than one block a replica, refused though not used.
//! A batch larger than what is left gets nothing, leaving it to smaller
//! calls. A quota under 128 is leased a request at a time, exactly. A
//! policy raising the quota leases again; lowering it stops new leases.
//!
//! While the ledger cannot be reached an agency goes on for at most one
//! block on credit, then gets `STORE_UNAVAILABLE` at once (the ledger is
//! asked again a second after it failed): a database outage neither stops
//! verification nor lifts the quota. The credit is charged with this
//! replica's next lease that day; credit of a day that ends, or of a
//! replica that stops first, is not charged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::blocking::off_runtime;
use crate::error::Error;
use crate::registry::QuotaLedger;

/// The largest block a replica leases at once.
pub(crate) const MAX_BLOCK: u64 = 1024;

/// How long after a failed lease the ledger is asked again; until then an
/// agency past its credit gets `STORE_UNAVAILABLE` at once.
const LEDGER_RETRY: Duration = Duration::from_secs(1);

/// Leases one call may take, when calls counted meanwhile used up the
/// last one.
const LEASES_A_CALL: usize = 3;

/// The block a replica leases of `quota`.
pub(crate) fn block(quota: u64) -> u64 {
    (quota / 64).clamp(1, MAX_BLOCK)
}

/// Every agency's allowance on this replica.
pub(super) struct DailyQuotas {
    ledger: Arc<dyn QuotaLedger>,
    agencies: Mutex<HashMap<String, Arc<Allowance>>>,
    /// Until when the ledger is not asked: [`LEDGER_RETRY`] after it last
    /// failed.
    ledger_down_until: Arc<Mutex<Option<Instant>>>,
}

/// One agency's allowance: its count, and the gate its leases pass one at
/// a time (held by the task that leases, so a call that goes away does not
/// let a second lease start, nor lose what the first one got).
struct Allowance {
    held: Mutex<Held>,
    leasing: Arc<tokio::sync::Mutex<()>>,
}

/// What this replica holds of one agency's quota day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Held {
    pub(super) day: u64,
    /// Leased and not yet counted.
    pub(super) left: u64,
    /// The quota for which the ledger had no more today.
    pub(super) spent_at: Option<u64>,
    /// The quota, and the least the ledger could not grant for it today
    /// (a batch larger than what is left): as many or more are refused
    /// without asking again.
    pub(super) short_at: Option<(u64, u64)>,
    /// Counted while the ledger could not be reached, not yet leased: paid
    /// from this replica's next lease that day.
    pub(super) credit: u64,
}

/// What a replica can decide without the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Counted.
    Counted,
    /// The day's quota cannot cover the call.
    Spent,
    /// The ledger is down and the credit used up.
    Unavailable,
    /// The ledger must grant at least `need`; a block, `want`, is asked.
    Lease { need: u64, want: u64 },
}

impl Held {
    /// Counts `n` requests on `day` against what is held of `quota`, or says
    /// what is missing. While `ledger_down`, one block goes on credit.
    pub(super) fn decide(&mut self, day: u64, quota: u64, n: u64, ledger_down: bool) -> Decision {
        // A call that read the clock before midnight counts against the
        // new day rather than take the replica back to the old one.
        if day > self.day {
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
        let need = n - self.left + self.credit;
        if let Some((at, short)) = self.short_at
            && at == quota
            && need >= short
        {
            return Decision::Spent;
        }
        if ledger_down {
            if self.credit + n <= block(quota) {
                self.credit += n;
                return Decision::Counted;
            }
            return Decision::Unavailable;
        }
        Decision::Lease {
            need,
            want: need.max(block(quota)),
        }
    }

    /// Takes in what the ledger granted, asked for at least `need` and at
    /// most `want`: the credit is paid first.
    pub(super) fn granted(&mut self, quota: u64, need: u64, want: u64, granted: u64) {
        if granted == 0 {
            self.short_at = Some((quota, need));
            return;
        }
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
            ledger_down_until: Arc::new(Mutex::new(None)),
        }
    }

    fn allowance(&self, agency: &str) -> Arc<Allowance> {
        let mut agencies = self.agencies.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = agencies.get(agency) {
            return a.clone();
        }
        let a = Arc::new(Allowance {
            held: Mutex::new(Held::default()),
            leasing: Arc::new(tokio::sync::Mutex::new(())),
        });
        agencies.insert(agency.to_owned(), a.clone());
        a
    }

    /// Counts `n` requests of `agency` on `day` against `quota` if that
    /// needs no lease: `Ok(false)` when the day cannot cover them; `None`
    /// when a lease is needed.
    pub(super) fn count_now(
        &self,
        agency: &str,
        day: u64,
        quota: u64,
        n: u64,
    ) -> Option<Result<bool, Error>> {
        let allowance = self.allowance(agency);
        let mut held = allowance.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.decide(day, quota, n, ledger_down(&self.ledger_down_until)) {
            Decision::Counted => Some(Ok(true)),
            Decision::Spent => Some(Ok(false)),
            Decision::Unavailable => Some(Err(Error::QuotaLedgerDown)),
            Decision::Lease { .. } => None,
        }
    }

    /// Counts `n` requests of `agency` on `day` against `quota`, leasing
    /// from the ledger as needed: `Ok(false)` when the day cannot cover
    /// them. The lease runs in a task of its own, which holds the agency's
    /// gate and keeps what the ledger granted even if this call goes away.
    pub(super) async fn count(
        &self,
        agency: &str,
        day: u64,
        quota: u64,
        n: u64,
    ) -> Result<bool, Error> {
        let allowance = self.allowance(agency);
        let ledger = self.ledger.clone();
        let down = self.ledger_down_until.clone();
        let agency = agency.to_owned();
        tokio::spawn(async move {
            let _leasing = allowance.leasing.clone().lock_owned().await;
            for _ in 0..LEASES_A_CALL {
                let (need, want) = {
                    let mut held = allowance.held.lock().unwrap_or_else(|e| e.into_inner());
                    match held.decide(day, quota, n, ledger_down(&down)) {
                        Decision::Counted => return Ok(true),
                        Decision::Spent => return Ok(false),
                        Decision::Unavailable => return Err(Error::QuotaLedgerDown),
                        Decision::Lease { need, want } => (need, want),
                    }
                };
                let (ledger, name) = (ledger.clone(), agency.clone());
                let leased = off_runtime(move || ledger.lease(&name, day, quota, need, want)).await;
                let mut held = allowance.held.lock().unwrap_or_else(|e| e.into_inner());
                match leased {
                    Ok(granted) => held.granted(quota, need, want, granted),
                    Err(e) => {
                        tracing::warn!(agency, error = %e, "the quota ledger did not answer; one block on credit");
                        *down.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(Instant::now() + LEDGER_RETRY);
                    }
                }
            }
            // Calls counted meanwhile took every block leased for this one.
            Err(Error::QuotaLedgerDown)
        })
        .await
        .map_err(|_| Error::Task)?
    }

    /// Forgets the ledger's last failure (tests: as if [`LEDGER_RETRY`]
    /// had passed).
    #[cfg(test)]
    fn ledger_back(&self) {
        *self.ledger_down_until.lock().unwrap() = None;
    }
}

/// Whether the ledger failed within the last [`LEDGER_RETRY`].
fn ledger_down(until: &Mutex<Option<Instant>>) -> bool {
    until
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_some_and(|until| Instant::now() < until)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::SqliteRegistry;

    #[test]
    fn a_replica_counts_its_block_then_leases_the_next() {
        let mut held = Held::default();
        // Quota 640: blocks of 10, the call that asked among them.
        let first = Decision::Lease { need: 1, want: 10 };
        assert_eq!(held.decide(7, 640, 1, false), first);
        held.granted(640, 1, 10, 10);
        for _ in 0..10 {
            assert_eq!(held.decide(7, 640, 1, false), Decision::Counted);
        }
        assert_eq!(held.left, 0);
        // A batch of 25 needs all of itself; the ledger had 20: refused,
        // and so is any call as large, without asking again.
        let batch = Decision::Lease { need: 25, want: 25 };
        assert_eq!(held.decide(7, 640, 25, false), batch);
        held.granted(640, 25, 25, 0);
        assert_eq!(held.decide(7, 640, 30, false), Decision::Spent);
        // A smaller call leases a block; what the ledger had left, less
        // than a block, spends the day.
        assert_eq!(held.decide(7, 640, 1, false), first);
        held.granted(640, 1, 10, 4);
        for _ in 0..4 {
            assert_eq!(held.decide(7, 640, 1, false), Decision::Counted);
        }
        assert_eq!(held.decide(7, 640, 1, false), Decision::Spent);
        // A raised quota leases again; a new day starts from nothing, and
        // a call still on the old day counts against the new one.
        let raised = Decision::Lease { need: 1, want: 20 };
        assert_eq!(held.decide(7, 1280, 1, false), raised);
        assert_eq!(held.decide(8, 640, 1, false), first);
        held.granted(640, 1, 10, 10);
        assert_eq!(held.decide(7, 640, 1, false), Decision::Counted);
        assert_eq!((held.day, held.left), (8, 9));
        // A quota under 128 is leased a request at a time.
        let one = Decision::Lease { need: 1, want: 1 };
        assert_eq!(Held::default().decide(8, 127, 1, false), one);
    }

    #[test]
    fn credit_lasts_one_block_and_is_paid_first() {
        let mut held = Held::default();
        for _ in 0..10 {
            assert_eq!(held.decide(7, 640, 1, true), Decision::Counted);
        }
        assert_eq!(held.decide(7, 640, 1, true), Decision::Unavailable);
        let lease = Decision::Lease { need: 11, want: 11 };
        assert_eq!(held.decide(7, 640, 1, false), lease);
        held.granted(640, 11, 11, 11);
        assert_eq!((held.credit, held.left), (0, 1));
    }

    #[test]
    fn blocks_are_a_64th_of_the_quota_within_bounds() {
        assert_eq!(block(1), 1);
        assert_eq!(block(640), 10);
        assert_eq!(block(10_000_000), MAX_BLOCK);
    }

    /// Two replicas over one real registry, counting single calls and
    /// batches in turns until both refuse: together they count the quota
    /// exactly, blocks of 10 and all.
    #[tokio::test]
    async fn replicas_count_exactly_the_quota_between_them() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn QuotaLedger> =
            Arc::new(SqliteRegistry::open(dir.path().join("registry.db")).unwrap());
        let replicas = [DailyQuotas::new(store.clone()), DailyQuotas::new(store)];
        let mut counted = 0;
        let mut refused = [false; 2];
        let mut i = 0;
        while refused != [true; 2] {
            let r = i % 2;
            let n = if i % 7 == 0 { 13 } else { 1 };
            i += 1;
            let ok = match replicas[r].count_now("bank", 7, 640, n) {
                Some(counted) => counted.unwrap(),
                None => replicas[r].count("bank", 7, 640, n).await.unwrap(),
            };
            if ok {
                counted += n;
                refused = [false; 2];
            } else if n == 1 {
                refused[r] = true;
            }
        }
        assert_eq!(counted, 640);
    }

    /// With the registry failing, a replica goes on for one block on
    /// credit, then refuses at once; once the registry answers again, the
    /// credit is leased before anything else.
    #[tokio::test]
    async fn a_failing_ledger_gives_one_block_on_credit_then_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        let store: Arc<dyn QuotaLedger> = Arc::new(SqliteRegistry::open(&path).unwrap());
        let quotas = DailyQuotas::new(store.clone());
        assert!(quotas.count("bank", 7, 640, 1).await.unwrap());
        let other = rusqlite::Connection::open(&path).unwrap();
        other
            .execute_batch("ALTER TABLE quota_day RENAME TO away")
            .unwrap();
        for _ in 0..9 {
            assert!(quotas.count_now("bank", 7, 640, 1).unwrap().unwrap());
        }
        // The block is used up: the ledger fails, ten more go on credit.
        assert!(quotas.count("bank", 7, 640, 1).await.unwrap());
        for _ in 0..9 {
            assert!(quotas.count_now("bank", 7, 640, 1).unwrap().unwrap());
        }
        let refused = quotas.count_now("bank", 7, 640, 1).unwrap().unwrap_err();
        assert!(matches!(refused, Error::QuotaLedgerDown), "{refused}");
        // Back: the ten on credit and a block are leased together.
        other
            .execute_batch("ALTER TABLE away RENAME TO quota_day")
            .unwrap();
        quotas.ledger_back();
        assert!(quotas.count("bank", 7, 640, 1).await.unwrap());
        let leased: i64 = other
            .query_row(
                "SELECT leased FROM quota_day WHERE agency = 'bank'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(leased, 10 + 11);
    }
}
