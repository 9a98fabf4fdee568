//! Shares: how many of something each agency holds at once — calls in
//! flight, connections — each at most a bound, given back when dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What each agency holds now, by agency.
#[derive(Debug, Default)]
pub(crate) struct Shares {
    held: Mutex<HashMap<Arc<str>, usize>>,
}

impl Shares {
    /// One more for `agency`, unless it holds `limit` already.
    pub(crate) fn take(self: &Arc<Self>, agency: &Arc<str>, limit: usize) -> Option<Held> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(agency.clone()).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Held {
            shares: self.clone(),
            agency: agency.clone(),
        })
    }
}

/// One unit of an agency's share, given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    shares: Arc<Shares>,
    agency: Arc<str>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.shares.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.agency) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.agency);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agency_holds_at_most_its_limit_and_others_are_apart() {
        let shares = Arc::new(Shares::default());
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let first = shares.take(&a, 2).unwrap();
        let _second = shares.take(&a, 2).unwrap();
        assert!(shares.take(&a, 2).is_none());
        assert!(shares.take(&b, 2).is_some(), "another agency is apart");
        drop(first);
        assert!(shares.take(&a, 2).is_some(), "given back when dropped");
    }
}
