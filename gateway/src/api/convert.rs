//! Decoding requests into domain values and encoding answers, at the edge.
//!
//! Field paths in errors are relative to the claim (`pid`,
//! `date_of_birth`, `predicates[1].permanent_resident_of.province_code`);
//! a single request prefixes them with `claim.`.

use lienthong_proto::citizen::{Address, LifeStatus, Marital};
use lienthong_proto::name::NameMatch;
use lienthong_proto::{Date, Pid, Sex, province, v1};

use crate::disclose::{Disclosed, Field, FieldValue};
use crate::error::{Error, Reason, Result};
use crate::verify::{self, CardValidity, Claim, ClaimedField, Predicate, ResidenceClaim, Verdict};

/// Default PARTIAL threshold.
const DEFAULT_THRESHOLD: u32 = 85;

/// Parses a Pid, or says why it is malformed.
pub(crate) fn pid(text: &str, field: &str) -> Result<Pid> {
    text.parse()
        .map_err(|e: lienthong_proto::PidError| Error::InvalidArgument {
            reason: Reason::PidMalformed,
            field: field.to_owned(),
            description: e.to_string(),
        })
}

pub(crate) fn date(d: &v1::Date, field: &str) -> Result<Date> {
    let (Ok(month), Ok(day)) = (u32::try_from(d.month), u32::try_from(d.day)) else {
        return Err(Error::invalid(field, "no such day in the calendar"));
    };
    Date::new(d.year, month, day).map_err(|e| Error::invalid(field, e.to_string()))
}

pub(crate) fn sex(value: i32, field: &str) -> Result<Option<Sex>> {
    match v1::Sex::try_from(value) {
        Ok(v1::Sex::Unspecified) => Ok(None),
        Ok(v1::Sex::Male) => Ok(Some(Sex::Male)),
        Ok(v1::Sex::Female) => Ok(Some(Sex::Female)),
        Err(_) => Err(Error::invalid(field, "unknown sex value")),
    }
}

pub(crate) fn province_code(code: &str, field: &str) -> Result<u16> {
    province::parse_code(code)
        .map(|p| p.code)
        .ok_or_else(|| Error::invalid(field, "not a known 3-digit province code"))
}

/// Decodes the match options.
pub(crate) fn match_options(m: Option<&v1::MatchOptions>) -> Result<NameMatch> {
    let Some(m) = m else {
        return Ok(NameMatch::Exact);
    };
    match v1::MatchStrategy::try_from(m.strategy) {
        Ok(v1::MatchStrategy::Unspecified | v1::MatchStrategy::Exact) => Ok(NameMatch::Exact),
        Ok(v1::MatchStrategy::Partial) => match m.threshold {
            0 => Ok(NameMatch::Partial {
                threshold: DEFAULT_THRESHOLD,
            }),
            t @ 1..=100 => Ok(NameMatch::Partial { threshold: t }),
            _ => Err(Error::invalid(
                "match.threshold",
                "must be 1–100 (0 for the default)",
            )),
        },
        Err(_) => Err(Error::invalid("match.strategy", "unknown strategy")),
    }
}

/// Decodes one claim, moving its name out of the wire message (the rest
/// stays for the answer); a malformed Pid is `PID_MALFORMED`, any other bad
/// field `ARGUMENT_INVALID`, each naming the field.
pub(crate) fn take_claim(c: &mut v1::IdentityClaim) -> Result<Claim> {
    let mut claim = Claim::pid_only(pid(&c.pid, "pid")?);
    if let Some(name) = &c.full_name {
        if name.trim().is_empty() {
            return Err(Error::invalid(
                "full_name",
                "empty; leave it unset not to claim a name",
            ));
        }
        claim.full_name = Some(name.clone());
    }
    claim.date_of_birth = c
        .date_of_birth
        .as_ref()
        .map(|d| date(d, "date_of_birth"))
        .transpose()?;
    claim.sex = sex(c.sex, "sex")?;
    if let Some(old) = &c.old_id_number {
        if old.len() != 9 || !old.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid(
                "old_id_number",
                "an old ID number has exactly 9 digits",
            ));
        }
        claim.old_id_number = Some(old.clone());
    }
    if let Some(r) = &c.permanent_residence {
        claim.permanent_residence = Some(ResidenceClaim {
            province: province_code(&r.province_code, "permanent_residence.province_code")?,
            line: (!r.address_line.trim().is_empty()).then(|| r.address_line.clone()),
        });
    }
    for (i, p) in c.predicates.iter().enumerate() {
        use v1::predicate::Kind;
        let predicate = match &p.kind {
            Some(Kind::AgeAtLeast(a)) if a.years <= 150 => Predicate::AgeAtLeast(a.years),
            Some(Kind::AgeAtLeast(_)) => {
                return Err(Error::invalid(
                    format!("predicates[{i}].age_at_least.years"),
                    "must be at most 150",
                ));
            }
            Some(Kind::PermanentResidentOf(r)) => Predicate::PermanentResidentOf(province_code(
                &r.province_code,
                &format!("predicates[{i}].permanent_resident_of.province_code"),
            )?),
            Some(Kind::Alive(_)) => Predicate::Alive,
            None => {
                return Err(Error::invalid(
                    format!("predicates[{i}]"),
                    "names no predicate",
                ));
            }
        };
        claim.predicates.push(predicate);
    }
    Ok(claim)
}

/// Prefixes the field path of an argument error (`pid` → `claim.pid`).
pub(crate) fn within(prefix: &str, err: Error) -> Error {
    match err {
        Error::InvalidArgument {
            reason,
            field,
            description,
        } => Error::InvalidArgument {
            reason,
            field: format!("{prefix}.{field}"),
            description,
        },
        other => other,
    }
}

