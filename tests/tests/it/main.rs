//! End-to-end tests: the gateway and the five sector adapters, over mutual
//! TLS, with events through the local RabbitMQ (scripts/test.sh starts it).

mod events;
mod queries;
mod queues;
mod support;
