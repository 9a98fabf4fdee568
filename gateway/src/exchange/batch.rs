//! A `VerifyBatch` batch through the domain, in the order that keeps a
//! refused batch cheap and an agency's quota honest:
//!
//! ```text
//! admit   the policy grants verify_batch for the purpose,
//!         and the batch holds at most the configured claims ─▶ AdmittedBatch
//! verify  the claims, once the batch is known well-formed, are charged to
//!         the agency's daily quota (one each), then looked up together on
//!         the blocking pool; a claim that did not parse keeps its error
//! ```

use lienthong_proto::name::NameMatch;

use super::{Asker, Exchange};
use crate::error::{Error, Result};
use crate::policy::Operation;
use crate::verify::{Claim, Verification};

/// A batch the agency may send, not yet charged or verified.
pub struct AdmittedBatch<'a> {
    exchange: &'a Exchange,
    asker: Asker<'a>,
    size: usize,
}

impl Exchange {
    /// Admits a batch of `size` claims from `asker`: its grant allows
    /// `verify_batch` for the purpose, and `size` is within the limit.
    pub fn admit_batch<'a>(&'a self, asker: Asker<'a>, size: usize) -> Result<AdmittedBatch<'a>> {
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
    pub async fn verify(
        self,
        claims: Vec<Result<Claim>>,
        how: NameMatch,
    ) -> Result<Vec<Result<Verification>>> {
        debug_assert_eq!(claims.len(), self.size);
        self.exchange
            .rates
            .charge(self.asker.agency, self.size as u64)?;
        let verifier = self.exchange.verifier.clone();
        tokio::task::spawn_blocking(move || {
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
        .map_err(|_| Error::Task)?
    }
}
