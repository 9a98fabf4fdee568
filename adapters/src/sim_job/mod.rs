//! The SIM re-verification job of a telecom operator, a client of the
//! gateway: its subscribers and their re-verification.
//!
//! - [`subscriber`]: a subscriber record, read from CSV or JSONL with
//!   line-numbered errors.
//! - [`outcome`]: what re-verification concludes about one subscriber.
//! - [`generate`]: a synthetic subscriber base linked to the synthetic
//!   population, with injected errors and the truth about each record.
//! - [`sim_verify`]: the job that streams a base through `VerifyBatch`.

pub mod generate;
pub mod outcome;
pub mod sim_verify;
pub mod subscriber;
