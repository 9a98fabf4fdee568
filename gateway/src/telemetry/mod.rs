//! Metrics in the Prometheus text format, on a port of their own.
//!
//! ```text
//! lienthong_requests_total{agency,operation,outcome}   counter: every audited
//!     request, and every claim of a batch; outcome is OK or the ErrorInfo
//!     reason (RATE_LIMITED counts the rate-limit refusals)
//! lienthong_request_duration_seconds{method}           histogram: from the
//!     request's arrival to its answer (for VerifyBatch, its first answer)
//! lienthong_audit_commit_seconds                       histogram: one group
//!     commit of the audit log, fsync included
//! lienthong_audit_records_total                        counter
//! lienthong_outbox_waiting                             gauge: events not yet
//!     confirmed by the broker
//! lienthong_outbox_oldest_waiting_seconds              gauge
//! lienthong_shed_total{reason}                         counter: calls refused
//!     at admission (OVERLOADED) or ended at the deadline (DEADLINE_EXCEEDED)
//! lienthong_projection_seq                             gauge: the outbox seq
//!     of the last registry write the verification projection holds
//! lienthong_outbox_last_seq                            gauge: the outbox's
//!     last committed seq (minus the projection's: how far it is behind)
//! lienthong_relay_leading                              gauge: 1 while this
//!     replica's relay publishes the outbox (one replica of a cluster)
//! ```
//!
//! Labels hold agency ids, operation and method names and reasons — never a
//! Pid, a name, a date or an address. The library records through the
//! `metrics` facade (a no-op until a recorder is installed); `serve`
//! installs the Prometheus recorder ([`install`]) and answers scrapes
//! ([`endpoint::serve_metrics`]).

pub use lienthong_adapters::telemetry::serve_metrics;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::error::{Error, Result};

/// Requests (and claims of a batch) by agency, operation and outcome.
pub const REQUESTS: &str = "lienthong_requests_total";
/// Time from a request's arrival to its answer, by gRPC method.
pub const REQUEST_DURATION: &str = "lienthong_request_duration_seconds";
/// One group commit of the audit log.
pub const AUDIT_COMMIT: &str = "lienthong_audit_commit_seconds";
/// Audit records appended.
pub const AUDIT_RECORDS: &str = "lienthong_audit_records_total";
/// Events waiting for the broker.
pub const OUTBOX_WAITING: &str = "lienthong_outbox_waiting";
/// Age of the oldest event waiting for the broker.
pub const OUTBOX_OLDEST: &str = "lienthong_outbox_oldest_waiting_seconds";

/// The outbox seq of the last registry write the verification projection holds.
pub const PROJECTION_SEQ: &str = "lienthong_projection_seq";
/// The outbox's last committed seq.
pub const OUTBOX_LAST_SEQ: &str = "lienthong_outbox_last_seq";
/// Whether this replica's relay publishes the outbox (1) or waits (0).
pub const RELAY_LEADING: &str = "lienthong_relay_leading";
/// Calls shed at admission or ended at the server's deadline, by reason.
pub const SHED: &str = "lienthong_shed_total";
/// Look-ups sent to a sector adapter, by sector and outcome.
pub const SECTOR_CALLS: &str = "lienthong_sector_calls_total";
/// Whether a sector adapter is taking calls (1) or its circuit is open (0).
pub const SECTOR_AVAILABLE: &str = "lienthong_sector_available";

/// Histogram buckets, in seconds: 0.5 ms to 10 s.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Installs the process-wide Prometheus recorder, every metric labelled
/// with this replica's `node` name, and describes the metrics; the handle
/// renders them. Call once per process.
pub fn install(node: &str) -> Result<PrometheusHandle> {
    let recorder = PrometheusBuilder::new()
        .add_global_label("node", node)
        .set_buckets(&BUCKETS)
        .map_err(|e| Error::Server(format!("metrics: {e}")))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|_| Error::Server("metrics: a recorder is already installed".into()))?;
    metrics::describe_counter!(
        REQUESTS,
        "Requests, and claims of a batch, by agency, operation and outcome (OK or the reason)"
    );
    metrics::describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time from a request's arrival to its answer, by gRPC method"
    );
    metrics::describe_histogram!(
        AUDIT_COMMIT,
        metrics::Unit::Seconds,
        "One group commit of the audit log, fsync included"
    );
    metrics::describe_counter!(AUDIT_RECORDS, "Audit records appended");
    // The adapters `lienthong up` runs in this process record here too.
    lienthong_adapters::telemetry::describe();
    metrics::describe_counter!(
        SHED,
        "Calls shed at admission (OVERLOADED) or ended at the server's deadline (DEADLINE_EXCEEDED)"
    );
    metrics::describe_counter!(
        SECTOR_CALLS,
        "Look-ups sent to a sector adapter, by sector and outcome (ok, not_found, failed, timeout, refused)"
    );
    metrics::describe_gauge!(
        SECTOR_AVAILABLE,
        "1 while a sector adapter takes calls, 0 while its circuit is open"
    );
    metrics::describe_gauge!(
        PROJECTION_SEQ,
        "The outbox seq of the last registry write the verification projection holds"
    );
    metrics::describe_gauge!(OUTBOX_WAITING, "Events not yet confirmed by the broker");
    metrics::describe_gauge!(OUTBOX_LAST_SEQ, "The outbox's last committed seq");
    metrics::describe_gauge!(
        RELAY_LEADING,
        "1 while this replica's relay publishes the outbox, 0 while it waits"
    );
    metrics::describe_gauge!(
        OUTBOX_OLDEST,
        metrics::Unit::Seconds,
        "Age of the oldest event waiting for the broker"
    );
    Ok(handle)
}
