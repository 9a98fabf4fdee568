//! The deterministic synthetic population.
//!
//! Every service derives its data from `(seed, citizens)`: the gateway seeds
//! its registry from it, the adapters their sector data, the SIM job its
//! subscriber base, and tests their expectations. Any citizen can be rebuilt
//! on its own from its index, without generating the others.
//!
//! The population is laid out in *buckets*, one per (province, sex, birth
//! year), sized by the province's population and an age pyramid. A citizen's
//! Pid is its bucket's prefix plus a serial that grows with its position in
//! the bucket, so Pids are unique by construction and come out in ascending
//! order (which also makes bulk loading a B-tree fast):
//!
//! ```text
//!  index:  0 ............ b₁ ............ b₂ ...
//!  bucket: (001, male, 1926) (001, male, 1927) ...
//!  pid:    001026 serial↑     001027 serial↑
//! ```
//!
//! Families are derived, not stored: the man at position `j` of bucket
//! (p, male, y) may marry the woman at position `j` of (p, female, y + 2);
//! a child's father is a married man of its province 26–32 years older, and
//! its mother his wife.

mod names;
mod rng;

use crate::citizen::{Address, Citizen, FieldGroup, LifeStatus, Marital};
use crate::date::Date;
use crate::pid::{Pid, Sex};
use crate::province::PROVINCES;
use rng::Rng;

/// The date the synthetic population describes: its ages, deaths and cards
/// are as of this day, whatever the wall clock says.
pub const REFERENCE_DATE: (i32, u32, u32) = (2026, 7, 1);

/// Earliest birth year in the synthetic population.
const FIRST_YEAR: i32 = 1920;
/// Latest birth year in the synthetic population.
const LAST_YEAR: i32 = 2025;
/// Years between a husband's and his wife's birth years.
const SPOUSE_GAP: i32 = 2;

/// Why a population cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum PopulationError {
    #[error("a population needs at least one citizen")]
    Empty,
    #[error("{0} citizens would overflow a Pid bucket (at most about 150,000,000 fit)")]
    TooLarge(u64),
}

/// One (province, sex, birth year) bucket of consecutive citizens.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    province: u16,
    sex: Sex,
    year: i32,
    /// Index of the bucket's first citizen.
    start: u64,
    /// Citizens in the bucket, at most 1,000,000 (the serial's range).
    count: u32,
    /// The bucket's Pids without their serial: its sort key.
    key: u64,
}

/// A synthetic population: `citizens` people derived from `seed`.
#[derive(Debug, Clone)]
pub struct Population {
    seed: u64,
    len: u64,
    buckets: Vec<Bucket>,
    reference: Date,
    /// (province code, population) pairs, for weighted draws.
    province_weights: Vec<(u16, u32)>,
}

/// The first facts drawn for a citizen, and the rest of its random stream.
struct Vitals {
    dob: Date,
    age: i32,
    middle: &'static str,
    given: &'static str,
    status: LifeStatus,
    died_on: Option<Date>,
    rng: Rng,
}

/// A citizen's relatives and household, by index.
struct Family {
    parents: Option<(u64, u64)>,
    spouse: Option<u64>,
    marital: Marital,
    /// The household head (the citizen itself, or a relative).
    head: u64,
    /// The citizen's relation to the head, as the register writes it.
    relation: &'static str,
}

/// A citizen's identity documents.
struct Documents {
    old_id_number: String,
    /// `yyyymmdd`, 0 for none.
    card_issued_on: u32,
    /// `yyyymmdd`, 0 for none.
    card_expires_on: u32,
}

/// Salts separating the random streams of one citizen.
mod salt {
    pub const PERSON: u64 = 1;
    pub const MARRIED: u64 = 2;
    pub const SERIAL: u64 = 3;
    pub const RESIDENCE: u64 = 4;
    pub const PARENTS: u64 = 5;
    pub const FAMILY_NAME: u64 = 6;
}

/// Relative number of people born in `year` still on the register (alive or
/// recorded deceased), a rough Vietnamese age pyramid.
fn year_weight(year: i32) -> f64 {
    let births = if year >= 1975 {
        1.0
    } else {
        0.45 + 0.55 * f64::from(year - FIRST_YEAR) / 55.0
    };
    let age = f64::from(REFERENCE_DATE.0 - year);
    let survival = if age < 55.0 {
        1.0
    } else {
        (-((age - 55.0) / 22.0).powi(2)).exp().max(0.05)
    };
    births * survival
}

