//! `stillwater bench --only schedule`: the scheduling hot paths in a clinic
//! with 8 chairs, 20 staff and three months of bookings.
//!
//! 1. Series search alone (6 IV infusions + 6 integration sessions within
//!    three weeks) on a loaded calendar: the domain's cost.
//! 2. Series search as a request does it: load the calendar from the
//!    database, then search (the dry-run path of `POST /api/v1/series`).
//! 3. Booking under contention: 32 workers book single infusions through the
//!    same use case as the API, all in the same two weeks, for a fixed time.
//!
//! Numbers are printed, not asserted; `BENCHMARKS.md` keeps the latest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::audit::Action;
use domain::auth::{Principal, Role};
use domain::ids::PatientId;
use domain::scheduling::{
    find_series, plan_claims, Capabilities, CourseKind, CourseSpec, Preferences, ResourceKind,
};
use store::audit::NewAuditEvent;
use store::scheduling::{NewSeries, NewVisit};
use store::Store;

const DAY: i64 = 86_400_000_000;

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

pub async fn run(store: &Store, seconds: u64) -> anyhow::Result<()> {
    let t = Instant::now();
    let org = store.create_org("Bench Scheduling").await?;
    let mut settings = crate::demo::glendale();
    settings.name = "Bench Scheduling Clinic".into();
    let clinic = store.create_clinic(org, &settings).await?;
    let ev = || NewAuditEvent::new(Action::ScheduleSettings, "bench");
    let iv = Capabilities {
        iv: true,
        monitored: true,
        private: false,
    };
    for i in 1..=6 {
        store
            .create_resource(clinic, ResourceKind::Chair, &format!("Chair {i}"), iv, ev())
            .await?;
    }
    for i in 7..=8 {
        let c = Capabilities {
            iv: false,
            monitored: true,
            private: false,
        };
        store
            .create_resource(
                clinic,
                ResourceKind::Chair,
                &format!("Recliner {i}"),
                c,
                ev(),
            )
            .await?;
    }
    for i in 1..=3 {
        store
            .create_resource(
                clinic,
                ResourceKind::Room,
                &format!("Room {i}"),
                Capabilities::default(),
                ev(),
            )
            .await?;
    }
    store.install_default_types(clinic).await?;
    let roles = [
        (Role::Nurse, 8),
        (Role::MonitoringClinician, 3),
        (Role::Therapist, 5),
        (Role::Prescriber, 4),
    ];
    let mut first_user = None;
    for (role, n) in roles {
        for i in 0..n {
            let name = format!("bench.{}.{i}", role.as_str());
            let u = store
                .create_user(
                    &store::auth::NewUser {
                        org_id: org,
                        username: &name,
                        display_name: &name,
                        email: None,
                        password_hash: "not-a-login",
                    },
                    ev(),
                )
                .await?;
            store.grant_role(u, clinic, role, None, ev()).await?;
            store
                .set_staff_hours(u, clinic, &settings.hours, ev())
                .await?;
            first_user.get_or_insert(u);
        }
    }
    let desk = store
        .create_user(
            &store::auth::NewUser {
                org_id: org,
                username: "bench.desk",
                display_name: "Bench Desk",
                email: None,
                password_hash: "not-a-login",
            },
            ev(),
        )
        .await?;
    store
        .grant_role(desk, clinic, Role::FrontDesk, None, ev())
        .await?;
    let today =
        domain::clinics::today_in(&jiff::tz::TimeZone::get(&settings.time_zone)?, store.now());
    let details: Vec<domain::patients::PatientDetails> = (0..400)
        .map(|k| domain::patients::PatientDetails::validate(&crate::demo::patient(k, false), today))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("bench patient invalid: {e}"))?;
    let patients = store
        .create_patients_bulk(
            org,
            clinic,
            &details,
            NewAuditEvent::new(Action::PatientCreate, "bench"),
        )
        .await?;

    // Three months of bookings: weekly maintenance courses with integration
    // sessions, placed by the search and inserted with their claims.
    let now = store.now();
    let horizon = now + 100 * DAY;
    let mut cal = store.calendar(clinic, now, horizon, None).await?;
    let types = store.appointment_types(clinic).await?;
    let ty = |c: &str| {
        types
            .iter()
            .find(|t| t.code == c)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("type {c}"))
    };
    let (ivt, integ) = (ty("iv_infusion")?, ty("integration")?);
    let mut visits_booked = 0usize;
    let spec = CourseSpec::preset(CourseKind::Induction, "iv_infusion", None, None);
    let mut seeded = 0usize;
    for (level, upto) in [("about half full", 55usize), ("nearly full", 80)] {
        for (i, p) in patients.iter().enumerate().take(upto).skip(seeded) {
            let spec = CourseSpec::preset(CourseKind::Weekly, "iv_infusion", Some(12), None);
            let from = today.checked_add(jiff::Span::new().days(1 + (i as i64 % 7)))?;
            let prefs = Preferences {
                earliest_min: Some(7 * 60 + (i as i32 % 5) * 60),
                ..Default::default()
            };
            let Ok(plan) = find_series(
                &cal,
                &ivt,
                Some(&integ),
                &spec,
                p.id,
                from,
                from.checked_add(jiff::Span::new().days(7))?,
                &prefs,
            ) else {
                continue;
            };
            let mut new = vec![];
            for (k, s) in plan.steps.iter().enumerate() {
                for (t, v, role) in [
                    (&ivt, Some(&s.dose), "dose"),
                    (&integ, s.integration.as_ref(), "integration"),
                ] {
                    let Some(v) = v else { continue };
                    let Some(claims) = plan_claims(v, p.id, &cal.rules, &cal.occupancy) else {
                        continue;
                    };
                    claims.iter().for_each(|c| cal.occupancy.add(c));
                    new.push(NewVisit {
                        id: domain::ids::AppointmentId::new(),
                        type_name: t.name.clone(),
                        plan: v.clone(),
                        claims,
                        series_index: Some(k as i32 + 1),
                        series_role: Some(role),
                    });
                }
            }
            visits_booked += new.len();
            let series = NewSeries {
                id: domain::ids::SeriesId::new(),
                spec,
            };
            store
                .insert_visits(clinic, p.id, Some(&series), &new, None, vec![], &[])
                .await?;
        }
        seeded = upto;
        println!(
            "\n{level}: 8 chairs, 3 rooms, 20 staff, {} visits over 3 months (seeded in {:.1} s)",
            visits_booked,
            t.elapsed().as_secs_f64()
        );

        // 1. Series search on a loaded calendar.
        let cal = store.calendar(clinic, now, now + 50 * DAY, None).await?;
        let mut lat = vec![];
        let mut found = 0;
        for i in 0..200 {
            let from = today.checked_add(jiff::Span::new().days(1 + (i % 30)))?;
            let t = Instant::now();
            let r = find_series(
                &cal,
                &ivt,
                Some(&integ),
                &spec,
                PatientId::new(),
                from,
                from.checked_add(jiff::Span::new().days(14))?,
                &Preferences::default(),
            );
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
            found += usize::from(r.is_ok());
        }
        println!(
        "series search (domain, 6 doses + 6 integration sessions, 3-week window): p50 {:.2} ms, p99 {:.2} ms, {found}/200 found",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );

        // 2. The same with the calendar loaded from the database per request.
        let mut lat = vec![];
        let mut load = vec![];
        for i in 0..200 {
            let p = patients[200 + (i % 200)].id;
            let from = today.checked_add(jiff::Span::new().days(1 + (i as i64 % 30)))?;
            let from_m = domain::scheduling::local_to_micros(&cal.tz, from, 0).unwrap_or(now);
            let t = Instant::now();
            let c = store
                .calendar(clinic, from_m, from_m + 40 * DAY, Some(p))
                .await?;
            load.push(t.elapsed().as_secs_f64() * 1000.0);
            let _ = find_series(
                &c,
                &ivt,
                Some(&integ),
                &spec,
                p,
                from,
                from.checked_add(jiff::Span::new().days(14))?,
                &Preferences::default(),
            );
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "series search (load calendar from {:?} + search): p50 {:.2} ms, p99 {:.2} ms (loading alone: p50 {:.2} ms, p99 {:.2} ms)",
            store.backend(),
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
            pct(&mut load, 0.5),
            pct(&mut load, 0.99)
        );
    }
    let cal = store.calendar(clinic, now, now + 2 * DAY, None).await?;

    // 3. Booking under contention through the real use case.
    let state = clinic::Clinic::new(store.clone(), clinic::Config::default());
    let caller = clinic::actor::Caller {
        principal: Principal::User {
            user_id: desk,
            grants: vec![(clinic, Role::FrontDesk)],
        },
        user: None,
        org_id: org,
        session_hash: None,
        meta: clinic::actor::RequestMeta::default(),
    };
    let ok = Arc::new(AtomicU64::new(0));
    let conflict = Arc::new(AtomicU64::new(0));
    let lats = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let window_start = domain::scheduling::local_to_micros(
        &cal.tz,
        today.checked_add(jiff::Span::new().days(1))?,
        0,
    )
    .unwrap_or(now);
    let mut tasks = vec![];
    for w in 0..32u64 {
        let (state, caller, ok, conflict, lats) = (
            state.clone(),
            caller.clone(),
            ok.clone(),
            conflict.clone(),
            lats.clone(),
        );
        let pts: Vec<PatientId> = patients.iter().map(|p| p.id).collect();
        tasks.push(tokio::spawn(async move {
            let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (w + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            while Instant::now() < deadline {
                let p = pts[(next() % pts.len() as u64) as usize];
                // A quarter-hour in the first two weeks' opening hours.
                let day = (next() % 14) as i64;
                let slot = (next() % 28) as i64;
                let start = window_start + day * DAY + (14 * 60 + slot * 15) * 60_000_000;
                let t = Instant::now();
                let r = clinic::scheduling::book(
                    &state,
                    &caller,
                    clinic,
                    p,
                    "iv_infusion",
                    start,
                    &Preferences::default(),
                    None,
                )
                .await;
                if let Ok(mut l) = lats.lock() {
                    l.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                match r {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => conflict.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let mut l = lats.lock().map(|l| l.clone()).unwrap_or_default();
    let (n_ok, n_no) = (ok.load(Ordering::Relaxed), conflict.load(Ordering::Relaxed));
    println!(
        "booking under contention (32 workers, one 2-week window, {seconds} s): {:.0} attempts/s, {n_ok} booked, {n_no} refused (taken, closed or full), p50 {:.1} ms, p99 {:.1} ms",
        (n_ok + n_no) as f64 / seconds as f64,
        pct(&mut l, 0.5),
        pct(&mut l, 0.99)
    );
    let double = store.count_claims(None).await?;
    println!("claims held: {double}");
    let _ = first_user;
    Ok(())
}
