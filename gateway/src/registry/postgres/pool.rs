//! The shared registry's connections: at most [`MAX_OPEN`] at once, each
//! bounded in time, so that neither a burst of calls nor a database that
//! stops answering can use up PostgreSQL's connections or hold a thread for
//! long.
//!
//! ```text
//! connect         within 5 s; TCP keepalives (client and server side) and
//!                 a 30 s TCP user timeout: a lost peer is noticed in about
//!                 half a minute, and the locks a lost replica held (the
//!                 outbox seq, the relay's) are released
//! each session    statement_timeout 30 s, lock_timeout 10 s,
//!                 idle_in_transaction_session_timeout 60 s
//! checkout        an idle connection, a new one while fewer than MAX_OPEN
//!                 are open, else wait up to 5 s, then STORE_UNAVAILABLE
//! ```
//!
//! A `postgres::Client` blocks on a runtime of its own, even to close, so
//! clients are only used on blocking threads, and those still held when
//! the pool is dropped on a runtime's thread are closed on a thread of
//! their own.

use std::str::FromStr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

use crate::error::{Error, Result};

/// Connections the registry opens at once, at most (PostgreSQL allows 100
/// by default, shared by every replica; the audit log's readers have a pool
/// of their own, smaller).
pub(crate) const MAX_OPEN: usize = 32;

/// Idle connections kept for reuse, at most.
const POOLED: usize = 16;

/// Longest wait for a free connection.
const CHECKOUT_WAIT: Duration = Duration::from_secs(5);

/// Set on every session as it opens.
const SESSION: &str = "SET statement_timeout = '30s';
     SET lock_timeout = '10s';
     SET idle_in_transaction_session_timeout = '60s';
     SET tcp_keepalives_idle = 10;
     SET tcp_keepalives_interval = 5;
     SET tcp_keepalives_count = 3";

/// Connections to one database.
pub(crate) struct Pool {
    config: postgres::Config,
    /// Connections open at once, at most.
    max_open: usize,
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    idle: Vec<Client>,
    /// Open, idle or in use.
    open: usize,
}

impl Pool {
    /// At most `max_open` connections to the database at `url`
    /// (`postgres://user:password@host:port/database`).
    pub(crate) fn from_url(url: &str, max_open: usize) -> Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::StoreUrl(
                "give a postgres://user:password@host:port/database URL, or nothing for DIR/registry.db".into(),
            ));
        }
        // The parser's message never repeats the URL (nor its password).
        let config = postgres::Config::from_str(url)
            .map_err(|e| Error::StoreUrl(format!("not a PostgreSQL URL: {e}")))?;
        Ok(Self::new(config, max_open))
    }

    /// Connections as `config` says, bounded in time as the module says.
    fn new(mut config: postgres::Config, max_open: usize) -> Self {
        config
            .connect_timeout(Duration::from_secs(5))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .tcp_user_timeout(Duration::from_secs(30));
        Self {
            config,
            max_open,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    /// A new session outside the pool (the relay's lock holds one, the
    /// audit writer another).
    pub(crate) fn connect(&self) -> Result<Client> {
        let mut client = self.config.connect(NoTls)?;
        client.batch_execute(SESSION)?;
        Ok(client)
    }

    /// Runs `f` with a pooled connection; one that closed is not pooled.
    pub(crate) fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        let mut client = self.checkout()?;
        let out = f(&mut client);
        let mut state = self.state();
        if !client.is_closed() && state.idle.len() < POOLED {
            state.idle.push(client);
        } else {
            state.open -= 1;
            drop(state);
            drop(client);
        }
        self.freed.notify_one();
        out
    }

    fn checkout(&self) -> Result<Client> {
        let until = Instant::now() + CHECKOUT_WAIT;
        let mut state = self.state();
        loop {
            if let Some(client) = state.idle.pop() {
                if !client.is_closed() {
                    return Ok(client);
                }
                state.open -= 1;
                continue;
            }
            if state.open < self.max_open {
                state.open += 1;
                drop(state);
                return self.connect().inspect_err(|_| {
                    self.state().open -= 1;
                    self.freed.notify_one();
                });
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::StoreBusy {
                    open: self.max_open,
                });
            }
            state = self
                .freed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        close_off_runtime(std::mem::take(&mut self.state().idle));
    }
}

/// Closes `clients` — on a thread of their own when this one drives a
/// runtime, where a client cannot block to close.
pub(crate) fn close_off_runtime(clients: Vec<Client>) {
    if clients.is_empty() {
        return;
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::spawn(move || drop(clients));
    } else {
        drop(clients);
    }
}