impl Population {
    /// Lays out `citizens` people derived from `seed`.
    pub fn new(seed: u64, citizens: u64) -> Result<Self, PopulationError> {
        if citizens == 0 {
            return Err(PopulationError::Empty);
        }
        let total_k: f64 = PROVINCES.iter().map(|p| f64::from(p.population_k)).sum();
        let years: Vec<(i32, f64)> = (FIRST_YEAR..=LAST_YEAR)
            .map(|y| (y, year_weight(y)))
            .collect();
        let total_y: f64 = years.iter().map(|(_, w)| w).sum();
        // Ideal (fractional) sizes, then largest-remainder rounding so the
        // sizes add up to exactly `citizens`.
        let mut ideal = Vec::with_capacity(PROVINCES.len() * years.len() * 2);
        for p in &PROVINCES {
            for &(year, wy) in &years {
                for sex in [Sex::Male, Sex::Female] {
                    let share = f64::from(p.population_k) / total_k * wy / total_y * 0.5;
                    ideal.push((p.code, sex, year, share * citizens as f64));
                }
            }
        }
        let mut counts: Vec<u64> = ideal.iter().map(|b| b.3.floor() as u64).collect();
        let assigned: u64 = counts.iter().sum();
        let mut by_remainder: Vec<usize> = (0..ideal.len()).collect();
        by_remainder.sort_by(|&a, &b| {
            let ra = ideal[a].3 - ideal[a].3.floor();
            let rb = ideal[b].3 - ideal[b].3.floor();
            rb.total_cmp(&ra).then(a.cmp(&b))
        });
        for &i in by_remainder.iter().take((citizens - assigned) as usize) {
            counts[i] += 1;
        }
        let mut buckets = Vec::with_capacity(ideal.len());
        let mut start = 0;
        for (&(province, sex, year, _), &count) in ideal.iter().zip(&counts) {
            if count >= 1_000_000 {
                return Err(PopulationError::TooLarge(citizens));
            }
            buckets.push(Bucket {
                province,
                sex,
                year,
                start,
                count: count as u32,
                key: Pid::from_parts(province, sex, year, 0).map_or(0, Pid::as_u64),
            });
            start += count;
        }
        // Buckets are in Pid order: province, then century/sex digit, then
        // year. Sort so that indexes follow Pids.
        buckets.sort_by_key(|b| b.key);
        let mut start = 0;
        for b in &mut buckets {
            b.start = start;
            start += u64::from(b.count);
        }
        let (y, m, d) = REFERENCE_DATE;
        let reference = Date::new(y, m, d).expect("the reference date is valid");
        Ok(Self {
            seed,
            len: citizens,
            buckets,
            reference,
            province_weights: PROVINCES.iter().map(|p| (p.code, p.population_k)).collect(),
        })
    }

    /// Number of citizens.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: a population has at least one citizen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The date the population describes.
    pub fn reference_date(&self) -> Date {
        self.reference
    }

    /// The bucket holding citizen `index`, and the position within it.
    fn locate(&self, index: u64) -> (usize, u32) {
        let b = self
            .buckets
            .partition_point(|b| b.start + u64::from(b.count) <= index);
        (b, (index - self.buckets[b].start) as u32)
    }

    /// The index of the citizen at `pos` of the bucket (p, sex, year), if any.
    fn index_of(&self, province: u16, sex: Sex, year: i32, pos: u32) -> Option<u64> {
        let key = Pid::from_parts(province, sex, year, 0)?.as_u64();
        let b = self.buckets.binary_search_by_key(&key, |b| b.key).ok()?;
        let bucket = &self.buckets[b];
        (pos < bucket.count).then(|| bucket.start + u64::from(pos))
    }

    /// The Pid of citizen `index` (< [`len`](Self::len)).
    pub fn pid(&self, index: u64) -> Pid {
        let (b, pos) = self.locate(index);
        let bucket = &self.buckets[b];
        // Serials grow with the position: each citizen owns a slot of `gap`
        // serials and takes a random one within it.
        let gap = 1_000_000 / bucket.count.max(1);
        let serial = pos * gap + Rng::new(self.seed, index, salt::SERIAL).below(gap.into()) as u32;
        Pid::from_parts(bucket.province, bucket.sex, bucket.year, serial)
            .expect("buckets hold valid provinces and years")
    }

