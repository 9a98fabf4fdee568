//! `lienthong.v1.ExchangeService`: decode, call the [`Exchange`], encode;
//! every answer (each batch's too, one record a batch) passes the audit step first.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use lienthong_proto::v1::{self, exchange_service_server::ExchangeService};
use tonic::{Request, Response, Status, Streaming};

use super::audited::{Access, Audited, hash_message};
use super::fresh;
use super::idle::IdleEnded;
use super::undecodable::undecodable;
use super::{caller, convert, request_id};
use crate::audit::AuditEntry;
use crate::error::{Error, Result};
use crate::exchange::{Asker, Exchange};
use lienthong_proto::Pid;
use lienthong_proto::sector::query_name;

use crate::sector::Sectors;

/// Batches of one stream being verified at once: enough to overlap decoding,
/// look-ups and sending; few enough to bound memory per stream.
const BATCHES_IN_FLIGHT: usize = 2;

/// The tonic service over an [`Exchange`].
pub struct ExchangeApi {
    exchange: Exchange,
    sectors: Sectors,
    audited: Audited,
    /// How long a VerifyBatch stream may send nothing.
    stream_idle: Duration,
}

impl ExchangeApi {
    /// Serves `exchange`, asking `sectors` for sector queries, auditing
    /// through `audited`, ending a batch stream quiet for `stream_idle`.
    pub(crate) fn new(
        exchange: Exchange,
        sectors: Sectors,
        audited: Audited,
        stream_idle: Duration,
    ) -> Self {
        Self {
            exchange,
            sectors,
            audited,
            stream_idle,
        }
    }

    async fn query_sector(
        &self,
        agency: &str,
        req: &v1::QuerySectorRequest,
    ) -> Result<v1::QuerySectorResponse> {
        let pid = convert::pid(&req.pid, "pid")?;
        let asker = Asker {
            agency,
            purpose: &req.purpose,
        };
        self.exchange
            .authorize_sector(asker, pid, &req.sector, &req.query)
            .await?;
        let answer = self.sectors.lookup(&req.sector, &req.query, pid).await?;
        Ok(v1::QuerySectorResponse {
            pid: pid.to_string(),
            answer: Some(answer),
        })
    }

