//! RFC 3339 UTC timestamps with millisecond precision, the one format every stored time uses.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Formats `at` as RFC 3339 in UTC, truncated to milliseconds (e.g. `2026-11-23T18:08:47.123Z`).
pub fn format_rfc3339(at: OffsetDateTime) -> String {
    let utc = at.to_offset(UtcOffset::UTC);
    let millis = utc.millisecond();
    let truncated = utc.replace_millisecond(millis).unwrap_or(utc);
    truncated
        .format(&Rfc3339)
        .expect("a UTC time between years 0 and 9999 always formats as RFC 3339")
}

/// `at` as milliseconds since the Unix epoch (the leases stored as numbers use it).
pub fn epoch_ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Parses an RFC 3339 timestamp (any offset) into a time.
pub fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_utc_with_milliseconds() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_795_457_327_123_456_789).unwrap();
        assert_eq!(format_rfc3339(at), "2026-11-23T18:08:47.123Z");
    }

    #[test]
    fn parses_what_it_formats() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_795_457_327_123_000_000).unwrap();
        assert_eq!(parse_rfc3339(&format_rfc3339(at)), Some(at));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn epoch_ms_counts_whole_milliseconds() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_795_457_327_123_456_789).unwrap();
        assert_eq!(epoch_ms(at), 1_795_457_327_123);
    }
}
