//! Sector adapters for lienthong.
//!
//! - [`framework`]: what a sector adapter is made of — its store, its event
//!   queue with dead letters, its mTLS service for the gateway.
//! - [`sectors`]: the five sectors (social insurance, health, education,
//!   telecom, banking).
//! - [`telecom`]: the SIM-subscriber base, its synthetic generator with known
//!   truth, and the verification job that re-verifies a whole base through
//!   the gateway's `VerifyBatch`.
#![forbid(unsafe_code)]

pub mod error;
pub mod framework;
pub mod sectors;
pub mod telecom;

pub use error::{Error, Result};
