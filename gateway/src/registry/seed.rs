//! Seeding: filling an empty registry with the synthetic population.
//!
//! Generation and insertion overlap: one thread derives and encodes chunks of
//! citizens while the caller's thread inserts the previous chunk. Pids come
//! out of the population in ascending order, so SQLite appends to its B-tree
//! instead of splitting pages all over it.

use std::io::Write;
use std::path::Path;
use std::sync::mpsc;

use lienthong_proto::population::Population;
use lienthong_proto::{Citizen, Date, Pid, Sex, citizen::LifeStatus};
use prost::Message;
use rusqlite::params;

use super::SqliteRegistry;
use crate::error::{Error, Result};

/// Citizens per generated chunk (and per progress tick).
const CHUNK: u64 = 20_000;

/// Writes `sample` of `population` on its own (a store seeded without
/// one, such as the shared store): the same lines seeding writes. Returns
/// how many.
pub fn write_sample(population: &Population, sample: &Sample<'_>) -> Result<u64> {
    let mut out = std::io::BufWriter::new(
        crate::private::create(sample.path).map_err(Error::io(sample.path))?,
    );
    let every = (population.len() / sample.size.max(1)).max(1);
    let mut sampled = 0;
    for i in (0..population.len())
        .step_by(every as usize)
        .take(sample.size as usize)
    {
        if let Some(s) = SampleRecord::of(&population.citizen(i)) {
            let line = serde_json::to_string(&s)
                .map_err(|e| Error::invalid("sample-out", e.to_string()))?;
            writeln!(out, "{line}").map_err(Error::io("sample-out"))?;
            sampled += 1;
        }
    }
    out.flush().map_err(Error::io("sample-out"))?;
    Ok(sampled)
}

/// One line of the sample JSONL `seed --sample-out` writes, so users can try
/// queries against real records.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SampleRecord {
    /// 12-digit personal identification number.
    pub pid: Pid,
    /// Full name as registered.
    pub full_name: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: Date,
    /// `male` or `female`.
    pub sex: Sex,
    /// `alive`, `deceased` or `missing`.
    pub status: LifeStatus,
    /// 3-digit code of the province of permanent residence.
    pub permanent_province: String,
    /// Old 9-digit ID number, when the citizen has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_id_number: Option<String>,
}

impl SampleRecord {
    fn of(c: &Citizen) -> Option<Self> {
        Some(Self {
            pid: Pid::from_u64(c.pid).ok()?,
            full_name: c.full_name.clone(),
            date_of_birth: c.date_of_birth()?,
            sex: c.sex(),
            status: c.life_status(),
            permanent_province: lienthong_proto::province::code_text(
                c.permanent.as_ref()?.province,
            ),
            old_id_number: (!c.old_id_number.is_empty()).then(|| c.old_id_number.clone()),
        })
    }
}

/// What a seeding run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedReport {
    /// Citizens written.
    pub citizens: u64,
    /// Sample lines written.
    pub sampled: u64,
}

/// Where and how many sample records to write.
pub struct Sample<'a> {
    /// The JSONL file.
    pub path: &'a Path,
    /// How many records, spread evenly over the population.
    pub size: u64,
}

/// Fills an empty registry with `population`, calling `progress` with the
/// number of citizens written so far; optionally writes a JSONL sample.
/// Refuses a registry that already holds citizens.
pub fn seed(
    store: &SqliteRegistry,
    population: &Population,
    sample: Option<Sample<'_>>,
    mut progress: impl FnMut(u64),
) -> Result<SeedReport> {
    // The writer is held throughout: the emptiness check and the load
    // cannot be split by another write.
    store.with_writer(|conn| {
        let existing: i64 = conn.query_row("SELECT count(*) FROM citizen", [], |r| r.get(0))?;
        if existing > 0 {
            return Err(Error::invalid(
                "data-dir",
                format!(
                    "the registry already holds {existing} citizens; seed an empty data directory"
                ),
            ));
        }
        let sample = match sample {
            Some(s) => Some(SampleOut {
                out: std::io::BufWriter::new(
                    crate::private::create(s.path).map_err(Error::io(s.path))?,
                ),
                every: (population.len() / s.size.max(1)).max(1),
                size: s.size,
            }),
            None => None,
        };
        // A bulk load into an empty registry: durable at its commit only.
        conn.execute_batch("PRAGMA synchronous = OFF;")?;
        let loaded = load(conn, population, sample, &mut progress);
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        let report = loaded?;
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(report)
    })
}

/// The sample being written: every `every`-th citizen, `size` at most.
struct SampleOut {
    out: std::io::BufWriter<std::fs::File>,
    every: u64,
    size: u64,
}

/// Generates on a second thread and inserts on this one, in one transaction.
fn load(
    conn: &mut rusqlite::Connection,
    population: &Population,
    mut sample: Option<SampleOut>,
    progress: &mut impl FnMut(u64),
) -> Result<SeedReport> {
    let total = population.len();
    let every = sample.as_ref().map_or(u64::MAX, |s| s.every);
    std::thread::scope(|scope| {
        // Two chunks in flight at most: bounded memory whatever the size.
        let (tx, rx) = mpsc::sync_channel::<Vec<(i64, Vec<u8>, Option<SampleRecord>)>>(2);
        scope.spawn(move || {
            let mut start = 0;
            while start < total {
                let end = (start + CHUNK).min(total);
                let chunk = (start..end)
                    .map(|i| {
                        let c = population.citizen(i);
                        let s = (i % every == 0).then(|| SampleRecord::of(&c)).flatten();
                        (c.pid as i64, c.encode_to_vec(), s)
                    })
                    .collect();
                if tx.send(chunk).is_err() {
                    return;
                }
                start = end;
            }
        });
        let tx = conn.transaction()?;
        let (mut written, mut sampled) = (0, 0);
        {
            let mut insert = tx.prepare("INSERT INTO citizen (pid, record) VALUES (?1, ?2)")?;
            for chunk in rx {
                for (pid, record, s) in chunk {
                    insert.execute(params![pid, record])?;
                    if let (Some(s), Some(out)) = (s, sample.as_mut())
                        && sampled < out.size
                    {
                        let line = serde_json::to_string(&s)
                            .map_err(|e| Error::invalid("sample-out", e.to_string()))?;
                        writeln!(out.out, "{line}").map_err(Error::io("sample-out"))?;
                        sampled += 1;
                    }
                    written += 1;
                }
                progress(written);
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('seed', ?1), ('citizens', ?2)",
            params![population.seed().to_string(), total.to_string()],
        )?;
        tx.commit()?;
        if let Some(s) = sample.as_mut() {
            s.out.flush().map_err(Error::io("sample-out"))?;
        }
        Ok(SeedReport {
            citizens: written,
            sampled,
        })
    })
}
