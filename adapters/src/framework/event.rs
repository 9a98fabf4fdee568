//! A population event as the gateway publishes it on `lienthong.events`,
//! read from the message body (the CloudEvents headers repeat it).
//!
//! ```text
//! {"id":"0193…","seq":42,"type":"citizen.died","pid":"001085000123",
//!  "occurred_at":"2026-11-23T02:41:07.123456Z",
//!  "data":{"date_of_death":"2026-11-20","widowed_spouse":null}}
//! ```
//!
//! A body that does not read as such an event can never be processed: it is
//! [`Poison`], and goes to the adapter's dead-letter queue with the reason.

use lienthong_proto::{Date, Pid};
use serde::Deserialize;

/// The routing keys (and `type`s) the gateway publishes.
pub mod kind {
    pub const BORN: &str = "citizen.born";
    pub const DIED: &str = "citizen.died";
    pub const RESIDENCE_CHANGED: &str = "citizen.residence_changed";
    pub const NAME_CHANGED: &str = "citizen.name_changed";
    pub const MARRIED: &str = "citizen.married";
    pub const CARD_ISSUED: &str = "citizen.card_issued";
}

/// Why a message can never be processed. The text names the part of the
/// message at fault, never a person's data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Poison(pub String);

/// One population event.
#[derive(Debug, Clone)]
pub struct Event {
    /// Event id (the AMQP `message_id`): duplicates share it.
    pub id: String,
    /// The gateway's gap-free sequence number.
    pub seq: u64,
    /// The event type, e.g. `citizen.died`.
    pub kind: String,
    /// The citizen the event is about (the child, for a birth).
    pub pid: Pid,
    /// When the change was committed (RFC 3339).
    pub occurred_at: String,
    data: serde_json::Value,
}

#[derive(Deserialize)]
struct Wire {
    id: String,
    seq: u64,
    #[serde(rename = "type")]
    kind: String,
    pid: String,
    occurred_at: String,
    #[serde(default)]
    data: serde_json::Value,
}

impl Event {
    /// Reads a message body.
    pub fn parse(body: &[u8]) -> Result<Self, Poison> {
        let wire: Wire = serde_json::from_slice(body).map_err(|e| {
            Poison(format!(
                "the body is not a population event: {} at line {} column {}",
                classify(&e),
                e.line(),
                e.column()
            ))
        })?;
        if wire.id.is_empty() || wire.id.len() > 128 {
            return Err(Poison("id: must be 1–128 characters".into()));
        }
        let pid = wire.pid.parse().map_err(|e| Poison(format!("pid: {e}")))?;
        Ok(Self {
            id: wire.id,
            seq: wire.seq,
            kind: wire.kind,
            pid,
            occurred_at: wire.occurred_at,
            data: wire.data,
        })
    }

    /// The date in `data.<field>`.
    pub fn date(&self, field: &str) -> Result<Date, Poison> {
        self.text(field)?
            .parse()
            .map_err(|e| Poison(format!("data.{field}: {e}")))
    }

    /// The text in `data.<field>`.
    pub fn text(&self, field: &str) -> Result<&str, Poison> {
        self.data
            .get(field)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| Poison(format!("data.{field}: missing or not a string")))
    }
}

/// What kind of JSON error, without echoing the input.
fn classify(e: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io => "unreadable",
        Category::Syntax => "not JSON",
        Category::Data => "a field is missing or of the wrong type",
        Category::Eof => "cut short",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_gateway_body_and_names_what_is_wrong() {
        let body = br#"{"id":"e1","seq":4,"type":"citizen.died","pid":"001085000123",
            "occurred_at":"2026-11-23T02:41:07Z","data":{"date_of_death":"2026-11-20"}}"#;
        let e = Event::parse(body).unwrap();
        assert_eq!((e.seq, e.kind.as_str()), (4, "citizen.died"));
        assert_eq!(e.date("date_of_death").unwrap().to_string(), "2026-11-20");
        assert!(e.date("missing").unwrap_err().0.contains("data.missing"));
        let bad = Event::parse(b"not json").unwrap_err();
        assert!(bad.0.contains("not JSON"), "{bad}");
        let bad_pid = br#"{"id":"e1","seq":4,"type":"citizen.died","pid":"12",
            "occurred_at":"x","data":{}}"#;
        assert!(Event::parse(bad_pid).unwrap_err().0.starts_with("pid:"));
    }
}
