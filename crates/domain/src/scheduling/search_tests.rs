//! Scheduling search tests: worked cases, then property tests that check every
//! offered slot and series with an independent checker.

use std::collections::HashMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use proptest::prelude::*;

use super::*;
use crate::auth::Role;
use crate::clinics::{is_open_at, DayHours};
use crate::ids::{PatientId, ResourceId, UserId};
use crate::time::to_timestamp;

const MIN: i64 = 60_000_000;

fn hours(spec: &[(i16, &str, &str)]) -> Vec<DayHours> {
    spec.iter()
        .map(|(d, o, c)| DayHours::new(*d, o, c).unwrap())
        .collect()
}

fn glendale_hours() -> Vec<DayHours> {
    hours(&[
        (1, "07:00", "16:30"),
        (2, "07:00", "16:30"),
        (3, "07:00", "16:30"),
        (4, "07:00", "16:30"),
        (5, "08:00", "12:00"),
    ])
}

fn chair(name: &str, iv: bool) -> Resource {
    Resource {
        id: ResourceId::new(),
        kind: ResourceKind::Chair,
        name: name.into(),
        caps: Capabilities {
            iv,
            monitored: true,
            private: false,
        },
    }
}

fn room(name: &str) -> Resource {
    Resource {
        id: ResourceId::new(),
        kind: ResourceKind::Room,
        name: name.into(),
        caps: Capabilities::default(),
    }
}

fn person(name: &str, roles: &[Role], h: Vec<DayHours>) -> StaffMember {
    StaffMember {
        id: UserId::new(),
        name: name.into(),
        roles: roles.to_vec(),
        hours: h,
        time_off: vec![],
    }
}

fn ty(code: &str) -> AppointmentType {
    AppointmentType::defaults()
        .into_iter()
        .find(|t| t.code == code)
        .unwrap()
}

fn ts(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_microsecond()
}

fn date(s: &str) -> Date {
    s.parse().unwrap()
}

fn clinic(zone: &str) -> Calendar {
    Calendar {
        tz: TimeZone::get(zone).unwrap(),
        hours: glendale_hours(),
        closures: vec![],
        rules: SchedulingRules::default(),
        resources: vec![
            chair("Chair 1", true),
            chair("Chair 2", true),
            room("Room A"),
        ],
        staff: vec![
            person("Nurse", &[Role::Nurse], glendale_hours()),
            person("Monitor", &[Role::MonitoringClinician], glendale_hours()),
            person("Therapist", &[Role::Therapist], glendale_hours()),
        ],
        occupancy: Occupancy::default(),
        now: ts("2026-03-01T00:00:00Z"),
    }
}

fn book(cal: &mut Calendar, plan: &VisitPlan, patient: PatientId) {
    let claims = plan_claims(plan, patient, &cal.rules, &cal.occupancy).expect("claims");
    for c in &claims {
        cal.occupancy.add(c);
    }
}

#[test]
fn first_infusion_of_a_monday_starts_at_opening_in_local_time() {
    let cal = clinic("America/Phoenix");
    let p = PatientId::new();
    let (slots, _) = cal.find_slots(
        &cal.occupancy,
        &ty("iv_infusion"),
        p,
        date("2026-03-02"),
        date("2026-03-02"),
        &Preferences::default(),
        100,
    );
    // 07:00 MST is 14:00 UTC; a 110-minute visit ends by 16:30 local, so the
    // last start is 14:40 -> 14:30 on a 15-minute grid: 31 starts.
    assert_eq!(slots[0].start, ts("2026-03-02T14:00:00Z"));
    assert_eq!(slots.len(), 31);
    let s = &slots[0];
    assert_eq!(s.phases.len(), 3);
    assert_eq!(s.phases[1].start, ts("2026-03-02T14:20:00Z"));
    assert_eq!(s.phases[2].end, ts("2026-03-02T15:50:00Z"));
    assert!(s.phases[1]
        .staff
        .iter()
        .any(|a| a.role == Role::MonitoringClinician));
}

