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
    /// The ledger must be asked.
    Lease(Lease),
}

/// A lease to ask the ledger for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lease {
    /// The quota day it is of (the replica's, which a call that read the
    /// clock before midnight may be behind).
    pub(super) day: u64,
    /// The call's own requests: less is of no use to it.
    pub(super) need: u64,
    /// What is asked: the call, the credit owed, or a block if more.
    pub(super) want: u64,
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
        let need = n - self.left;
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
        Decision::Lease(Lease {
            day: self.day,
            need,
            want: (need + self.credit).max(block(quota)),
        })
    }

    /// Takes in what the ledger granted for `lease` of `quota` — the credit
    /// is paid first — and counts the `n` requests of the call that asked,
    /// if it still waits: whether they were counted. `None` when the
    /// replica has moved to another day meanwhile (the grant is of no use),
    /// or when no call waits.
    pub(super) fn granted(
        &mut self,
        lease: Lease,
        quota: u64,
        granted: u64,
        n: Option<u64>,
    ) -> Option<bool> {
        if lease.day != self.day {
            return None;
        }
        if granted == 0 {
            self.short_at = Some((quota, lease.need));
            return Some(false);
        }
        let paid = granted.min(self.credit);
        self.credit -= paid;
        self.left += granted - paid;
        if granted < lease.want {
            self.spent_at = Some(quota);
        }
        let n = n?;
        let counted = self.left >= n;
        if counted {
            self.left -= n;
        }
        Some(counted)
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
            Decision::Lease(_) => None,
        }
    }

    /// Counts `n` requests of `agency` on `day` against `quota`, leasing
    /// from the ledger as needed: `Ok(false)` when the day cannot cover
    /// them. Leases of an agency pass its gate one at a time; a lease runs
    /// in a task of its own, which keeps the gate and what the ledger
    /// granted even if this call goes away (its requests then not counted).
    pub(super) async fn count(
        &self,
        agency: &str,
        day: u64,
        quota: u64,
        n: u64,
    ) -> Result<bool, Error> {
        let allowance = self.allowance(agency);
        for _ in 0..LEASES_A_CALL {
            let gate = allowance.leasing.clone().lock_owned().await;
            let lease = {
                let mut held = allowance.held.lock().unwrap_or_else(|e| e.into_inner());
                match held.decide(day, quota, n, ledger_down(&self.ledger_down_until)) {
                    Decision::Counted => return Ok(true),
                    Decision::Spent => return Ok(false),
                    Decision::Unavailable => return Err(Error::QuotaLedgerDown),
                    Decision::Lease(lease) => lease,
                }
            };
            let (reply, answer) = tokio::sync::oneshot::channel();
            let (ledger, down) = (self.ledger.clone(), self.ledger_down_until.clone());
            let (allowance, name) = (allowance.clone(), agency.to_owned());
            tokio::spawn(async move {
                let _gate = gate;
                let asked = name.clone();
                let leased = off_runtime(move || {
                    ledger.lease(&asked, lease.day, quota, lease.need, lease.want)
                })
                .await;
                let mut held = allowance.held.lock().unwrap_or_else(|e| e.into_inner());
                match leased {
                    Ok(granted) => {
                        let waiting = (!reply.is_closed()).then_some(n);
                        let _ = reply.send(held.granted(lease, quota, granted, waiting));
                    }
                    Err(e) => {
                        tracing::warn!(agency = name, error = %e, "the quota ledger did not answer; one block on credit");
                        *down.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(Instant::now() + LEDGER_RETRY);
                        let _ = reply.send(None);
                    }
                }
            });
            // `None`: the ledger failed (decided again, on credit), or the
            // replica moved to another day (decided again, on that day).
            if let Some(counted) = answer.await.map_err(|_| Error::Task)? {
                return Ok(counted);
            }
        }
        Err(Error::QuotaLedgerDown)
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

    fn lease(day: u64, need: u64, want: u64) -> Lease {
        Lease { day, need, want }
    }

    #[test]
    fn a_replica_counts_its_block_then_leases_the_next() {
        let mut held = Held::default();
        // Quota 640: blocks of 10, the call that asked among them.
        assert_eq!(
            held.decide(7, 640, 1, false),
            Decision::Lease(lease(7, 1, 10))
        );
        assert_eq!(held.granted(lease(7, 1, 10), 640, 10, Some(1)), Some(true));
        for _ in 0..9 {
            assert_eq!(held.decide(7, 640, 1, false), Decision::Counted);
        }
        assert_eq!(held.left, 0);
        // A batch of 25 needs all of itself; the ledger had 20 and grants
        // none: refused, and so is any call as large, without asking again.
        assert_eq!(
            held.decide(7, 640, 25, false),
            Decision::Lease(lease(7, 25, 25))
        );
        assert_eq!(
            held.granted(lease(7, 25, 25), 640, 0, Some(25)),
            Some(false)
        );
        assert_eq!(held.decide(7, 640, 30, false), Decision::Spent);
        // A smaller call leases a block; what the ledger had left, less
        // than a block, spends the day.
        assert_eq!(
            held.decide(7, 640, 1, false),
            Decision::Lease(lease(7, 1, 10))
        );
        assert_eq!(held.granted(lease(7, 1, 10), 640, 4, Some(1)), Some(true));
        for _ in 0..3 {
            assert_eq!(held.decide(7, 640, 1, false), Decision::Counted);
        }
        assert_eq!(held.decide(7, 640, 1, false), Decision::Spent);
        // A raised quota leases again.
        assert_eq!(
            held.decide(7, 1280, 1, false),
            Decision::Lease(lease(7, 1, 20))
        );
        // A quota under 128 is leased a request at a time.
        assert_eq!(
            Held::default().decide(8, 127, 1, false),
            Decision::Lease(lease(8, 1, 1))
        );
    }

    #[test]
    fn midnight_moves_a_replica_forward_only() {
        let mut held = Held::default();
        assert_eq!(
            held.decide(7, 640, 1, false),
            Decision::Lease(lease(7, 1, 10))
        );
        // The next day begins while that lease is out: its grant is of no
        // use on day 8, and counts nothing there.
        assert_eq!(
            held.decide(8, 640, 1, false),
            Decision::Lease(lease(8, 1, 10))
        );
        assert_eq!(held.granted(lease(7, 1, 10), 640, 0, Some(1)), None);
        assert_eq!(held.short_at, None);
        assert_eq!(held.granted(lease(8, 1, 10), 640, 10, Some(1)), Some(true));
        // A call that read the clock before midnight counts against day 8.
        assert_eq!(held.decide(7, 640, 1, false), Decision::Counted);
        assert_eq!((held.day, held.left), (8, 8));
        // A caller gone before its lease came back: the block is kept,
        // nothing counted for it.
        for _ in 0..8 {
            assert_eq!(held.decide(8, 640, 1, false), Decision::Counted);
        }
        assert_eq!(held.granted(lease(8, 1, 10), 640, 10, None), None);
        assert_eq!(held.left, 10);
    }

    #[test]
    fn credit_lasts_one_block_and_is_paid_first() {
        let mut held = Held::default();
        for _ in 0..10 {
            assert_eq!(held.decide(7, 640, 1, true), Decision::Counted);
        }
        assert_eq!(held.decide(7, 640, 1, true), Decision::Unavailable);
        // Back: the call needs 1, and the credit of 10 is asked with it.
        assert_eq!(
            held.decide(7, 640, 1, false),
            Decision::Lease(lease(7, 1, 11))
        );
        assert_eq!(held.granted(lease(7, 1, 11), 640, 11, Some(1)), Some(true));
        assert_eq!((held.credit, held.left), (0, 0));
        // With less left than the credit, what is left pays it and the
        // call is refused: the cluster stays within the quota.
        let mut held = Held::default();
        for _ in 0..10 {
            assert_eq!(held.decide(7, 640, 1, true), Decision::Counted);
        }
        assert_eq!(held.granted(lease(7, 1, 11), 640, 6, Some(1)), Some(false));
        assert_eq!((held.credit, held.left, held.spent_at), (4, 0, Some(640)));
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
