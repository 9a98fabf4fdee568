//! The benches' no-audit baseline: a trail that takes every record and
//! keeps none, to measure what the audit costs. Only the benches have it;
//! `lienthong serve` audits every request.

use lienthong_gateway::audit::{AuditEntry, AuditTrail, Pending};

/// Records nothing.
pub struct NoAudit;

impl AuditTrail for NoAudit {
    fn append(&self, _: Vec<AuditEntry>) -> Pending<'_> {
        Box::pin(std::future::ready(Ok(0)))
    }
}