    /// The index of the citizen with `pid`, if the population has one: the
    /// inverse of [`pid`](Self::pid), without walking the population.
    pub fn index_of_pid(&self, pid: Pid) -> Option<u64> {
        let key = Pid::from_parts(pid.province_code(), pid.sex(), pid.birth_year(), 0)?.as_u64();
        let b = self.buckets.binary_search_by_key(&key, |b| b.key).ok()?;
        let bucket = &self.buckets[b];
        let gap = 1_000_000 / bucket.count.max(1);
        let pos = pid.serial() / gap;
        let index = bucket.start + u64::from(pos);
        (pos < bucket.count && self.pid(index) == pid).then_some(index)
    }

    /// Whether the man at `pos` of (province, male, year) is married to the
    /// woman at `pos` of (province, female, year + SPOUSE_GAP); returns both
    /// indexes.
    fn couple(&self, province: u16, husband_year: i32, pos: u32) -> Option<(u64, u64)> {
        let husband = self.index_of(province, Sex::Male, husband_year, pos)?;
        let wife = self.index_of(province, Sex::Female, husband_year + SPOUSE_GAP, pos)?;
        let wife_age = self.reference.year() - husband_year - SPOUSE_GAP;
        (wife_age >= 20 && Rng::new(self.seed, husband, salt::MARRIED).chance(0.72))
            .then_some((husband, wife))
    }

    /// The spouse of citizen `index`, if married.
    fn spouse_of(&self, index: u64) -> Option<u64> {
        let (b, pos) = self.locate(index);
        let bucket = self.buckets[b];
        match bucket.sex {
            Sex::Male => self.couple(bucket.province, bucket.year, pos).map(|c| c.1),
            Sex::Female => self
                .couple(bucket.province, bucket.year - SPOUSE_GAP, pos)
                .map(|c| c.0),
        }
    }

    /// The parents (father, mother) of citizen `index`, if recorded.
    fn parents_of(&self, index: u64) -> Option<(u64, u64)> {
        let (b, _) = self.locate(index);
        let bucket = self.buckets[b];
        if bucket.year < 1950 {
            return None;
        }
        let mut rng = Rng::new(self.seed, index, salt::PARENTS);
        let father_year = bucket.year - 26 - rng.below(7) as i32;
        let key = Pid::from_parts(bucket.province, Sex::Male, father_year, 0)?.as_u64();
        let fb = self.buckets.binary_search_by_key(&key, |b| b.key).ok()?;
        let count = self.buckets[fb].count;
        if count == 0 {
            return None;
        }
        let pos = rng.below(count.into()) as u32;
        self.couple(bucket.province, father_year, pos)
    }

