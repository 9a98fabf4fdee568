//! End-to-end tests of the whole system: the gateway, the five sector
//! adapters and a real RabbitMQ, in `tests/it`. Each test starts its own
//! gateway and adapters on 127.0.0.1:0 with its own exchange and queues;
//! the gateway's own tests are in `gateway/tests/it`.
#![forbid(unsafe_code)]
