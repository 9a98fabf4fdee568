//! The codec of every lienthong service: prost's, except that a message is
//! checked before it is decoded — no repeated field of it may hold more
//! elements than [`max_repeated`] — so that one message under the size
//! limit, holding millions of empty claims, is refused at the cost of a
//! scan instead of materialised, audited and only then refused.
//!
//! ```text
//! message bytes ──scan top-level fields (count each field number)──▶
//!   a count > max_repeated:  INVALID_ARGUMENT "too many repeated elements: COUNT LIMIT"
//!   else                     prost decodes the message as usual
//! ```
//!
//! A decoded message so holds at most `max_repeated` elements of any
//! repeated field, each a copy of bytes of the message: its memory is
//! bounded by the message's size plus `max_repeated` times an element's
//! struct.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// What a refusal's message begins with, followed by the count and the
/// limit (for the server to answer in its own terms).
pub const TOO_MANY: &str = "too many repeated elements:";

static MAX_REPEATED: AtomicUsize = AtomicUsize::new(10_000);

/// The most elements any repeated field of a received message may hold.
pub fn max_repeated() -> usize {
    MAX_REPEATED.load(Ordering::Relaxed)
}

/// Raises [`max_repeated`] to at least `n` (a server taking batches of `n`
/// claims); it never lowers it.
pub fn raise_max_repeated(n: usize) {
    MAX_REPEATED.fetch_max(n, Ordering::Relaxed);
}

/// The count and the limit a refusal names, if `status` is one.
pub fn too_many(status: &Status) -> Option<(usize, usize)> {
    let rest = status.message().strip_prefix(TOO_MANY)?;
    let mut numbers = rest.split_whitespace().map(str::parse);
    Some((numbers.next()?.ok()?, numbers.next()?.ok()?))
}

/// prost's codec, checking repeated fields' sizes before decoding.
#[derive(Debug, Clone)]
pub struct BoundedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for BoundedCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for BoundedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = BoundedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        BoundedDecoder(PhantomData)
    }
}

/// Decodes `U` once its repeated fields are known to be within bounds.
#[derive(Debug, Clone)]
pub struct BoundedDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for BoundedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        use prost::bytes::Buf;
        let limit = max_repeated();
        if let Some(count) = most_repeated(buf.chunk()).filter(|&n| n > limit) {
            return Err(Status::invalid_argument(format!(
                "{TOO_MANY} {count} {limit}"
            )));
        }
        U::decode(buf)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

/// The most times any field number occurs at the top level of the message
/// `bytes` (a repeated field's element count); `None` if the bytes are not
/// a message (prost then says why).
fn most_repeated(bytes: &[u8]) -> Option<usize> {
    let mut counts: Vec<(u64, usize)> = Vec::new();
    let mut at = bytes;
    while !at.is_empty() {
        let key = varint(&mut at)?;
        let (field, wire) = (key >> 3, key & 7);
        let skip = match wire {
            0 => {
                varint(&mut at)?;
                0
            }
            1 => 8,
            2 => usize::try_from(varint(&mut at)?).ok()?,
            5 => 4,
            _ => return None,
        };
        at = at.get(skip..)?;
        match counts.iter_mut().find(|(f, _)| *f == field) {
            Some((_, n)) => *n += 1,
            None => counts.push((field, 1)),
        }
    }
    Some(counts.iter().map(|(_, n)| *n).max().unwrap_or(0))
}

/// Reads a varint off the front of `at`.
fn varint(at: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = at.split_first()?;
        *at = rest;
        value |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;

    #[test]
    fn counts_each_field_numbers_elements_without_decoding_them() {
        let batch = v1::VerifyBatchRequest {
            batch_id: "b".into(),
            purpose: "KYC_ONBOARDING".into(),
            claims: vec![v1::IdentityClaim::default(); 7],
            ..Default::default()
        };
        assert_eq!(most_repeated(&batch.encode_to_vec()), Some(7));
        assert_eq!(most_repeated(&[]), Some(0));
        assert_eq!(most_repeated(&[0x22, 0x05, 0x00]), None, "cut short");
        let status = Status::invalid_argument(format!("{TOO_MANY} 12 10"));
        assert_eq!(too_many(&status), Some((12, 10)));
    }
}
