//! The consent book in the shared registry: the `consent` table.

use lienthong_proto::Pid;

use super::PostgresRegistry;
use crate::error::Result;
use crate::registry::{ConsentBook, StoredConsent};

impl ConsentBook for PostgresRegistry {
    fn insert(&self, c: &StoredConsent) -> Result<()> {
        self.with_client(|client| {
            client.execute(
                "INSERT INTO consent (id, pid, agency, purpose, fields, issued_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &c.id,
                    &(c.pid.as_u64() as i64),
                    &c.agency,
                    &c.purpose,
                    &c.fields,
                    &c.issued_at,
                    &c.expires_at,
                ],
            )?;
            Ok(())
        })
    }

    fn revoke(&self, pid: Pid, id: &str, at: &str) -> Result<Option<String>> {
        self.with_client(|client| {
            // One statement: the first revocation's time is kept, and read
            // back whether this call or an earlier one set it.
            let row = client.query_opt(
                "UPDATE consent SET revoked_at = coalesce(revoked_at, $1)
                 WHERE id = $2 AND pid = $3 RETURNING revoked_at",
                &[&at, &id, &(pid.as_u64() as i64)],
            )?;
            Ok(row.and_then(|r| r.get(0)))
        })
    }

    fn is_revoked(&self, id: &str) -> Result<Option<bool>> {
        self.with_client(|client| {
            let row = client.query_opt("SELECT revoked_at FROM consent WHERE id = $1", &[&id])?;
            Ok(row.map(|r| r.get::<_, Option<String>>(0).is_some()))
        })
    }
}
