//! The audit step: every lienthong RPC's answer passes through [`Audited`]
//! before it leaves, granted or refused, so no handler can forget it.
//!
//! ```text
//! handler: decode ─▶ domain ─▶ Result<answer, Error>
//!                                   │
//! Audited::seal: request hash, answer (or error) hash, decision, outcome,
//!                hidden-until from the policy ─▶ AuditTrail (durable) ─▶ reply
//! ```
//!
//! If the log cannot take the record the caller gets `UNAVAILABLE` /
//! `AUDIT_UNAVAILABLE` and not the answer: nothing leaves unaudited.

use std::sync::Arc;
use std::time::Duration;

use lienthong_proto::Pid;
use prost::Message;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tonic::{Response, Status};

use super::request_id;
use crate::audit::{AuditEntry, AuditTrail, Decision, Hash};
use crate::clock;
use crate::error::{Error, Result};
use crate::policy::LivePolicy;
use crate::telemetry::REQUESTS;

/// What one request was about, as decoded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Access {
    operation: String,
    purpose: String,
    pids: Vec<Pid>,
    fields: Vec<&'static str>,
    request_id: String,
}

impl Access {
    /// A request to `operation` (its snake_case name).
    pub(crate) fn new(operation: impl Into<String>) -> Self {
        Self {
            operation: operation.into(),
            ..Self::default()
        }
    }

    /// For `purpose`.
    pub(crate) fn purpose(mut self, purpose: &str) -> Self {
        purpose.clone_into(&mut self.purpose);
        self
    }

    /// About the citizen `text` names, if it is a well-formed Pid (a
    /// malformed one identifies nobody and is not recorded).
    pub(crate) fn pid(mut self, text: &str) -> Self {
        if let Ok(pid) = text.parse::<Pid>()
            && !self.pids.contains(&pid)
        {
            self.pids.push(pid);
        }
        self
    }

    /// Asking for `fields`.
    pub(crate) fn fields(mut self, fields: impl IntoIterator<Item = &'static str>) -> Self {
        self.fields.extend(fields);
        self
    }

    /// With the client's `request_id` (or a batch's `batch_id`).
    pub(crate) fn request_id(mut self, id: &str) -> Self {
        id.clone_into(&mut self.request_id);
        self
    }
}

/// The audit step, shared by every service.
#[derive(Clone)]
pub(crate) struct Audited {
    log: Arc<dyn AuditTrail>,
    policy: LivePolicy,
}

impl Audited {
    /// Records into `log`; hidden-until dates come from `policy`.
    pub(crate) fn new(log: Arc<dyn AuditTrail>, policy: LivePolicy) -> Self {
        Self { log, policy }
    }

    /// Records the outcome of `request` and returns it once the record is
    /// durable.
    /// `request_hash` is [`hash_message`] of the request as received.
    pub(crate) async fn seal<Resp: Message>(
        &self,
        agency: &str,
        access: Access,
        request_hash: Hash,
        result: Result<Resp>,
    ) -> Result<Response<Resp>, Status> {
        let answer = result.as_ref().map(hash_message);
        let entry = self.entry(agency, access, request_hash, answer);
        self.append(vec![entry]).await?;
        Ok(Response::new(result?))
    }

