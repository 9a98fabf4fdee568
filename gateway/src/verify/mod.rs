//! Verification: answering an agency's claims about a person with verdicts,
//! never with data.
//!
//! A [`Claim`] has already been parsed at the edge (a malformed Pid never
//! gets here). [`verify`] compares it with the registered [`Facts`] field by
//! field and answers the predicates; [`Verifier`] does the look-ups, one or
//! many claims at a time, in the in-memory [`Projection`].

mod claim;
mod facts;
mod predicate;

pub use claim::{Claim, ResidenceClaim};
pub use facts::Facts;
pub use predicate::Predicate;

use std::sync::Arc;

use lienthong_proto::Date;
use lienthong_proto::citizen::LifeStatus;
use lienthong_proto::name::{self, NameMatch};

use crate::error::{Error, Result};
use crate::projection::Projection;

/// The overall answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every claimed field matches.
    Match,
    /// At least one claimed field does not.
    Mismatch,
    /// No citizen has the Pid.
    NotFound,
}

/// A field that can be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimedField {
    /// The Pid's century/sex and year digits against the claimed birth facts.
    PidDigits,
    FullName,
    DateOfBirth,
    Sex,
    OldIdNumber,
    PermanentResidence,
}

/// The result for one claimed field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldResult {
    /// Which field.
    pub field: ClaimedField,
    /// Whether it matches.
    pub matched: bool,
    /// Similarity 0–100.
    pub score: u32,
}

/// Validity of the chip card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardValidity {
    Valid,
    Expired,
    None,
}

/// The answer to one claim: verdicts only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Overall verdict.
    pub verdict: Verdict,
    /// One result per claimed field, Pid digits first.
    pub fields: Vec<FieldResult>,
    /// Life status, when found.
    pub holder_status: Option<LifeStatus>,
    /// Card validity, when found.
    pub card: Option<CardValidity>,
    /// One answer per predicate, in the order asked (empty when not found).
    pub predicates: Vec<bool>,
}

impl FieldResult {
    fn exact(field: ClaimedField, matched: bool) -> Self {
        Self {
            field,
            matched,
            score: if matched { 100 } else { 0 },
        }
    }
}

/// Compares `claim` with the registered facts (`None`: not found), as of `today`.
pub fn verify(
    claim: &Claim,
    citizen: Option<&Facts<'_>>,
    how: NameMatch,
    today: Date,
) -> Verification {
    let mut fields = Vec::with_capacity(6);
    if claim.date_of_birth.is_some() || claim.sex.is_some() {
        let consistent = claim.pid.consistent_with(claim.date_of_birth, claim.sex);
        fields.push(FieldResult::exact(ClaimedField::PidDigits, consistent));
    }
    let Some(c) = citizen else {
        return Verification {
            verdict: Verdict::NotFound,
            fields: Vec::new(),
            holder_status: None,
            card: None,
            predicates: Vec::new(),
        };
    };
    if let Some(claimed) = &claim.full_name {
        let s = name::compare_registered(claimed, c.full_name, c.folded_name, how);
        fields.push(FieldResult {
            field: ClaimedField::FullName,
            matched: s.matched,
            score: s.score,
        });
    }
    if let Some(dob) = claim.date_of_birth {
        fields.push(FieldResult::exact(
            ClaimedField::DateOfBirth,
            dob.to_yyyymmdd() == c.date_of_birth,
        ));
    }
    if let Some(sex) = claim.sex {
        fields.push(FieldResult::exact(ClaimedField::Sex, sex == c.sex()));
    }
    if let Some(old) = &claim.old_id_number {
        fields.push(FieldResult::exact(
            ClaimedField::OldIdNumber,
            !c.old_id_number.is_empty() && old == c.old_id_number,
        ));
    }
    if let Some(residence) = &claim.permanent_residence {
        fields.push(residence.compare(c.permanent, how));
    }
    let verdict = if fields.iter().all(|f| f.matched) {
        Verdict::Match
    } else {
        Verdict::Mismatch
    };
    Verification {
        verdict,
        fields,
        holder_status: Some(c.life_status()),
        card: Some(card_validity(c, today)),
        predicates: claim.predicates.iter().map(|p| p.holds(c, today)).collect(),
    }
}

/// Whether the citizen's chip card is valid on `today`.
fn card_validity(c: &Facts<'_>, today: Date) -> CardValidity {
    match (c.card_issued_on(), c.card_expires_on()) {
        (None, _) => CardValidity::None,
        (Some(_), Some(expiry)) if expiry < today => CardValidity::Expired,
        (Some(_), _) if c.life_status() == LifeStatus::Deceased => CardValidity::Expired,
        (Some(_), _) => CardValidity::Valid,
    }
}

/// Verifies claims against the projection of the register.
#[derive(Clone)]
pub struct Verifier {
    projection: Arc<Projection>,
}

impl Verifier {
    /// A verifier reading from `projection`.
    pub fn new(projection: Arc<Projection>) -> Self {
        Self { projection }
    }

    /// Verifies many claims against the projection; results in claim
    /// order. Memory-bound, no I/O; a batch's thousands of name comparisons
    /// still belong on the blocking pool.
    pub fn verify_many(&self, claims: &[&Claim], how: NameMatch) -> Result<Vec<Verification>> {
        let today = Date::today();
        let pids = claims.iter().map(|c| c.pid);
        let mut out = Vec::with_capacity(claims.len());
        self.projection.visit(pids, |i, facts| {
            out.push(verify(claims[i], facts.as_ref(), how, today));
        });
        if out.len() != claims.len() {
            return Err(Error::Task);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
