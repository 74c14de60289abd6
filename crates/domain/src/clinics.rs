//! Clinics: where care happens, in which time zone, and when the doors are open.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::FieldError;

/// Opening hours on one weekday, as minutes after local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayHours {
    /// 1 = Monday ... 7 = Sunday (ISO 8601).
    pub weekday: i16,
    pub opens_min: i32,
    pub closes_min: i32,
}

pub const WEEKDAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl DayHours {
    pub fn new(weekday: i16, opens: &str, closes: &str) -> Result<Self, FieldError> {
        let field = format!(
            "hours_{}",
            WEEKDAY_NAMES
                .get((weekday - 1) as usize)
                .unwrap_or(&"?")
                .to_lowercase()
        );
        if !(1..=7).contains(&weekday) {
            return Err(FieldError::new(
                field,
                "weekday must be 1 (Monday) to 7 (Sunday)",
            ));
        }
        let o = parse_hhmm(opens)
            .ok_or_else(|| FieldError::new(&field, "opening time must be HH:MM"))?;
        let c = parse_hhmm(closes)
            .ok_or_else(|| FieldError::new(&field, "closing time must be HH:MM"))?;
        if c <= o {
            return Err(FieldError::new(
                field,
                "closing time must be after opening time",
            ));
        }
        Ok(DayHours {
            weekday,
            opens_min: o,
            closes_min: c,
        })
    }

    pub fn opens(&self) -> String {
        fmt_hhmm(self.opens_min)
    }
    pub fn closes(&self) -> String {
        fmt_hhmm(self.closes_min)
    }
    pub fn day_name(&self) -> &'static str {
        WEEKDAY_NAMES[(self.weekday.clamp(1, 7) - 1) as usize]
    }
}

