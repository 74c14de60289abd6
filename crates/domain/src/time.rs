//! Instants are UTC microseconds since the Unix epoch in storage; wall-clock
//! rules (opening hours, dates of birth) use the clinic's IANA zone through jiff.

use jiff::Timestamp;

/// Microseconds since the Unix epoch, UTC. The storage form of every instant.
pub type Micros = i64;

fn system_micros() -> Micros {
    Timestamp::now().as_microsecond()
}

/// Where every "now" comes from. A server runs on the system's clock; a test
/// or a loader of past records runs on one that starts where it says and
/// may be moved, so that nothing depends on the day or the hour it runs at.
/// Clones share one clock: moving it moves it for the store, the use cases
/// and the test that hold it.
#[derive(Clone, Default)]
pub struct Clock(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock(offset {} us)", self.offset())
    }
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that reads `start` now and runs on from there at the system's pace.
    pub fn starting_at(start: Micros) -> Clock {
        let c = Clock::default();
        c.set(start);
        c
    }

    pub fn now(&self) -> Micros {
        system_micros() + self.offset()
    }

    /// How far this clock is ahead of the system's (negative: behind).
    pub fn offset(&self) -> Micros {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn set_offset(&self, offset: Micros) {
        self.0.store(offset, std::sync::atomic::Ordering::SeqCst)
    }

    /// Moves the clock so that it reads `t` now.
    pub fn set(&self, t: Micros) {
        self.set_offset(t - system_micros())
    }

    /// Moves the clock on (or back, with a negative `by`).
    pub fn advance(&self, by: Micros) {
        self.0.fetch_add(by, std::sync::atomic::Ordering::SeqCst);
    }
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
