//! The citizen-record fields an agency can be granted, by their policy names.

use std::fmt;

/// A field of the citizen record, as named in policies (`snake_case`) and on
/// the wire (`CITIZEN_FIELD_*`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    FullName,
    OtherNames,
    DateOfBirth,
    Sex,
    BirthRegistrationPlace,
    NativePlace,
    Ethnicity,
    Religion,
    Nationality,
    BloodType,
    OldIdNumber,
    Card,
    PermanentResidence,
    TemporaryResidence,
    CurrentResidence,
    MaritalStatus,
    Father,
    Mother,
    Spouse,
    Household,
    Status,
}

impl Field {
    /// Every field, in wire order.
    pub const ALL: [Field; 21] = [
        Self::FullName,
        Self::OtherNames,
        Self::DateOfBirth,
        Self::Sex,
        Self::BirthRegistrationPlace,
        Self::NativePlace,
        Self::Ethnicity,
        Self::Religion,
        Self::Nationality,
        Self::BloodType,
        Self::OldIdNumber,
        Self::Card,
        Self::PermanentResidence,
        Self::TemporaryResidence,
        Self::CurrentResidence,
        Self::MaritalStatus,
        Self::Father,
        Self::Mother,
        Self::Spouse,
        Self::Household,
        Self::Status,
    ];

    /// The policy name, e.g. `date_of_birth`.
    pub fn name(self) -> &'static str {
        match self {
            Self::FullName => "full_name",
            Self::OtherNames => "other_names",
            Self::DateOfBirth => "date_of_birth",
            Self::Sex => "sex",
            Self::BirthRegistrationPlace => "birth_registration_place",
            Self::NativePlace => "native_place",
            Self::Ethnicity => "ethnicity",
            Self::Religion => "religion",
            Self::Nationality => "nationality",
            Self::BloodType => "blood_type",
            Self::OldIdNumber => "old_id_number",
            Self::Card => "card",
            Self::PermanentResidence => "permanent_residence",
            Self::TemporaryResidence => "temporary_residence",
            Self::CurrentResidence => "current_residence",
            Self::MaritalStatus => "marital_status",
            Self::Father => "father",
            Self::Mother => "mother",
            Self::Spouse => "spouse",
            Self::Household => "household",
            Self::Status => "status",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde() {
        for field in Field::ALL {
            let parsed: Field = serde_json::from_str(&format!("\"{}\"", field.name())).unwrap();
            assert_eq!(parsed, field);
        }
    }
}
