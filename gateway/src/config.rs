//! The configuration file: `DIR/lienthong.toml` (or `--config FILE`), one
//! key per `serve` option, between the defaults and the environment.
//!
//! ```text
//! precedence: built-in default < lienthong.toml < LIENTHONG_* variable < flag
//!
//! # DIR/lienthong.toml — every key optional
//! listen = "0.0.0.0:50051"
//! metrics_listen = "127.0.0.1:9464"        # or "off"
//! amqp_url = "amqp://user:pass@broker:5672/%2f"
//! events_exchange = "lienthong.events"
//! outbox_retention_days = 7
//! max_message_bytes = 16777216
//! max_in_flight = 2048
//! max_streams_per_connection = 256
//! deadline_ms = 30000
//! max_batch_claims = 10000
//! shutdown_grace_ms = 20000
//! shutdown_drain_ms = 1000
//! sector_endpoints = "health=https://10.0.0.7:50062,banking=https://10.0.0.8:50065"
//! sector_deadline_ms = 2000
//! citizens = 1000000                        # first start only
//! seed = 1                                  # first start only
//! ```
//!
//! The file is checked as a whole when it is read: an unknown key or a value
//! of the wrong type is an error naming its line. The values themselves are
//! validated as the flags are.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The file's name in a data directory.
pub const FILE_NAME: &str = "lienthong.toml";

/// The keys a configuration file may set, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub listen: Option<String>,
    pub metrics_listen: Option<String>,
    pub amqp_url: Option<String>,
    pub events_exchange: Option<String>,
    pub outbox_retention_days: Option<u64>,
    pub max_message_bytes: Option<u64>,
    pub max_in_flight: Option<u64>,
    pub max_streams_per_connection: Option<u32>,
    pub deadline_ms: Option<u64>,
    pub max_batch_claims: Option<u64>,
    pub shutdown_grace_ms: Option<u64>,
    pub shutdown_drain_ms: Option<u64>,
    pub sector_endpoints: Option<String>,
    pub sector_deadline_ms: Option<u64>,
    pub citizens: Option<u64>,
    pub seed: Option<u64>,
}

impl ConfigFile {
    /// Reads the file at `path`. A missing file is an empty configuration,
    /// unless it was named explicitly (`required`).
    pub fn load(path: &Path, required: bool) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Self::default());
            }
            Err(e) => return Err(Error::io(path)(e)),
        };
        toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Every key the file sets, with its value as a flag would spell it.
    pub fn values(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut put = |key: &'static str, value: Option<String>| {
            if let Some(v) = value {
                out.push((key, v));
            }
        };
        put("listen", self.listen.clone());
        put("metrics_listen", self.metrics_listen.clone());
        put("amqp_url", self.amqp_url.clone());
        put("events_exchange", self.events_exchange.clone());
        put(
            "outbox_retention_days",
            self.outbox_retention_days.map(|v| v.to_string()),
        );
        put(
            "max_message_bytes",
            self.max_message_bytes.map(|v| v.to_string()),
        );
        put("max_in_flight", self.max_in_flight.map(|v| v.to_string()));
        put(
            "max_streams_per_connection",
            self.max_streams_per_connection.map(|v| v.to_string()),
        );
        put("deadline_ms", self.deadline_ms.map(|v| v.to_string()));
        put(
            "max_batch_claims",
            self.max_batch_claims.map(|v| v.to_string()),
        );
        put(
            "shutdown_grace_ms",
            self.shutdown_grace_ms.map(|v| v.to_string()),
        );
        put(
            "shutdown_drain_ms",
            self.shutdown_drain_ms.map(|v| v.to_string()),
        );
        put("sector_endpoints", self.sector_endpoints.clone());
        put(
            "sector_deadline_ms",
            self.sector_deadline_ms.map(|v| v.to_string()),
        );
        put("citizens", self.citizens.map(|v| v.to_string()));
        put("seed", self.seed.map(|v| v.to_string()));
        out
    }
}

/// The configuration file of data directory `data_dir`, unless `explicit`.
pub fn file_path(data_dir: &Path, explicit: Option<&Path>) -> PathBuf {
    explicit.map_or_else(|| data_dir.join(FILE_NAME), Path::to_path_buf)
}

/// `url` with its password replaced by `***`, for printing.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_and_nothing_else() {
        assert_eq!(
            redact_url("amqp://guest:s3cr:et@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url("amqp://broker:5672/%2f"),
            "amqp://broker:5672/%2f"
        );
        assert_eq!(redact_url("amqp://user@h/v"), "amqp://user@h/v");
    }

    #[test]
    fn an_unknown_key_or_a_wrong_type_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        for (text, line) in [
            ("listen = \"127.0.0.1:1\"\nmax_inflight = 3\n", "line 2"),
            ("\n\ndeadline_ms = \"soon\"\n", "line 3"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = ConfigFile::load(&path, true).unwrap_err().to_string();
            assert!(err.contains(line), "{err}");
        }
        std::fs::write(&path, "max_in_flight = 7\namqp_url = \"amqp://a:b@c/d\"\n").unwrap();
        let file = ConfigFile::load(&path, true).unwrap();
        assert_eq!(
            file.values(),
            [
                ("amqp_url", "amqp://a:b@c/d".to_owned()),
                ("max_in_flight", "7".to_owned())
            ]
        );
        assert_eq!(
            ConfigFile::load(&dir.path().join("none.toml"), false).unwrap(),
            ConfigFile::default()
        );
        assert!(ConfigFile::load(&dir.path().join("none.toml"), true).is_err());
    }
}
