//! Sector adapters for lienthong.
//!
//! - [`conformance`]: the kit that checks an adapter written in any
//!   language as the gateway will use it.
//! - [`framework`]: what a sector adapter is made of — its store, its event
//!   queue with dead letters, its mTLS service for the gateway.
//! - [`sectors`]: the five sectors (social insurance, health, education,
//!   telecom, banking).
//! - [`sim_job`]: the telecom operators' SIM re-verification job, a client
//!   of the gateway: the subscriber base, its synthetic generator with known
//!   truth, and the job that re-verifies a whole base through `VerifyBatch`
//!   (the telecom *adapter* is [`sectors`]' `telecom`).
//! - [`telemetry`]: the Prometheus scrape endpoint (the gateway's too) and
//!   the adapters' metrics.
#![forbid(unsafe_code)]

pub mod conformance;
pub mod error;
pub mod framework;
pub mod sectors;
pub mod sim_job;
pub mod telemetry;

pub use error::{Error, Result};