    fn verify_identity(
        &self,
        agency: &str,
        req: v1::VerifyIdentityRequest,
    ) -> Result<v1::VerifyIdentityResponse> {
        let how = convert::match_options(req.r#match.as_ref())?;
        let mut wire_claim = req
            .claim
            .ok_or_else(|| Error::invalid("claim", "a claim is required"))?;
        let claim =
            convert::take_claim(&mut wire_claim).map_err(|e| convert::within("claim", e))?;
        let asker = Asker {
            agency,
            purpose: &req.purpose,
        };
        let verification = self.exchange.verify_identity(asker, &claim, how)?;
        Ok(v1::VerifyIdentityResponse {
            verification: Some(convert::verification(
                wire_claim.reference,
                &wire_claim.predicates,
                verification,
            )),
        })
    }

    async fn get_citizen(
        &self,
        agency: &str,
        req: &v1::GetCitizenRequest,
    ) -> Result<v1::GetCitizenResponse> {
        let pid = convert::pid(&req.pid, "pid")?;
        let fields = convert::fields(&req.fields)?;
        let asker = Asker {
            agency,
            purpose: &req.purpose,
        };
        let disclosed = self
            .exchange
            .get_citizen(asker, pid, fields, req.consent_token.clone())
            .await?;
        Ok(v1::GetCitizenResponse {
            pid: pid.to_string(),
            values: disclosed.into_iter().map(convert::disclosed).collect(),
        })
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
        let min_seq = fresh::min_seq(request.metadata());
        let req = request.into_inner();
        let request_hash = hash_message(&req);
        let access = Access::new("verify_identity")
            .purpose(&req.purpose)
            .pid(req.claim.as_ref().map_or("", |c| &c.pid));
        let at = match min_seq {
            Ok(min_seq) => self.exchange.verifying_at(min_seq).await,
            Err(e) => Err(e),
        };
        let (at, answer) = match at {
            Ok(at) => (at, self.verify_identity(&peer.agency, req)),
            Err(e) => (0, Err(e)),
        };
        let mut response = self
            .audited
            .seal(&peer.agency, access, request_hash, answer)
            .await?;
        fresh::stamp(&mut response, at);
        Ok(response)
    }

    type VerifyBatchStream = BatchStream;

    async fn verify_batch(
        &self,
        request: Request<Streaming<v1::VerifyBatchRequest>>,
    ) -> Result<Response<Self::VerifyBatchStream>, Status> {
        let peer = caller(&request)?;
        let exchange = self.exchange.clone();
        let audited = self.audited.clone();
        // A stream too fresh for this gateway is refused before any batch
        // is read, in one record.
        let at = match fresh::min_seq(request.metadata()) {
            Ok(min_seq) => exchange.verifying_at(min_seq).await,
            Err(e) => Err(e),
        };
        let at = match at {
            Ok(at) => at,
            Err(e) => return Err(audit_unread_batch(&audited, &peer.agency, e).await),
        };
        // The answers are made after this returns, outside the call's scope:
        // they carry its request id along.
        let request_id = request_id::current();
        // `buffered` reads the next batch only while fewer than
        // BATCHES_IN_FLIGHT are being verified, and yields answers in order:
        // the client's sending is throttled by our answering (flow control).
        let answers = IdleEnded::new(request.into_inner(), self.stream_idle)
            .map(move |batch| {
                let exchange = exchange.clone();
                let audited = audited.clone();
                let agency = peer.agency.clone();
                let request_id = request_id.clone();
                async move {
                    let batch = match batch {
                        Ok(batch) => batch,
                        Err(status) => {
                            // Claims counted on the wire, over the limit:
                            // refused before any was decoded.
                            let refused = lienthong_proto::codec::too_many(&status)
                                .map(|(size, limit)| Error::BatchTooLarge { size, limit })
                                .or_else(|| undecodable(&status));
                            return Err(match refused {
                                Some(refused) => {
                                    audit_unread_batch(&audited, &agency, refused).await
                                }
                                None => status,
                            });
                        }
                    };
                    let verified = verify_one_batch(&exchange, &audited, &agency, batch);
                    match request_id {
                        Some(id) => id.scope(verified).await,
                        None => verified.await,
                    }
                }
            })
            .buffered(BATCHES_IN_FLIGHT);
        let mut response = Response::new(Box::pin(answers) as BatchStream);
        fresh::stamp(&mut response, at);
        Ok(response)
    }

    async fn get_citizen(
        &self,
        request: Request<v1::GetCitizenRequest>,
    ) -> Result<Response<v1::GetCitizenResponse>, Status> {
        let peer = caller(&request)?;
        let req = request.into_inner();
        let access = Access::new("get_citizen")
            .purpose(&req.purpose)
            .pid(&req.pid)
            .fields(
                convert::fields(&req.fields)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|f| f.name()),
            );
        let answer = self.get_citizen(&peer.agency, &req).await;
        self.audited
            .seal(&peer.agency, access, hash_message(&req), answer)
            .await
    }

    async fn query_sector(
        &self,
        request: Request<v1::QuerySectorRequest>,
    ) -> Result<Response<v1::QuerySectorResponse>, Status> {
        let peer = caller(&request)?;
        let req = request.into_inner();
        let access = Access::new("query_sector")
            .purpose(&req.purpose)
            .pid(&req.pid)
            .fields(query_name(&req.sector, &req.query));
        let answer = self.query_sector(&peer.agency, &req).await;
        self.audited
            .seal(&peer.agency, access, hash_message(&req), answer)
            .await
    }
}

