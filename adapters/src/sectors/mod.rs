//! The five sectors. Adding one is a file here and a line in [`all`].
//!
//! | sector | queries | follows |
//! |---|---|---|
//! | `social_insurance` | `record` | `citizen.died`: the pension stops, the record closes |
//! | `health` | `insurance_card`, `vaccinations` | `citizen.born`: a free child's card; `citizen.died`: the card is invalidated |
//! | `education` | `record` | `citizen.residence_changed`: the school district follows; `citizen.died`: the record closes |
//! | `telecom` | `subscriptions` | `citizen.died`: flagged for locking; `citizen.name_changed`: flagged for re-verification |
//! | `banking` | `kyc_status` | `citizen.died`: the accounts are flagged |

mod banking;
mod education;
mod health;
mod social_insurance;
mod telecom;

use std::sync::Arc;

use lienthong_proto::v1::SectorAnswer;
use lienthong_proto::v1::sector_answer::Answer;
use lienthong_proto::{Citizen, Date};

use crate::framework::Sector;
use lienthong_proto::event::Poison;

/// Every sector, in a fixed order.
pub fn all() -> Vec<Arc<dyn Sector>> {
    vec![
        Arc::new(social_insurance::SocialInsurance),
        Arc::new(health::Health),
        Arc::new(education::Education),
        Arc::new(telecom::Telecom),
        Arc::new(banking::Banking),
    ]
}

/// The sector called `name`.
pub fn by_name(name: &str) -> Option<Arc<dyn Sector>> {
    all().into_iter().find(|s| s.name() == name)
}

/// Every sector's name.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|s| s.name()).collect()
}

/// Wraps a typed answer.
fn wrap(answer: Answer) -> SectorAnswer {
    SectorAnswer {
        answer: Some(answer),
    }
}

/// A citizen's age in full years on `today`, if the birth date is known.
fn age(citizen: &Citizen, today: Date) -> Option<i32> {
    citizen.date_of_birth().map(|d| d.age_on(today))
}

/// `days` days after `date`.
fn plus_days(date: Date, days: i32) -> Date {
    Date::from_days(date.to_days() + days).unwrap_or(date)
}

/// A stored answer that is not the kind its query holds: the store was
/// written by something else.
fn mismatched(query: &str) -> Poison {
    Poison(format!("the stored {query} record is of another kind"))
}
