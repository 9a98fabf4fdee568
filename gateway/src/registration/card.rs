//! `IssueCard`: a chip-based identity card is issued, valid until the first
//! of the 14th, 25th, 40th and 60th birthdays more than two years after
//! issue (none after the 60th).

use lienthong_proto::citizen::FieldGroup;
use lienthong_proto::event::kind;
use lienthong_proto::{Date, Pid};
use serde_json::json;

use super::{Change, Effect, living, not_before_birth, not_future, touch};
use crate::error::Result;
use crate::policy::Role;
use crate::registry::WriteScope;

/// Birthdays at which a card must be renewed.
const RENEWAL_AGES: [i32; 4] = [14, 25, 40, 60];

/// A card issue.
#[derive(Debug, Clone)]
pub struct CardIssue {
    /// The holder.
    pub pid: Pid,
    /// Issue date.
    pub issued_on: Date,
}

/// When a card issued on `issued` to someone born on `born` expires.
pub(crate) fn expiry(born: Date, issued: Date) -> Option<Date> {
    RENEWAL_AGES
        .into_iter()
        .filter_map(|age| born.add_years(age).ok())
        .find(|d| d.to_days() > issued.to_days() + 2 * 365)
}

impl Change for CardIssue {
    const OPERATION: &'static str = "issue_card";
    const ROLE: Role = Role::CardIssuer;
    const EVENT: &'static str = kind::CARD_ISSUED;

    fn plan(&self, scope: &mut dyn WriteScope, today: Date) -> Result<Effect> {
        let mut citizen = living(scope, self.pid, "pid")?;
        not_future(self.issued_on, today, "issued_on")?;
        not_before_birth(self.issued_on, &citizen, "issued_on")?;
        let expires = citizen
            .date_of_birth()
            .and_then(|born| expiry(born, self.issued_on));
        citizen.card_issued_on = self.issued_on.to_yyyymmdd();
        citizen.card_expires_on = expires.map_or(0, Date::to_yyyymmdd);
        touch(&mut citizen, FieldGroup::Card, today);
        Ok(Effect {
            pid: self.pid,
            records: vec![citizen],
            data: json!({ "issued_on": self.issued_on, "expires_on": expires }),
        })
    }
}
