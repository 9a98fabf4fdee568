//! `RecordDeath`: a citizen dies; a surviving spouse becomes widowed.

use lienthong_proto::citizen::{FieldGroup, LifeStatus, Marital};
use lienthong_proto::event::kind;
use lienthong_proto::{Date, Pid};
use serde_json::json;

use super::{Change, Effect, living, not_before_birth, not_future, touch};
use crate::error::{Error, Reason, Result};
use crate::policy::Role;
use crate::registry::WriteScope;

/// A death to record.
#[derive(Debug, Clone)]
pub struct Death {
    /// The deceased.
    pub pid: Pid,
    /// Date of death.
    pub died_on: Date,
}

impl Change for Death {
    const OPERATION: &'static str = "record_death";
    const ROLE: Role = Role::CivilRegistry;
    const EVENT: &'static str = kind::DIED;

    fn plan(&self, scope: &mut dyn WriteScope, today: Date) -> Result<Effect> {
        let mut citizen = living(scope, self.pid, "pid").map_err(|e| match e {
            Error::Conflict { .. } => Error::Conflict {
                reason: Reason::CitizenDeceased,
                subject: "pid",
                description: "a death is already recorded",
            },
            e => e,
        })?;
        not_future(self.died_on, today, "date_of_death")?;
        not_before_birth(self.died_on, &citizen, "date_of_death")?;
        citizen.status = LifeStatus::Deceased as u32;
        citizen.died_on = self.died_on.to_yyyymmdd();
        touch(&mut citizen, FieldGroup::Status, today);
        let mut records = Vec::with_capacity(2);
        let mut widowed = None;
        if citizen.marital_status() == Marital::Married
            && let Ok(spouse_pid) = Pid::from_u64(citizen.spouse)
            && let Some(mut spouse) = scope.get(spouse_pid)?
            && spouse.spouse == citizen.pid
            && spouse.life_status() != LifeStatus::Deceased
        {
            spouse.marital = Marital::Widowed as u32;
            touch(&mut spouse, FieldGroup::Marital, today);
            widowed = Some(spouse_pid.to_string());
            records.push(spouse);
        }
        records.push(citizen);
        Ok(Effect {
            pid: self.pid,
            records,
            data: json!({
                "date_of_death": self.died_on,
                "widowed_spouse": widowed,
            }),
        })
    }
}
