//! The store every registry write of this gateway goes through: the write
//! commits in the store, then its records are applied to the projection,
//! before the write is answered, one write at a time.

use std::sync::{Arc, Mutex};

use lienthong_proto::citizen::RecordView;
use lienthong_proto::{Citizen, Pid};

use super::Projection;
use crate::error::Result;
use crate::registry::{Plan, PopulationStore, RequestKey, Written};

/// `inner`, with each committed write applied to `projection`.
pub struct ProjectedStore {
    inner: Arc<dyn PopulationStore>,
    projection: Arc<Projection>,
    /// Held from a write's start until it is applied: writes reach the
    /// projection in the order they committed.
    writing: Mutex<()>,
}

impl ProjectedStore {
    /// `inner`'s writes applied to `projection`.
    pub fn new(inner: Arc<dyn PopulationStore>, projection: Arc<Projection>) -> Self {
        Self {
            inner,
            projection,
            writing: Mutex::new(()),
        }
    }
}

impl PopulationStore for ProjectedStore {
    fn visit_many(
        &self,
        pids: &[Pid],
        view: RecordView,
        visit: &mut dyn FnMut(usize, Option<Citizen>),
    ) -> Result<()> {
        self.inner.visit_many(pids, view, visit)
    }

    fn visit_all(&self, view: RecordView, visit: &mut dyn FnMut(Citizen)) -> Result<u64> {
        self.inner.visit_all(view, visit)
    }

    fn count(&self) -> Result<u64> {
        self.inner.count()
    }

    fn is_empty(&self) -> Result<bool> {
        self.inner.is_empty()
    }

    fn write(&self, key: &RequestKey<'_>, plan: &mut Plan<'_>) -> Result<Written> {
        let _in_order = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        // The records of the plan that committed (a plan may run again if
        // the store retries).
        let mut records = Vec::new();
        let written = self.inner.write(key, &mut |scope| {
            let planned = plan(scope)?;
            records.clone_from(&planned.records);
            Ok(planned)
        })?;
        if let Written::Committed(receipt) = &written {
            self.projection.apply(receipt.seq, &records);
        }
        Ok(written)
    }
}