/// Records a batch refused before anything in it was read — a message that
/// did not decode, or a stream asking for a write the register does not
/// hold — in one record; the stream then ends with `error`.
async fn audit_unread_batch(audited: &Audited, agency: &str, error: Error) -> Status {
    let entry = audited.entry(agency, Access::new(AuditEntry::BATCH), [0; 32], Err(&error));
    match audited.append(vec![entry]).await {
        Ok(()) => error.into(),
        Err(unaudited) => unaudited,
    }
}

/// Records a batch that failed whole, in one record: refused before its
/// claims were read (`pids` empty) — a refusal costs the log the same
/// whatever the batch holds — or failed once read (the look-up), naming
/// each claim's Pid. The stream then ends with `error`.
async fn audit_failed_batch(
    audited: &Audited,
    agency: &str,
    batch: &v1::VerifyBatchRequest,
    request_hash: [u8; 32],
    pids: &[Option<Pid>],
    error: Error,
) -> Status {
    let access = Access::new(AuditEntry::BATCH)
        .purpose(&batch.purpose)
        .request_id(&batch.batch_id);
    let mut entry = audited.entry(agency, access, request_hash, Err(&error));
    entry.pids = pids
        .iter()
        .map(|pid| pid.map_or_else(|| "-".to_owned(), |pid| pid.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    match audited.append(vec![entry]).await {
        Ok(()) => error.into(),
        Err(unaudited) => unaudited,
    }
}

/// Verifies one batch: a batch the agency may not send fails the stream
/// before any of its claims is read; a bad claim is a per-claim error. The
/// batch is one audit record (each claim's Pid and outcome in it), appended
/// before the answer.
async fn verify_one_batch(
    exchange: &Exchange,
    audited: &Audited,
    agency: &str,
    mut batch: v1::VerifyBatchRequest,
) -> Result<v1::VerifyBatchResponse, Status> {
    let request_hash = hash_message(&batch);
    let asker = Asker {
        agency,
        purpose: &batch.purpose,
    };
    let size = batch.claims.len();
    // Each claim's Pid as its record names it, read once the batch is
    // admitted, before its claims are taken apart.
    let mut pids: Vec<Option<Pid>> = Vec::new();
    let (how, claims) = (&batch.r#match, &mut batch.claims);
    let decode = || {
        let how = convert::match_options(how.as_ref())?;
        pids = claims.iter().map(|c| c.pid.parse().ok()).collect();
        Ok((how, claims.iter_mut().map(convert::take_claim).collect()))
    };
    let verified = match exchange.verify_batch(asker, size, decode).await {
        Ok(verified) => verified,
        Err(failed) => {
            return Err(
                audit_failed_batch(audited, agency, &batch, request_hash, &pids, failed).await,
            );
        }
    };
    let mut outcomes: Vec<&'static str> = Vec::with_capacity(size);
    let results = batch
        .claims
        .into_iter()
        .zip(verified)
        .map(|(claim, outcome)| {
            use v1::claim_result::Outcome;
            let reference = claim.reference;
            let wire = match outcome {
                Ok(v) => {
                    outcomes.push("OK");
                    Outcome::Verification(convert::verification(
                        reference.clone(),
                        &claim.predicates,
                        v,
                    ))
                }
                Err(e) => {
                    outcomes.push(e.reason().as_str());
                    Outcome::Error(convert::claim_error(&e))
                }
            };
            v1::ClaimResult {
                reference,
                outcome: Some(wire),
            }
        })
        .collect();
    let answer = v1::VerifyBatchResponse {
        batch_id: batch.batch_id,
        results,
    };
    let entry = audited.batch_entry(
        agency,
        &batch.purpose,
        &answer.batch_id,
        (request_hash, hash_message(&answer)),
        pids.into_iter().zip(outcomes),
    );
    audited.append(vec![entry]).await?;
    Ok(answer)
}
