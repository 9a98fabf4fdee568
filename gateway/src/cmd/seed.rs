//! `lienthong seed`: fill a registry with the synthetic population.

use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use lienthong_proto::population::Population;

use super::DataDir;
use crate::error::Result;
use crate::registry::{Sample, SeedReport, SqliteRegistry, seed as seed_registry};

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

/// Seeds the data directory's (empty) registry, with a progress bar on a terminal.
pub fn seed(dir: &DataDir, opts: &SeedOptions) -> Result<SeedReport> {
    dir.prepare()?;
    let store = SqliteRegistry::open(dir.registry())?;
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
    let report = seed_registry(&store, &population, sample, |n| bar.set_position(n));
    bar.finish_and_clear();
    report
}
