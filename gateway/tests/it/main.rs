//! Integration tests of the gateway: real servers on 127.0.0.1:0 over mutual
//! TLS with certificates made at test time, a real SQLite registry seeded
//! with the synthetic population, and the real `lienthong` binary.

mod support;

mod batch;
mod cli;
mod exchange;
mod tls;
