//! Instants are UTC microseconds since the Unix epoch in storage; wall-clock
//! rules (opening hours, dates of birth) use the clinic's IANA zone through jiff.

use jiff::Timestamp;

/// Microseconds since the Unix epoch, UTC. The storage form of every instant.
pub type Micros = i64;

pub fn now_micros() -> Micros {
    Timestamp::now().as_microsecond()
}

pub fn to_timestamp(m: Micros) -> Timestamp {
    Timestamp::from_microsecond(m).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Formats an instant in a zone for people, e.g. "2026-11-23 07:15 MST".
pub fn format_in_zone(m: Micros, zone: &str) -> String {
    let ts = to_timestamp(m);
    match jiff::tz::TimeZone::get(zone) {
        Ok(tz) => ts.to_zoned(tz).strftime("%Y-%m-%d %H:%M %Z").to_string(),
        Err(_) => ts.strftime("%Y-%m-%d %H:%M UTC").to_string(),
    }
}
