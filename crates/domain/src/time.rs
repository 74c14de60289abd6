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

/// How a clinic's staff read a time of day: in the clinic's zone, on the
/// clock its country uses (the US writes "2:05 PM", most of the world
/// "14:05"). Every time a page shows goes through one of these, so the
/// audit log, the board and an estimate agree with the wall clock.
#[derive(Debug, Clone)]
pub struct WallClock {
    zone: jiff::tz::TimeZone,
    twelve_hour: bool,
}

/// Countries whose everyday clock is the 12-hour one (CLDR's preferred hour
/// cycle "h"), among those a clinic is likely to be in.
const TWELVE_HOUR: [&str; 10] = ["US", "CA", "AU", "NZ", "PH", "IN", "PK", "EG", "SA", "CO"];

impl WallClock {
    /// The clock of a clinic in `zone` (IANA name) and `country` (ISO 3166
    /// alpha-2). An unknown zone reads as UTC and says so in its times.
    pub fn new(zone: &str, country: &str) -> WallClock {
        WallClock {
            zone: jiff::tz::TimeZone::get(zone).unwrap_or(jiff::tz::TimeZone::UTC),
            twelve_hour: TWELVE_HOUR.contains(&country.trim().to_ascii_uppercase().as_str()),
        }
    }

    pub fn zone(&self) -> &jiff::tz::TimeZone {
        &self.zone
    }

    pub fn zoned(&self, m: Micros) -> jiff::Zoned {
        to_timestamp(m).to_zoned(self.zone.clone())
    }

    /// The clinic's date at an instant.
    pub fn date(&self, m: Micros) -> jiff::civil::Date {
        self.zoned(m).date()
    }

    /// "2:05 PM" or "14:05".
    pub fn time(&self, m: Micros) -> String {
        let z = self.zoned(m);
        if self.twelve_hour {
            z.strftime("%-I:%M %p").to_string()
        } else {
            z.strftime("%H:%M").to_string()
        }
    }

    /// A time of day given in minutes after midnight: "7 AM", "4:30 PM" or
    /// "07:00", "16:30".
    pub fn time_of_day(&self, minutes: i32) -> String {
        let (h, m) = (
            minutes.div_euclid(60).rem_euclid(24),
            minutes.rem_euclid(60),
        );
        if !self.twelve_hour {
            return format!("{h:02}:{m:02}");
        }
        let half = if h < 12 { "AM" } else { "PM" };
        let h12 = if h % 12 == 0 { 12 } else { h % 12 };
        if m == 0 {
            format!("{h12} {half}")
        } else {
            format!("{h12}:{m:02} {half}")
        }
    }

    /// "2026-12-07 2:05:30 PM MST": a record's time to the second (the audit
    /// log), with its zone.
    pub fn to_the_second(&self, m: Micros) -> String {
        let z = self.zoned(m);
        let t = if self.twelve_hour {
            z.strftime("%-I:%M:%S %p")
        } else {
            z.strftime("%H:%M:%S")
        };
        format!("{} {t} {}", z.strftime("%Y-%m-%d"), z.strftime("%Z"))
    }

    /// "Mon Dec 7, 2:05 PM": a time this week or in a short list.
    pub fn day_time(&self, m: Micros) -> String {
        format!("{}, {}", self.zoned(m).strftime("%a %b %-d"), self.time(m))
    }

    /// "2026-12-07 2:05 PM MST": a time in a record, with its zone.
    pub fn stamp(&self, m: Micros) -> String {
        let z = self.zoned(m);
        format!(
            "{} {} {}",
            z.strftime("%Y-%m-%d"),
            self.time(m),
            z.strftime("%Z")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-07 21:05:30 UTC.
    const T: Micros = 1_796_677_530_000_000;

    #[test]
    fn a_us_clinic_reads_twelve_hours_in_its_own_zone() {
        let c = WallClock::new("America/Denver", "us");
        assert_eq!(c.time(T), "2:05 PM");
        assert_eq!(c.day_time(T), "Mon Dec 7, 2:05 PM");
        assert_eq!(c.stamp(T), "2026-12-07 2:05 PM MST");
        assert_eq!(c.to_the_second(T), "2026-12-07 2:05:30 PM MST");
        assert_eq!(c.date(T).to_string(), "2026-12-07");
        assert_eq!(c.time_of_day(7 * 60), "7 AM");
        assert_eq!(c.time_of_day(16 * 60 + 30), "4:30 PM");
        assert_eq!(c.time_of_day(0), "12 AM");
        assert_eq!(c.time_of_day(12 * 60 + 5), "12:05 PM");
    }

    #[test]
    fn elsewhere_the_clock_has_twenty_four_hours_and_the_date_is_local() {
        let c = WallClock::new("Europe/Berlin", "DE");
        assert_eq!(c.time(T), "22:05");
        assert_eq!(c.time_of_day(7 * 60), "07:00");
        assert_eq!(c.to_the_second(T), "2026-12-07 22:05:30 CET");
        let c = WallClock::new("Pacific/Auckland", "NZ");
        // Already Tuesday morning in Auckland.
        assert_eq!(c.day_time(T), "Tue Dec 8, 10:05 AM");
        assert_eq!(c.date(T).to_string(), "2026-12-08");
    }

    #[test]
    fn an_unknown_zone_reads_as_utc_and_says_so() {
        let c = WallClock::new("Mars/Olympus", "US");
        assert_eq!(c.stamp(T), "2026-12-07 9:05 PM UTC");
    }
}
