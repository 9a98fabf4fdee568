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
//!   closed, and HTTP/2 ends the connection. A client that sent a call at
//!   that very moment gets `UNAVAILABLE` and retries on a new connection.
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
