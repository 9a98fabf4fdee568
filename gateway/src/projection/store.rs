//! The store every registry write of this gateway goes through: the write
//! commits in the store, then the projection catches up with the outbox
//! (that write, and any other committed before it), before the write is
//! answered.

use std::sync::Arc;

use lienthong_proto::citizen::RecordView;
use lienthong_proto::{Citizen, Pid};

use super::Projection;
use crate::error::{Error, Result};
use crate::registry::{Changes, Plan, PopulationStore, RequestKey, Written};

/// `inner`, with each write applied to `projection` before it is answered.
pub struct ProjectedStore {
    inner: Arc<dyn PopulationStore>,
    projection: Arc<Projection>,
}

impl ProjectedStore {
    /// `inner`'s writes applied to `projection`.
    pub fn new(inner: Arc<dyn PopulationStore>, projection: Arc<Projection>) -> Self {
        Self { inner, projection }
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

    fn changes_after(&self, after: u64, limit: usize) -> Result<Changes> {
        self.inner.changes_after(after, limit)
    }

    fn count(&self) -> Result<u64> {
        self.inner.count()
    }

    fn is_empty(&self) -> Result<bool> {
        self.inner.is_empty()
    }

    fn write(&self, key: &RequestKey<'_>, plan: &mut Plan<'_>) -> Result<Written> {
        let written = self.inner.write(key, plan)?;
        // A replayed receipt may be of a write through another gateway not
        // yet followed: it is applied before it is answered too. Should the
        // outbox not be read (the store busy), the write is not answered as
        // done; its retry gets the same receipt and reads again.
        let seq = written.receipt().seq;
        if self.projection.applied(&*self.inner, seq)? < seq {
            // The store committed a seq its outbox does not show.
            return Err(Error::Corrupt);
        }
        Ok(written)
    }
}
