//! End-to-end tests of the whole system (gateway, adapters, RabbitMQ) live here
//! once there is more than the gateway; the gateway's own tests are in `gateway/tests/it`.
#![forbid(unsafe_code)]
