//! Banking: a person's know-your-customer status across banks. On
//! `citizen.died` the accounts are flagged.

use lienthong_proto::v1::sector_answer::Answer;
use lienthong_proto::v1::{KycLevel, KycStatus, SectorAnswer};
use lienthong_proto::{Citizen, Date, Pid};

use super::{age, mismatched, plus_days, wrap};
use crate::framework::draw::Draw;
use crate::framework::{Base, Records, Sector};
use lienthong_proto::event::{Event, Poison, kind};
use lienthong_proto::sector::{self, SectorSpec};

/// The banking sector.
pub struct Banking;

const KYC_STATUS: &str = "kyc_status";
const SALT: u64 = 0xBA4C;

impl Sector for Banking {
    fn spec(&self) -> &'static SectorSpec {
        &sector::BANKING
    }

    fn derive(&self, _query: &str, citizen: &Citizen, base: &Base) -> Option<SectorAnswer> {
        let pid = Pid::from_u64(citizen.pid).ok()?;
        let age = age(citizen, base.today)?;
        let mut draw = Draw::new(base.seed, pid, SALT);
        let status = if age >= 15 && draw.chance(0.78) {
            let level = match draw.below(10) {
                0..=1 => KycLevel::Basic,
                2..=6 => KycLevel::ChipVerified,
                _ => KycLevel::Biometric,
            };
            // Verified since the chip-card checks began (mid-2024).
            let since = Date::new(2024, 7, 1).ok()?;
            let span = (base.today.to_days() - since.to_days()).max(1);
            KycStatus {
                verified_accounts: 1 + draw.below(4) as u32,
                level: level as i32,
                last_verified_on: Some(plus_days(since, draw.below(span as u64) as i32).into()),
                flagged_deceased: false,
            }
        } else {
            KycStatus {
                verified_accounts: 0,
                level: KycLevel::None as i32,
                last_verified_on: None,
                flagged_deceased: false,
            }
        };
        Some(wrap(Answer::KycStatus(status)))
    }

    fn react(&self, event: &Event, records: &mut Records) -> Result<(), Poison> {
        if event.kind != kind::DIED {
            return Ok(());
        }
        event.date("date_of_death")?;
        let Some(current) = records.get(KYC_STATUS) else {
            return Ok(());
        };
        let Some(Answer::KycStatus(status)) = &current.answer else {
            return Err(mismatched(KYC_STATUS));
        };
        if status.verified_accounts == 0 {
            return Ok(());
        }
        let mut status = *status;
        status.flagged_deceased = true;
        records.set(KYC_STATUS, wrap(Answer::KycStatus(status)));
        Ok(())
    }
}
