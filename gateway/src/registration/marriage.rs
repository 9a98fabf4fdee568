//! `RecordMarriage`: two living, unmarried citizens marry.

use lienthong_proto::citizen::{FieldGroup, Marital};
use lienthong_proto::event::kind;
use lienthong_proto::{Date, Pid, Sex};
use serde_json::json;

use super::{Change, Effect, living, not_before_birth, not_future, touch};
use crate::error::{Error, Reason, Result};
use crate::policy::Role;
use crate::registry::WriteScope;

/// A marriage to record.
#[derive(Debug, Clone)]
pub struct Marriage {
    /// One spouse (the event's subject).
    pub pid: Pid,
    /// The other spouse.
    pub spouse: Pid,
    /// Date of registration.
    pub married_on: Date,
}

/// The legal age of marriage for men (Vietnam's Law on Marriage and
/// Family, art. 8: "from full 20 years").
const MARRIAGE_AGE_MEN: i32 = 20;
/// The legal age of marriage for women ("from full 18 years").
const MARRIAGE_AGE_WOMEN: i32 = 18;

impl Change for Marriage {
    const OPERATION: &'static str = "record_marriage";
    const ROLE: Role = Role::CivilRegistry;
    const EVENT: &'static str = kind::MARRIED;

    fn plan(&self, scope: &mut dyn WriteScope, today: Date) -> Result<Effect> {
        if self.pid == self.spouse {
            return Err(Error::invalid("spouse_pid", "is the same person as pid"));
        }
        not_future(self.married_on, today, "married_on")?;
        let mut records = Vec::with_capacity(2);
        for (pid, field, other) in [
            (self.pid, "pid", self.spouse),
            (self.spouse, "spouse_pid", self.pid),
        ] {
            let mut citizen = living(scope, pid, field)?;
            if citizen.marital_status() == Marital::Married {
                return Err(Error::Conflict {
                    reason: Reason::AlreadyMarried,
                    subject: field,
                    description: "is already married",
                });
            }
            not_before_birth(self.married_on, &citizen, "married_on")?;
            let of_age = match citizen.sex() {
                Sex::Male => MARRIAGE_AGE_MEN,
                Sex::Female => MARRIAGE_AGE_WOMEN,
            };
            if citizen
                .date_of_birth()
                .is_some_and(|born| born.age_on(self.married_on) < of_age)
            {
                return Err(Error::Conflict {
                    reason: Reason::UnderMarriageAge,
                    subject: field,
                    description: "is under the legal age of marriage (20 for men, 18 for women)",
                });
            }
            citizen.marital = Marital::Married as u32;
            citizen.spouse = other.as_u64();
            touch(&mut citizen, FieldGroup::Marital, today);
            records.push(citizen);
        }
        Ok(Effect {
            pid: self.pid,
            records,
            data: json!({
                "spouse": self.spouse.to_string(),
                "married_on": self.married_on,
            }),
        })
    }
}
