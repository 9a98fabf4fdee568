//! One outbox row as a message on `lienthong.events`.
//!
//! ```text
//! exchange     lienthong.events (topic, durable)
//! routing key  citizen.born | citizen.died | citizen.residence_changed |
//!              citizen.name_changed | citizen.married | citizen.card_issued
//! properties   delivery_mode 2 (persistent), message_id = id,
//!              content_type application/json, timestamp, app_id lienthong
//! headers      cloudEvents_specversion "1.0"   cloudEvents_id = id
//!              cloudEvents_type = type         cloudEvents_source
//!              cloudEvents_time = occurred_at  cloudEvents_subject = pid
//! body         {"id":"0193…","seq":42,"type":"citizen.died",
//!               "pid":"001085000123","occurred_at":"2026-11-23T02:41:07.123456Z",
//!               "data":{"date_of_death":"2026-11-20","widowed_spouse":null}}
//! ```
//!
//! Headers follow the CloudEvents AMQP binding (binary content mode, with
//! the binding's preferred `cloudEvents_` prefix); the body repeats the
//! attributes so that a consumer reading only the body has everything.

use crate::registry::OutboxRow;

/// The exchange events are published to.
pub const EXCHANGE: &str = "lienthong.events";

/// The CloudEvents `source` of every event.
pub const EVENT_SOURCE: &str = "urn:lienthong:registry";

/// An event ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMessage {
    /// The outbox sequence number.
    pub seq: u64,
    /// Routing key: the event type.
    pub routing_key: String,
    /// `message_id`: the event id.
    pub message_id: String,
    /// AMQP `timestamp`: seconds since the Unix epoch.
    pub timestamp: u64,
    /// CloudEvents application properties, in order.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: Vec<u8>,
}

impl EventMessage {
    /// The message for `row`.
    pub fn from_row(row: &OutboxRow) -> Self {
        let e = &row.event;
        let pid = e.pid.to_string();
        let json = |s: &str| serde_json::Value::from(s).to_string();
        // `data` is stored as JSON text: it goes into the body as it is.
        let body = format!(
            r#"{{"id":{},"seq":{},"type":{},"pid":"{pid}","occurred_at":{},"data":{}}}"#,
            json(&e.id),
            row.seq,
            json(&e.kind),
            json(&e.occurred_at),
            e.data,
        );
        let timestamp = time::OffsetDateTime::parse(
            &e.occurred_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map_or(0, |t| t.unix_timestamp().max(0) as u64);
        Self {
            seq: row.seq,
            routing_key: e.kind.clone(),
            message_id: e.id.clone(),
            timestamp,
            headers: vec![
                ("cloudEvents_specversion", "1.0".to_owned()),
                ("cloudEvents_id", e.id.clone()),
                ("cloudEvents_type", e.kind.clone()),
                ("cloudEvents_source", EVENT_SOURCE.to_owned()),
                ("cloudEvents_time", e.occurred_at.clone()),
                ("cloudEvents_subject", pid),
            ],
            body: body.into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::OutboxEvent;
    use lienthong_proto::Pid;

    #[test]
    fn body_and_headers_carry_every_attribute() {
        let row = OutboxRow {
            seq: 42,
            event: OutboxEvent {
                id: "0193a6a0-0000-7000-8000-000000000001".into(),
                kind: "citizen.died".into(),
                pid: Pid::from_u64(1_085_000_123).unwrap(),
                occurred_at: "2026-11-23T02:41:07.123456Z".into(),
                data: r#"{"date_of_death":"2026-11-20","widowed_spouse":null}"#.into(),
            },
        };
        let m = EventMessage::from_row(&row);
        assert_eq!(m.routing_key, "citizen.died");
        assert_eq!(m.timestamp, 1_795_401_667);
        let body: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "id": "0193a6a0-0000-7000-8000-000000000001",
                "seq": 42,
                "type": "citizen.died",
                "pid": "001085000123",
                "occurred_at": "2026-11-23T02:41:07.123456Z",
                "data": {"date_of_death": "2026-11-20", "widowed_spouse": null},
            })
        );
        let header = |k| {
            m.headers
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("cloudEvents_subject"), Some("001085000123"));
        assert_eq!(header("cloudEvents_id"), Some(m.message_id.as_str()));
        assert_eq!(header("cloudEvents_specversion"), Some("1.0"));
        assert_eq!(m.headers.len(), 6);
    }
}
