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
    /// The gateway could not be reached or refused the stream.
    #[error("gateway: {0}")]
    Gateway(String),
    /// A saved checkpoint does not belong to this input.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// An argument is unusable.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// The adapters' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