#[test]
fn opening_follows_dst_in_denver() {
    let cal = clinic("America/Denver");
    let p = PatientId::new();
    let t = ty("follow_up");
    let mut staff = person("Dr", &[Role::Prescriber], glendale_hours());
    staff.id = UserId::new();
    let mut cal = cal;
    cal.staff.push(staff);
    let first = |cal: &Calendar, d: &str| {
        cal.find_slots(
            &cal.occupancy,
            &t,
            p,
            date(d),
            date(d),
            &Preferences::default(),
            1,
        )
        .0[0]
            .start
    };
    // DST starts on 2026-03-08: 07:00 MST = 14:00 UTC, 07:00 MDT = 13:00 UTC.
    assert_eq!(first(&cal, "2026-03-05"), ts("2026-03-05T14:00:00Z"));
    assert_eq!(first(&cal, "2026-03-09"), ts("2026-03-09T13:00:00Z"));
}

#[test]
fn closures_and_weekends_offer_nothing() {
    let mut cal = clinic("America/Phoenix");
    cal.closures.push(date("2026-03-03"));
    let (slots, tally) = cal.find_slots(
        &cal.occupancy,
        &ty("iv_infusion"),
        PatientId::new(),
        date("2026-03-03"),
        date("2026-03-08"),
        &Preferences::default(),
        1000,
    );
    // Tue closed, Wed and Thu open, Fri's 4 hours fit a 110-min visit, weekend closed.
    assert!(slots
        .iter()
        .all(|s| !to_timestamp(s.start).to_string().starts_with("2026-03-03")));
    assert!(tally.0[&Blocker::Closed] >= 3);
}

#[test]
fn a_nurse_attends_no_more_chairs_than_the_ratio() {
    let mut cal = clinic("America/Phoenix");
    cal.rules.nurse_ratio = 1;
    let t = ty("iv_infusion");
    let (a, b) = (PatientId::new(), PatientId::new());
    let d = date("2026-03-02");
    let first = cal
        .find_slots(&cal.occupancy, &t, a, d, d, &Preferences::default(), 1)
        .0[0]
        .clone();
    book(&mut cal, &first, a);
    let day = cal.day(d);
    // Chair 2 is free, but the only nurse is with patient a at 1:1.
    assert_eq!(
        cal.try_at(
            &cal.occupancy,
            &day,
            &t,
            b,
            first.start,
            &Preferences::default()
        ),
        Err(Blocker::StaffBusy(Role::Nurse))
    );
    // At 1:3 the same nurse can take the second chair.
    cal.rules.nurse_ratio = 3;
    let second = cal
        .try_at(
            &cal.occupancy,
            &day,
            &t,
            b,
            first.start,
            &Preferences::default(),
        )
        .unwrap();
    assert_ne!(second.resource(), first.resource());
    // A patient is never in two places.
    book(&mut cal, &second, b);
    assert_eq!(
        cal.try_at(
            &cal.occupancy,
            &day,
            &ty("integration"),
            a,
            first.start,
            &Preferences::default()
        ),
        Err(Blocker::PatientBusy)
    );
}

#[test]
fn chair_capabilities_and_turnover_are_honoured() {
    let mut cal = clinic("America/Phoenix");
    cal.resources = vec![chair("Recliner", false)];
    let d = date("2026-03-02");
    let day = cal.day(d);
    let start = ts("2026-03-02T14:00:00Z");
    assert_eq!(
        cal.try_at(
            &cal.occupancy,
            &day,
            &ty("iv_infusion"),
            PatientId::new(),
            start,
            &Preferences::default()
        ),
        Err(Blocker::NoSuchResource(ResourceKind::Chair))
    );
    // An IM visit fits the recliner; the next may start only after the 10-minute turnover.
    let im = ty("im_injection");
    let p = cal
        .try_at(
            &cal.occupancy,
            &day,
            &im,
            PatientId::new(),
            start,
            &Preferences::default(),
        )
        .unwrap();
    book(&mut cal, &p, PatientId::new());
    let next = p.end;
    assert_eq!(
        cal.try_at(
            &cal.occupancy,
            &day,
            &im,
            PatientId::new(),
            next,
            &Preferences::default()
        ),
        Err(Blocker::ResourceBusy(ResourceKind::Chair))
    );
    assert!(cal
        .try_at(
            &cal.occupancy,
            &day,
            &im,
            PatientId::new(),
            next + 10 * MIN,
            &Preferences::default()
        )
        .is_ok());
}

