//! Seeding the shared registry: the synthetic population loaded with one
//! binary `COPY`, in one transaction, into an empty register.

use lienthong_proto::population::Population;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use prost::Message;

use super::PostgresRegistry;
use crate::error::{Error, Result};

/// The advisory lock two seeding replicas take in turn (one per schema).
const SEED_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('lienthong seed ' || current_schema(), 0))";

/// Citizens between two calls of `progress`.
const PROGRESS_EVERY: u64 = 100_000;

impl PostgresRegistry {
    /// Fills an empty register with `population`, calling `progress` with
    /// the number of citizens written so far; refuses a register that
    /// already holds citizens. Returns the citizens written.
    pub fn seed(&self, population: &Population, progress: impl FnMut(u64)) -> Result<u64> {
        self.seed_if_empty(population, progress)?.ok_or_else(|| {
            Error::invalid(
                "store",
                "the registry already holds citizens; seed an empty one",
            )
        })
    }

    /// [`PostgresRegistry::seed`], or `None` when the register already
    /// holds citizens: replicas starting together on an empty database
    /// take turns, and the first one seeds it.
    pub fn seed_if_empty(
        &self,
        population: &Population,
        mut progress: impl FnMut(u64),
    ) -> Result<Option<u64>> {
        self.with_client(|client| {
            let mut tx = client.transaction()?;
            tx.execute(SEED_LOCK, &[])?;
            // A national register takes longer to load than a statement may.
            tx.batch_execute("SET LOCAL statement_timeout = 0")?;
            if tx
                .query_one("SELECT EXISTS (SELECT 1 FROM citizen)", &[])?
                .get(0)
            {
                return Ok(None);
            }
            let sink = tx.copy_in("COPY citizen (pid, record) FROM STDIN (FORMAT binary)")?;
            let mut writer = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::BYTEA]);
            let mut written = 0;
            for citizen in population.iter() {
                writer.write(&[&(citizen.pid as i64), &citizen.encode_to_vec()])?;
                written += 1;
                if written % PROGRESS_EVERY == 0 {
                    progress(written);
                }
            }
            writer.finish()?;
            progress(written);
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('seed', $1), ('citizens', $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[
                    &population.seed().to_string(),
                    &population.len().to_string(),
                ],
            )?;
            tx.commit()?;
            Ok(Some(written))
        })
    }
}
