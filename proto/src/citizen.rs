//! The citizen record: the population database's fields for one person.
//!
//! The record is stored as a compact protobuf message (prost-derived, not part
//! of the public contract): integers for Pids and dates (`YYYYMMDD`), short
//! strings for the rest. Accessors give typed views. Field numbers are stable:
//! add fields, never renumber.

use crate::date::Date;
use crate::pid::Sex;
use crate::province;

/// One citizen as the population database records them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Citizen {
    /// Personal identification number (integer value).
    #[prost(uint64, tag = "1")]
    pub pid: u64,
    /// Full name in NFC, as registered.
    #[prost(string, tag = "2")]
    pub full_name: String,
    /// Other names (aliases, former names).
    #[prost(string, repeated, tag = "3")]
    pub other_names: Vec<String>,
    /// Date of birth, `YYYYMMDD`.
    #[prost(uint32, tag = "4")]
    pub date_of_birth: u32,
    /// Sex: false male, true female.
    #[prost(bool, tag = "5")]
    pub female: bool,
    /// Province code where the birth was registered.
    #[prost(uint32, tag = "6")]
    pub birth_province: u32,
    /// Province code of the native place (quê quán).
    #[prost(uint32, tag = "7")]
    pub native_province: u32,
    /// Ethnicity, e.g. "Kinh".
    #[prost(string, tag = "8")]
    pub ethnicity: String,
    /// Religion, "Không" for none.
    #[prost(string, tag = "9")]
    pub religion: String,
    /// Nationality.
    #[prost(string, tag = "10")]
    pub nationality: String,
    /// Blood type ("O", "A", "B", "AB"), empty when unknown.
    #[prost(string, tag = "11")]
    pub blood_type: String,
    /// Old 9-digit identity card number, empty when none.
    #[prost(string, tag = "12")]
    pub old_id_number: String,
    /// Chip card issue date `YYYYMMDD`, 0 when no card has been issued.
    #[prost(uint32, tag = "13")]
    pub card_issued_on: u32,
    /// Chip card expiry `YYYYMMDD`, 0 when it never expires.
    #[prost(uint32, tag = "14")]
    pub card_expires_on: u32,
    /// Permanent residence.
    #[prost(message, optional, tag = "15")]
    pub permanent: Option<Address>,
    /// Temporary residence, if registered.
    #[prost(message, optional, tag = "16")]
    pub temporary: Option<Address>,
    /// Current residence.
    #[prost(message, optional, tag = "17")]
    pub current: Option<Address>,
    /// Marital status, see [`Marital`].
    #[prost(uint32, tag = "18")]
    pub marital: u32,
    /// Father's Pid, 0 when unknown.
    #[prost(uint64, tag = "19")]
    pub father: u64,
    /// Mother's Pid, 0 when unknown.
    #[prost(uint64, tag = "20")]
    pub mother: u64,
    /// Spouse's Pid, 0 when none.
    #[prost(uint64, tag = "21")]
    pub spouse: u64,
    /// Household head's Pid.
    #[prost(uint64, tag = "22")]
    pub household_head: u64,
    /// Relation to the household head, e.g. "chủ hộ", "vợ", "con".
    #[prost(string, tag = "23")]
    pub household_relation: String,
    /// Life status, see [`LifeStatus`].
    #[prost(uint32, tag = "24")]
    pub status: u32,
    /// Date of death `YYYYMMDD`, 0 unless deceased.
    #[prost(uint32, tag = "25")]
    pub died_on: u32,
    /// Date each [`FieldGroup`] last changed, `YYYYMMDD`, indexed by the group.
    #[prost(uint32, repeated, tag = "26")]
    pub changed_on: Vec<u32>,
}

/// An address: province code and address line.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Address {
    /// Province code.
    #[prost(uint32, tag = "1")]
    pub province: u32,
    /// Street, ward and district.
    #[prost(string, tag = "2")]
    pub line: String,
}

/// Marital status codes stored in [`Citizen::marital`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Marital {
    Single = 0,
    Married = 1,
    Divorced = 2,
    Widowed = 3,
}

/// Life status codes stored in [`Citizen::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u32)]
pub enum LifeStatus {
    Alive = 0,
    Deceased = 1,
    Missing = 2,
}

impl LifeStatus {
    /// The status stored as `code` ([`Citizen::status`]); an unknown code
    /// is read as alive.
    pub fn from_code(code: u32) -> Self {
        match code {
            1 => Self::Deceased,
            2 => Self::Missing,
            _ => Self::Alive,
        }
    }
}

/// Fields change together, recorded by the same office: each group has one
/// provenance (office and date of last change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum FieldGroup {
    /// Name, birth facts, parents, ethnicity, nationality: the civil registry
    /// of the birth province.
    Birth = 0,
    /// Old ID number and chip card: the card-issuing police department.
    Card = 1,
    /// Residences and household: the residence police of the province.
    Residence = 2,
    /// Marital status and spouse: the civil registry.
    Marital = 3,
    /// Alive, deceased, missing: the civil registry.
    Status = 4,
    /// Religion and blood type: the population database itself.
    Other = 5,
}

/// Which office recorded a group of fields, and when it last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// Office code, e.g. "civil-registry/001".
    pub office: String,
    /// Date of the last change.
    pub changed_on: Option<Date>,
}

