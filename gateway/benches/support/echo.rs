//! The bare tonic echo of `ExchangeService`, the baseline each bench run
//! measures the gateway beside: answers of the gateway's shape (every
//! claim a match), no policy, no look-up, no audit.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use lienthong_proto::v1::{self, claim_result::Outcome, exchange_service_server::ExchangeService};
use tonic::{Request, Response, Status, Streaming};

/// The echo baseline: answers every claim with a fixed verification of the
/// same shape the gateway sends, doing no other work.
pub struct Echo;

fn echo_verification(claim: &v1::IdentityClaim) -> v1::IdentityVerification {
    v1::IdentityVerification {
        reference: claim.reference.clone(),
        verdict: v1::Verdict::Match as i32,
        fields: [
            v1::ClaimedField::PidDigits,
            v1::ClaimedField::FullName,
            v1::ClaimedField::DateOfBirth,
            v1::ClaimedField::Sex,
        ]
        .into_iter()
        .map(|f| v1::FieldResult {
            field: f as i32,
            matched: true,
            score: 100,
        })
        .collect(),
        holder_status: v1::HolderStatus::Alive as i32,
        card_validity: v1::CardValidity::Valid as i32,
        predicates: Vec::new(),
    }
}

type BatchStream = Pin<Box<dyn Stream<Item = Result<v1::VerifyBatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExchangeService for Echo {
    async fn verify_identity(
        &self,
        request: Request<v1::VerifyIdentityRequest>,
    ) -> Result<Response<v1::VerifyIdentityResponse>, Status> {
        let claim = request.into_inner().claim.unwrap_or_default();
        Ok(Response::new(v1::VerifyIdentityResponse {
            verification: Some(echo_verification(&claim)),
        }))
    }

    type VerifyBatchStream = BatchStream;

    async fn verify_batch(
        &self,
        request: Request<Streaming<v1::VerifyBatchRequest>>,
    ) -> Result<Response<BatchStream>, Status> {
        let answers = request
            .into_inner()
            .map(|batch| async move {
                let batch = batch?;
                Ok(v1::VerifyBatchResponse {
                    batch_id: batch.batch_id,
                    results: batch
                        .claims
                        .iter()
                        .map(|c| v1::ClaimResult {
                            reference: c.reference.clone(),
                            outcome: Some(Outcome::Verification(echo_verification(c))),
                        })
                        .collect(),
                })
            })
            .buffered(2);
        Ok(Response::new(Box::pin(answers)))
    }

    async fn get_citizen(
        &self,
        _: Request<v1::GetCitizenRequest>,
    ) -> Result<Response<v1::GetCitizenResponse>, Status> {
        Err(Status::unimplemented("echo"))
    }

    async fn query_sector(
        &self,
        _: Request<v1::QuerySectorRequest>,
    ) -> Result<Response<v1::QuerySectorResponse>, Status> {
        Err(Status::unimplemented("echo"))
    }
}
