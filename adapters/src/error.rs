//! The adapters' one error type.

use std::path::PathBuf;

/// Everything that can go wrong in an adapter or job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The sector's store failed.
    #[error("store {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A stored record could not be decoded.
    #[error("store: a stored record is corrupt")]
    Corrupt,
    /// The sector does not answer this query.
    #[error("the {sector} sector has no query {query:?}; it answers {}", answers.join(", "))]
    UnknownQuery {
        sector: &'static str,
        query: String,
        answers: &'static [&'static str],
    },
    /// No sector has this name.
    #[error("no sector {0:?}; the sectors are {names}", names = crate::sectors::names().join(", "))]
    UnknownSector(String),
    /// Certificates or keys are missing or invalid.
    #[error("tls: {0}")]
    Tls(String),
    /// The server could not be built or failed while serving.
    #[error("server: {0}")]
    Server(String),
    /// The gateway could not be reached or refused the stream.
    #[error("gateway: {0}")]
    Gateway(String),
    /// A saved checkpoint does not belong to this input.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// An argument is unusable.
    #[error("{0}")]
    Usage(String),
    /// A blocking task failed to complete.
    #[error("internal task failed")]
    Task,
}

impl Error {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    /// A store error on `path`.
    pub(crate) fn store(path: impl Into<PathBuf>) -> impl FnOnce(rusqlite::Error) -> Self {
        let path = path.into();
        move |source| Self::Store { path, source }
    }
}

/// The adapters' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
