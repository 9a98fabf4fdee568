//! What a sector is to the framework: its queries, the events it follows,
//! how its records derive from the synthetic population, and how it reacts.
//!
//! A sector's records are answers, one per query and person
//! ([`SectorAnswer`]). Each person's record starts as the sector's base
//! data, derived from the population seed; an event's reaction replaces it,
//! and from then on the stored record is the truth.

use std::collections::BTreeMap;

use lienthong_proto::sector::SectorSpec;
use lienthong_proto::v1::SectorAnswer;
use lienthong_proto::{Citizen, Date, Pid};

use lienthong_proto::event::{Event, Poison};

/// One sector: a new sector is a file implementing this, a line in
/// [`crate::sectors::all`] and its entry in the contract's catalogue
/// (`lienthong_proto::sector`).
pub trait Sector: Send + Sync + 'static {
    /// What the contract says of the sector: its name, queries, the events
    /// it follows and its default port.
    fn spec(&self) -> &'static SectorSpec;

    /// The sector code, e.g. `health` (the policy's `health.insurance_card`).
    fn name(&self) -> &'static str {
        self.spec().name
    }

    /// The queries answered, without the sector: e.g. `insurance_card`.
    fn queries(&self) -> &'static [&'static str] {
        self.spec().queries
    }

    /// The base answer to `query` for a citizen of the synthetic population
    /// (`today` is the population's reference date); `None`: the sector has
    /// no such record of this person.
    fn derive(&self, query: &str, citizen: &Citizen, base: &Base) -> Option<SectorAnswer>;

    /// Changes the records of the event's subject. An event the sector
    /// cannot read is [`Poison`]; an event about someone it has no record
    /// of changes nothing.
    fn react(&self, event: &Event, records: &mut Records) -> Result<(), Poison>;
}

/// What derivations share: the population's seed and reference date.
#[derive(Debug, Clone, Copy)]
pub struct Base {
    /// The population seed.
    pub seed: u64,
    /// The day the population describes.
    pub today: Date,
}

/// One person's records in a sector while an event is applied: the current
/// answer to each query, and which ones the reaction changed.
#[derive(Debug)]
pub struct Records {
    pid: Pid,
    base: Base,
    answers: BTreeMap<&'static str, Option<SectorAnswer>>,
    changed: Vec<&'static str>,
}

impl Records {
    pub(crate) fn new(
        pid: Pid,
        base: Base,
        answers: BTreeMap<&'static str, Option<SectorAnswer>>,
    ) -> Self {
        Self {
            pid,
            base,
            answers,
            changed: Vec::new(),
        }
    }

    /// The person.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The population's seed and reference date.
    pub fn base(&self) -> Base {
        self.base
    }

    /// The current answer to `query`, if the sector has one.
    pub fn get(&self, query: &str) -> Option<&SectorAnswer> {
        self.answers.get(query).and_then(Option::as_ref)
    }

    /// Replaces the answer to `query`.
    pub fn set(&mut self, query: &'static str, answer: SectorAnswer) {
        self.answers.insert(query, Some(answer));
        if !self.changed.contains(&query) {
            self.changed.push(query);
        }
    }

    /// The answers the reaction changed.
    pub(crate) fn into_changed(mut self) -> Vec<(&'static str, SectorAnswer)> {
        self.changed
            .iter()
            .filter_map(|q| Some((*q, self.answers.remove(q)??)))
            .collect()
    }
}
