//! Integration tests of the adapters: the SIM-verification job against a
//! real gateway on 127.0.0.1:0 over mutual TLS, the real `lienthong-adapter`
//! binary killed and resumed, one adapter run alone through the real
//! binary, and the compose file's adapter services run
//! through the real binary. The sector adapters with the gateway and
//! RabbitMQ are tested end to end in `tests/`.

mod alone;
mod docker;
mod sim_verify;