#[test]
fn induction_series_books_six_doses_with_integration() {
    let cal = clinic("America/Phoenix");
    let spec = CourseSpec::preset(CourseKind::Induction, "iv_infusion", None, None);
    spec.validate().unwrap();
    let plan = find_series(
        &cal,
        &ty("iv_infusion"),
        Some(&ty("integration")),
        &spec,
        PatientId::new(),
        date("2026-03-02"),
        date("2026-03-09"),
        &Preferences::default(),
    )
    .unwrap();
    assert_eq!(plan.steps.len(), 6);
    let doses: Vec<_> = plan
        .steps
        .iter()
        .map(|s| (s.dose.start, s.dose.end))
        .collect();
    let integ: Vec<_> = plan
        .steps
        .iter()
        .map(|s| s.integration.as_ref().map(|i| i.start))
        .collect();
    assert_eq!(check_spacing(&spec, &doses, &integ), Vec::<String>::new());
    // Earliest completion: Mon, Wed, Fri (Fri 08:00-12:00 fits), Mon, Wed, Fri.
    assert_eq!(plan.steps[0].dose.start, ts("2026-03-02T14:00:00Z"));
    // Same chair throughout.
    let chair0 = plan.steps[0].dose.resource();
    assert!(plan.steps.iter().all(|s| s.dose.resource() == chair0));
}

#[test]
fn a_series_that_cannot_fit_says_why_and_what_would_help() {
    let mut cal = clinic("America/Phoenix");
    // Open Mondays and Tuesdays only: 6 doses 48 h apart cannot fit in 21 days.
    cal.hours = hours(&[(1, "07:00", "16:30"), (2, "07:00", "16:30")]);
    for s in &mut cal.staff {
        s.hours = cal.hours.clone();
    }
    let spec = CourseSpec::preset(CourseKind::Induction, "iv_infusion", None, None);
    let err = find_series(
        &cal,
        &ty("iv_infusion"),
        None,
        &spec,
        PatientId::new(),
        date("2026-03-02"),
        date("2026-03-09"),
        &Preferences::default(),
    )
    .unwrap_err();
    assert!(err.placed < 6);
    assert!(err.message.contains("of 6"), "{}", err.message);
    assert!(
        err.suggestion
            .as_deref()
            .is_some_and(|s| s.contains("days")),
        "{err:?}"
    );
}

#[test]
fn spacing_check_names_the_broken_rule() {
    let spec = CourseSpec::preset(CourseKind::Induction, "iv_infusion", None, None);
    let h = 3_600_000_000i64;
    let d = |n: i64| (n * 24 * h, n * 24 * h + 2 * h);
    let ok = [d(0), d(2), d(4), d(7), d(9), d(11)];
    assert!(check_spacing(&spec, &ok, &[None; 6]).is_empty());
    let close = [d(0), d(1), d(4), d(7), d(9), d(11)];
    assert!(check_spacing(&spec, &close, &[None; 6])[0].contains("at least 48 h"));
    let crowded = [d(0), d(2), d(4), d(6), d(9), d(11)];
    assert!(check_spacing(&spec, &crowded, &[None; 6])
        .iter()
        .any(|m| m.contains("within 7 days")));
    let late_integration = [Some(d(0).1 + 80 * h), None, None, None, None, None];
    assert!(check_spacing(&spec, &ok, &late_integration)[0].contains("24-72 h"));
    let mut ten_years = spec.clone();
    ten_years.within_days = 3650;
    assert!(ten_years.validate().is_err());
}

// ---- Property tests ----------------------------------------------------

