//! The consent book in the embedded registry: the `consent` table.

use lienthong_proto::Pid;
use rusqlite::{OptionalExtension, params};

use super::SqliteRegistry;
use super::{ConsentBook, StoredConsent};
use crate::error::Result;

impl ConsentBook for SqliteRegistry {
    fn insert(&self, c: &StoredConsent) -> Result<()> {
        self.with_writer(|conn| {
            conn.prepare_cached(
                "INSERT INTO consent (id, pid, agency, purpose, fields, issued_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                c.id,
                c.pid.as_u64() as i64,
                c.agency,
                c.purpose,
                c.fields,
                c.issued_at,
                c.expires_at
            ])?;
            Ok(())
        })
    }

    fn revoke(&self, pid: Pid, id: &str, at: &str) -> Result<Option<String>> {
        self.with_writer(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE consent SET revoked_at = ?1
                 WHERE id = ?2 AND pid = ?3 AND revoked_at IS NULL",
                params![at, id, pid.as_u64() as i64],
            )?;
            let revoked: Option<Option<String>> = tx
                .query_row(
                    "SELECT revoked_at FROM consent WHERE id = ?1 AND pid = ?2",
                    params![id, pid.as_u64() as i64],
                    |r| r.get(0),
                )
                .optional()?;
            tx.commit()?;
            Ok(revoked.flatten())
        })
    }

    fn is_revoked(&self, id: &str) -> Result<Option<bool>> {
        self.with_reader(|conn| {
            let revoked: Option<Option<String>> = conn
                .prepare_cached("SELECT revoked_at FROM consent WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?;
            Ok(revoked.map(|at| at.is_some()))
        })
    }
}
