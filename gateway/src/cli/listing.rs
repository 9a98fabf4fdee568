//! `lienthong config`: the configuration `serve` runs with, as a
//! configuration file would spell it, each value with where it came from;
//! passwords redacted.
//!
//! ```text
//! # the configuration `lienthong serve` runs with
//! # data directory: lienthong-data
//! # configuration file: lienthong-data/lienthong.toml (none)
//! listen = "127.0.0.1:50051"                                 # default
//! max_in_flight = 7                                          # file
//! amqp_url = "amqp://ops:***@broker:5672/%2f"                # environment
//! ```

use std::path::Path;

use crate::config;

/// One setting's value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Its key in the configuration file (the flag's name with `_`).
    pub key: String,
    /// Its value, as a flag would spell it.
    pub value: String,
    /// `default`, `file`, `environment` or `flag`.
    pub from: &'static str,
    /// A URL whose password is never printed.
    pub secret: bool,
}

impl Setting {
    /// `key = value`, a whole number bare and anything else quoted.
    fn line(&self) -> String {
        let value = if self.secret {
            config::redact_url(&self.value)
        } else {
            self.value.clone()
        };
        if value.parse::<u64>().is_ok() {
            format!("{} = {value}", self.key)
        } else {
            format!("{} = {value:?}", self.key)
        }
    }
}

/// Prints `settings` for the data directory `data_dir`, read with the
/// configuration file at `file`.
pub fn print_config(data_dir: &Path, file: &Path, settings: &[Setting]) {
    println!("# the configuration `lienthong serve` runs with");
    println!("# data directory: {}", data_dir.display());
    println!(
        "# configuration file: {}{}",
        file.display(),
        if file.exists() { "" } else { " (none)" }
    );
    for setting in settings {
        println!("{:<58} # {}", setting.line(), setting.from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_bare_text_quoted_passwords_hidden() {
        let setting = |key: &str, value: &str, secret| Setting {
            key: key.into(),
            value: value.into(),
            from: "default",
            secret,
        };
        assert_eq!(
            setting("max_in_flight", "7", false).line(),
            "max_in_flight = 7"
        );
        assert_eq!(
            setting("listen", "127.0.0.1:50051", false).line(),
            "listen = \"127.0.0.1:50051\""
        );
        assert_eq!(
            setting("amqp_url", "amqp://a:pw@h/v", true).line(),
            "amqp_url = \"amqp://a:***@h/v\""
        );
    }
}
