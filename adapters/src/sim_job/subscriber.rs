//! A SIM subscriber as an operator's base records it, read line by line from
//! CSV or JSONL.
//!
//! ```text
//! msisdn,pid,full_name,date_of_birth,sex,registered_on
//! 84912345678,079203123456,NGUYEN VAN AN,2003-05-14,male,2021-08-02
//! {"msisdn":"84912345678","pid":"079203123456","full_name":"Nguyễn Văn An",
//!  "date_of_birth":"2003-05-14","sex":"male","registered_on":"2021-08-02"}
//! ```
//!
//! The Pid is kept as written: judging it is the gateway's job. A line that
//! cannot be read at all is a [`LineError`] naming the line and the field.

use std::fmt;
use std::path::Path;

use lienthong_proto::{Date, Sex};

/// The CSV header line.
pub const CSV_HEADER: &str = "msisdn,pid,full_name,date_of_birth,sex,registered_on";

/// One subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// Phone number (the subscriber's key).
    pub msisdn: String,
    /// The ID number as registered, not necessarily a valid Pid.
    pub pid: String,
    /// Name as registered with the operator.
    pub full_name: String,
    /// Date of birth as registered.
    pub date_of_birth: Date,
    /// Sex as registered.
    pub sex: Sex,
    /// When the SIM was registered.
    pub registered_on: Date,
}

/// A line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number in the file.
    pub line: u64,
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong (never the field's value).
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.field, self.message)
    }
}

/// The file formats a base can come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated, with the [`CSV_HEADER`] line first.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// The format of a file, by its extension (`.jsonl` or else CSV).
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "ndjson") => Self::Jsonl,
            _ => Self::Csv,
        }
    }
}

#[derive(serde::Deserialize)]
struct JsonLine {
    msisdn: String,
    pid: String,
    full_name: String,
    date_of_birth: String,
    sex: String,
    registered_on: String,
}

fn err(line: u64, field: &'static str, message: impl Into<String>) -> LineError {
    LineError {
        line,
        field,
        message: message.into(),
    }
}

fn date(line: u64, field: &'static str, s: &str) -> Result<Date, LineError> {
    s.parse()
        .map_err(|e: lienthong_proto::date::DateError| err(line, field, e.to_string()))
}

fn sex(line: u64, s: &str) -> Result<Sex, LineError> {
    match s.trim().to_lowercase().as_str() {
        "male" | "m" | "nam" => Ok(Sex::Male),
        "female" | "f" | "nữ" | "nu" => Ok(Sex::Female),
        _ => Err(err(line, "sex", "expected male or female")),
    }
}

impl Subscriber {
    /// Reads one data line (`line` is its 1-based number in the file).
    pub fn parse(format: Format, line: u64, text: &str) -> Result<Self, LineError> {
        match format {
            Format::Csv => {
                let f: Vec<&str> = text.split(',').collect();
                if f.len() != 6 {
                    return Err(err(
                        line,
                        "line",
                        format!("expected 6 fields, found {}", f.len()),
                    ));
                }
                Self::from_fields(line, [f[0], f[1], f[2], f[3], f[4], f[5]])
            }
            Format::Jsonl => {
                let j: JsonLine = serde_json::from_str(text).map_err(|e| {
                    err(
                        line,
                        "line",
                        format!("not a subscriber object ({})", classify(&e)),
                    )
                })?;
                Self::from_fields(
                    line,
                    [
                        &j.msisdn,
                        &j.pid,
                        &j.full_name,
                        &j.date_of_birth,
                        &j.sex,
                        &j.registered_on,
                    ],
                )
            }
        }
    }

    /// Builds a subscriber from its six fields, in [`CSV_HEADER`] order.
    fn from_fields(
        line: u64,
        [msisdn, pid, name, dob, sx, reg]: [&str; 6],
    ) -> Result<Self, LineError> {
        if msisdn.is_empty() || !msisdn.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(line, "msisdn", "expected digits"));
        }
        if name.trim().is_empty() {
            return Err(err(line, "full_name", "empty"));
        }
        Ok(Self {
            msisdn: msisdn.to_owned(),
            pid: pid.trim().to_owned(),
            full_name: name.to_owned(),
            date_of_birth: date(line, "date_of_birth", dob.trim())?,
            sex: sex(line, sx)?,
            registered_on: date(line, "registered_on", reg.trim())?,
        })
    }

    /// The subscriber as a CSV line (no newline).
    pub fn to_csv(&self) -> String {
        let sex = match self.sex {
            Sex::Male => "male",
            Sex::Female => "female",
        };
        format!(
            "{},{},{},{},{},{}",
            self.msisdn, self.pid, self.full_name, self.date_of_birth, sex, self.registered_on
        )
    }
}

/// serde_json's error category, without the offending input.
fn classify(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "I/O",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "missing or mistyped field",
        serde_json::error::Category::Eof => "truncated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_csv_and_jsonl() {
        let csv = "84912345678,079203123456,NGUYEN VAN AN,2003-05-14,male,2021-08-02";
        let s = Subscriber::parse(Format::Csv, 2, csv).unwrap();
        assert_eq!(s.to_csv(), csv);
        let json = r#"{"msisdn":"84912345678","pid":"079203123456","full_name":"NGUYEN VAN AN","date_of_birth":"2003-05-14","sex":"male","registered_on":"2021-08-02"}"#;
        assert_eq!(Subscriber::parse(Format::Jsonl, 2, json).unwrap(), s);
    }

    #[test]
    fn errors_name_line_and_field_not_value() {
        let cases = [
            (
                "849,0792,Nguyễn Văn An,2003-02-30,male,2021-08-02",
                "date_of_birth",
            ),
            ("849,0792,Nguyễn Văn An,2003-02-03,robot,2021-08-02", "sex"),
            ("849,0792,Nguyễn Văn An,2003-02-03", "line"),
            (
                "84x,0792,Nguyễn Văn An,2003-02-03,male,2021-08-02",
                "msisdn",
            ),
        ];
        for (text, field) in cases {
            let e = Subscriber::parse(Format::Csv, 7, text).unwrap_err();
            assert_eq!((e.line, e.field), (7, field), "{text}");
            assert!(!e.to_string().contains("Nguyễn"));
        }
        let e = Subscriber::parse(Format::Jsonl, 9, "{\"msisdn\": 1").unwrap_err();
        assert_eq!((e.line, e.field), (9, "line"));
    }

    proptest::proptest! {
        /// Any line is a subscriber or an error naming its line and field.
        #[test]
        fn any_line_is_a_subscriber_or_names_its_line_and_field(
            text in "\\PC{0,120}|[0-9,a-zA-Z -]{0,80}",
            line in 1u64..1_000_000,
        ) {
            for format in [Format::Csv, Format::Jsonl] {
                match Subscriber::parse(format, line, &text) {
                    Ok(s) if format == Format::Csv => {
                        proptest::prop_assert_eq!(Subscriber::parse(format, line, &s.to_csv()), Ok(s));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        proptest::prop_assert_eq!(e.line, line);
                        proptest::prop_assert!(!e.field.is_empty() && !e.message.is_empty());
                    }
                }
            }
        }
    }
}
