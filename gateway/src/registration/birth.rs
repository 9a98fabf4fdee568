//! `RegisterBirth`: a newborn gets a Pid and a record linked to the parents.
//!
//! The Pid is the next free serial for the birth province, the sex and the
//! year of birth:
//!
//! ```text
//! 001 2 26 000042     province · century-and-sex · year · serial
//! ```

use lienthong_proto::citizen::{Address, FieldGroup, LifeStatus};
use lienthong_proto::event::kind;
use lienthong_proto::{Citizen, Date, Pid, Sex, province};
use serde_json::json;

use super::{Change, Effect, not_future, touch};
use crate::error::{Error, Reason, Result};
use crate::policy::Role;
use crate::registry::WriteScope;

/// Highest serial of a Pid.
const LAST_SERIAL: u32 = 999_999;

/// A birth to register.
#[derive(Debug, Clone)]
pub struct Birth {
    /// Full name, in its registered form.
    pub full_name: String,
    /// Date of birth.
    pub date_of_birth: Date,
    /// Sex.
    pub sex: Sex,
    /// Province code where the birth is registered.
    pub birth_province: u16,
    /// Province code of the native place.
    pub native_province: u16,
    /// Ethnicity.
    pub ethnicity: String,
    /// Nationality.
    pub nationality: String,
    /// Father, when named.
    pub father: Option<Pid>,
    /// Mother, when named.
    pub mother: Option<Pid>,
    /// Permanent residence; the mother's (else the father's) when `None`.
    pub residence: Option<Address>,
}

impl Change for Birth {
    const OPERATION: &'static str = "register_birth";
    const ROLE: Role = Role::CivilRegistry;
    const EVENT: &'static str = kind::BORN;

    fn plan(&self, scope: &mut dyn WriteScope, today: Date) -> Result<Effect> {
        not_future(self.date_of_birth, today, "date_of_birth")?;
        let father = self
            .father
            .map(|p| parent(scope, p, "father_pid", Sex::Male, self.date_of_birth))
            .transpose()?;
        let mother = self
            .mother
            .map(|p| parent(scope, p, "mother_pid", Sex::Female, self.date_of_birth))
            .transpose()?;
        let home = mother.as_ref().or(father.as_ref());
        let residence = self
            .residence
            .clone()
            .or_else(|| home.and_then(|h| h.permanent.clone()))
            .ok_or_else(|| {
                Error::invalid(
                    "permanent_residence",
                    "required when neither parent is named",
                )
            })?;
        let pid = next_pid(
            scope,
            self.birth_province,
            self.sex,
            self.date_of_birth.year(),
        )?;
        let (household_head, household_relation) = match home {
            Some(h) if h.permanent.as_ref() == Some(&residence) => (h.household_head, "con"),
            _ => (pid.as_u64(), "chủ hộ"),
        };
        let mut citizen = Citizen {
            pid: pid.as_u64(),
            full_name: self.full_name.clone(),
            date_of_birth: self.date_of_birth.to_yyyymmdd(),
            female: self.sex == Sex::Female,
            birth_province: self.birth_province.into(),
            native_province: self.native_province.into(),
            ethnicity: self.ethnicity.clone(),
            religion: "Không".to_owned(),
            nationality: self.nationality.clone(),
            permanent: Some(residence.clone()),
            current: Some(residence),
            father: self.father.map_or(0, Pid::as_u64),
            mother: self.mother.map_or(0, Pid::as_u64),
            household_head,
            household_relation: household_relation.to_owned(),
            status: LifeStatus::Alive as u32,
            ..Citizen::default()
        };
        for group in [
            FieldGroup::Birth,
            FieldGroup::Residence,
            FieldGroup::Marital,
            FieldGroup::Status,
            FieldGroup::Other,
        ] {
            touch(&mut citizen, group, today);
        }
        Ok(Effect {
            pid,
            records: vec![citizen],
            data: json!({
                "full_name": self.full_name,
                "date_of_birth": self.date_of_birth,
                "sex": if self.sex == Sex::Female { "female" } else { "male" },
                "birth_province_code": province::code_text(self.birth_province.into()),
                "father": self.father.map(|p| p.to_string()),
                "mother": self.mother.map(|p| p.to_string()),
            }),
        })
    }
}

/// The registered parent `pid` named by `field`, checked to be able to be
/// the parent: of `sex`, born before the child, alive at the birth (a
/// father: at most ten months before it).
fn parent(
    scope: &mut dyn WriteScope,
    pid: Pid,
    field: &'static str,
    sex: Sex,
    child_born: Date,
) -> Result<Citizen> {
    let parent = scope.get(pid)?.ok_or(Error::Conflict {
        reason: Reason::ParentNotFound,
        subject: field,
        description: "no citizen has this personal identification number",
    })?;
    if parent.sex() != sex {
        return Err(Error::Conflict {
            reason: Reason::ParentInvalid,
            subject: field,
            description: "is registered with the other sex",
        });
    }
    if parent
        .date_of_birth()
        .is_none_or(|born| born.to_days() >= child_born.to_days())
    {
        return Err(Error::Conflict {
            reason: Reason::ParentInvalid,
            subject: field,
            description: "is not born before the child",
        });
    }
    if let Some(died) = parent.died_on() {
        let last_day = match sex {
            Sex::Male => ten_months_after(died),
            Sex::Female => died,
        };
        if child_born.to_days() > last_day.to_days() {
            return Err(Error::Conflict {
                reason: Reason::ParentInvalid,
                subject: field,
                description: match sex {
                    Sex::Male => "died more than ten months before the birth",
                    Sex::Female => "died before the birth",
                },
            });
        }
    }
    Ok(parent)
}

/// Ten months after `date`: the last day a child of a father who died
/// then can be born (the day clamped to the month's end).
pub(super) fn ten_months_after(date: Date) -> Date {
    let months = date.year() * 12 + date.month() as i32 - 1 + 10;
    let (year, month) = (months.div_euclid(12), months.rem_euclid(12) as u32 + 1);
    (1..=date.day())
        .rev()
        .find_map(|day| Date::new(year, month, day).ok())
        .unwrap_or(date)
}

/// A free Pid for a province, sex and birth year: the next serial, or the
/// first gap once the last serial is taken.
fn next_pid(scope: &mut dyn WriteScope, province: u16, sex: Sex, year: i32) -> Result<Pid> {
    let bound = |serial| {
        Pid::from_parts(province, sex, year, serial)
            .ok_or_else(|| Error::invalid("date_of_birth", "year outside 1800–2299"))
    };
    scope
        .free_within(bound(0)?, bound(LAST_SERIAL)?)?
        .ok_or(Error::PidSpaceExhausted)
}