impl Citizen {
    /// Date of birth.
    pub fn date_of_birth(&self) -> Option<Date> {
        Date::from_yyyymmdd(self.date_of_birth).ok()
    }

    /// Sex.
    pub fn sex(&self) -> Sex {
        if self.female { Sex::Female } else { Sex::Male }
    }

    /// Life status.
    pub fn life_status(&self) -> LifeStatus {
        LifeStatus::from_code(self.status)
    }

    /// Marital status.
    pub fn marital_status(&self) -> Marital {
        match self.marital {
            1 => Marital::Married,
            2 => Marital::Divorced,
            3 => Marital::Widowed,
            _ => Marital::Single,
        }
    }

    /// Date of death, when deceased.
    pub fn died_on(&self) -> Option<Date> {
        Date::from_yyyymmdd(self.died_on).ok()
    }

    /// Card issue date, when a card has been issued.
    pub fn card_issued_on(&self) -> Option<Date> {
        Date::from_yyyymmdd(self.card_issued_on).ok()
    }

    /// Card expiry, when the card expires.
    pub fn card_expires_on(&self) -> Option<Date> {
        Date::from_yyyymmdd(self.card_expires_on).ok()
    }

    /// Who recorded a group of fields, and when it last changed.
    pub fn provenance(&self, group: FieldGroup) -> Provenance {
        let prov = province::code_text;
        let residence = self.permanent.as_ref().map_or(0, |a| a.province);
        let office = match group {
            FieldGroup::Birth => format!("civil-registry/{}", prov(self.birth_province)),
            FieldGroup::Card => "card-issuer/C06".to_owned(),
            FieldGroup::Residence => format!("residence-police/{}", prov(residence)),
            FieldGroup::Marital | FieldGroup::Status => {
                format!("civil-registry/{}", prov(residence))
            }
            FieldGroup::Other => "population-db".to_owned(),
        };
        let changed_on = self
            .changed_on
            .get(group as usize)
            .and_then(|d| Date::from_yyyymmdd(*d).ok());
        Provenance { office, changed_on }
    }
}

/// How much of a stored record to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordView {
    /// Every field.
    Full,
    /// Only what verification reads: Pid, full name, date of birth, sex, old
    /// ID number, card dates, permanent residence, life status. The other
    /// fields are left empty, and their bytes skipped, not decoded.
    Verification,
}

/// The fields of [`RecordView::Verification`]: the same field numbers as
/// [`Citizen`], so it decodes from the same bytes, skipping the rest.
#[derive(Clone, PartialEq, prost::Message)]
struct VerificationFacts {
    #[prost(uint64, tag = "1")]
    pid: u64,
    #[prost(string, tag = "2")]
    full_name: String,
    #[prost(uint32, tag = "4")]
    date_of_birth: u32,
    #[prost(bool, tag = "5")]
    female: bool,
    #[prost(string, tag = "12")]
    old_id_number: String,
    #[prost(uint32, tag = "13")]
    card_issued_on: u32,
    #[prost(uint32, tag = "14")]
    card_expires_on: u32,
    #[prost(message, optional, tag = "15")]
    permanent: Option<Address>,
    #[prost(uint32, tag = "24")]
    status: u32,
    #[prost(uint32, tag = "25")]
    died_on: u32,
}

impl Citizen {
    /// Decodes a stored record, all of it or only a view's fields.
    pub fn decode_view(bytes: &[u8], view: RecordView) -> Result<Self, prost::DecodeError> {
        use prost::Message;
        match view {
            RecordView::Full => Self::decode(bytes),
            RecordView::Verification => {
                let f = VerificationFacts::decode(bytes)?;
                Ok(Self {
                    pid: f.pid,
                    full_name: f.full_name,
                    date_of_birth: f.date_of_birth,
                    female: f.female,
                    old_id_number: f.old_id_number,
                    card_issued_on: f.card_issued_on,
                    card_expires_on: f.card_expires_on,
                    permanent: f.permanent,
                    status: f.status,
                    died_on: f.died_on,
                    ..Self::default()
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::population::Population;
    use prost::Message;

    #[test]
    fn verification_view_keeps_what_verification_reads() {
        let pop = Population::new(5, 200).unwrap();
        for c in pop.iter() {
            let v = Citizen::decode_view(&c.encode_to_vec(), RecordView::Verification).unwrap();
            assert_eq!(
                (
                    v.pid,
                    &v.full_name,
                    v.date_of_birth,
                    v.female,
                    &v.old_id_number
                ),
                (
                    c.pid,
                    &c.full_name,
                    c.date_of_birth,
                    c.female,
                    &c.old_id_number
                )
            );
            assert_eq!(
                (
                    v.card_issued_on,
                    v.card_expires_on,
                    &v.permanent,
                    v.status,
                    v.died_on
                ),
                (
                    c.card_issued_on,
                    c.card_expires_on,
                    &c.permanent,
                    c.status,
                    c.died_on
                )
            );
            assert!(v.ethnicity.is_empty() && v.temporary.is_none() && v.changed_on.is_empty());
            assert_eq!(
                Citizen::decode_view(&c.encode_to_vec(), RecordView::Full).unwrap(),
                c
            );
        }
    }
}
