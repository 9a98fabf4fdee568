//! The outbox as the event relay sees it: committed events in `seq` order,
//! marked published once the broker has confirmed them, purged after a
//! retention period.
//!
//! ```text
//! seq:  1 2 3 4 5 6 7 8 9
//!       P P P P . . . . .      P = published_at set (confirmed by the broker)
//!               ^ first unpublished: where a restarted relay resumes
//! ```

use super::OutboxEvent;
use crate::error::Result;

/// One committed event and its place in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Sequence number: gap-free, in commit order.
    pub seq: u64,
    /// The event.
    pub event: OutboxEvent,
}

/// How far the relay is behind the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxLag {
    /// Events committed and not yet confirmed by the broker.
    pub waiting: u64,
    /// When the oldest waiting event was recorded (RFC 3339), if any.
    pub oldest_waiting: Option<String>,
    /// The last committed sequence number (0 when none).
    pub last_seq: u64,
}

/// The outbox of a registry.
pub trait Outbox: Send + Sync + 'static {
    /// Up to `limit` unpublished events with `seq > after`, in `seq` order.
    fn unpublished(&self, after: u64, limit: usize) -> Result<Vec<OutboxRow>>;

    /// Marks events `from..=through` published at `at` (RFC 3339).
    fn mark_published(&self, from: u64, through: u64, at: &str) -> Result<()>;

    /// How many events wait, and since when.
    fn lag(&self) -> Result<OutboxLag>;

    /// Deletes published events recorded before `before` (RFC 3339); returns
    /// how many. Unpublished events are never purged.
    fn purge_published(&self, before: &str) -> Result<u64>;

    /// Takes (or keeps) the right to publish; whether this process holds
    /// it. One process at a time holds it: an outbox that several gateways
    /// share lets one of them, until it dies; an embedded one has one
    /// writer, which always does.
    fn try_lead(&self) -> Result<bool> {
        Ok(true)
    }

    /// Which replica publishes, for an outbox that several share; `None`
    /// for an embedded one, which the gateway serving it publishes.
    fn publisher(&self) -> Result<Option<Publisher>> {
        Ok(None)
    }
}

/// The replica that took the right to publish last, and whether it holds it
/// still.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// Its `--node-name`.
    pub node: String,
    /// When it took the right (RFC 3339 UTC).
    pub since: String,
    /// Whether it holds it now (a replica that died let it go).
    pub holding: bool,
}
