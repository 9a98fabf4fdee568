//! One outbox row as the message the contract defines
//! (`lienthong_proto::event`, which draws the wire format).

use lienthong_proto::event::EventMessage;

use crate::registry::OutboxRow;

/// The message for `row`.
pub fn message(row: &OutboxRow) -> EventMessage {
    let e = &row.event;
    EventMessage::encode(row.seq, &e.id, &e.kind, e.pid, &e.occurred_at, &e.data)
}
