//! Read-your-writes across gateways: a verification no older than a write
//! the caller has seen acknowledged.
//!
//! ```text
//! request   x-lienthong-min-seq: 48213    the seq of the caller's receipt
//!                                         (decimal; absent: as held now)
//! response  x-lienthong-seq: 48217        the outbox seq the verification
//!                                         was made at (a batch stream: at
//!                                         least that, for every batch);
//!                                         on every other answer (a health
//!                                         check's too), the seq applied
//!                                         when it left
//! ```
//!
//! A gateway whose projection has not yet applied the named write catches
//! up with the store before it verifies (one read of the outbox); a `seq`
//! the store has not committed is refused with `INVALID_ARGUMENT` /
//! `ARGUMENT_INVALID`, naming the header.

use std::sync::Arc;

use tonic::Response;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::metadata::{MetadataMap, MetadataValue};
use tower::util::MapResponseLayer;

use crate::error::{Error, Result};
use crate::projection::{MIN_SEQ_HEADER, Projection, SEQ_HEADER};

/// A response, as the layers see it.
type HttpResponse = http::Response<Body>;

/// The `seq` a request asks its verification to be no older than.
pub(crate) fn min_seq(metadata: &MetadataMap) -> Result<Option<u64>> {
    let Some(value) = metadata.get(MIN_SEQ_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| Error::invalid(MIN_SEQ_HEADER, "is not a decimal outbox seq"))
}

/// Names on `response` the outbox `seq` its verification was made at.
pub(crate) fn stamp<T>(response: &mut Response<T>, seq: u64) {
    response
        .metadata_mut()
        .insert(SEQ_HEADER, MetadataValue::from(seq));
}

/// A layer naming on every answer that names none the `seq` `projection`
/// has applied, so that a health probe reads how far a replica has come.
pub(crate) fn stamp_every(
    projection: Arc<Projection>,
) -> MapResponseLayer<impl Fn(HttpResponse) -> HttpResponse + Clone> {
    MapResponseLayer::new(move |mut response: HttpResponse| {
        response
            .headers_mut()
            .entry(SEQ_HEADER)
            .or_insert_with(|| projection.applied_seq().into());
        response
    })
}
