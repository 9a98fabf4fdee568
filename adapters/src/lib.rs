//! Sector adapters for lienthong.
//!
//! - [`telecom`]: the SIM-subscriber base, its synthetic generator with known
//!   truth, and the verification job that re-verifies a whole base through
//!   the gateway's `VerifyBatch`.
//!
//! The adapter framework and the five sector services arrive with their own issue.
#![forbid(unsafe_code)]

pub mod error;
pub mod telecom;

pub use error::{Error, Result};