    /// The family name of citizen `index`: the father's, if known.
    fn family_name(&self, index: u64) -> &'static str {
        match self.parents_of(index) {
            Some((father, _)) => self.family_name(father),
            None => Rng::new(self.seed, index, salt::FAMILY_NAME).weighted::<&str>(names::FAMILY),
        }
    }

    /// The permanent residence a household head registers.
    fn own_residence(&self, index: u64, birth_province: u16) -> Address {
        let mut rng = Rng::new(self.seed, index, salt::RESIDENCE);
        let province = if rng.chance(0.85) {
            birth_province
        } else {
            *rng.weighted(&self.province_weights)
        };
        Address {
            province: province.into(),
            line: format!(
                "Số {}, đường {}, phường {}",
                1 + rng.below(300),
                rng.pick(names::STREETS),
                1 + rng.below(15)
            ),
        }
    }

    /// Rebuilds citizen `index` (< [`len`](Self::len)): vitals, family,
    /// residences, documents and provenance, in that order from the
    /// citizen's own random stream.
    pub fn citizen(&self, index: u64) -> Citizen {
        let (b, _) = self.locate(index);
        let bucket = self.buckets[b];
        let female = bucket.sex == Sex::Female;
        let Vitals {
            dob,
            age,
            middle,
            given,
            status,
            died_on,
            mut rng,
        } = self.vitals(index);
        let full_name = format!("{} {middle} {given}", self.family_name(index));
        let family = self.family(index, age, female, &mut rng);
        let (permanent, temporary) = self.residences(family.head, &mut rng);
        let current = temporary.clone().or_else(|| Some(permanent.clone()));
        let native_province = if rng.chance(0.8) {
            bucket.province
        } else {
            rng.pick(&PROVINCES).code
        };
        let documents = self.documents(bucket.year, dob, age, status, &mut rng);
        let changed_on = self.provenance(
            dob,
            died_on,
            family.spouse.is_some(),
            documents.card_issued_on,
            &mut rng,
        );
        let other_names = if rng.chance(0.02) {
            vec![format!("{} {given}", rng.weighted(names::FAMILY))]
        } else {
            Vec::new()
        };
        Citizen {
            pid: self.pid(index).as_u64(),
            full_name,
            other_names,
            date_of_birth: dob.to_yyyymmdd(),
            female,
            birth_province: bucket.province.into(),
            native_province: native_province.into(),
            ethnicity: (*rng.weighted(names::ETHNICITY)).to_owned(),
            religion: (*rng.weighted(names::RELIGION)).to_owned(),
            nationality: "Việt Nam".to_owned(),
            blood_type: (*rng.weighted(names::BLOOD)).to_owned(),
            old_id_number: documents.old_id_number,
            card_issued_on: documents.card_issued_on,
            card_expires_on: documents.card_expires_on,
            permanent: Some(permanent),
            temporary,
            current,
            marital: family.marital as u32,
            father: family.parents.map_or(0, |(f, _)| self.pid(f).as_u64()),
            mother: family.parents.map_or(0, |(_, m)| self.pid(m).as_u64()),
            spouse: family.spouse.map_or(0, |s| self.pid(s).as_u64()),
            household_head: self.pid(family.head).as_u64(),
            household_relation: family.relation.to_owned(),
            status: status as u32,
            died_on: died_on.map_or(0, Date::to_yyyymmdd),
            changed_on,
        }
    }

    /// Citizen `index`'s parents, spouse, marital status and household: a
    /// husband heads his; a wife lives in her husband's; an unmarried
    /// person under 30 with a known father lives in his.
    fn family(&self, index: u64, age: i32, female: bool, rng: &mut Rng) -> Family {
        let parents = self.parents_of(index);
        let spouse = self.spouse_of(index);
        let spouse_deceased = spouse.is_some_and(|s| self.vitals(s).status == LifeStatus::Deceased);
        let marital = match spouse {
            Some(_) if spouse_deceased => Marital::Widowed,
            Some(_) => Marital::Married,
            None if age >= 30 && rng.chance(0.06) => Marital::Divorced,
            None => Marital::Single,
        };
        let (head, relation) = match (spouse, parents, female) {
            (Some(husband), _, true) => (husband, "vợ"),
            (Some(_), _, false) => (index, "chủ hộ"),
            (None, Some((father, _)), _) if age < 30 => (father, "con"),
            _ => (index, "chủ hộ"),
        };
        Family {
            parents,
            spouse,
            marital,
            head,
            relation,
        }
    }

    /// The permanent residence (the household head's) and, for one in ten,
    /// a temporary one elsewhere.
    fn residences(&self, head: u64, rng: &mut Rng) -> (Address, Option<Address>) {
        let permanent = self.own_residence(head, self.pid(head).province_code());
        let temporary = rng.chance(0.1).then(|| Address {
            province: (*rng.weighted(&self.province_weights)).into(),
            line: format!(
                "Số {}, đường {}, phường {}",
                1 + rng.below(300),
                rng.pick(names::STREETS),
                1 + rng.below(15)
            ),
        });
        (permanent, temporary)
    }

    /// The old 9-digit ID for most born before 2000; a chip card for most
    /// living citizens aged 14 and over, valid until the 25th, 40th or 60th
    /// birthday.
    fn documents(
        &self,
        birth_year: i32,
        dob: Date,
        age: i32,
        status: LifeStatus,
        rng: &mut Rng,
    ) -> Documents {
        let ref_days = self.reference.to_days();
        let old_id_number = if birth_year < 2000 && rng.chance(0.8) {
            format!("{:09}", rng.below(1_000_000_000))
        } else {
            String::new()
        };
        let (card_issued_on, card_expires_on) =
            if status == LifeStatus::Alive && age >= 14 && rng.chance(0.95) {
                let earliest = dob
                    .add_years(14)
                    .map_or(ref_days, |d| d.to_days())
                    .max(Date::new(2021, 1, 1).expect("valid").to_days());
                let issued = Date::from_days(
                    earliest + rng.below((ref_days - earliest).max(1) as u64) as i32,
                )
                .expect("within range");
                let expiry = [25, 40, 60]
                    .into_iter()
                    .filter_map(|a| dob.add_years(a).ok())
                    .find(|d| d.to_days() > issued.to_days() + 2 * 365);
                (issued.to_yyyymmdd(), expiry.map_or(0, Date::to_yyyymmdd))
            } else {
                (0, 0)
            };
        Documents {
            old_id_number,
            card_issued_on,
            card_expires_on,
        }
    }

    /// When each group of fields last changed: the birth registered a few
    /// days after the birth, the card at its issue, the residence and the
    /// rest when the population database began (mid-2021), the marital
    /// status at the wedding, the status at the death.
    fn provenance(
        &self,
        dob: Date,
        died_on: Option<Date>,
        married: bool,
        card_issued_on: u32,
        rng: &mut Rng,
    ) -> Vec<u32> {
        let reference = self.reference;
        let birth_registered = Date::from_days(dob.to_days() + 3 + rng.below(40) as i32)
            .unwrap_or(dob)
            .min(reference);
        let population_db = Date::new(2021, 7, 1).expect("valid");
        let mut changed_on = vec![0; FieldGroup::Other as usize + 1];
        changed_on[FieldGroup::Birth as usize] = birth_registered.to_yyyymmdd();
        changed_on[FieldGroup::Card as usize] = if card_issued_on != 0 {
            card_issued_on
        } else {
            birth_registered.to_yyyymmdd()
        };
        changed_on[FieldGroup::Residence as usize] =
            birth_registered.max(population_db).to_yyyymmdd();
        changed_on[FieldGroup::Marital as usize] = if married {
            dob.add_years(22 + rng.below(8) as i32)
                .unwrap_or(dob)
                .min(reference)
        } else {
            birth_registered
        }
        .to_yyyymmdd();
        changed_on[FieldGroup::Status as usize] = died_on.unwrap_or(birth_registered).to_yyyymmdd();
        changed_on[FieldGroup::Other as usize] = population_db.max(birth_registered).to_yyyymmdd();
        changed_on
    }

    /// Date of birth, given names and life status of citizen `index`: the
    /// first draws of its personal stream, which goes on in [`citizen`](Self::citizen).
    fn vitals(&self, index: u64) -> Vitals {
        let (b, _) = self.locate(index);
        let bucket = self.buckets[b];
        let mut rng = Rng::new(self.seed, index, salt::PERSON);
        let ref_days = self.reference.to_days();
        let year_start = Date::new(bucket.year, 1, 1).expect("valid year").to_days();
        let year_end = Date::new(bucket.year, 12, 31)
            .expect("valid year")
            .to_days();
        let dob_days =
            (year_start + rng.below((year_end - year_start + 1) as u64) as i32).min(ref_days - 1);
        let dob = Date::from_days(dob_days).expect("within range");
        let age = dob.age_on(self.reference);
        let (middles, givens) = match bucket.sex {
            Sex::Female => (names::MIDDLE_FEMALE, names::GIVEN_FEMALE),
            Sex::Male => (names::MIDDLE_MALE, names::GIVEN_MALE),
        };
        let middle = *rng.weighted(middles);
        let mut given = *rng.pick(givens);
        if given == middle {
            // Not "Minh Minh": take the next given name instead.
            let at = givens.iter().position(|g| *g == given).unwrap_or(0);
            given = givens[(at + 1) % givens.len()];
        }
        // Death becomes likelier with age; a few are missing.
        let p_dead = if age < 40 {
            0.004
        } else {
            (0.004 + (f64::from(age - 40) / 60.0).powi(3) * 0.9).min(0.95)
        };
        let (status, died_on) = if rng.chance(p_dead) {
            let from = dob_days.max(Date::new(1975, 1, 1).expect("valid").to_days()) + 1;
            let died = from + rng.below((ref_days - from).max(1) as u64) as i32;
            (
                LifeStatus::Deceased,
                Date::from_days(died.min(ref_days - 1)).ok(),
            )
        } else if rng.chance(0.001) {
            (LifeStatus::Missing, None)
        } else {
            (LifeStatus::Alive, None)
        };
        Vitals {
            dob,
            age,
            middle,
            given,
            status,
            died_on,
            rng,
        }
    }

    /// Every citizen, in index (and Pid) order.
    pub fn iter(&self) -> impl Iterator<Item = Citizen> + '_ {
        (0..self.len).map(|i| self.citizen(i))
    }
}

#[cfg(test)]
mod tests;
