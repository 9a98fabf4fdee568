//! Properties of the contract's parsers, over arbitrary input: none panics,
//! every rejection is its typed error, and what is accepted reads back as
//! it was.

use proptest::prelude::*;

use crate::event::{Event, EventMessage, Poison, kind, verify_signature};
use crate::name::{self, NameMatch};
use crate::{Date, Pid};

proptest! {
    #[test]
    fn a_pid_is_twelve_digits_of_a_known_province_or_a_typed_error(text in ".{0,20}|[0-9]{12}") {
        match text.parse::<Pid>() {
            Ok(pid) => {
                prop_assert_eq!(pid.to_string(), text.clone());
                prop_assert_eq!(Pid::from_u64(pid.as_u64()).unwrap(), pid);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn a_date_reads_back_as_written_or_is_a_typed_error(text in ".{0,14}|[0-9]{4}-[0-9]{2}-[0-9]{2}") {
        if let Ok(date) = text.parse::<Date>() {
            prop_assert_eq!(date.to_string(), text.clone());
            prop_assert_eq!(Date::from_days(date.to_days()).unwrap(), date);
        }
    }

    #[test]
    fn names_normalize_once_and_match_themselves(text in "\\PC{0,40}") {
        let once = name::normalize(&text);
        prop_assert_eq!(name::normalize(&once), once.clone());
        let _ = name::fold_diacritics(&text);
        let _ = name::registered_form(&text);
        if !once.is_empty() {
            prop_assert!(name::compare(&text, &text, NameMatch::Exact).matched);
        }
    }

    #[test]
    fn any_body_is_an_event_or_poison_never_a_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _: Result<Event, Poison> = Event::parse(&body);
        let key = [7u8; 32];
        prop_assert!(verify_signature(&key, &body, Some("00")).is_err());
        prop_assert!(verify_signature(&key, &body, None).is_err());
    }

    #[test]
    fn an_encoded_event_decodes_to_what_was_encoded(
        id in "[a-zA-Z0-9-]{1,40}",
        seq in any::<u64>(),
        at in 0usize..kind::ALL.len(),
        text in "\\PC{0,30}",
    ) {
        let pid = Pid::from_u64(1_085_000_123).unwrap();
        let data = serde_json::json!({ "full_name": text }).to_string();
        let m = EventMessage::encode(seq, &id, kind::ALL[at], pid, "2026-11-24T00:00:00Z", &data);
        let e = Event::parse(&m.body).unwrap();
        prop_assert_eq!((e.id.as_str(), e.seq, e.kind.as_str(), e.pid), (id.as_str(), seq, kind::ALL[at], pid));
        prop_assert_eq!(e.text("full_name").unwrap(), text.as_str());
    }
}
