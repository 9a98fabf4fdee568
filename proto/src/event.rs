//! A population event on the wire: how the gateway publishes a committed
//! change and how a consumer reads it. Encoded and decoded here only.
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
//! attributes, so a consumer reading only the body has everything. A body
//! that does not read as an event can never be processed: it is [`Poison`].
//!
//! ```text
//! header lienthong_signature = hex(Ed25519(gateway key,
//!                              "lienthong event v1\0" ‖ body bytes as sent))
//! ```
//!
//! The body carries every attribute (id, seq, type, pid, occurred_at, data),
//! so the signature covers the whole envelope; a consumer believes an event
//! only if it verifies with the gateway's public key
//! ([`verify_signature`]), which `lienthong certs` writes beside the CA.

use serde::Deserialize;

use crate::{Date, Pid};

/// The exchange events are published to.
pub const EXCHANGE: &str = "lienthong.events";

/// The CloudEvents `source` of every event.
pub const EVENT_SOURCE: &str = "urn:lienthong:registry";

/// The AMQP header carrying the gateway's signature of the body.
pub const SIGNATURE_HEADER: &str = "lienthong_signature";

/// What the gateway's signature covers before the body: a label that keeps
/// an event's signature from standing for anything else the key signs.
pub const SIGNING_CONTEXT: &[u8] = b"lienthong event v1\0";

/// Checks that `signature` (hex, as in [`SIGNATURE_HEADER`]) is the
/// gateway's, whose public key is `public_key`, over `body`.
pub fn verify_signature(
    public_key: &[u8; 32],
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), Poison> {
    let Some(signature) = signature else {
        return Err(Poison(format!(
            "{SIGNATURE_HEADER}: missing; the gateway signs every event"
        )));
    };
    let bytes = (signature.len() == 128 && signature.is_ascii())
        .then(|| {
            (0..64)
                .map(|i| u8::from_str_radix(&signature[2 * i..2 * i + 2], 16).ok())
                .collect::<Option<Vec<u8>>>()
        })
        .flatten()
        .ok_or_else(|| Poison(format!("{SIGNATURE_HEADER}: not 128 hex digits")))?;
    let mut signed = SIGNING_CONTEXT.to_vec();
    signed.extend_from_slice(body);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(&signed, &bytes)
        .map_err(|_| {
            Poison(format!(
                "{SIGNATURE_HEADER}: does not verify with the gateway's key (forged or altered)"
            ))
        })
}

/// The event types, which are also their routing keys.
pub mod kind {
    /// A birth was registered; the event's Pid is the child's.
    pub const BORN: &str = "citizen.born";
    /// A death was recorded.
    pub const DIED: &str = "citizen.died";
    /// A permanent, temporary or current residence changed.
    pub const RESIDENCE_CHANGED: &str = "citizen.residence_changed";
    /// The full name changed.
    pub const NAME_CHANGED: &str = "citizen.name_changed";
    /// A marriage was recorded; the event's Pid is the first spouse's.
    pub const MARRIED: &str = "citizen.married";
    /// An identity card was issued.
    pub const CARD_ISSUED: &str = "citizen.card_issued";

    /// Every type.
    pub const ALL: &[&str] = &[
        BORN,
        DIED,
        RESIDENCE_CHANGED,
        NAME_CHANGED,
        MARRIED,
        CARD_ISSUED,
    ];
}

/// An event ready to publish: what goes in each AMQP property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMessage {
    /// The registry's gap-free sequence number.
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
    /// The message of event `id`, number `seq`, of type `kind` about `pid`,
    /// committed at `occurred_at` (RFC 3339); `data` is the event's data
    /// as JSON text, put into the body as it is.
    pub fn encode(seq: u64, id: &str, kind: &str, pid: Pid, occurred_at: &str, data: &str) -> Self {
        let pid = pid.to_string();
        let json = |s: &str| serde_json::Value::from(s).to_string();
        let body = format!(
            r#"{{"id":{},"seq":{seq},"type":{},"pid":"{pid}","occurred_at":{},"data":{data}}}"#,
            json(id),
            json(kind),
            json(occurred_at),
        );
        let timestamp = time::OffsetDateTime::parse(
            occurred_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map_or(0, |t| t.unix_timestamp().max(0) as u64);
        Self {
            seq,
            routing_key: kind.to_owned(),
            message_id: id.to_owned(),
            timestamp,
            headers: vec![
                ("cloudEvents_specversion", "1.0".to_owned()),
                ("cloudEvents_id", id.to_owned()),
                ("cloudEvents_type", kind.to_owned()),
                ("cloudEvents_source", EVENT_SOURCE.to_owned()),
                ("cloudEvents_time", occurred_at.to_owned()),
                ("cloudEvents_subject", pid),
            ],
            body: body.into_bytes(),
        }
    }
}

