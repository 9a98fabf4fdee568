//! Registry writes: the civil-status and residence changes that offices
//! record, the domain behind `RegistryService`.
//!
//! Each change is one file implementing [`Change`]: the role that owns it,
//! its event type, and how it plans new records from the register's current
//! state (validating as it goes). [`Registrar::record`] runs every change the
//! same way:
//!
//! ```text
//! role check ─▶ one transaction: seen request_id? ─yes─▶ the first receipt
//!                                    │ no
//!                                    ▼
//!                     plan (reads, validates) ─▶ records + outbox event
//!                     + receipt, committed together ─▶ wake the relay
//! ```

mod birth;
mod card;
mod death;
mod marriage;
mod name;
mod residence;

pub use birth::Birth;
pub use card::CardIssue;
pub use death::Death;
pub use marriage::Marriage;
pub use name::NameChange;
pub use residence::{ResidenceChange, ResidenceKind};

use std::sync::Arc;

use lienthong_proto::citizen::{FieldGroup, LifeStatus};
use lienthong_proto::{Citizen, Date, Pid};
use tokio::sync::Notify;

use crate::blocking::off_runtime;
use crate::clock;
use crate::error::{Error, Reason, Result};
use crate::policy::{LivePolicy, Role};
use crate::registry::{OutboxEvent, Planned, PopulationStore, RequestKey, WriteScope, Written};

/// Longest `request_id` accepted.
const MAX_REQUEST_ID: usize = 128;

/// One kind of registry write.
pub trait Change: Send + 'static {
    /// The operation's name, e.g. `record_death` (policy, audit, idempotency).
    const OPERATION: &'static str;
    /// The role that owns it.
    const ROLE: Role;
    /// The event type, also its routing key, e.g. `citizen.died`.
    const EVENT: &'static str;

    /// Plans the change against the register as it is now, or says why it
    /// cannot apply.
    fn plan(&self, scope: &mut dyn WriteScope, today: Date) -> Result<Effect>;
}

/// What a change does: the records it stores and its event's subject and data.
#[derive(Debug, Clone)]
pub struct Effect {
    /// The citizen the event is about.
    pub pid: Pid,
    /// New or changed records.
    pub records: Vec<Citizen>,
    /// The event's `data` object.
    pub data: serde_json::Value,
}

/// A client's write request as the registry keys it.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    /// The client's idempotency key.
    pub request_id: String,
    /// SHA-256 of the whole request as sent, to tell a retry from a reuse.
    pub fingerprint: [u8; 32],
}

/// The domain behind `RegistryService`.
#[derive(Clone)]
pub struct Registrar {
    policy: LivePolicy,
    store: Arc<dyn PopulationStore>,
    committed: Arc<Notify>,
    /// This replica's name, recorded in its receipts.
    node: Arc<str>,
}

impl Registrar {
    /// A registrar writing to `store` under `policy`.
    pub fn new(policy: LivePolicy, store: Arc<dyn PopulationStore>) -> Self {
        Self {
            policy,
            store,
            committed: Arc::new(Notify::new()),
            node: Arc::from(""),
        }
    }

    /// The same registrar, naming `node` in the receipts of its writes.
    pub fn on_node(self, node: &str) -> Self {
        Self {
            node: Arc::from(node),
            ..self
        }
    }

    /// Notified after every commit: the event relay waits on it.
    pub fn committed(&self) -> Arc<Notify> {
        self.committed.clone()
    }

    /// Records `change` for `agency`, idempotently by `request`.
    pub async fn record<C: Change>(
        &self,
        agency: &str,
        request: WriteRequest,
        change: C,
    ) -> Result<Written> {
        self.policy
            .current()
            .authorize_role(agency, C::ROLE, C::OPERATION)?;
        check_request_id(&request.request_id)?;
        let store = self.store.clone();
        let agency = agency.to_owned();
        let node = self.node.clone();
        let written = off_runtime(move || {
            let key = RequestKey {
                agency: &agency,
                request_id: &request.request_id,
                operation: C::OPERATION,
                fingerprint: request.fingerprint,
                node: &node,
            };
            let today = Date::today();
            store.write(&key, &mut |scope| {
                let effect = change.plan(scope, today)?;
                Ok(Planned {
                    records: effect.records,
                    event: OutboxEvent {
                        id: uuid::Uuid::now_v7().to_string(),
                        kind: C::EVENT.to_owned(),
                        pid: effect.pid,
                        occurred_at: clock::now(),
                        data: effect.data.to_string(),
                    },
                })
            })
        })
        .await?;
        if let Written::Committed(_) = written {
            self.committed.notify_one();
        }
        Ok(written)
    }
}

/// A `request_id` is 1–128 printable ASCII characters.
fn check_request_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_REQUEST_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            "request_id",
            "must be 1–128 printable ASCII characters without spaces",
        ));
    }
    Ok(())
}

/// The living citizen `pid` named by request field `field`.
pub(crate) fn living(scope: &mut dyn WriteScope, pid: Pid, field: &'static str) -> Result<Citizen> {
    let citizen = scope.get(pid)?.ok_or(Error::CitizenNotFound)?;
    if citizen.life_status() == LifeStatus::Deceased {
        return Err(Error::Conflict {
            reason: Reason::CitizenDeceased,
            subject: field,
            description: "is recorded as deceased",
        });
    }
    Ok(citizen)
}

/// Records that `group` of `citizen` changed `today` (its provenance date).
pub(crate) fn touch(citizen: &mut Citizen, group: FieldGroup, today: Date) {
    let i = group as usize;
    if citizen.changed_on.len() <= i {
        citizen.changed_on.resize(FieldGroup::Other as usize + 1, 0);
    }
    citizen.changed_on[i] = today.to_yyyymmdd();
}

/// Refuses `date` in request field `field` when after `today`.
pub(crate) fn not_future(date: Date, today: Date, field: &str) -> Result<()> {
    if date.to_days() > today.to_days() {
        return Err(Error::invalid(field, "is in the future"));
    }
    Ok(())
}

/// Refuses `date` in `field` when before `citizen`'s birth.
pub(crate) fn not_before_birth(date: Date, citizen: &Citizen, field: &str) -> Result<()> {
    if citizen
        .date_of_birth()
        .is_some_and(|born| date.to_days() < born.to_days())
    {
        return Err(Error::invalid(field, "is before the date of birth"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
