//! The lienthong contract and the vocabulary every service shares.
//!
//! - [`v1`] and [`adapter::v1`]: code generated from `proto/lienthong/**.proto`.
//! - [`Pid`], [`Date`], [`province`]: identity numbers, dates and provinces.
//! - [`name`]: Vietnamese name normalization and matching.
//! - [`Citizen`]: the population database's record.
//! - [`population`]: the deterministic synthetic population.
//! - [`event`]: a population event on the wire (encoded and decoded here).
//! - [`sector`]: the sector catalogue (queries, events followed, ports).
//! - [`pki`]: the certificate names between the gateway and the adapters.
//! - [`signal`]: Ctrl-C or SIGTERM, the end of every binary's serving.
//! - [`codec`]: the services' codec, which bounds repeated fields before decoding.
//! - [`idle`]: connections that carry no call closed after a while.
#![forbid(unsafe_code)]

pub mod citizen;
pub mod codec;
pub mod date;
pub mod event;
pub mod idle;
pub mod name;
pub mod pid;
pub mod pki;
pub mod population;
pub mod province;
pub mod sector;
pub mod signal;

#[cfg(test)]
mod properties;

pub use citizen::Citizen;
pub use date::Date;
pub use pid::{Pid, PidError, Sex};

/// `lienthong.v1`: the agencies' contract.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("lienthong.v1");
}

/// `lienthong.adapter.v1`: the contract between the gateway and the adapters.
pub mod adapter {
    /// Version 1.
    #[allow(missing_docs, clippy::all)]
    pub mod v1 {
        tonic::include_proto!("lienthong.adapter.v1");
    }
}

/// The encoded `FileDescriptorSet` of every lienthong proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/lienthong_descriptor.bin"));