    /// The record of one request: `answer` is the hash of what was sent, or
    /// the error it failed with.
    pub(crate) fn entry(
        &self,
        agency: &str,
        access: Access,
        request_hash: Hash,
        answer: Result<Hash, &Error>,
    ) -> AuditEntry {
        let (decision, outcome, response_hash) = match answer {
            Ok(hash) => (Decision::Granted, "OK".to_owned(), hash),
            Err(e) => {
                let reason = e.reason();
                let decision = if reason.is_refusal() {
                    Decision::Refused
                } else {
                    Decision::Granted
                };
                (decision, reason.as_str().to_owned(), hash_error(e))
            }
        };
        let hidden_until = self
            .policy
            .current()
            .hidden_for(agency, &access.purpose)
            .map(|days| {
                clock::timestamp(
                    OffsetDateTime::now_utc() + Duration::from_secs(u64::from(days) * 86_400),
                )
            });
        AuditEntry {
            agency: agency.to_owned(),
            trace_id: request_id::current()
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
            operation: access.operation,
            purpose: access.purpose,
            pids: access
                .pids
                .iter()
                .map(Pid::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            fields: access.fields.join(","),
            decision,
            outcome,
            request_id: access.request_id,
            request_hash,
            response_hash,
            hidden_until,
        }
    }

    /// The record of one admitted batch: `claims` gives each claim's Pid
    /// (`None` if it had no well-formed one) and outcome (`OK` or its
    /// reason), in claim order; the hashes are of the whole batch as
    /// received and of the whole answer.
    pub(crate) fn batch_entry<'a>(
        &self,
        agency: &str,
        purpose: &str,
        batch_id: &str,
        hashes: (Hash, Hash),
        claims: impl IntoIterator<Item = (Option<Pid>, &'a str)>,
    ) -> AuditEntry {
        use std::fmt::Write;
        let mut pids = String::new();
        let mut outcomes = String::new();
        let mut all_ok = true;
        for (i, (pid, outcome)) in claims.into_iter().enumerate() {
            if i > 0 {
                pids.push(' ');
                outcomes.push(' ');
            }
            match pid {
                Some(pid) => {
                    let _ = write!(pids, "{pid}");
                }
                None => pids.push('-'),
            }
            outcomes.push_str(outcome);
            all_ok &= outcome == "OK";
        }
        let access = Access::new(AuditEntry::BATCH)
            .purpose(purpose)
            .request_id(batch_id);
        let mut entry = self.entry(agency, access, hashes.0, Ok(hashes.1));
        entry.pids = pids;
        if !all_ok {
            entry.outcome = outcomes;
        }
        entry
    }

    /// Appends `entries` (one call's records) and waits until they are
    /// durable; then logs the call's one line: its id, agency, operation and
    /// outcome (for a batch, how many claims and how many not OK) — never a
    /// Pid or any other personal field.
    pub(crate) async fn append(&self, entries: Vec<AuditEntry>) -> Result<(), Status> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let agency = first.agency.clone();
        let operation = first.operation.clone();
        let request_id = first.trace_id.clone();
        // One call's records share agency and operation; count each claim
        // (a batch's record covers many) by outcome.
        let mut tallies: Vec<(String, u64)> = Vec::new();
        for e in &entries {
            for (_, outcome) in e.claims() {
                match tallies.iter_mut().find(|(o, _)| o == outcome) {
                    Some((_, n)) => *n += 1,
                    None => tallies.push((outcome.to_owned(), 1)),
                }
            }
        }
        let claims: u64 = tallies.iter().map(|(_, n)| n).sum();
        let not_ok: u64 = tallies
            .iter()
            .filter(|(o, _)| o != "OK")
            .map(|(_, n)| n)
            .sum();
        let outcome = tallies.first().map(|(o, _)| o.clone()).unwrap_or_default();
        self.log.append(entries).await.map_err(Status::from)?;
        // Counted once durable: what the callers are answered.
        for (outcome, n) in tallies {
            metrics::counter!(
                REQUESTS,
                "agency" => agency.clone(),
                "operation" => operation.clone(),
                "outcome" => outcome,
            )
            .increment(n);
        }
        let ms = request_id::current().map_or(0.0, |id| (id.elapsed_ms() * 100.0).round() / 100.0);
        // `%`: as text, unquoted.
        if claims == 1 {
            tracing::info!(
                request_id = %request_id,
                agency = %agency,
                operation = %operation,
                outcome = %outcome,
                ms,
                "request"
            );
        } else {
            tracing::info!(
                request_id = %request_id,
                agency = %agency,
                operation = %operation,
                claims,
                not_ok,
                ms,
                "batch"
            );
        }
        Ok(())
    }
}

/// SHA-256 of a message's protobuf encoding.
pub(crate) fn hash_message(m: &impl Message) -> Hash {
    let mut h = Sha256::new();
    h.update(m.encode_to_vec());
    h.finalize().into()
}

/// SHA-256 of an error as the caller sees it: `reason \0 message`.
fn hash_error(e: &Error) -> Hash {
    let mut h = Sha256::new();
    h.update(e.reason().as_str());
    h.update([0]);
    h.update(e.to_string());
    h.finalize().into()
}
