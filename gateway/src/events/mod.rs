//! Population change events: their message format and the relay that
//! publishes the outbox to RabbitMQ.
//!
//! [`message`] makes one outbox row the contract's [`EventMessage`], without
//! any AMQP type; [`OutboxRelay`] (the only code that speaks AMQP) publishes
//! those in `seq` order with publisher confirms and marks rows published
//! once confirmed.

mod message;
mod relay;

pub use lienthong_proto::event::{EVENT_SOURCE, EXCHANGE, EventMessage};
pub use message::message;
pub use relay::{OutboxRelay, RelayConfig, RelayStatus, amqp_properties};
