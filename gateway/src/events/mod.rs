//! Population change events: their message format and the relay that
//! publishes the outbox to RabbitMQ.
//!
//! [`EventMessage`] is what one outbox row becomes on the wire, without
//! any AMQP type; [`OutboxRelay`] (the only code that speaks AMQP) publishes
//! those in `seq` order with publisher confirms and marks rows published
//! once confirmed.

mod message;
mod relay;

pub use message::{EVENT_SOURCE, EXCHANGE, EventMessage};
pub use relay::{OutboxRelay, RelayConfig, RelayStatus, amqp_properties};
