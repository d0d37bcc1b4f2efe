//! Timestamps as the seed stores and sends them: RFC 3339 text in UTC. A fixed width
//! (microseconds, `Z`) keeps text order equal to time order, so the database can sort on it.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, UtcOffset};

const FIXED: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Formats `t` as fixed-width RFC 3339 UTC, e.g. `2026-11-23T10:00:00.000000Z`.
pub fn format(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(FIXED)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parses an RFC 3339 timestamp or a plain `YYYY-MM-DD` date (taken as the end of that UTC day,
/// matching the seed, where a key "valid until 2027-01-01" still works on that day).
pub fn parse_until(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let date = Date::parse(s, format_description!("[year]-[month]-[day]")).ok()?;
    let next = date.next_day()?;
    Some(next.midnight().assume_utc() - time::Duration::nanoseconds(1))
}

pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn fixed_width_sorts_like_time() {
        let a = format(datetime!(2026-01-02 03:04:05 UTC));
        let b = format(datetime!(2026-01-02 03:04:05.5 UTC));
        assert_eq!(a, "2026-01-02T03:04:05.000000Z");
        assert!(a < b);
    }

    #[test]
    fn plain_date_lasts_the_whole_day() {
        let until = parse_until("2027-01-01").unwrap();
        assert!(until > datetime!(2027-01-01 23:59:59 UTC));
        assert!(until < datetime!(2027-01-02 00:00:00 UTC));
        assert!(parse_until("yesterday").is_none());
    }
}
