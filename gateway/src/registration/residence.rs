//! `ChangeResidence`: a new permanent or temporary residence, which also
//! becomes the current one.

use lienthong_proto::citizen::{Address, FieldGroup};
use lienthong_proto::event::kind;
use lienthong_proto::{Date, Pid, province};
use serde_json::json;

use super::{Change, Effect, living, touch};
use crate::error::Result;
use crate::policy::Role;
use crate::registry::WriteScope;

/// Which residence is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResidenceKind {
    /// Thường trú.
    Permanent,
    /// Tạm trú.
    Temporary,
}

impl ResidenceKind {
    fn name(self) -> &'static str {
        match self {
            Self::Permanent => "permanent",
            Self::Temporary => "temporary",
        }
    }
}

/// A residence registration.
#[derive(Debug, Clone)]
pub struct ResidenceChange {
    /// The citizen.
    pub pid: Pid,
    /// Permanent or temporary.
    pub kind: ResidenceKind,
    /// The new residence.
    pub residence: Address,
}

impl Change for ResidenceChange {
    const OPERATION: &'static str = "change_residence";
    const ROLE: Role = Role::ResidenceRegistry;
    const EVENT: &'static str = kind::RESIDENCE_CHANGED;

    fn plan(&self, scope: &mut dyn WriteScope, today: Date) -> Result<Effect> {
        let mut citizen = living(scope, self.pid, "pid")?;
        match self.kind {
            ResidenceKind::Permanent => citizen.permanent = Some(self.residence.clone()),
            ResidenceKind::Temporary => citizen.temporary = Some(self.residence.clone()),
        }
        citizen.current = Some(self.residence.clone());
        touch(&mut citizen, FieldGroup::Residence, today);
        Ok(Effect {
            pid: self.pid,
            records: vec![citizen],
            data: json!({
                "kind": self.kind.name(),
                "province_code": province::code_text(self.residence.province),
                "address_line": self.residence.line,
            }),
        })
    }
}
