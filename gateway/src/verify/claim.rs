//! What an agency claims about a person, in domain terms.

use lienthong_proto::name::{self, NameMatch};
use lienthong_proto::{Date, Pid, Sex};

use super::{ClaimedField, FieldResult, Predicate};

/// A parsed identity claim: only the Pid is required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The person's Pid (well-formed).
    pub pid: Pid,
    /// Claimed full name.
    pub full_name: Option<String>,
    /// Claimed date of birth.
    pub date_of_birth: Option<Date>,
    /// Claimed sex.
    pub sex: Option<Sex>,
    /// Claimed old 9-digit ID number.
    pub old_id_number: Option<String>,
    /// Claimed permanent residence.
    pub permanent_residence: Option<ResidenceClaim>,
    /// Yes/no questions.
    pub predicates: Vec<Predicate>,
}

impl Claim {
    /// A claim of the Pid alone.
    pub fn pid_only(pid: Pid) -> Self {
        Self {
            pid,
            full_name: None,
            date_of_birth: None,
            sex: None,
            old_id_number: None,
            permanent_residence: None,
            predicates: Vec::new(),
        }
    }
}

/// A claimed permanent residence: the province, and optionally the address line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidenceClaim {
    /// Province code.
    pub province: u16,
    /// Address line; `None` checks the province only.
    pub line: Option<String>,
}

impl ResidenceClaim {
    /// Compares with the registered permanent address: the province exactly,
    /// the line as names are compared.
    pub(super) fn compare(&self, registered: Option<(u32, &str)>, how: NameMatch) -> FieldResult {
        let field = ClaimedField::PermanentResidence;
        let Some((province, registered_line)) = registered else {
            return FieldResult::exact(field, false);
        };
        if u32::from(self.province) != province {
            return FieldResult::exact(field, false);
        }
        match &self.line {
            None => FieldResult::exact(field, true),
            Some(line) => {
                let s = name::compare(line, registered_line, how);
                FieldResult {
                    field,
                    matched: s.matched,
                    score: s.score,
                }
            }
        }
    }
}
