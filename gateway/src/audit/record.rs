//! One audit record and the hash that chains it to the one before.
//!
//! ```text
//! hash  = SHA-256( "lienthong audit v2\0" ‖ u64be(seq) ‖ str(time) ‖ entry ‖ prev_hash[32] )
//! entry = str(agency) ‖ str(operation) ‖ str(purpose) ‖ str(pids) ‖ str(fields)
//!         ‖ str(decision) ‖ str(outcome) ‖ str(request_id) ‖ str(trace_id)
//!         ‖ request_hash[32] ‖ response_hash[32] ‖ u8(hidden: 0 | 1) ‖ str(hidden_until)
//! str(s) = u32be(byte length) ‖ UTF-8 bytes
//! prev_hash of record 1 = 32 zero bytes
//! ```
//!
//! Every stored field is in the hash, the sequence number too: editing a
//! record, removing one or moving one breaks the chain at that record. The
//! `entry` bytes are exactly what the segment stores ([`super::segment`]),
//! encoded once by the request that makes the record; the writer only adds
//! the number, the time and the chain.
//!
//! A `VerifyBatch` batch is one record, whatever it holds: its agency,
//! purpose, time, batch id and hashes once, then each claim compactly —
//!
//! ```text
//! operation = "verify_batch"     request_id = the batch id
//! pids      = each claim's Pid, in claim order, space-separated; "-" for a
//!             claim without a well-formed Pid (13 bytes a claim)
//! outcome   = "OK" when every claim is; else each claim's outcome ("OK" or
//!             its reason), in claim order, space-separated
//! request_hash, response_hash = of the whole batch and its whole answer
//! ```
//!
//! What a batch's record does not keep: each claim's `reference`, and a
//! hash of each claim alone (proving what was asked about one citizen takes
//! the whole batch's bytes). A batch naming a citizen twice shows them one
//! access, with their first claim's outcome.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The `prev_hash` of the first record.
pub const GENESIS: Hash = [0; 32];

/// Whether the policy let a request through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed (its outcome says how it ended).
    Granted,
    /// Refused by the policy, a consent check or a limit.
    Refused,
}

impl Decision {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Refused => "refused",
        }
    }

    /// The decision spelled `text`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "granted" => Some(Self::Granted),
            "refused" => Some(Self::Refused),
            _ => None,
        }
    }
}

/// What the gateway records about one request (a whole batch, for
/// `VerifyBatch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The calling agency (certificate CN).
    pub agency: String,
    /// The operation, e.g. `get_citizen`, `register_birth`.
    pub operation: String,
    /// The purpose the agency stated (empty where none applies).
    pub purpose: String,
    /// The citizens concerned, as 12-digit Pids, space-separated; for a
    /// batch, one a claim in claim order (repeats kept, `-` for a claim
    /// without a well-formed Pid).
    pub pids: String,
    /// The fields asked for, comma-separated.
    pub fields: String,
    /// Granted or refused.
    pub decision: Decision,
    /// `OK` or the `ErrorInfo.reason` it ended with; for a batch with a
    /// claim not OK, each claim's, space-separated, in claim order.
    pub outcome: String,
    /// The request's id: the client's `request_id`, a batch's `batch_id`.
    pub request_id: String,
    /// The gateway's id for the call (the `x-request-id` the caller got
    /// back, and the one its log line carries); a stream's batches share it.
    pub trace_id: String,
    /// SHA-256 of the request as received (protobuf bytes).
    pub request_hash: Hash,
    /// SHA-256 of the answer as sent, or of the error's reason and message.
    pub response_hash: Hash,
    /// Until then the citizen does not see this access (confidential).
    pub hidden_until: Option<String>,
}

impl AuditEntry {
    /// The operation whose records each cover a whole batch of claims.
    pub const BATCH: &'static str = "verify_batch";

    /// What the record says of each claim it covers, as (Pid, outcome): for
    /// a batch's record one pair a claim, in claim order; for any other
    /// record (or a batch refused before its claims were read) one pair,
    /// its own.
    pub fn claims(&self) -> Vec<(&str, &str)> {
        if self.operation != Self::BATCH || self.pids.is_empty() {
            return vec![(self.pids.as_str(), self.outcome.as_str())];
        }
        let pids = self.pids.split(' ');
        if self.outcome.contains(' ') {
            pids.zip(self.outcome.split(' ')).collect()
        } else {
            pids.map(|pid| (pid, self.outcome.as_str())).collect()
        }
    }

    /// The outcome the record gives for citizen `pid` (its first claim
    /// about them, in a batch's record).
    pub fn outcome_for(&self, pid: &str) -> &str {
        outcome_for(&self.operation, &self.pids, &self.outcome, pid)
    }
}

/// The outcome a record of `operation` naming `pids` with `outcome` gives
/// for citizen `pid` ([`AuditEntry::outcome_for`], from stored columns).
pub(crate) fn outcome_for<'a>(operation: &str, pids: &str, outcome: &'a str, pid: &str) -> &'a str {
    if operation != AuditEntry::BATCH || !outcome.contains(' ') {
        return outcome;
    }
    pids.split(' ')
        .zip(outcome.split(' '))
        .find(|(p, _)| *p == pid)
        .map_or("", |(_, outcome)| outcome)
}

/// An entry as appended: numbered, timed and chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When it was appended (registry timestamp).
    pub time: String,
    /// What was recorded.
    pub entry: AuditEntry,
    /// The previous record's hash.
    pub prev_hash: Hash,
    /// This record's hash.
    pub hash: Hash,
}