/// Why a message can never be processed. The text names the part of the
/// message at fault, never a person's data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Poison(pub String);

/// One population event, as read from a message body.
#[derive(Debug, Clone)]
pub struct Event {
    /// Event id (the AMQP `message_id`): duplicates share it.
    pub id: String,
    /// The registry's gap-free sequence number.
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
        if !kind::ALL.contains(&wire.kind.as_str()) {
            return Err(Poison(format!(
                "type: not an event type of the contract ({})",
                kind::ALL.join(", ")
            )));
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

    fn died() -> EventMessage {
        EventMessage::encode(
            42,
            "0193a6a0-0000-7000-8000-000000000001",
            kind::DIED,
            Pid::from_u64(1_085_000_123).unwrap(),
            "2026-11-23T02:41:07.123456Z",
            r#"{"date_of_death":"2026-11-20","widowed_spouse":null}"#,
        )
    }

    #[test]
    fn body_and_headers_carry_every_attribute() {
        let m = died();
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

    #[test]
    fn what_is_encoded_decodes() {
        let m = died();
        let e = Event::parse(&m.body).unwrap();
        assert_eq!(
            (e.seq, e.kind.as_str(), e.id.as_str()),
            (42, kind::DIED, m.message_id.as_str())
        );
        assert_eq!(e.pid, Pid::from_u64(1_085_000_123).unwrap());
        assert_eq!(e.date("date_of_death").unwrap().to_string(), "2026-11-20");
    }

    #[test]
    fn only_the_gateways_signature_over_the_body_as_sent_verifies() {
        use ring::signature::{Ed25519KeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pair = |_| {
            Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref())
                .unwrap()
        };
        let (gateway, other) = (pair(0), pair(1));
        let public: [u8; 32] = gateway.public_key().as_ref().try_into().unwrap();
        let body = died().body;
        let sign = |key: &Ed25519KeyPair, body: &[u8]| {
            let mut signed = SIGNING_CONTEXT.to_vec();
            signed.extend_from_slice(body);
            key.sign(&signed)
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        assert_eq!(
            verify_signature(&public, &body, Some(&sign(&gateway, &body))),
            Ok(())
        );
        let mut altered = body.clone();
        altered[10] ^= 1;
        for (what, body, signature) in [
            ("another key", body.clone(), Some(sign(&other, &body))),
            ("an altered body", altered, Some(sign(&gateway, &body))),
            ("no signature", body.clone(), None),
            ("not hex", body.clone(), Some("zz".repeat(64))),
        ] {
            assert!(
                verify_signature(&public, &body, signature.as_deref()).is_err(),
                "{what}"
            );
        }
    }

    #[test]
    fn reads_a_body_and_names_what_is_wrong() {
        let body = br#"{"id":"e1","seq":4,"type":"citizen.died","pid":"001085000123",
            "occurred_at":"2026-11-23T02:41:07Z","data":{"date_of_death":"2026-11-20"}}"#;
        let e = Event::parse(body).unwrap();
        assert_eq!((e.seq, e.kind.as_str()), (4, "citizen.died"));
        assert!(e.date("missing").unwrap_err().0.contains("data.missing"));
        let bad = Event::parse(b"not json").unwrap_err();
        assert!(bad.0.contains("not JSON"), "{bad}");
        let bad_pid = br#"{"id":"e1","seq":4,"type":"citizen.died","pid":"12",
            "occurred_at":"x","data":{}}"#;
        assert!(Event::parse(bad_pid).unwrap_err().0.starts_with("pid:"));
        let unknown = br#"{"id":"e1","seq":4,"type":"citizen.moved_to_mars","pid":"001085000123",
            "occurred_at":"x","data":{}}"#;
        assert!(Event::parse(unknown).unwrap_err().0.starts_with("type:"));
    }
}
