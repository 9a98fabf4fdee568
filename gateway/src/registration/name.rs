//! `ChangeName`: a citizen's full name changes; the former one is kept
//! among their other names.

use lienthong_proto::citizen::FieldGroup;
use lienthong_proto::event::kind;
use lienthong_proto::{Date, Pid};
use serde_json::json;

use super::{Change, Effect, living, touch};
use crate::error::{Error, Result};
use crate::policy::Role;
use crate::registry::WriteScope;

/// A change of full name.
#[derive(Debug, Clone)]
pub struct NameChange {
    /// The citizen.
    pub pid: Pid,
    /// The new full name, in its registered form.
    pub full_name: String,
}

impl Change for NameChange {
    const OPERATION: &'static str = "change_name";
    const ROLE: Role = Role::CivilRegistry;
    const EVENT: &'static str = kind::NAME_CHANGED;

    fn plan(&self, scope: &mut dyn WriteScope, today: Date) -> Result<Effect> {
        let mut citizen = living(scope, self.pid, "pid")?;
        if citizen.full_name == self.full_name {
            return Err(Error::invalid(
                "full_name",
                "is already the registered name",
            ));
        }
        let former = std::mem::replace(&mut citizen.full_name, self.full_name.clone());
        if !citizen.other_names.contains(&former) {
            citizen.other_names.push(former);
        }
        citizen.other_names.retain(|n| *n != self.full_name);
        touch(&mut citizen, FieldGroup::Birth, today);
        Ok(Effect {
            pid: self.pid,
            records: vec![citizen],
            data: json!({ "full_name": self.full_name }),
        })
    }
}
