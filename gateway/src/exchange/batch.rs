//! A `VerifyBatch` batch through the domain, one call
//! ([`Exchange::verify_batch`]) in the order that keeps a refused batch
//! cheap and an agency's quota honest:
//!
//! ```text
//! admit   the policy grants verify_batch for the purpose,
//!         and the batch holds at most the configured claims
//! decode  only then its match options and claims (the caller's decoder;
//!         a claim that does not parse keeps its error)
//! charge  the claims, once the batch is known well-formed, to the agency's
//!         daily quota (one each)
//! verify  the claims together, on the blocking pool
//! ```

use lienthong_proto::name::NameMatch;

use super::{Asker, Exchange};
use crate::blocking::off_runtime;
use crate::error::{Error, Result};
use crate::policy::Operation;
use crate::verify::{Claim, Verification};

/// What a batch is, once decoded: how to match names, and each claim (or
/// why it does not parse).
pub type DecodedBatch = (NameMatch, Vec<Result<Claim>>);

/// A batch the agency may send, not yet charged or verified.
struct AdmittedBatch<'a> {
    exchange: &'a Exchange,
    asker: Asker<'a>,
    size: usize,
}

impl Exchange {
    /// Verifies a batch of `size` claims from `asker`: admitted, decoded by
    /// `decode`, charged to the quota, verified; results in claim order.
    pub async fn verify_batch(
        &self,
        asker: Asker<'_>,
        size: usize,
        decode: impl FnOnce() -> Result<DecodedBatch>,
    ) -> Result<Vec<Result<Verification>>> {
        let admitted = self.admit_batch(asker, size)?;
        let (how, claims) = decode()?;
        admitted.verify(claims, how).await
    }

    /// Admits a batch of `size` claims from `asker`: its grant allows
    /// `verify_batch` for the purpose, and `size` is within the limit.
    fn admit_batch<'a>(&'a self, asker: Asker<'a>, size: usize) -> Result<AdmittedBatch<'a>> {
        self.policy
            .current()
            .authorize(asker.agency, asker.purpose, Operation::VerifyBatch)?;
        if size > self.max_batch {
            return Err(Error::BatchTooLarge {
                size,
                limit: self.max_batch,
            });
        }
        Ok(AdmittedBatch {
            exchange: self,
            asker,
            size,
        })
    }
}

impl AdmittedBatch<'_> {
    /// Charges the batch's claims to the agency's daily quota and verifies
    /// them, each with `how`: a claim that failed to parse keeps its error,
    /// the others are looked up together. Results are in claim order.
    async fn verify(
        self,
        claims: Vec<Result<Claim>>,
        how: NameMatch,
    ) -> Result<Vec<Result<Verification>>> {
        debug_assert_eq!(claims.len(), self.size);
        self.exchange
            .rates
            .charge(self.asker.agency, self.size as u64)
            .await?;
        let verifier = self.exchange.verifier.clone();
        off_runtime(move || {
            let valid: Vec<&Claim> = claims.iter().filter_map(|c| c.as_ref().ok()).collect();
            let mut verified = verifier.verify_many(&valid, how)?.into_iter();
            Ok(claims
                .into_iter()
                .map(|c| {
                    c.map(|_| verified.next().ok_or(Error::Task))
                        .and_then(|v| v)
                })
                .collect())
        })
        .await
    }
}