/// Checks a set of booked visits against the clinic from scratch, without the
/// search's own bookkeeping: hours, closures, capabilities, people's hours
/// and roles, and per-granule usage of every chair, person and patient.
fn check_all(
    cal: &Calendar,
    booked: &[(PatientId, AppointmentType, VisitPlan)],
) -> Result<(), String> {
    let mut patient_use: HashMap<(PatientId, i64), u32> = HashMap::new();
    let mut resource_use: HashMap<(ResourceId, i64), u32> = HashMap::new();
    // (person, granule) -> (exclusive uses, shared uses per role)
    let mut staff_use: HashMap<(UserId, i64), (u32, HashMap<Role, u32>)> = HashMap::new();
    let g = |t: i64| t.div_euclid(GRANULE_MICROS);
    for (patient, t, plan) in booked {
        let zone = &cal.tz;
        let start = to_timestamp(plan.start);
        let last = to_timestamp(plan.end - 1);
        if !is_open_at(start, zone, &cal.hours, &cal.closures)
            || !is_open_at(last, zone, &cal.hours, &cal.closures)
            || start.to_zoned(zone.clone()).date() != last.to_zoned(zone.clone()).date()
        {
            return Err(format!("visit at {start} is outside opening hours"));
        }
        if plan.start < cal.now {
            return Err("visit in the past".into());
        }
        for s in g(plan.start)..g(plan.end + GRANULE_MICROS - 1) {
            *patient_use.entry((*patient, s)).or_default() += 1;
        }
        let mut t_cursor = plan.start;
        for (spec, ph) in t.phases.iter().zip(&plan.phases) {
            if ph.start != t_cursor || ph.end - ph.start != i64::from(spec.minutes) * MIN {
                return Err("phase times do not follow the type".into());
            }
            t_cursor = ph.end;
            match (spec.place.kind(), ph.resource) {
                (None, None) => {}
                (Some(kind), Some(rid)) => {
                    let r = cal
                        .resources
                        .iter()
                        .find(|r| r.id == rid)
                        .ok_or("unknown resource")?;
                    if r.kind != kind || !r.caps.covers(&spec.needs) {
                        return Err(format!("{} cannot serve this phase", r.name));
                    }
                }
                _ => return Err("phase place mismatch".into()),
            }
            if ph.staff.len() != spec.staff.len() {
                return Err("phase is short of staff".into());
            }
            for a in &ph.staff {
                let s = cal
                    .staff
                    .iter()
                    .find(|s| s.id == a.user)
                    .ok_or("unknown person")?;
                if !s.roles.contains(&a.role) {
                    return Err(format!("{} does not hold {:?}", s.name, a.role));
                }
                let opens = |t: i64| is_open_at(to_timestamp(t), zone, &s.hours, &[]);
                if !opens(ph.start) || !opens(ph.end - 1) {
                    return Err(format!("{} is not working then", s.name));
                }
                if s.time_off.iter().any(|&(x, y)| x < ph.end && ph.start < y) {
                    return Err(format!("{} is off then", s.name));
                }
                for q in g(ph.start)..g(ph.end + GRANULE_MICROS - 1) {
                    let e = staff_use.entry((a.user, q)).or_default();
                    if a.shared {
                        *e.1.entry(a.role).or_default() += 1;
                    } else {
                        e.0 += 1;
                    }
                }
            }
        }
        // Resource time: from its first phase to the end of its last plus turnover.
        let mut spans: HashMap<ResourceId, (i64, i64)> = HashMap::new();
        for ph in &plan.phases {
            if let Some(r) = ph.resource {
                let e = spans.entry(r).or_insert((ph.start, ph.end));
                e.1 = ph.end;
            }
        }
        for (r, (s, e)) in spans {
            let e = e + i64::from(t.buffer_after_min) * MIN;
            for q in g(s)..g(e + GRANULE_MICROS - 1) {
                *resource_use.entry((r, q)).or_default() += 1;
            }
        }
    }
    if patient_use.values().any(|&n| n > 1) {
        return Err("a patient is double-booked".into());
    }
    if resource_use.values().any(|&n| n > 1) {
        return Err("a chair or room is double-booked".into());
    }
    for ((_, _), (excl, shared)) in staff_use {
        let total_shared: u32 = shared.values().sum();
        if excl > 1 || (excl == 1 && total_shared > 0) {
            return Err("a person is double-booked".into());
        }
        for (role, n) in shared {
            if n > u32::from(cal.rules.ratio_for(role)) {
                return Err(format!("{role:?} ratio exceeded: {n}"));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct Scenario {
    zone: &'static str,
    nurse_ratio: u8,
    chairs: Vec<(bool, bool)>,
    rooms: usize,
    staff: Vec<(u8, i32, i32)>,
    closure: Option<u8>,
    requests: Vec<(usize, usize, u8, usize)>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::sample::select(vec!["America/Phoenix", "America/Denver", "Europe/Berlin"]),
        1u8..=3,
        prop::collection::vec((any::<bool>(), any::<bool>()), 1..4),
        0usize..3,
        // role index, start hour offset, end hour offset
        prop::collection::vec((0u8..4, 0i32..4, 0i32..4), 1..7),
        prop::option::of(0u8..14),
        prop::collection::vec((0usize..8, 0usize..4, 0u8..14, 0usize..5), 1..30),
    )
        .prop_map(
            |(zone, nurse_ratio, chairs, rooms, staff, closure, requests)| Scenario {
                zone,
                nurse_ratio,
                chairs,
                rooms,
                staff,
                closure,
                requests,
            },
        )
}

fn build(s: &Scenario) -> Calendar {
    let mut cal = clinic(s.zone);
    cal.rules.nurse_ratio = s.nurse_ratio;
    cal.resources = s
        .chairs
        .iter()
        .enumerate()
        .map(|(i, (iv, monitored))| Resource {
            id: ResourceId::new(),
            kind: ResourceKind::Chair,
            name: format!("Chair {i}"),
            caps: Capabilities {
                iv: *iv,
                monitored: *monitored,
                private: false,
            },
        })
        .chain((0..s.rooms).map(|i| room(&format!("Room {i}"))))
        .collect();
    let roles = [
        Role::Nurse,
        Role::MonitoringClinician,
        Role::Therapist,
        Role::Prescriber,
    ];
    cal.staff = s
        .staff
        .iter()
        .enumerate()
        .map(|(i, (r, a, b))| {
            let h: Vec<DayHours> = (1..=5)
                .map(|d| DayHours {
                    weekday: d,
                    opens_min: 7 * 60 + a * 60,
                    closes_min: 16 * 60 - b * 60,
                })
                .collect();
            let mut p = person(&format!("P{i}"), &[roles[*r as usize]], h);
            if i == 0 {
                p.time_off
                    .push((ts("2026-03-04T00:00:00Z"), ts("2026-03-05T00:00:00Z")));
            }
            p
        })
        .collect();
    if let Some(c) = s.closure {
        cal.closures.push(
            date("2026-03-02")
                .checked_add(jiff::Span::new().days(i64::from(c)))
                .unwrap(),
        );
    }
    cal
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn offered_slots_never_break_a_constraint(s in scenario()) {
        let mut cal = build(&s);
        let types = AppointmentType::defaults();
        let patients: Vec<PatientId> = (0..4).map(|_| PatientId::new()).collect();
        let mut booked = vec![];
        for (ti, pi, day, pick) in &s.requests {
            let t = &types[*ti % types.len()];
            let d = date("2026-03-02").checked_add(jiff::Span::new().days(i64::from(*day))).unwrap();
            let (slots, _) = cal.find_slots(&cal.occupancy, t, patients[*pi], d, d, &Preferences::default(), 6);
            // Every slot offered is valid on its own...
            for sl in &slots {
                let mut trial = booked.clone();
                trial.push((patients[*pi], t.clone(), sl.clone()));
                prop_assert_eq!(check_all(&cal, &trial), Ok(()));
            }
            // ...and booking one keeps the whole calendar valid.
            if let Some(sl) = slots.get(*pick % slots.len().max(1)) {
                let claims = plan_claims(sl, patients[*pi], &cal.rules, &cal.occupancy);
                prop_assert!(claims.is_some(), "an offered slot could not be claimed");
                for c in claims.unwrap() { cal.occupancy.add(&c); }
                booked.push((patients[*pi], t.clone(), sl.clone()));
            }
        }
        prop_assert_eq!(check_all(&cal, &booked), Ok(()));
    }

    #[test]
    fn series_never_break_a_constraint(s in scenario(), kind in 0usize..4, doses in 2u16..7) {
        let mut cal = build(&s);
        // Enough of a clinic that a series can fit at all; contention comes
        // from the random staff, chairs and bookings.
        cal.resources[0].caps.monitored = true;
        cal.staff.push(person("N", &[Role::Nurse], glendale_hours()));
        cal.staff.push(person("M", &[Role::MonitoringClinician], glendale_hours()));
        cal.staff.push(person("T", &[Role::Therapist], glendale_hours()));
        cal.resources.push(room("Therapy"));
        // Some existing bookings first.
        let types = AppointmentType::defaults();
        let other = PatientId::new();
        let mut booked = vec![];
        for (ti, _, day, _) in s.requests.iter().take(8) {
            let t = &types[*ti % types.len()];
            let d = date("2026-03-02").checked_add(jiff::Span::new().days(i64::from(*day))).unwrap();
            if let Some(sl) = cal.find_slots(&cal.occupancy, t, other, d, d, &Preferences::default(), 1).0.first() {
                for c in plan_claims(sl, other, &cal.rules, &cal.occupancy).unwrap() { cal.occupancy.add(&c); }
                booked.push((other, t.clone(), sl.clone()));
            }
        }
        let kinds = [CourseKind::Induction, CourseKind::Intensive, CourseKind::Weekly, CourseKind::EveryOtherWeek];
        let dose_code = if s.chairs[0].0 { "iv_infusion" } else { "im_injection" };
        let spec = CourseSpec::preset(kinds[kind], dose_code, Some(doses), Some(2));
        prop_assume!(spec.validate().is_ok());
        let dose_ty = types.iter().find(|t| t.code == dose_code).unwrap();
        let integ = types.iter().find(|t| t.code == "integration").unwrap();
        let p = PatientId::new();
        if let Ok(plan) = find_series(&cal, dose_ty, Some(integ), &spec, p, date("2026-03-02"), date("2026-03-09"), &Preferences::default()) {
            prop_assert_eq!(plan.steps.len(), usize::from(doses));
            let d: Vec<_> = plan.steps.iter().map(|s| (s.dose.start, s.dose.end)).collect();
            let i: Vec<_> = plan.steps.iter().map(|s| s.integration.as_ref().map(|x| x.start)).collect();
            prop_assert_eq!(check_spacing(&spec, &d, &i), Vec::<String>::new());
            prop_assert!(i.iter().all(Option::is_some));
            for st in &plan.steps {
                booked.push((p, dose_ty.clone(), st.dose.clone()));
                booked.push((p, integ.clone(), st.integration.clone().unwrap()));
            }
            prop_assert_eq!(check_all(&cal, &booked), Ok(()));
        }
    }
}

#[test]
fn induction_from_any_weekday_fits_an_empty_clinic() {
    let cal = clinic("America/Phoenix");
    let spec = CourseSpec::preset(CourseKind::Induction, "iv_infusion", None, None);
    for d in [
        "2026-03-02",
        "2026-03-03",
        "2026-03-04",
        "2026-03-05",
        "2026-03-06",
    ] {
        let r = find_series(
            &cal,
            &ty("iv_infusion"),
            Some(&ty("integration")),
            &spec,
            PatientId::new(),
            date(d),
            date(d).checked_add(jiff::Span::new().days(14)).unwrap(),
            &Preferences::default(),
        );
        assert!(r.is_ok(), "from {d}: {:?}", r.err().map(|e| e.message));
    }
}
