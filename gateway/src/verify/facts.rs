//! What verification reads of a registered citizen, borrowed from wherever
//! it is kept: a record decoded from the store, or a row of the in-memory
//! projection ([`crate::projection`]).

use lienthong_proto::citizen::LifeStatus;
use lienthong_proto::{Citizen, Date, Sex};

/// The registered facts a claim is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts<'a> {
    /// Full name in NFC, as registered.
    pub full_name: &'a str,
    /// The name as a PARTIAL match compares it ([`lienthong_proto::name::fold_diacritics`]),
    /// when it was made beforehand; `None`: folded when compared.
    pub folded_name: Option<&'a str>,
    /// Date of birth, `YYYYMMDD` as stored.
    pub date_of_birth: u32,
    /// Sex: false male, true female.
    pub female: bool,
    /// Old 9-digit identity card number, empty when none.
    pub old_id_number: &'a str,
    /// Permanent residence: province code and address line.
    pub permanent: Option<(u32, &'a str)>,
    /// Life status code, as [`Citizen::status`].
    pub status: u32,
    /// Chip card issue date `YYYYMMDD`, 0 when none.
    pub card_issued_on: u32,
    /// Chip card expiry `YYYYMMDD`, 0 when it never expires.
    pub card_expires_on: u32,
}

impl<'a> From<&'a Citizen> for Facts<'a> {
    fn from(c: &'a Citizen) -> Self {
        Self {
            full_name: &c.full_name,
            folded_name: None,
            date_of_birth: c.date_of_birth,
            female: c.female,
            old_id_number: &c.old_id_number,
            permanent: c.permanent.as_ref().map(|a| (a.province, a.line.as_str())),
            status: c.status,
            card_issued_on: c.card_issued_on,
            card_expires_on: c.card_expires_on,
        }
    }
}

impl<'a> Facts<'a> {
    /// The same facts, with the name's folded form `folded`.
    pub fn with_folded_name(self, folded: Option<&'a str>) -> Self {
        Self {
            folded_name: folded,
            ..self
        }
    }

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

    /// Card issue date, when a card has been issued.
    pub fn card_issued_on(&self) -> Option<Date> {
        Date::from_yyyymmdd(self.card_issued_on).ok()
    }

    /// Card expiry, when the card expires.
    pub fn card_expires_on(&self) -> Option<Date> {
        Date::from_yyyymmdd(self.card_expires_on).ok()
    }
}
