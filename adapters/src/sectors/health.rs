//! Health: the health insurance card and vaccinations. On `citizen.born` a
//! child's card is issued, free for under-sixes; on `citizen.died` the card
//! is invalidated.
//!
//! A card number is the group (2 letters), the benefit level, the province
//! of issue (2 digits) and the last ten digits of the holder's Pid:
//! `TE1 01 0085000123` for a child registered in Hà Nội.

use lienthong_proto::v1::sector_answer::Answer;
use lienthong_proto::v1::{
    CardStatus, HealthInsuranceCard, SectorAnswer, Vaccination, Vaccinations,
};
use lienthong_proto::{Citizen, Date, Pid, citizen::LifeStatus, province};

use super::{age, mismatched, plus_days, wrap};
use crate::framework::draw::Draw;
use crate::framework::{Base, Records, Sector};
use lienthong_proto::event::{Event, Poison, kind};
use lienthong_proto::sector::{self, SectorSpec};

/// The health sector.
pub struct Health;

const CARD: &str = "insurance_card";
const VACCINATIONS: &str = "vaccinations";
const SALT: u64 = 0x4EA1;

impl Sector for Health {
    fn spec(&self) -> &'static SectorSpec {
        &sector::HEALTH
    }

    fn derive(&self, query: &str, citizen: &Citizen, base: &Base) -> Option<SectorAnswer> {
        let pid = Pid::from_u64(citizen.pid).ok()?;
        let born = citizen.date_of_birth()?;
        match query {
            CARD => card(pid, born, citizen, base),
            VACCINATIONS => Some(wrap(Answer::Vaccinations(vaccinations(born, base.today)))),
            _ => None,
        }
    }

    fn react(&self, event: &Event, records: &mut Records) -> Result<(), Poison> {
        match event.kind.as_str() {
            kind::BORN => {
                let born = event.date("date_of_birth")?;
                let code = event.text("birth_province_code")?;
                let province = province::parse_code(code)
                    .ok_or_else(|| Poison("data.birth_province_code: unknown province".into()))?;
                if records.get(CARD).is_some() {
                    return Ok(());
                }
                let pid = records.pid();
                let mut draw = Draw::new(records.base().seed, pid, SALT);
                let card = HealthInsuranceCard {
                    card_number: number("TE", 1, province.code, pid),
                    valid_from: Some(born.into()),
                    valid_to: Some(sixth_birthday_eve(born).into()),
                    registered_clinic: clinic(&mut draw, province.code),
                    benefit_level: 1,
                    status: CardStatus::Valid as i32,
                    free_of_charge: true,
                };
                records.set(CARD, wrap(Answer::HealthInsuranceCard(card)));
                records.set(
                    VACCINATIONS,
                    wrap(Answer::Vaccinations(Vaccinations::default())),
                );
                Ok(())
            }
            kind::DIED => {
                let died_on = event.date("date_of_death")?;
                let Some(current) = records.get(CARD) else {
                    return Ok(());
                };
                let Some(Answer::HealthInsuranceCard(card)) = &current.answer else {
                    return Err(mismatched(CARD));
                };
                let mut card = card.clone();
                card.status = CardStatus::Invalidated as i32;
                card.valid_to = Some(died_on.into());
                // A death dated before the card's period: it never was
                // valid, and its period is not turned inside out.
                if card
                    .valid_from
                    .and_then(date_of)
                    .is_some_and(|from| from > died_on)
                {
                    card.valid_from = Some(died_on.into());
                }
                records.set(CARD, wrap(Answer::HealthInsuranceCard(card)));
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The base card of a citizen: about 93% are insured.
fn card(pid: Pid, born: Date, citizen: &Citizen, base: &Base) -> Option<SectorAnswer> {
    let mut draw = Draw::new(base.seed, pid, SALT);
    if !draw.chance(0.93) {
        return None;
    }
    let age = age(citizen, base.today)?;
    let (group, level) = match age {
        0..=5 => ("TE", 1),
        6..=17 => ("HS", 4),
        60.. => ("HT", 2),
        _ if draw.chance(0.6) => ("DN", 4),
        _ => ("GD", 4),
    };
    let province = citizen
        .permanent
        .as_ref()
        .map_or(pid.province_code(), |a| a.province as u16);
    let year = base.today.year();
    let (valid_from, valid_to) = if group == "TE" {
        (born, sixth_birthday_eve(born))
    } else {
        (Date::new(year, 1, 1).ok()?, Date::new(year, 12, 31).ok()?)
    };
    let status = if citizen.life_status() == LifeStatus::Deceased {
        CardStatus::Invalidated
    } else {
        CardStatus::Valid
    };
    let (valid_from, valid_to) = match citizen.died_on() {
        // Dead before this year's card began: the card held last, of the
        // year of the death, ending with it.
        Some(died) if died < valid_from => {
            (Date::new(died.year(), 1, 1).ok()?.max(born).min(died), died)
        }
        Some(died) if died < valid_to => (valid_from, died),
        _ => (valid_from, valid_to),
    };
    Some(wrap(Answer::HealthInsuranceCard(HealthInsuranceCard {
        card_number: number(group, level, province, pid),
        valid_from: Some(valid_from.into()),
        valid_to: Some(valid_to.into()),
        registered_clinic: clinic(&mut draw, province),
        benefit_level: level,
        status: status as i32,
        free_of_charge: group == "TE",
    })))
}

/// A date on the wire, if it is one.
fn date_of(d: lienthong_proto::v1::Date) -> Option<Date> {
    Date::new(
        d.year,
        u32::try_from(d.month).ok()?,
        u32::try_from(d.day).ok()?,
    )
    .ok()
}

/// `GGL PP NNNNNNNNNN`, written without spaces.
fn number(group: &str, level: u32, province: u16, pid: Pid) -> String {
    format!(
        "{group}{level}{:02}{:010}",
        province % 100,
        pid.as_u64() % 10_000_000_000
    )
}

/// The last day before the sixth birthday: the end of a child's free card.
fn sixth_birthday_eve(born: Date) -> Date {
    born.add_years(6).map_or(born, |d| plus_days(d, -1))
}

/// A clinic of first registration in `province`.
fn clinic(draw: &mut Draw, province: u16) -> String {
    let name = province::by_code(province).map_or("", |p| p.name);
    match draw.below(3) {
        0 => format!("Bệnh viện đa khoa {name}"),
        1 => format!("Trung tâm y tế quận {}, {name}", 1 + draw.below(12)),
        _ => format!("Trạm y tế phường {}, {name}", 1 + draw.below(20)),
    }
}

/// The vaccinations of the national programme a person born on `born` has
/// had by `today`: the programme grew over the years.
fn vaccinations(born: Date, today: Date) -> Vaccinations {
    let mut list = Vec::new();
    let mut give = |vaccine: &str, dose: u32, on: Date| {
        if on <= today {
            list.push(Vaccination {
                vaccine: vaccine.to_owned(),
                dose,
                given_on: Some(on.into()),
            });
        }
    };
    if born.year() >= 1985 {
        give("BCG", 1, plus_days(born, 1));
    }
    if born.year() >= 2003 {
        give("Hepatitis B", 1, born);
    }
    if born.year() >= 1990 {
        for (dose, days) in [(1, 60), (2, 90), (3, 120)] {
            give("DPT", dose, plus_days(born, days));
        }
        give("Measles", 1, plus_days(born, 270));
    }
    // COVID-19: two doses in the 2021 campaign for those 12 and over.
    if let (Ok(first), Ok(second)) = (Date::new(2021, 9, 15), Date::new(2021, 12, 15))
        && born.age_on(first) >= 12
    {
        give("COVID-19", 1, first);
        give("COVID-19", 2, second);
    }
    Vaccinations { vaccinations: list }
}

#[cfg(test)]
mod tests {
    use lienthong_proto::population::Population;

    use super::*;
    use crate::framework::Sector;

    fn period(answer: &SectorAnswer) -> (Date, Date) {
        let Some(Answer::HealthInsuranceCard(card)) = &answer.answer else {
            panic!("not a card: {answer:?}");
        };
        (
            date_of(card.valid_from.unwrap()).unwrap(),
            date_of(card.valid_to.unwrap()).unwrap(),
        )
    }

    #[test]
    fn a_card_never_ends_before_it_starts() {
        let population = Population::new(7, 3_000).unwrap();
        let base = Base {
            seed: 7,
            today: population.reference_date(),
        };
        let mut dead_before_this_year = 0;
        for c in population.iter() {
            let Some(card) = Health.derive(CARD, &c, &base) else {
                continue;
            };
            let (from, to) = period(&card);
            assert!(
                from <= to,
                "{from} after {to} for a citizen dead on {:?}",
                c.died_on()
            );
            if c.died_on().is_some_and(|d| d.year() < base.today.year()) {
                dead_before_this_year += 1;
                assert_eq!(Some(to), c.died_on());
            }
        }
        assert!(
            dead_before_this_year > 0,
            "the population has such citizens"
        );

        // A death dated before the card's period: the period ends with it.
        let c = population
            .iter()
            .find(|c| {
                c.life_status() == LifeStatus::Alive
                    && Health
                        .derive(CARD, c, &base)
                        .is_some_and(|a| period(&a).0.year() == base.today.year())
            })
            .unwrap();
        let pid = Pid::from_u64(c.pid).unwrap();
        let mut records = Records::new(
            pid,
            base,
            [(CARD, Health.derive(CARD, &c, &base))]
                .into_iter()
                .collect(),
        );
        let died = Date::new(base.today.year() - 1, 12, 1).unwrap();
        let body = format!(
            r#"{{"id":"e1","seq":1,"type":"citizen.died","pid":"{pid}","occurred_at":"x","data":{{"date_of_death":"{died}"}}}}"#
        );
        Health
            .react(&Event::parse(body.as_bytes()).unwrap(), &mut records)
            .unwrap();
        let (from, to) = period(records.get(CARD).unwrap());
        assert_eq!((from, to), (died, died));
    }
}
