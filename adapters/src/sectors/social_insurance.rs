//! Social insurance: a person's insurance record. On `citizen.died` the
//! pension stops and the record closes.

use lienthong_proto::v1::sector_answer::Answer;
use lienthong_proto::v1::{PensionStatus, SectorAnswer, SocialInsuranceRecord};
use lienthong_proto::{Citizen, citizen::LifeStatus};

use super::{age, mismatched, wrap};
use crate::framework::draw::Draw;
use crate::framework::{Base, Records, Sector};
use lienthong_proto::event::{Event, Poison, kind};
use lienthong_proto::sector::{self, SectorSpec};

/// The social insurance sector.
pub struct SocialInsurance;

const RECORD: &str = "record";
/// Separates this sector's draws from the others'.
const SALT: u64 = 0x5151;
/// Age at which a pension starts.
const RETIREMENT_AGE: i32 = 60;
/// Months of contributions that earn a pension.
const PENSION_MONTHS: u32 = 240;

impl Sector for SocialInsurance {
    fn spec(&self) -> &'static SectorSpec {
        &sector::SOCIAL_INSURANCE
    }

    fn derive(&self, _query: &str, citizen: &Citizen, base: &Base) -> Option<SectorAnswer> {
        let pid = lienthong_proto::Pid::from_u64(citizen.pid).ok()?;
        let age = age(citizen, base.today)?;
        let mut draw = Draw::new(base.seed, pid, SALT);
        // About seven in ten adults have ever contributed.
        if age < 18 || !draw.chance(0.72) {
            return None;
        }
        let working_years = (age.min(RETIREMENT_AGE) - 18 - draw.below(6) as i32).max(0) as u32;
        let contribution_months = working_years * 12 * (55 + draw.below(46) as u32) / 100;
        let retired = age >= RETIREMENT_AGE;
        let mut record = SocialInsuranceRecord {
            insurance_number: format!("{:02}{}", pid.province_code() % 100, draw.digits(8)),
            contribution_months,
            currently_contributing: !retired && draw.chance(0.85),
            pension_status: if retired && contribution_months >= PENSION_MONTHS {
                PensionStatus::Receiving
            } else {
                PensionStatus::None
            } as i32,
            closed: false,
            closed_on: None,
        };
        if citizen.life_status() == LifeStatus::Deceased {
            close(&mut record, citizen.died_on().map(Into::into));
        }
        Some(wrap(Answer::SocialInsuranceRecord(record)))
    }

    fn react(&self, event: &Event, records: &mut Records) -> Result<(), Poison> {
        if event.kind != kind::DIED {
            return Ok(());
        }
        let died_on = event.date("date_of_death")?;
        let Some(current) = records.get(RECORD) else {
            return Ok(());
        };
        let Some(Answer::SocialInsuranceRecord(record)) = &current.answer else {
            return Err(mismatched(RECORD));
        };
        let mut record = record.clone();
        close(&mut record, Some(died_on.into()));
        records.set(RECORD, wrap(Answer::SocialInsuranceRecord(record)));
        Ok(())
    }
}

/// Closes a record at a death: no more contributions, the pension stops.
fn close(record: &mut SocialInsuranceRecord, on: Option<lienthong_proto::v1::Date>) {
    record.currently_contributing = false;
    if record.pension_status == PensionStatus::Receiving as i32 {
        record.pension_status = PensionStatus::Stopped as i32;
    }
    record.closed = true;
    record.closed_on = on;
}
