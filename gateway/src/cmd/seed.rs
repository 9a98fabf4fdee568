//! `lienthong seed`: fill a registry — the data directory's, or a shared
//! PostgreSQL one (`--store`) — with the synthetic population.

use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use lienthong_proto::population::Population;

use super::{DataDir, StoreChoice};
use crate::error::Result;
use crate::registry::{
    PostgresRegistry, Sample, SeedReport, SqliteRegistry, seed as seed_registry, write_sample,
};

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// Number of citizens.
    pub citizens: u64,
    /// Population seed.
    pub seed: u64,
    /// Where to write a JSONL sample, if anywhere.
    pub sample_out: Option<PathBuf>,
    /// Records in the sample.
    pub sample_size: u64,
}

/// Seeds the (empty) registry `store` names, with a progress bar on a terminal.
pub fn seed(dir: &DataDir, store: &StoreChoice, opts: &SeedOptions) -> Result<SeedReport> {
    let population = Population::new(opts.seed, opts.citizens)?;
    let bar = ProgressBar::new(opts.citizens);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} seeding [{bar:40}] {human_pos}/{human_len} citizens  {per_sec}  ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let sample = opts.sample_out.as_deref().map(|path| Sample {
        path,
        size: opts.sample_size,
    });
    let report = match store {
        StoreChoice::Embedded => {
            dir.prepare()?;
            let store = SqliteRegistry::open(dir.registry())?;
            seed_registry(&store, &population, sample, |n| bar.set_position(n))
        }
        StoreChoice::Postgres(url) => {
            let citizens = PostgresRegistry::open(url)?.seed(&population, |n| bar.set_position(n));
            citizens.and_then(|citizens| {
                let sampled = match sample {
                    Some(sample) => write_sample(&population, &sample)?,
                    None => 0,
                };
                Ok(SeedReport { citizens, sampled })
            })
        }
    };
    bar.finish_and_clear();
    report
}
