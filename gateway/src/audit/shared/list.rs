//! A citizen's accesses across every replica's chain, for `ListAccesses`.
//!
//! ```text
//! audit_pid (pid, at)  ──▶  audit_record (node, seq, period)
//!   newest first: at < the page token, one index range a month
//! ```
//!
//! `at` is the cluster-wide order: the database hands it out as records are
//! inserted, so a citizen's accesses through every replica interleave as
//! they were committed. A page costs one index range in each month's
//! partition plus one row look-up an access shown: it does not grow with
//! the log, only with the months kept attached. An access is listed as soon
//! as its answer has left, since the answer waits for the commit that
//! inserts its record and its index rows together.

use std::sync::Arc;

use lienthong_proto::Pid;

use super::super::record::outcome_for;
use super::super::{CITIZEN_OPERATIONS, Decision, StoredAccess};
use crate::error::Result;
use crate::registry::postgres::pool::Pool;

const PAGE: &str = "SELECT p.at, r.node, r.seq, r.time, r.agency, r.operation, r.purpose,
        r.fields, r.decision, r.outcome, r.pids
 FROM audit_pid p
 JOIN audit_record r ON r.node = p.node AND r.seq = p.seq AND r.period = p.period
 WHERE p.pid = $1 AND p.at < $2
   AND (r.hidden_until IS NULL OR r.hidden_until <= $3)
   AND NOT (r.decision = 'granted' AND r.operation = ANY($4))
 ORDER BY p.at DESC
 LIMIT $5";

/// Reads the shared audit log for `ListAccesses`.
#[derive(Clone)]
pub struct SharedAccesses {
    pool: Arc<Pool>,
}

impl SharedAccesses {
    pub(super) fn new(pool: Arc<Pool>) -> Self {
        Self { pool }
    }

    /// Up to `limit` accesses to `pid` ordered before `before` (a previous
    /// page's token), newest first, leaving out records hidden at `now` and
    /// the citizen's own granted acts. Blocks on the network.
    pub(crate) fn page(
        &self,
        pid: Pid,
        before: u64,
        limit: usize,
        now: &str,
    ) -> Result<Vec<StoredAccess>> {
        let own: Vec<&str> = CITIZEN_OPERATIONS.to_vec();
        let rows = self.pool.with_client(|client| {
            Ok(client.query(
                PAGE,
                &[
                    &(pid.as_u64() as i64),
                    &(before.min(i64::MAX as u64) as i64),
                    &now,
                    &own,
                    &(limit as i64),
                ],
            )?)
        })?;
        let wanted = pid.to_string();
        Ok(rows
            .iter()
            .map(|row| {
                let (operation, outcome, pids): (&str, &str, &str) =
                    (row.get(5), row.get(9), row.get(10));
                StoredAccess {
                    order: row.get::<_, i64>(0) as u64,
                    node: row.get(1),
                    seq: row.get::<_, i64>(2) as u64,
                    time: row.get(3),
                    agency: row.get(4),
                    outcome: outcome_for(operation, pids, outcome, &wanted).to_owned(),
                    operation: operation.to_owned(),
                    purpose: row.get(6),
                    fields: row.get(7),
                    decision: Decision::parse(row.get(8)).unwrap_or(Decision::Refused),
                }
            })
            .collect())
    }
}
