//! The monthly partitions of the shared audit log.
//!
//! ```text
//! audit_record_p2026_12  PARTITION OF audit_record
//!                        FOR VALUES FROM ('2026-12-01') TO ('2027-01-01')
//! audit_pid_p2026_12     PARTITION OF audit_pid, the same month
//! ```
//!
//! A month is the unit an operator archives: `ALTER TABLE … DETACH
//! PARTITION` takes it out without rewriting the rest. A chain crosses
//! months: the first record of a month names the last hash of the month
//! before (its `prev_hash`), and `audit_detached` keeps what each chain's
//! detached months ended with, so `audit verify` checks the join (see
//! [`super::verify`]). A month's partitions are created by the first
//! replica that writes in it (and the next month's ahead, at start), under
//! an advisory lock: replicas racing to create one do not fail.

use postgres::Client;

use crate::error::Result;

/// The month of `time` (RFC 3339), as the partition key: `YYYY-MM-01`.
pub(super) fn of(time: &str) -> String {
    format!("{}-01", time.get(..7).unwrap_or("1970-01"))
}

/// The month after `month` (`YYYY-MM-01`).
pub(super) fn after(month: &str) -> String {
    let year: u32 = month.get(..4).and_then(|y| y.parse().ok()).unwrap_or(1970);
    let m: u32 = month.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    match m {
        12 => format!("{:04}-01-01", year + 1),
        m => format!("{year:04}-{:02}-01", m + 1),
    }
}

/// Creates `month`'s partitions if they do not exist.
pub(super) fn ensure(client: &mut Client, month: &str) -> Result<()> {
    // Digits only reach the SQL text: `month` comes from `of` or `after`.
    let digits: String = month.chars().filter(char::is_ascii_digit).collect();
    let (Some(year), Some(m)) = (digits.get(..4), digits.get(4..6)) else {
        return Err(crate::error::Error::Audit(format!(
            "{month:?} is not a month"
        )));
    };
    let suffix = format!("p{year}_{m}");
    let end = after(month);
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('lienthong audit months ' || current_schema(), 0))",
        &[],
    )?;
    for table in ["audit_record", "audit_pid"] {
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table}_{suffix} PARTITION OF {table}
             FOR VALUES FROM ('{month}') TO ('{end}')"
        ))?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn months_follow_each_other_across_a_year() {
        assert_eq!(super::of("2026-12-03T21:11:00.000001Z"), "2026-12-01");
        assert_eq!(super::after("2026-12-01"), "2027-01-01");
        assert_eq!(super::after("2027-01-01"), "2027-02-01");
        assert_eq!(super::after("2027-09-01"), "2027-10-01");
    }
}
