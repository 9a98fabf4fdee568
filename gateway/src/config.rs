//! The configuration file: `DIR/lienthong.toml` (or `--config FILE`), one
//! key per `serve` setting (the names of [`crate::cli::ServeArgs`]'
//! fields), between the defaults and the environment.
//!
//! ```text
//! precedence: built-in default < lienthong.toml < LIENTHONG_* variable < flag
//!
//! # DIR/lienthong.toml — every key optional
//! listen = "0.0.0.0:50051"
//! node_name = "gw-1"                       # default: the host name
//! metrics_listen = "127.0.0.1:9464"        # or "off"
//! store = "postgres://user:pass@db:5432/lienthong"   # default: DIR/registry.db
//! amqp_url = "amqp://user:pass@broker:5672/%2f"
//! events_exchange = "lienthong.events"
//! outbox_retention_days = 7
//! max_message_bytes = 16777216
//! max_in_flight = 2048
//! max_in_flight_per_agency = 0           # 0: a quarter of max_in_flight
//! max_streams_per_connection = 256
//! deadline_ms = 30000
//! handshake_timeout_ms = 3000
//! connection_idle_ms = 300000              # 0: never closed for idling
//! max_connections_per_agency = 64
//! stream_idle_ms = 60000
//! max_batch_claims = 10000
//! shutdown_grace_ms = 20000
//! shutdown_drain_ms = 1000
//! sector_endpoints = "health=https://10.0.0.7:50062,banking=https://10.0.0.8:50065"
//! sector_deadline_ms = 2000
//! citizens = 1000000                        # first start only
//! seed = 1                                  # first start only
//! log = "info"                              # the log filter
//! log_format = "text"                       # or "json"
//! ```
//!
//! The file is checked as a whole when it is read: a key that is no
//! setting, or a value that is neither text nor a whole number, is an
//! error naming its line. The values themselves are validated as the flags
//! are (a number written as text is taken as the flag would take it).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The file's name in a data directory.
pub const FILE_NAME: &str = "lienthong.toml";

/// A configuration file as read: each key's value as a flag would spell
/// it, and the line it is on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFile {
    values: Vec<(String, String)>,
    lines: Vec<(String, usize)>,
}

impl ConfigFile {
    /// Reads the file at `path`, whose keys must be among `keys`. A missing
    /// file is an empty configuration, unless it was named explicitly
    /// (`required`).
    pub fn load(path: &Path, required: bool, keys: &[String]) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Self::default());
            }
            Err(e) => return Err(Error::io(path)(e)),
        };
        let bad = |message: String| Error::Config {
            path: path.to_path_buf(),
            message,
        };
        let table: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut file = Self::default();
        for (key, value) in table {
            let line = line_of(&text, &key);
            let at = line.map_or_else(String::new, |n| format!("line {n}: "));
            if !keys.contains(&key) {
                return Err(bad(format!(
                    "{at}unknown key `{key}`; the keys are {}",
                    keys.join(", ")
                )));
            }
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(n) => n.to_string(),
                _ => return Err(bad(format!("{at}`{key}` takes text or a whole number"))),
            };
            file.values.push((key.clone(), value));
            file.lines.push((key, line.unwrap_or(0)));
        }
        Ok(file)
    }

    /// Every key the file sets, with its value as a flag would spell it.
    pub fn values(&self) -> &[(String, String)] {
        &self.values
    }

    /// The line `key` is set on, if the file sets it.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.lines.iter().find(|(k, _)| k == key).map(|(_, n)| *n)
    }
}

/// The line (from 1) of a flat TOML file on which `key` is set.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// The configuration file of data directory `data_dir`, unless `explicit`.
pub fn file_path(data_dir: &Path, explicit: Option<&Path>) -> PathBuf {
    explicit.map_or_else(|| data_dir.join(FILE_NAME), Path::to_path_buf)
}

/// `url` with its password replaced by `***`, for printing.
pub fn redact_url(url: &str) -> String {
    // A password given as a query parameter (`?password=…`, as PostgreSQL
    // URLs allow) is hidden too.
    let url = match url.split_once('?') {
        None => url.to_owned(),
        Some((base, query)) => {
            let query: Vec<&str> = query
                .split('&')
                .map(|pair| match pair.starts_with("password=") {
                    true => "password=***",
                    false => pair,
                })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return url;
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
        assert_eq!(
            redact_url("postgres://gw@db/lienthong?password=pw&sslmode=disable"),
            "postgres://gw@db/lienthong?password=***&sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://gw:pw@db/l?password=pw2"),
            "postgres://gw:***@db/l?password=***"
        );
    }

    #[test]
    fn an_unknown_key_or_a_value_of_no_kind_names_its_line() {
        let keys: Vec<String> = ["listen", "max_in_flight", "amqp_url", "deadline_ms"]
            .map(str::to_owned)
            .to_vec();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        for (text, line) in [
            ("listen = \"127.0.0.1:1\"\nmax_inflight = 3\n", "line 2"),
            ("\n\ndeadline_ms = [1, 2]\n", "line 3"),
            ("listen = true\n", "line 1"),
            ("listen = \n", "line 1"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = ConfigFile::load(&path, true, &keys)
                .unwrap_err()
                .to_string();
            assert!(err.contains(line), "{err}");
        }
        std::fs::write(&path, "max_in_flight = 7\namqp_url = \"amqp://a:b@c/d\"\n").unwrap();
        let file = ConfigFile::load(&path, true, &keys).unwrap();
        let mut values = file.values().to_vec();
        values.sort();
        assert_eq!(
            values,
            [
                ("amqp_url".to_owned(), "amqp://a:b@c/d".to_owned()),
                ("max_in_flight".to_owned(), "7".to_owned())
            ]
        );
        assert_eq!(file.line_of("amqp_url"), Some(2));
        let none = dir.path().join("none.toml");
        assert_eq!(
            ConfigFile::load(&none, false, &keys).unwrap(),
            ConfigFile::default()
        );
        assert!(ConfigFile::load(&none, true, &keys).is_err());
    }

    #[test]
    fn the_documented_keys_are_the_settings() {
        let mut documented: Vec<String> = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! # DIR/lienthong.toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .filter_map(|l| l.trim_start_matches("//! ").split(" = ").next())
            .map(str::to_owned)
            .collect();
        let mut settings = crate::cli::setting_keys();
        documented.sort();
        settings.sort();
        assert_eq!(documented, settings);
    }
}
