//! `lienthong.v1.ExchangeService`: decode, call the [`Exchange`], encode.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use lienthong_proto::v1::{self, exchange_service_server::ExchangeService};
use tonic::{Request, Response, Status, Streaming};

use super::{caller, convert};
use crate::error::Error;
use crate::exchange::{Asker, Exchange};

/// Batches of one stream being verified at once: enough to overlap decoding,
/// look-ups and sending; few enough to bound memory per stream.
const BATCHES_IN_FLIGHT: usize = 2;

/// The tonic service over an [`Exchange`].
pub struct ExchangeApi {
    exchange: Exchange,
}

impl ExchangeApi {
    /// Serves `exchange`.
    pub fn new(exchange: Exchange) -> Self {
        Self { exchange }
    }
}

type BatchStream = Pin<Box<dyn Stream<Item = Result<v1::VerifyBatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExchangeService for ExchangeApi {
    async fn verify_identity(
        &self,
        request: Request<v1::VerifyIdentityRequest>,
    ) -> Result<Response<v1::VerifyIdentityResponse>, Status> {
        let peer = caller(&request)?;
        let req = request.into_inner();
        let how = convert::match_options(req.r#match.as_ref())?;
        let mut wire_claim = req
            .claim
            .ok_or_else(|| Error::invalid("claim", "a claim is required"))?;
        let claim =
            convert::take_claim(&mut wire_claim).map_err(|e| convert::within("claim", e))?;
        let asker = Asker {
            agency: &peer.agency,
            purpose: &req.purpose,
        };
        let verification = self.exchange.verify_identity(asker, &claim, how)?;
        Ok(Response::new(v1::VerifyIdentityResponse {
            verification: Some(convert::verification(
                wire_claim.reference,
                &wire_claim.predicates,
                verification,
            )),
        }))
    }

    type VerifyBatchStream = BatchStream;

    async fn verify_batch(
        &self,
        request: Request<Streaming<v1::VerifyBatchRequest>>,
    ) -> Result<Response<Self::VerifyBatchStream>, Status> {
        let peer = caller(&request)?;
        let exchange = self.exchange.clone();
        // `buffered` reads the next batch only while fewer than
        // BATCHES_IN_FLIGHT are being verified, and yields answers in order:
        // the client's sending is throttled by our answering (flow control).
        let answers = request
            .into_inner()
            .map(move |batch| {
                let exchange = exchange.clone();
                let agency = peer.agency.clone();
                async move {
                    let batch = batch?;
                    verify_one_batch(&exchange, &agency, batch).await
                }
            })
            .buffered(BATCHES_IN_FLIGHT);
        Ok(Response::new(Box::pin(answers)))
    }

    async fn get_citizen(
        &self,
        request: Request<v1::GetCitizenRequest>,
    ) -> Result<Response<v1::GetCitizenResponse>, Status> {
        let peer = caller(&request)?;
        let req = request.into_inner();
        let pid = convert::pid(&req.pid, "pid")?;
        let fields = convert::fields(&req.fields)?;
        let asker = Asker {
            agency: &peer.agency,
            purpose: &req.purpose,
        };
        let disclosed = self.exchange.get_citizen(asker, pid, &fields)?;
        Ok(Response::new(v1::GetCitizenResponse {
            pid: pid.to_string(),
            values: disclosed.into_iter().map(convert::disclosed).collect(),
        }))
    }
}

/// Verifies one batch: a batch the agency may not send fails the stream; a
/// bad claim is a per-claim error.
async fn verify_one_batch(
    exchange: &Exchange,
    agency: &str,
    mut batch: v1::VerifyBatchRequest,
) -> Result<v1::VerifyBatchResponse, Status> {
    let asker = Asker {
        agency,
        purpose: &batch.purpose,
    };
    exchange.authorize_batch(asker, batch.claims.len())?;
    let how = convert::match_options(batch.r#match.as_ref())?;
    let claims = batch.claims.iter_mut().map(convert::take_claim).collect();
    let verified = exchange.verify_batch(claims, how).await?;
    let results = batch
        .claims
        .into_iter()
        .zip(verified)
        .map(|(claim, outcome)| {
            use v1::claim_result::Outcome;
            let reference = claim.reference;
            let outcome = match outcome {
                Ok(v) => Outcome::Verification(convert::verification(
                    reference.clone(),
                    &claim.predicates,
                    v,
                )),
                Err(e) => Outcome::Error(convert::claim_error(&e)),
            };
            v1::ClaimResult {
                reference,
                outcome: Some(outcome),
            }
        })
        .collect();
    Ok(v1::VerifyBatchResponse {
        batch_id: batch.batch_id,
        results,
    })
}