impl AuditRecord {
    /// Numbers, times and chains `entry` after `prev_hash`.
    pub fn chain(seq: u64, time: String, entry: AuditEntry, prev_hash: Hash) -> Self {
        let hash = hash(seq, &time, &entry, &prev_hash);
        Self {
            seq,
            time,
            entry,
            prev_hash,
            hash,
        }
    }

    /// The hash its contents should have.
    pub fn expected_hash(&self) -> Hash {
        hash(self.seq, &self.time, &self.entry, &self.prev_hash)
    }
}

fn hash(seq: u64, time: &str, e: &AuditEntry, prev: &Hash) -> Hash {
    let mut entry = Vec::with_capacity(256);
    encode_entry(e, &mut entry);
    chain_hash(seq, time, &entry, prev)
}

/// The hash of record `seq` appended at `time` after `prev`, whose entry
/// encodes as `entry` ([`encode_entry`]).
pub(crate) fn chain_hash(seq: u64, time: &str, entry: &[u8], prev: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(b"lienthong audit v2\0");
    h.update(seq.to_be_bytes());
    h.update((time.len() as u32).to_be_bytes());
    h.update(time.as_bytes());
    h.update(entry);
    h.update(prev);
    h.finalize().into()
}

/// Appends the `entry` bytes of `e` to `out`.
pub(crate) fn encode_entry(e: &AuditEntry, out: &mut Vec<u8>) {
    for s in [
        &e.agency,
        &e.operation,
        &e.purpose,
        &e.pids,
        &e.fields,
        e.decision.as_str(),
        &e.outcome,
        &e.request_id,
        &e.trace_id,
    ] {
        str(out, s);
    }
    out.extend_from_slice(&e.request_hash);
    out.extend_from_slice(&e.response_hash);
    out.push(u8::from(e.hidden_until.is_some()));
    str(out, e.hidden_until.as_deref().unwrap_or(""));
}

fn str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A signed checkpoint: the log's length and last hash at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last record it covers.
    pub seq: u64,
    /// That record's hash.
    pub hash: Hash,
    /// When it was signed.
    pub time: String,
    /// Ed25519 over [`checkpoint_message`].
    pub signature: Vec<u8>,
}

/// What a checkpoint signs: the log's length and its last hash, at a time.
///
/// ```text
/// u64be(seq) ‖ hash[32] ‖ str(time)
/// ```
pub fn checkpoint_message(seq: u64, hash: &Hash, time: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(8 + 32 + 4 + time.len());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&(time.len() as u32).to_be_bytes());
    m.extend_from_slice(time.as_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn entry(n: u8) -> AuditEntry {
        AuditEntry {
            agency: "bank".into(),
            operation: "verify_identity".into(),
            purpose: "KYC".into(),
            pids: "001089000001".into(),
            fields: String::new(),
            decision: Decision::Granted,
            outcome: "OK".into(),
            request_id: String::new(),
            trace_id: String::new(),
            request_hash: [n; 32],
            response_hash: [n; 32],
            hidden_until: None,
        }
    }

    #[test]
    fn a_batch_record_names_each_claim_with_its_outcome() {
        let mut batch = entry(1);
        batch.operation = AuditEntry::BATCH.into();
        batch.pids = "001089000001 - 001089000002".into();
        batch.outcome = "OK PID_MALFORMED OK".into();
        assert_eq!(
            batch.claims(),
            [
                ("001089000001", "OK"),
                ("-", "PID_MALFORMED"),
                ("001089000002", "OK")
            ]
        );
        assert_eq!(batch.outcome_for("001089000002"), "OK");
        // Every claim OK: one word for all of them.
        batch.outcome = "OK".into();
        assert_eq!(batch.claims().len(), 3);
        assert_eq!(batch.outcome_for("001089000001"), "OK");
        // A batch refused before its claims were read: one record, one pair.
        batch.pids = String::new();
        batch.outcome = "QUOTA_EXCEEDED".into();
        assert_eq!(batch.claims(), [("", "QUOTA_EXCEEDED")]);
        // Any other record is one pair, whatever Pids it names.
        let mut marriage = entry(1);
        marriage.operation = "record_marriage".into();
        marriage.pids = "001089000001 001089000002".into();
        assert_eq!(marriage.claims(), [("001089000001 001089000002", "OK")]);
    }

    #[test]
    fn every_column_is_in_the_hash() {
        let base = AuditRecord::chain(1, "t".into(), entry(1), GENESIS);
        let mut changed: Vec<AuditRecord> = Vec::new();
        let edits: [fn(&mut AuditRecord); 16] = [
            |r| r.seq = 2,
            |r| r.time.push('x'),
            |r| r.entry.agency.push('x'),
            |r| r.entry.operation.push('x'),
            |r| r.entry.purpose.push('x'),
            |r| r.entry.pids.push('1'),
            |r| r.entry.fields.push('x'),
            |r| r.entry.decision = Decision::Refused,
            |r| r.entry.outcome.push('x'),
            |r| r.entry.request_id.push('x'),
            |r| r.entry.trace_id.push('x'),
            |r| r.entry.request_hash[0] ^= 1,
            |r| r.entry.response_hash[0] ^= 1,
            |r| r.entry.hidden_until = Some(String::new() + "x"),
            |r| r.entry.hidden_until = Some(String::new()),
            |r| r.prev_hash[0] ^= 1,
        ];
        for edit in edits {
            let mut r = base.clone();
            edit(&mut r);
            assert_ne!(r.expected_hash(), base.hash);
            changed.push(r);
        }
        assert_eq!(base.expected_hash(), base.hash);
        // Moving bytes between adjacent strings changes the hash too.
        let mut a = base.clone();
        a.entry.agency = "ban".into();
        a.entry.operation = "kverify_identity".into();
        assert_ne!(a.expected_hash(), base.hash);
    }
}