fn date_out(d: Date) -> v1::Date {
    d.into()
}

fn status_out(s: LifeStatus) -> v1::HolderStatus {
    match s {
        LifeStatus::Alive => v1::HolderStatus::Alive,
        LifeStatus::Deceased => v1::HolderStatus::Deceased,
        LifeStatus::Missing => v1::HolderStatus::Missing,
    }
}

/// Encodes a verification; `claim` supplies the predicates as asked.
pub(crate) fn verification(
    reference: String,
    asked: &[v1::Predicate],
    v: verify::Verification,
) -> v1::IdentityVerification {
    let verdict = match v.verdict {
        Verdict::Match => v1::Verdict::Match,
        Verdict::Mismatch => v1::Verdict::Mismatch,
        Verdict::NotFound => v1::Verdict::NotFound,
    };
    let fields = v
        .fields
        .iter()
        .map(|f| v1::FieldResult {
            field: match f.field {
                ClaimedField::PidDigits => v1::ClaimedField::PidDigits,
                ClaimedField::FullName => v1::ClaimedField::FullName,
                ClaimedField::DateOfBirth => v1::ClaimedField::DateOfBirth,
                ClaimedField::Sex => v1::ClaimedField::Sex,
                ClaimedField::OldIdNumber => v1::ClaimedField::OldIdNumber,
                ClaimedField::PermanentResidence => v1::ClaimedField::PermanentResidence,
            } as i32,
            matched: f.matched,
            score: f.score,
        })
        .collect();
    let card = v.card.map_or(v1::CardValidity::Unspecified, |c| match c {
        CardValidity::Valid => v1::CardValidity::Valid,
        CardValidity::Expired => v1::CardValidity::Expired,
        CardValidity::None => v1::CardValidity::None,
    });
    v1::IdentityVerification {
        reference,
        verdict: verdict as i32,
        fields,
        holder_status: v
            .holder_status
            .map_or(v1::HolderStatus::Unspecified, status_out) as i32,
        card_validity: card as i32,
        predicates: asked
            .iter()
            .zip(&v.predicates)
            .map(|(p, &holds)| v1::PredicateResult {
                predicate: Some(p.clone()),
                holds,
            })
            .collect(),
    }
}

/// A per-claim error in a batch.
pub(crate) fn claim_error(err: &Error) -> v1::ClaimError {
    let field = match err {
        Error::InvalidArgument { field, .. } => field.clone(),
        _ => String::new(),
    };
    let description = match err {
        Error::InvalidArgument { description, .. } => description.clone(),
        other => other.to_string(),
    };
    v1::ClaimError {
        reason: err.reason().as_str().to_owned(),
        field,
        description,
    }
}

/// Decodes requested fields.
pub(crate) fn fields(values: &[i32]) -> Result<Vec<Field>> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let bad = || Error::invalid(format!("fields[{i}]"), "not a citizen field");
            let f = v1::CitizenField::try_from(v).map_err(|_| bad())?;
            // Wire values 1..=21 follow Field::ALL's order.
            usize::try_from(f as i32 - 1)
                .ok()
                .and_then(|i| Field::ALL.get(i).copied())
                .ok_or_else(bad)
        })
        .collect()
}

fn residence(a: Address) -> v1::Residence {
    v1::Residence {
        province_code: province::code_text(a.province),
        address_line: a.line,
    }
}

/// Encodes one disclosed field.
pub(crate) fn disclosed(d: Disclosed) -> v1::CitizenFieldValue {
    use v1::citizen_field_value::Value;
    let value = match d.value {
        FieldValue::Empty => None,
        FieldValue::Text(t) => Some(Value::Text(t)),
        FieldValue::Names(names) => Some(Value::Names(v1::NameList { names })),
        FieldValue::Date(x) => Some(Value::Date(date_out(x))),
        FieldValue::Sex(s) => Some(Value::Sex(match s {
            Sex::Male => v1::Sex::Male,
            Sex::Female => v1::Sex::Female,
        } as i32)),
        FieldValue::Card {
            number,
            issued_on,
            expires_on,
        } => Some(Value::Card(v1::Card {
            number: number.to_string(),
            issued_on: Some(date_out(issued_on)),
            expires_on: expires_on.map(date_out),
        })),
        FieldValue::Residence(a) => Some(Value::Residence(residence(a))),
        FieldValue::Marital(m) => Some(Value::MaritalStatus(match m {
            Marital::Single => v1::MaritalStatus::Single,
            Marital::Married => v1::MaritalStatus::Married,
            Marital::Divorced => v1::MaritalStatus::Divorced,
            Marital::Widowed => v1::MaritalStatus::Widowed,
        } as i32)),
        FieldValue::Household { head, relation } => Some(Value::Household(v1::Household {
            head_pid: head.to_string(),
            relation,
        })),
        FieldValue::Life { status, died_on } => Some(Value::LifeStatus(v1::LifeStatus {
            status: status_out(status) as i32,
            died_on: died_on.map(date_out),
        })),
    };
    // Field::ALL is in wire order, starting at 1.
    let wire = Field::ALL
        .iter()
        .position(|f| *f == d.field)
        .map_or(0, |i| i as i32 + 1);
    v1::CitizenFieldValue {
        field: wire,
        value,
        provenance: Some(v1::Provenance {
            office: d.provenance.office,
            changed_on: d.provenance.changed_on.map(date_out),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_fields_follow_policy_fields() {
        // The proto's CITIZEN_FIELD_* names are the policy names upper-cased.
        for (i, f) in Field::ALL.iter().enumerate() {
            let wire = v1::CitizenField::try_from(i as i32 + 1).unwrap();
            assert_eq!(
                wire.as_str_name(),
                format!("CITIZEN_FIELD_{}", f.name().to_uppercase())
            );
        }
    }
}
