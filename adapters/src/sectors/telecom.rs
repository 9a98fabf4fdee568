//! Telecom: the subscriptions (SIMs) registered on a person's identity
//! number. On `citizen.died` they are flagged for locking; on
//! `citizen.name_changed` flagged for re-verification.
//!
//! (The SIM-verification job in [`crate::telecom`] works on an operator's
//! own subscriber file; this is the sector's view by Pid.)

use lienthong_proto::v1::sector_answer::Answer;
use lienthong_proto::v1::{SectorAnswer, Subscription, TelecomSubscriptions};
use lienthong_proto::{Citizen, Date, Pid};

use super::{age, mismatched, plus_days, wrap};
use crate::framework::draw::Draw;
use crate::framework::{Base, Records, Sector};
use lienthong_proto::event::{Event, Poison, kind};
use lienthong_proto::sector::{self, SectorSpec};

/// The telecom sector.
pub struct Telecom;

const SUBSCRIPTIONS: &str = "subscriptions";
const SALT: u64 = 0x7E1C;
/// Operators and a prefix of each.
const OPERATORS: [(&str, &str); 3] = [
    ("Viettel", "098"),
    ("VinaPhone", "091"),
    ("MobiFone", "090"),
];

impl Sector for Telecom {
    fn spec(&self) -> &'static SectorSpec {
        &sector::TELECOM
    }

    fn derive(&self, _query: &str, citizen: &Citizen, base: &Base) -> Option<SectorAnswer> {
        let pid = Pid::from_u64(citizen.pid).ok()?;
        let age = age(citizen, base.today)?;
        let mut draw = Draw::new(base.seed, pid, SALT);
        let count = if age < 14 {
            0
        } else {
            match draw.below(100) {
                0..=9 => 0,
                10..=64 => 1,
                65..=89 => 2,
                _ => 3,
            }
        };
        let since = Date::new(2010, 1, 1).ok()?;
        let span = (base.today.to_days() - since.to_days()).max(1) as u64;
        let subscriptions = (0..count)
            .map(|_| {
                let (operator, prefix) = *draw.pick(&OPERATORS);
                Subscription {
                    masked_number: format!("{prefix}****{}", draw.digits(3)),
                    operator: operator.to_owned(),
                    registered_on: Some(plus_days(since, draw.below(span) as i32).into()),
                    flagged_for_locking: false,
                    flagged_for_reverification: false,
                }
            })
            .collect();
        Some(wrap(Answer::TelecomSubscriptions(TelecomSubscriptions {
            count,
            subscriptions,
        })))
    }

    fn react(&self, event: &Event, records: &mut Records) -> Result<(), Poison> {
        let flag: fn(&mut Subscription) = match event.kind.as_str() {
            kind::DIED => {
                event.date("date_of_death")?;
                |s| s.flagged_for_locking = true
            }
            kind::NAME_CHANGED => |s| s.flagged_for_reverification = true,
            _ => return Ok(()),
        };
        let Some(current) = records.get(SUBSCRIPTIONS) else {
            return Ok(());
        };
        let Some(Answer::TelecomSubscriptions(subs)) = &current.answer else {
            return Err(mismatched(SUBSCRIPTIONS));
        };
        if subs.count == 0 {
            return Ok(());
        }
        let mut subs = subs.clone();
        subs.subscriptions.iter_mut().for_each(flag);
        records.set(SUBSCRIPTIONS, wrap(Answer::TelecomSubscriptions(subs)));
        Ok(())
    }
}
