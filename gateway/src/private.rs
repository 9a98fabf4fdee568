//! Files that hold personal data or accesses — the registry, the audit log
//! and its index, the sample of records — and the keys are readable by the
//! gateway's user alone: created 0600, in directories created 0700.
//!
//! ```text
//! DIR/                0700    DIR/registry.db (-wal, -shm)   0600
//! DIR/audit/          0700    DIR/audit/*.seg, index.db      0600
//! DIR/keys/, DIR/pki/ 0700    DIR/sample.jsonl               0600
//! ```
//!
//! SQLite creates a database's `-wal` and `-shm` files with the database
//! file's own mode, so a database file created here keeps them private.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// A private file's mode.
pub const FILE_MODE: u32 = 0o600;
/// A private directory's mode.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents, 0700 (those that exist keep
/// their mode).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// `options` that create a file 0600.
pub fn options(options: &mut OpenOptions) -> &mut OpenOptions {
    options.mode(FILE_MODE)
}

/// Creates `path` empty and 0600 unless it exists, so that a database
/// opened on it next is private.
pub fn touch(path: &Path) -> io::Result<()> {
    options(OpenOptions::new().write(true).create(true).truncate(false))
        .open(path)
        .map(drop)
}

/// Creates (or truncates) `path`, 0600 if created, for writing.
pub fn create(path: &Path) -> io::Result<File> {
    options(OpenOptions::new().write(true).create(true).truncate(true)).open(path)
}
