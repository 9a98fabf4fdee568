//! Education: a person's education record. On `citizen.residence_changed`
//! the school district follows the new residence's province; on
//! `citizen.died` the enrolment ends and the record closes.

use lienthong_proto::v1::sector_answer::Answer;
use lienthong_proto::v1::{EducationLevel, EducationRecord, SectorAnswer};
use lienthong_proto::{Citizen, Pid, citizen::LifeStatus, province};

use super::{age, mismatched, wrap};
use crate::framework::draw::Draw;
use crate::framework::{Base, Records, Sector};
use lienthong_proto::event::{Event, Poison, kind};
use lienthong_proto::sector::{self, SectorSpec};

/// The education sector.
pub struct Education;

const RECORD: &str = "record";
const SALT: u64 = 0xED0C;

impl Sector for Education {
    fn spec(&self) -> &'static SectorSpec {
        &sector::EDUCATION
    }

    fn derive(&self, _query: &str, citizen: &Citizen, base: &Base) -> Option<SectorAnswer> {
        use EducationLevel as L;
        let pid = Pid::from_u64(citizen.pid).ok()?;
        let age = age(citizen, base.today)?;
        if age < 6 {
            return None;
        }
        let mut draw = Draw::new(base.seed, pid, SALT);
        let (highest, enrolled) = match age {
            6..=10 => (L::None, L::Primary),
            11..=14 => (L::Primary, L::LowerSecondary),
            15..=17 => (L::LowerSecondary, L::UpperSecondary),
            _ => {
                // Older generations went to school for fewer years.
                let shift = if age >= 60 { 25 } else { 0 };
                let level = match draw.below(100) + shift {
                    0..=2 => L::None,
                    3..=12 => L::Primary,
                    13..=37 => L::LowerSecondary,
                    38..=67 => L::UpperSecondary,
                    68..=79 => L::Vocational,
                    80..=96 => L::University,
                    97..=99 => L::Postgraduate,
                    _ => L::Primary,
                };
                let studying = age <= 22 && level == L::UpperSecondary && draw.chance(0.45);
                (
                    level,
                    if studying {
                        L::University
                    } else {
                        L::Unspecified
                    },
                )
            }
        };
        let currently_enrolled = enrolled != L::Unspecified && draw.chance(0.97);
        let school_level = if currently_enrolled {
            enrolled
        } else {
            highest
        };
        let district = citizen
            .permanent
            .as_ref()
            .map_or(pid.province_code(), |a| a.province as u16);
        Some(wrap(Answer::EducationRecord(EducationRecord {
            highest_level: highest as i32,
            currently_enrolled,
            school: school(&mut draw, school_level, district),
            school_district: province::code_text(district.into()),
            closed: citizen.life_status() == LifeStatus::Deceased,
        })))
    }

    fn react(&self, event: &Event, records: &mut Records) -> Result<(), Poison> {
        let change: Box<dyn FnOnce(&mut EducationRecord)> = match event.kind.as_str() {
            kind::RESIDENCE_CHANGED => {
                let code = event.text("province_code")?;
                let province = province::parse_code(code)
                    .ok_or_else(|| Poison("data.province_code: unknown province".into()))?;
                let district = province::code_text(province.code.into());
                Box::new(move |r| r.school_district = district)
            }
            kind::DIED => {
                event.date("date_of_death")?;
                Box::new(|r| {
                    r.currently_enrolled = false;
                    r.closed = true;
                })
            }
            _ => return Ok(()),
        };
        let Some(current) = records.get(RECORD) else {
            return Ok(());
        };
        let Some(Answer::EducationRecord(record)) = &current.answer else {
            return Err(mismatched(RECORD));
        };
        let mut record = record.clone();
        change(&mut record);
        records.set(RECORD, wrap(Answer::EducationRecord(record)));
        Ok(())
    }
}

/// A school of `level` in `province`.
fn school(draw: &mut Draw, level: EducationLevel, province: u16) -> String {
    use EducationLevel as L;
    let name = province::by_code(province).map_or("", |p| p.name);
    let n = 1 + draw.below(30);
    match level {
        L::Unspecified | L::None => String::new(),
        L::Primary => format!("Trường Tiểu học số {n}, {name}"),
        L::LowerSecondary => format!("Trường THCS số {n}, {name}"),
        L::UpperSecondary => format!("Trường THPT số {n}, {name}"),
        L::Vocational => format!("Trường Cao đẳng nghề {name}"),
        L::University | L::Postgraduate => (*draw.pick(&[
            "Đại học Quốc gia Hà Nội",
            "Đại học Quốc gia TP. Hồ Chí Minh",
            "Đại học Bách khoa Hà Nội",
            "Đại học Kinh tế Quốc dân",
            "Đại học Huế",
            "Đại học Đà Nẵng",
            "Đại học Cần Thơ",
        ]))
        .to_owned(),
    }
}
