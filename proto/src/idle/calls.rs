//! The calls open on one connection, and since when none has been.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;

/// The calls open on one connection, and since when none has been.
#[derive(Debug)]
pub struct OpenCalls {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    open: usize,
    idle_since: Instant,
}

impl OpenCalls {
    /// A new connection's: no call, idle from now.
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                open: 0,
                idle_since: Instant::now(),
            }),
        })
    }

    /// One more call on the connection, until the [`OpenCall`] is dropped.
    pub fn open(self: &Arc<Self>) -> OpenCall {
        self.lock().open += 1;
        OpenCall(self.clone())
    }

    /// When the connection's last call ended, if none is open now.
    pub(super) fn idle_since(&self) -> Option<Instant> {
        let state = self.lock();
        (state.open == 0).then_some(state.idle_since)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A call open on its connection; the connection may be idle again once
/// every one is dropped.
#[derive(Debug)]
pub struct OpenCall(Arc<OpenCalls>);

impl Drop for OpenCall {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.open -= 1;
        if state.open == 0 {
            state.idle_since = Instant::now();
        }
    }
}
