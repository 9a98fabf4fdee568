//! Connections that carry no call are closed after a while, on the
//! gateway's port and the adapters' alike.
//!
//! ```text
//! connection made ──▶ idle ──call opens──▶ busy ──last call ends──▶ idle ─┐
//!                      ▲                                                  │
//!                      └───────────────── the limit passes with no call ◀─┘
//!                                         → closed (its reads end)
//! ```
//!
//! A connection is idle while no call is open on it, counted from the end
//! of its last call or from its making — as gRPC's `MaxConnectionIdle`.
//! HTTP/2 pings and settings do not count, so a client cannot hold a
//! connection (and the memory behind it) by pinging. Two parts:
//!
//! - [`IdleClosing`] wraps the connection's socket, under TLS: once the
//!   limit has passed with no call, its reads end as if the client had
//!   closed, and HTTP/2 ends the connection (no GOAWAY is sent: tonic
//!   exposes none per connection). A call a client sends at that very
//!   moment fails with `UNAVAILABLE`; its channel connects again for the
//!   next one.
//! - [`OpenCallLayer`], a tower layer outermost on the server, holds an
//!   [`OpenCall`] from the moment the server takes a call until its answer
//!   has been sent or its client has gone (a stream, a health watch
//!   included, until it ends).

mod calls;
mod holding;
mod layer;
mod stream;

pub use calls::{OpenCall, OpenCalls};
pub use holding::Holding;
pub use layer::OpenCallLayer;
pub use stream::{IdleClosing, IdleConnectInfo};

/// Reads an idle limit in milliseconds, as the `--connection-idle-ms`
/// flags take it: 0 (never closed), or from 1,000 to 86,400,000. The clock
/// runs from the connection's making, its TLS handshake included, so a
/// shorter limit would cut handshakes.
pub fn parse_limit_ms(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(ms) if ms == 0 || (1_000..=86_400_000).contains(&ms) => Ok(ms),
        Ok(_) => Err("0 (never), or from 1000 to 86400000".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_limit_is_never_or_long_enough_for_a_handshake() {
        assert_eq!(super::parse_limit_ms("0"), Ok(0));
        assert_eq!(super::parse_limit_ms("1000"), Ok(1_000));
        assert_eq!(super::parse_limit_ms("86400000"), Ok(86_400_000));
        for refused in ["1", "999", "86400001", "-1", "soon"] {
            assert!(super::parse_limit_ms(refused).is_err(), "{refused}");
        }
    }
}
