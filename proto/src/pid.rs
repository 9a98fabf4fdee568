//! The personal identification number (Pid): 12 digits, also the chip ID-card number.
//!
//! ```text
//!   0 7 9   2   0 3   1 2 3 4 5 6
//!   └─┬─┘   │   └┬┘   └────┬────┘
//!  province │  year   assigned serial
//!           └ century and sex: 0/1 male/female born 1900–1999,
//!             2/3 2000–2099, 4/5 2100–2199, 6/7 2200–2299, 8/9 1800–1899
//! ```
//!
//! A string that is not 12 ASCII digits, or whose province code is unknown, is
//! *malformed* ([`PidError`]) and never reaches a look-up. A well-formed Pid
//! whose century/sex or year digits disagree with a date of birth or sex is a
//! *mismatch* ([`Pid::consistent_with`]).

use std::fmt;
use std::str::FromStr;

use crate::date::Date;
use crate::province;

/// Sex as recorded at birth registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Male,
    Female,
}

/// A well-formed personal identification number, held as its integer value.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pid(u64);

/// Why a string is not a Pid. Carries no part of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PidError {
    #[error("a personal identification number has exactly 12 digits")]
    Length,
    #[error("a personal identification number holds digits only")]
    NotDigits,
    #[error("unknown province code")]
    Province,
}

impl Pid {
    /// Builds a Pid from its parts; `serial` must be below 1,000,000 and the
    /// year within 1800–2299.
    pub fn from_parts(province: u16, sex: Sex, birth_year: i32, serial: u32) -> Option<Self> {
        province::by_code(province)?;
        if serial >= 1_000_000 || !(1800..=2299).contains(&birth_year) {
            return None;
        }
        let century_digit = match birth_year.div_euclid(100) {
            18 => 8,
            c => (c - 19) as u64 * 2,
        };
        let cs = century_digit + u64::from(sex == Sex::Female);
        let yy = (birth_year % 100) as u64;
        Some(Self(
            u64::from(province) * 1_000_000_000
                + cs * 100_000_000
                + yy * 1_000_000
                + u64::from(serial),
        ))
    }

    /// Rebuilds a Pid from its integer value (as stored), validating it.
    pub fn from_u64(v: u64) -> Result<Self, PidError> {
        if v >= 1_000_000_000_000 {
            return Err(PidError::Length);
        }
        province::by_code((v / 1_000_000_000) as u16).ok_or(PidError::Province)?;
        Ok(Self(v))
    }

    /// The integer value, the store's key.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The province code where the birth was registered.
    pub fn province_code(self) -> u16 {
        (self.0 / 1_000_000_000) as u16
    }

    /// The century/sex digit.
    fn century_sex_digit(self) -> u8 {
        ((self.0 / 100_000_000) % 10) as u8
    }

    /// The sex encoded in the Pid.
    pub fn sex(self) -> Sex {
        if self.century_sex_digit().is_multiple_of(2) {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// The year of birth encoded in the Pid.
    pub fn birth_year(self) -> i32 {
        let century = match self.century_sex_digit() / 2 {
            4 => 1800,
            c => 1900 + i32::from(c) * 100,
        };
        century + ((self.0 / 1_000_000) % 100) as i32
    }

    /// The 6-digit assigned serial.
    pub fn serial(self) -> u32 {
        (self.0 % 1_000_000) as u32
    }

    /// Whether the Pid's digits agree with a date of birth and a sex (each
    /// checked only when given).
    pub fn consistent_with(self, date_of_birth: Option<Date>, sex: Option<Sex>) -> bool {
        date_of_birth.is_none_or(|d| d.year() == self.birth_year())
            && sex.is_none_or(|s| s == self.sex())
    }
}

impl FromStr for Pid {
    type Err = PidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 12 {
            return Err(if s.chars().count() == 12 {
                PidError::NotDigits
            } else {
                PidError::Length
            });
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PidError::NotDigits);
        }
        Self::from_u64(s.parse().map_err(|_| PidError::NotDigits)?)
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012}", self.0)
    }
}

/// Debug shows the Pid: it is an identifier, and Debug output is not for logs.
impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pid({self})")
    }
}

impl serde::Serialize for Pid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes_structure() {
        // (pid, province, sex, birth year)
        let cases = [
            ("079203123456", 79, Sex::Male, 2003),
            ("001185000001", 1, Sex::Female, 1985),
            ("096312999999", 96, Sex::Female, 2012),
            ("048099000000", 48, Sex::Male, 1999),
            ("031999000007", 31, Sex::Female, 1899),
            ("038400000001", 38, Sex::Male, 2100),
        ];
        for (text, prov, sex, year) in cases {
            let pid: Pid = text.parse().unwrap();
            assert_eq!(pid.to_string(), text);
            assert_eq!(pid.province_code(), prov, "{text}");
            assert_eq!(pid.sex(), sex, "{text}");
            assert_eq!(pid.birth_year(), year, "{text}");
            assert_eq!(Pid::from_parts(prov, sex, year, pid.serial()), Some(pid));
        }
    }

    #[test]
    fn rejects_malformed() {
        let cases = [
            ("", PidError::Length),
            ("07920312345", PidError::Length),
            ("0792031234567", PidError::Length),
            ("07920312345a", PidError::NotDigits),
            ("０79203123456", PidError::NotDigits),
            ("07920312345٣", PidError::NotDigits),
            (" 79203123456", PidError::NotDigits),
            ("003203123456", PidError::Province),
            ("000203123456", PidError::Province),
            ("999203123456", PidError::Province),
        ];
        for (text, err) in cases {
            assert_eq!(text.parse::<Pid>(), Err(err), "{text:?}");
        }
    }

    #[test]
    fn checks_digits_against_birth_facts() {
        let pid: Pid = "079203123456".parse().unwrap();
        let d = |s: &str| Some(s.parse::<Date>().unwrap());
        assert!(pid.consistent_with(d("2003-05-01"), Some(Sex::Male)));
        assert!(!pid.consistent_with(d("2004-05-01"), None));
        assert!(!pid.consistent_with(d("1903-05-01"), None));
        assert!(!pid.consistent_with(None, Some(Sex::Female)));
        assert!(pid.consistent_with(None, None));
    }
}
