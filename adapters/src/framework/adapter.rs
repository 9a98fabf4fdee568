//! An adapter: one sector over its store and the synthetic population.
//!
//! A look-up reads the stored record if an event made one, else derives the
//! base record from the population; an event is applied to the same view.

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lienthong_proto::population::Population;
use lienthong_proto::v1::SectorAnswer;
use lienthong_proto::{Citizen, Pid};
use prost::Message;

use super::sector::{Base, Records, Sector};
use super::store::{Applied, PopulationId, Stats, Store};
use crate::error::{Error, Result};
use lienthong_proto::event::{Event, Poison};

/// One sector's adapter.
pub struct Adapter {
    sector: Arc<dyn Sector>,
    /// The gateway's public signing key: only events it verifies are
    /// believed.
    gateway_key: [u8; 32],
    population: Population,
    population_id: PopulationId,
    base: Base,
    store: Store,
    /// The highest event seq applied, as exported.
    applied_seq: AtomicU64,
}

/// Why an event's reaction stopped.
enum Rejected {
    Poison(Poison),
    Corrupt,
}

impl Adapter {
    /// The adapter of `sector` with its store in `data_dir/<sector>.db`, over
    /// the population of `seed` with `citizens` people (as the gateway's).
    pub fn open(
        sector: Arc<dyn Sector>,
        gateway_key: [u8; 32],
        data_dir: &Path,
        seed: u64,
        citizens: u64,
    ) -> Result<Self> {
        // The sector's records are personal data: readable by this user
        // alone (the directory 0700, the store 0600 with its -wal and -shm).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(Error::io(data_dir))?;
        let population = Population::new(seed, citizens)
            .map_err(|e| Error::Usage(format!("population: {e}")))?;
        let base = Base {
            seed,
            today: population.reference_date(),
        };
        let path = data_dir.join(format!("{}.db", sector.name()));
        let population_id = PopulationId { seed, citizens };
        let store = Store::open(&path, sector.name(), population_id)?;
        let applied_seq = AtomicU64::new(store.highest_applied()?);
        Ok(Self {
            sector,
            gateway_key,
            population,
            population_id,
            base,
            store,
            applied_seq,
        })
    }

    /// Notes that the event `seq` is applied (or was before) and exports
    /// the highest seq applied (`lienthong_adapter_applied_seq`); with no
    /// `seq`, exports it as it stands.
    pub fn note_applied(&self, seq: Option<u64>) {
        let highest = match seq {
            Some(seq) => self.applied_seq.fetch_max(seq, Ordering::Relaxed).max(seq),
            None => self.applied_seq.load(Ordering::Relaxed),
        };
        metrics::gauge!(crate::telemetry::APPLIED_SEQ, "sector" => self.sector.name())
            .set(highest as f64);
    }

    /// The population the records derive from.
    pub fn population(&self) -> PopulationId {
        self.population_id
    }

    /// The sector served.
    pub fn sector(&self) -> &dyn Sector {
        &*self.sector
    }

    /// The gateway's public signing key.
    pub fn gateway_key(&self) -> &[u8; 32] {
        &self.gateway_key
    }

    /// The answer to `query` about `pid`; `None`: the sector has no record.
    pub fn lookup(&self, pid: Pid, query: &str) -> Result<Option<SectorAnswer>> {
        let Some(query) = self.query(query) else {
            return Err(Error::UnknownQuery {
                sector: self.sector.name(),
                query: query.to_owned(),
                answers: self.sector.queries(),
            });
        };
        if let Some(bytes) = self.store.answer(pid, query)? {
            return SectorAnswer::decode(&*bytes)
                .map(Some)
                .map_err(|_| Error::Corrupt);
        }
        Ok(self
            .citizen(pid)
            .and_then(|c| self.sector.derive(query, &c, &self.base)))
    }

    /// Applies `event` once: a duplicate changes nothing; [`Poison`] changes
    /// nothing and should be dead-lettered.
    pub fn apply(&self, event: &Event) -> Result<Result<Applied, Poison>> {
        let outcome = self
            .store
            .apply(&event.id, event.seq, &event.kind, event.pid, |stored| {
                // Only for an event not applied before: a duplicate costs no
                // derivation.
                let citizen = self.citizen(event.pid);
                let mut answers: BTreeMap<&'static str, Option<SectorAnswer>> = BTreeMap::new();
                for &query in self.sector.queries() {
                    let answer = match stored.iter().find(|(q, _)| q == query) {
                        Some((_, bytes)) => {
                            Some(SectorAnswer::decode(&**bytes).map_err(|_| Rejected::Corrupt)?)
                        }
                        None => citizen
                            .as_ref()
                            .and_then(|c| self.sector.derive(query, c, &self.base)),
                    };
                    answers.insert(query, answer);
                }
                let mut records = Records::new(event.pid, self.base, answers);
                self.sector
                    .react(event, &mut records)
                    .map_err(Rejected::Poison)?;
                Ok(records
                    .into_changed()
                    .into_iter()
                    .map(|(q, a)| (q, a.encode_to_vec()))
                    .collect())
            })?;
        match outcome {
            Ok(applied) => Ok(Ok(applied)),
            Err(Rejected::Poison(p)) => Ok(Err(p)),
            Err(Rejected::Corrupt) => Err(Error::Corrupt),
        }
    }

    /// Counts a message sent to the dead-letter queue.
    pub fn count_dead_lettered(&self) -> Result<()> {
        self.store.count_dead_lettered()
    }

    /// The store's totals.
    pub fn stats(&self) -> Result<Stats> {
        self.store.stats()
    }

    fn query(&self, query: &str) -> Option<&'static str> {
        self.sector.queries().iter().copied().find(|q| *q == query)
    }

    fn citizen(&self, pid: Pid) -> Option<Citizen> {
        self.population
            .index_of_pid(pid)
            .map(|i| self.population.citizen(i))
    }
}
