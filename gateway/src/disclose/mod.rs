//! Disclosure: the granted fields of a citizen record, each with its provenance.
//!
//! The policy has already allowed every requested field (a request naming
//! one field too many is refused whole before this runs); this module only
//! reads them out of the record.

mod field;

pub use field::Field;

use lienthong_proto::citizen::{Address, FieldGroup, LifeStatus, Marital, Provenance};
use lienthong_proto::{Citizen, Date, Pid, Sex};

/// The value of one disclosed field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// The register holds nothing for this field (e.g. no spouse).
    Empty,
    /// Names, codes, Pids.
    Text(String),
    /// A list of names.
    Names(Vec<String>),
    /// A date.
    Date(Date),
    /// Sex.
    Sex(Sex),
    /// The chip card.
    Card {
        number: Pid,
        issued_on: Date,
        expires_on: Option<Date>,
    },
    /// A residence.
    Residence(Address),
    /// Marital status.
    Marital(Marital),
    /// Household head and relation.
    Household { head: Pid, relation: String },
    /// Life status and date of death.
    Life {
        status: LifeStatus,
        died_on: Option<Date>,
    },
}

/// One disclosed field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disclosed {
    /// Which field.
    pub field: Field,
    /// Its value.
    pub value: FieldValue,
    /// Who recorded it, and when it last changed.
    pub provenance: Provenance,
}

/// Reads `fields` (already granted; duplicates dropped, order kept) out of `c`.
pub fn disclose(c: &Citizen, fields: &[Field]) -> Vec<Disclosed> {
    let mut seen = Vec::with_capacity(fields.len());
    for &f in fields {
        if !seen.contains(&f) {
            seen.push(f);
        }
    }
    seen.into_iter()
        .map(|field| {
            let (value, group) = read(c, field);
            Disclosed {
                field,
                value,
                provenance: c.provenance(group),
            }
        })
        .collect()
}

fn text(s: &str) -> FieldValue {
    if s.is_empty() {
        FieldValue::Empty
    } else {
        FieldValue::Text(s.to_owned())
    }
}

fn pid(v: u64) -> FieldValue {
    Pid::from_u64(v).map_or(FieldValue::Empty, |p| FieldValue::Text(p.to_string()))
}

fn province(code: u32) -> FieldValue {
    if code == 0 {
        FieldValue::Empty
    } else {
        FieldValue::Text(lienthong_proto::province::code_text(code))
    }
}

fn residence(a: &Option<Address>) -> FieldValue {
    a.clone().map_or(FieldValue::Empty, FieldValue::Residence)
}

fn read(c: &Citizen, field: Field) -> (FieldValue, FieldGroup) {
    use FieldGroup as G;
    match field {
        Field::FullName => (text(&c.full_name), G::Birth),
        Field::OtherNames => (FieldValue::Names(c.other_names.clone()), G::Birth),
        Field::DateOfBirth => (
            c.date_of_birth()
                .map_or(FieldValue::Empty, FieldValue::Date),
            G::Birth,
        ),
        Field::Sex => (FieldValue::Sex(c.sex()), G::Birth),
        Field::BirthRegistrationPlace => (province(c.birth_province), G::Birth),
        Field::NativePlace => (province(c.native_province), G::Birth),
        Field::Ethnicity => (text(&c.ethnicity), G::Birth),
        Field::Religion => (text(&c.religion), G::Other),
        Field::Nationality => (text(&c.nationality), G::Birth),
        Field::BloodType => (text(&c.blood_type), G::Other),
        Field::OldIdNumber => (text(&c.old_id_number), G::Card),
        Field::Card => {
            let value = match (Pid::from_u64(c.pid), c.card_issued_on()) {
                (Ok(number), Some(issued_on)) => FieldValue::Card {
                    number,
                    issued_on,
                    expires_on: c.card_expires_on(),
                },
                _ => FieldValue::Empty,
            };
            (value, G::Card)
        }
        Field::PermanentResidence => (residence(&c.permanent), G::Residence),
        Field::TemporaryResidence => (residence(&c.temporary), G::Residence),
        Field::CurrentResidence => (residence(&c.current), G::Residence),
        Field::MaritalStatus => (FieldValue::Marital(c.marital_status()), G::Marital),
        Field::Father => (pid(c.father), G::Birth),
        Field::Mother => (pid(c.mother), G::Birth),
        Field::Spouse => (pid(c.spouse), G::Marital),
        Field::Household => {
            let value = match Pid::from_u64(c.household_head) {
                Ok(head) => FieldValue::Household {
                    head,
                    relation: c.household_relation.clone(),
                },
                Err(_) => FieldValue::Empty,
            };
            (value, G::Residence)
        }
        Field::Status => (
            FieldValue::Life {
                status: c.life_status(),
                died_on: c.died_on(),
            },
            G::Status,
        ),
    }
}
