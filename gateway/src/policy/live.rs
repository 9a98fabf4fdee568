//! The policy in force while serving. A reload (SIGHUP) swaps in a whole new
//! validated policy; requests already past their check keep the one they
//! read, later requests see the new one, and no connection is dropped.

use std::path::Path;
use std::sync::{Arc, RwLock};

use super::Policy;
use crate::error::Result;

/// The current policy, shared by every service and replaceable at once.
#[derive(Clone)]
pub struct LivePolicy {
    current: Arc<RwLock<Arc<Policy>>>,
}

impl LivePolicy {
    /// `policy` in force.
    pub fn new(policy: Policy) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(policy))),
        }
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<Policy> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts `policy` in force.
    pub fn replace(&self, policy: Policy) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
    }

    /// Reads and validates `path`, and puts it in force; if it is invalid the
    /// policy in force stays, and the error says why (naming the line).
    pub fn reload(&self, path: &Path) -> Result<usize> {
        let policy = Policy::load(path)?;
        let agencies = policy.agencies.len();
        self.replace(policy);
        Ok(agencies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_file_keeps_the_policy_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "[agencies.a]\nname = \"A\"\n").unwrap();
        let live = LivePolicy::new(Policy::load(&path).unwrap());
        let held = live.current();
        std::fs::write(
            &path,
            "[agencies.a]\nname = \"A\"\n[agencies.b]\nname = \"B\"\n",
        )
        .unwrap();
        assert_eq!(live.reload(&path).unwrap(), 2);
        assert_eq!(held.agencies.len(), 1, "a request keeps the policy it read");
        std::fs::write(&path, "[agencies.a]\nname = \"A\"\nrolez = []\n").unwrap();
        let err = live.reload(&path).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        assert_eq!(live.current().agencies.len(), 2);
    }
}
