//! Timestamps as the registry writes them: RFC 3339 in UTC with microseconds
//! and a fixed width, so that text order is time order.
//!
//! ```text
//! 2026-11-23T09:41:07.123456Z
//! ```

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The current time as a registry timestamp.
pub(crate) fn now() -> String {
    timestamp(OffsetDateTime::now_utc())
}

/// `t` as a registry timestamp.
pub(crate) fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// The timestamp `ago` before now.
pub(crate) fn before_now(ago: Duration) -> String {
    timestamp(OffsetDateTime::now_utc() - ago)
}

/// How long ago `stamp` (any RFC 3339 time) was; zero if in the future,
/// `None` if it does not parse.
pub(crate) fn age(stamp: &str) -> Option<Duration> {
    let then = OffsetDateTime::parse(stamp, &Rfc3339).ok()?;
    Some(
        (OffsetDateTime::now_utc() - then)
            .try_into()
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_and_ordered() {
        let a = timestamp(OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap());
        assert_eq!(a, "2023-11-14T22:13:20.000000Z");
        let b = timestamp(
            OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_000_001_000).unwrap(),
        );
        assert!(a < b && a.len() == b.len());
        assert!(age(&a).unwrap() > Duration::from_secs(86_400));
        assert_eq!(age(&now()).map(|d| d < Duration::from_secs(5)), Some(true));
        assert_eq!(age("yesterday"), None);
    }
}