pub fn parse_hhmm(s: &str) -> Option<i32> {
    let s = s.trim();
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: i32 = h.parse().ok()?;
    let m: i32 = m.parse().ok()?;
    ((0..=24).contains(&h) && (0..60).contains(&m) && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

pub fn fmt_hhmm(min: i32) -> String {
    format!("{:02}:{:02}", min / 60, min % 60)
}

/// Checks an IANA zone name such as "America/Phoenix".
pub fn check_time_zone(s: &str) -> Result<TimeZone, FieldError> {
    if s.is_empty() || s.len() > 64 {
        return Err(FieldError::new(
            "time_zone",
            "is required, e.g. America/Phoenix",
        ));
    }
    TimeZone::get(s).map_err(|_| {
        FieldError::new(
            "time_zone",
            "is not a known IANA time zone, e.g. America/Phoenix",
        )
    })
}

/// Hours grouped for display: "Mon–Thu 07:00–16:30 · Fri 08:00–12:00".
pub fn summarize_hours(hours: &[DayHours]) -> String {
    summarize_hours_with(hours, fmt_hhmm)
}

/// [`summarize_hours`] with times of day written by `clock` (minutes after
/// midnight), e.g. on a clinic's own wall clock.
pub fn summarize_hours_with(hours: &[DayHours], clock: impl Fn(i32) -> String) -> String {
    let mut sorted = hours.to_vec();
    sorted.sort_by_key(|h| h.weekday);
    let mut groups: Vec<(DayHours, DayHours)> = Vec::new();
    for h in sorted {
        match groups.last_mut() {
            Some((_, last))
                if last.weekday + 1 == h.weekday
                    && last.opens_min == h.opens_min
                    && last.closes_min == h.closes_min =>
            {
                *last = h
            }
            _ => groups.push((h, h)),
        }
    }
    if groups.is_empty() {
        return "No opening hours set".to_string();
    }
    groups
        .iter()
        .map(|(a, b)| {
            let days = if a.weekday == b.weekday {
                a.day_name().to_string()
            } else {
                format!("{}–{}", a.day_name(), b.day_name())
            };
            format!("{days} {}–{}", clock(a.opens_min), clock(a.closes_min))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Whether the clinic is open at an instant, in its own zone (DST-correct),
/// given its weekly hours and dated closures.
pub fn is_open_at(at: Timestamp, tz: &TimeZone, hours: &[DayHours], closures: &[Date]) -> bool {
    let local = at.to_zoned(tz.clone());
    let date = local.date();
    if closures.contains(&date) {
        return false;
    }
    let wd = iso_weekday(date.weekday());
    let t: Time = local.time();
    let minute = i32::from(t.hour()) * 60 + i32::from(t.minute());
    hours
        .iter()
        .any(|h| h.weekday == wd && h.opens_min <= minute && minute < h.closes_min)
}

pub fn iso_weekday(w: Weekday) -> i16 {
    i16::from(w.to_monday_one_offset())
}

/// The local calendar date in a zone at `now` (microseconds): clinic-facing "today".
pub fn today_in(tz: &TimeZone, now: i64) -> Date {
    crate::time::to_timestamp(now).to_zoned(tz.clone()).date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_links_are_https_rooms_with_one_placeholder() {
        let ok = |t: &str| video_link(&Some(t.into()));
        assert_eq!(ok("  ").unwrap(), None);
        assert_eq!(video_link(&None).unwrap(), None);
        assert_eq!(
            ok(" https://meet.example.com/glendale/{visit} ").unwrap(),
            Some("https://meet.example.com/glendale/{visit}".into())
        );
        assert!(ok("https://doxy.me/drsmith").unwrap().is_some());
        for bad in [
            "http://meet.example.com/{visit}",
            "meet.example.com/{visit}",
            "https://meet.example.com/{patient}",
            "https://meet.example.com/a b",
            "https:///room",
            "https://localhost/room",
            "javascript:alert(1)",
        ] {
            let e = ok(bad).unwrap_err();
            assert_eq!(e.field, "video_link", "{bad}");
        }
        let s = ClinicSettings {
            video_link: Some("https://meet.example.com/r/{visit}?x={visit}".into()),
            ..settings()
        };
        assert_eq!(
            s.video_link_for("ab12").as_deref(),
            Some("https://meet.example.com/r/ab12?x=ab12")
        );
        assert_eq!(settings().video_link_for("ab12"), None);
    }

    fn settings() -> ClinicSettings {
        ClinicSettings {
            name: "Stillwater Glendale".into(),
            address_line1: "1 Main St".into(),
            address_line2: None,
            city: "Glendale".into(),
            region: "AZ".into(),
            postal_code: "85308".into(),
            country: "US".into(),
            phone: "(602) 555-0142".into(),
            email: None,
            time_zone: "America/Phoenix".into(),
            hours: glendale(),
            video_link: None,
        }
    }

    fn glendale() -> Vec<DayHours> {
        let mut v: Vec<_> = (1..=4)
            .map(|d| DayHours::new(d, "07:00", "16:30").unwrap())
            .collect();
        v.push(DayHours::new(5, "08:00", "12:00").unwrap());
        v
    }

    #[test]
    fn summary_groups_days() {
        assert_eq!(
            summarize_hours(&glendale()),
            "Mon–Thu 07:00–16:30 · Fri 08:00–12:00"
        );
    }

    #[test]
    fn hours_are_checked() {
        assert!(DayHours::new(1, "16:30", "07:00").is_err());
        assert!(DayHours::new(8, "07:00", "08:00").is_err());
        assert!(DayHours::new(1, "7am", "08:00").is_err());
        assert_eq!(parse_hhmm("7:05"), Some(425));
        assert_eq!(parse_hhmm("24:01"), None);
    }

    #[test]
    fn open_in_local_time_across_dst() {
        let h = glendale();
        // Phoenix has no DST: 14:00 UTC is 07:00 local all year.
        let phx = check_time_zone("America/Phoenix").unwrap();
        let winter: Timestamp = "2026-01-05T14:00:00Z".parse().unwrap(); // Monday
        let summer: Timestamp = "2026-07-06T14:00:00Z".parse().unwrap(); // Monday
        assert!(is_open_at(winter, &phx, &h, &[]));
        assert!(is_open_at(summer, &phx, &h, &[]));
        // Denver observes DST: 14:00 UTC is 07:00 in winter, 08:00 in summer;
        // 13:30 UTC is 06:30 (closed) in winter but 07:30 (open) in summer.
        let den = check_time_zone("America/Denver").unwrap();
        let w: Timestamp = "2026-01-05T13:30:00Z".parse().unwrap();
        let s: Timestamp = "2026-07-06T13:30:00Z".parse().unwrap();
        assert!(!is_open_at(w, &den, &h, &[]));
        assert!(is_open_at(s, &den, &h, &[]));
        // A closure shuts the whole local day.
        assert!(!is_open_at(s, &den, &h, &["2026-07-06".parse().unwrap()]));
        assert!(check_time_zone("Mars/Olympus").is_err());
    }
}

/// Clinic settings as an admin edits them, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinicSettings {
    pub name: String,
    pub address_line1: String,
    pub address_line2: Option<String>,
    pub city: String,
    pub region: String,
    pub postal_code: String,
    pub country: String,
    pub phone: String,
    pub email: Option<String>,
    pub time_zone: String,
    pub hours: Vec<DayHours>,
    /// Where patients join a video visit: an https link, in which `{visit}`
    /// (if present) becomes the visit's own code. `None`: the clinic has no
    /// video room set up.
    pub video_link: Option<String>,
}

/// Raw clinic settings from a form: hours as "HH:MM" text per weekday, blank = closed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClinicSettingsInput {
    pub name: Option<String>,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub time_zone: Option<String>,
    pub video_link: Option<String>,
    /// (opens, closes) per weekday, Monday first.
    #[serde(skip)]
    pub hours: [(Option<String>, Option<String>); 7],
}

impl ClinicSettings {
    /// The clinic's wall clock: its zone, its country's way of writing time.
    pub fn clock(&self) -> crate::time::WallClock {
        crate::time::WallClock::new(&self.time_zone, &self.country)
    }

    /// The postal address, a line each: street, suite, "City, ST 12345".
    pub fn address_lines(&self) -> Vec<String> {
        let mut out = vec![self.address_line1.clone()];
        out.extend(self.address_line2.clone());
        out.push(format!(
            "{}, {} {}",
            self.city, self.region, self.postal_code
        ));
        out
    }

    /// The link a patient joins video visit `visit` by (`None` when the
    /// clinic has set none). The visit's code in it is its identifier: no
    /// name, nothing about the patient.
    pub fn video_link_for(&self, visit: &str) -> Option<String> {
        self.video_link
            .as_ref()
            .map(|t| t.replace(VISIT_PLACEHOLDER, visit))
    }

    /// The opening hours in a line, on the clinic's clock.
    pub fn hours_summary(&self) -> String {
        let clock = self.clock();
        summarize_hours_with(&self.hours, |m| clock.time_of_day(m))
    }

    pub fn validate(i: &ClinicSettingsInput) -> Result<Self, crate::DomainError> {
        use crate::patients::{email, optional, phone, required};
        let mut e = crate::error::Errors::new();
        let name = e.check(required(&i.name, "name", 120));
        let address_line1 = e.check(required(&i.address_line1, "address_line1", 200));
        let address_line2 = e.check(optional(&i.address_line2, "address_line2", 200));
        let city = e.check(required(&i.city, "city", 100));
        let region = e.check(required(&i.region, "region", 100));
        let postal_code = e.check(required(&i.postal_code, "postal_code", 20));
        let country = e.check(required(&i.country, "country", 2).and_then(|c| {
            if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()) {
                Ok(c.to_uppercase())
            } else {
                Err(FieldError::new(
                    "country",
                    "must be a two-letter country code, e.g. US",
                ))
            }
        }));
        let phone_v = e.check(
            phone(&i.phone, "phone")
                .and_then(|p| p.ok_or_else(|| FieldError::new("phone", "is required"))),
        );
        let email_v = e.check(email(&i.email, "email"));
        let tz = e.check(
            required(&i.time_zone, "time_zone", 64).and_then(|t| check_time_zone(&t).map(|_| t)),
        );
        let video = e.check(video_link(&i.video_link));
        let mut hours = Vec::new();
        for (idx, (o, c)) in i.hours.iter().enumerate() {
            let o = o.as_deref().map(str::trim).unwrap_or("");
            let c = c.as_deref().map(str::trim).unwrap_or("");
            let day = idx as i16 + 1;
            match (o.is_empty(), c.is_empty()) {
                (true, true) => {}
                (false, false) => {
                    if let Some(h) = e.check(DayHours::new(day, o, c)) {
                        hours.push(h)
                    }
                }
                _ => e.add(
                    &format!("hours_{}", WEEKDAY_NAMES[idx].to_lowercase()),
                    "needs both an opening and a closing time, or neither",
                ),
            }
        }
        e.into_result()?;
        match (
            name,
            address_line1,
            address_line2,
            city,
            region,
            postal_code,
            country,
            phone_v,
            email_v,
            tz,
            video,
        ) {
            (
                Some(name),
                Some(address_line1),
                Some(address_line2),
                Some(city),
                Some(region),
                Some(postal_code),
                Some(country),
                Some(phone),
                Some(email),
                Some(time_zone),
                Some(video_link),
            ) => Ok(ClinicSettings {
                name,
                address_line1,
                address_line2,
                city,
                region,
                postal_code,
                country,
                phone,
                email,
                time_zone,
                hours,
                video_link,
            }),
            _ => Err(crate::DomainError::field("name", "is required")),
        }
    }
}

/// What a video link template puts the visit's code in place of.
pub const VISIT_PLACEHOLDER: &str = "{visit}";

/// Checks a video link template from a form: blank is none; otherwise an
/// https address (a meeting room, with `{visit}` where each visit's code
/// goes if the service makes a room per visit).
pub fn video_link(v: &Option<String>) -> Result<Option<String>, FieldError> {
    let Some(t) = v.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let bad = |m: &str| Err(FieldError::new("video_link", m));
    if t.chars().count() > 300 {
        return bad("is at most 300 characters");
    }
    if !t.starts_with("https://") {
        return bad("must be an https:// address, e.g. https://meet.example.com/room/{visit}");
    }
    if t.chars().any(char::is_whitespace) {
        return bad("must not contain spaces");
    }
    let rest = t.replace(VISIT_PLACEHOLDER, "");
    if rest.contains('{') || rest.contains('}') {
        return bad("the only placeholder is {visit}");
    }
    let host = rest["https://".len()..]
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("");
    if host.is_empty() || !host.contains('.') {
        return bad("must name a host, e.g. https://meet.example.com/…");
    }
    Ok(Some(t.to_string()))
}

/// Turns a clinic name into a URL slug: "Stillwater Glendale" -> "stillwater-glendale".
pub fn slugify(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    s.trim_end_matches('-').to_string()
}
