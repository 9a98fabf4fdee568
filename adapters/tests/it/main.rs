//! Integration tests of the adapters: the SIM-verification job against a
//! real gateway on 127.0.0.1:0 over mutual TLS, and the real
//! `lienthong-adapter` binary killed and resumed.

mod sim_verify;
