//! Scheduling use cases shared by pages and the API: availability, booking a
//! visit or a whole series, moving and cancelling, the day board, calendar
//! feeds. Each checks the caller's permission in the clinic, finds the patient
//! only within it, and audits what it shows or changes.
//!
//! Booking never trusts a plan from the client: the server loads the
//! calendar, places the visit itself, and inserts its claims; the database's
//! unique key on claims decides any race. A lost race is retried against a
//! fresh calendar, so the loser gets the true reason ("the chair is taken").

pub mod settings;

use domain::audit::Action;
use domain::auth::Permission;
use domain::ids::{AppointmentId, ClinicId, PatientId, ResourceId, SeriesId, UserId};
use domain::scheduling::{
    check_spacing, find_series, granule_of, plan_claims, AppointmentType, Blocker, Calendar, Claim,
    CourseSpec, Key, Occupancy, Preferences, SeriesBlocked, SeriesPlan, Tally, VisitPlan,
    GRANULE_MICROS,
};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use store::scheduling::{Appointment, NewSeries, NewVisit, Status};
use store::StoreError;

use crate::actor::Caller;
use crate::error::Error;
use crate::Clinic;

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;
/// Attempts at a booking when another booking wins a race for a seat.
const ATTEMPTS: usize = 4;

/// How a patient attends a visit: at the clinic, or by video through the
/// clinic's meeting link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attend {
    InPerson,
    /// `None`: the clinic has set no meeting link yet.
    Video(Option<String>),
}

impl Attend {
    /// How visit `id` of type `ty` (if the clinic still has it) is attended.
    pub fn of(
        ty: Option<&AppointmentType>,
        id: AppointmentId,
        clinic: &domain::clinics::ClinicSettings,
    ) -> Attend {
        match ty {
            Some(t) if t.is_video() => Attend::Video(clinic.video_link_for(&id.to_string())),
            _ => Attend::InPerson,
        }
    }

    /// The join link of a video visit.
    pub fn link(&self) -> Option<&str> {
        match self {
            Attend::Video(l) => l.as_deref(),
            Attend::InPerson => None,
        }
    }

    /// The "Where" of a confirmation or reminder e-mail.
    pub fn where_text(&self, clinic: &domain::clinics::ClinicSettings) -> String {
        match self {
            Attend::InPerson => format!(
                "Where: {}\n{}",
                clinic.name,
                clinic.address_lines().join("\n")
            ),
            Attend::Video(Some(link)) => format!(
                "Where: by video, from a quiet, private place. At the time of your visit, \
                 open this link on a phone or computer with a camera:\n{link}"
            ),
            Attend::Video(None) => format!(
                "Where: by video. We will send you the link to join before your visit; if \
                 it has not come by the day before, call us on {}.",
                clinic.phone
            ),
        }
    }
}

/// A type patients may book themselves (online) at this clinic as far as
/// the way of meeting goes: a video visit needs the clinic's meeting link.
pub fn offered_online(ty: &AppointmentType, clinic: &domain::clinics::ClinicSettings) -> bool {
    !ty.is_video() || clinic.video_link.is_some()
}

/// The local date of an instant in a clinic's zone.
pub fn local_date(tz: &TimeZone, m: i64) -> Date {
    jiff::Timestamp::from_microsecond(m)
        .map(|t| t.to_zoned(tz.clone()).date())
        .unwrap_or(Date::constant(1970, 1, 1))
}

pub async fn clinic_tz(state: &Clinic, clinic: ClinicId) -> Result<TimeZone, Error> {
    let c = state.store.clinic(clinic).await?;
    TimeZone::get(&c.settings.time_zone)
        .map_err(|_| Error::Internal("clinic has an unknown time zone".into()))
}

pub async fn appointment_type(
    state: &Clinic,
    clinic: ClinicId,
    code: &str,
) -> Result<AppointmentType, Error> {
    state
        .store
        .appointment_types(clinic)
        .await?
        .into_iter()
        .find(|t| t.code == code)
        .ok_or_else(|| {
            Error::Invalid(vec![domain::FieldError::new(
                "type",
                format!("{code:?} is not an appointment type of this clinic"),
            )])
        })
}

/// Finds the patient in the clinic or answers "not found" (and audits the miss).
async fn patient_in(
    state: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    patient: PatientId,
) -> Result<(), Error> {
    if state.store.patient(patient, &[clinic]).await?.is_some() {
        return Ok(());
    }
    let mut ev = caller.event(Action::AppointmentRead);
    ev.outcome = "not_found";
    ev.object_type = Some("patient".into());
    ev.object_id = Some(patient.to_string());
    state.store.audit(vec![ev]).await?;
    Err(Error::NotFound)
}

fn appointment_event(
    caller: &Caller,
    action: Action,
    perm: Permission,
    clinic: ClinicId,
    patient: PatientId,
    appt: &str,
) -> store::audit::NewAuditEvent {
    let mut ev = caller.patient_event(action, perm, clinic, &patient.to_string());
    ev.object_type = Some("appointment".into());
    ev.object_id = Some(appt.to_string());
    ev
}

/// Checks a requested date range: not reversed, not in the past, not absurdly long.
pub fn check_range(
    tz: &TimeZone,
    from: Date,
    to: Date,
    max_days: i64,
    now: i64,
) -> Result<(), Error> {
    let today = domain::clinics::today_in(tz, now);
    if to < from {
        return Err(Error::Invalid(vec![domain::FieldError::new(
            "to",
            "must be on or after from",
        )]));
    }
    if to < today {
        return Err(Error::Invalid(vec![domain::FieldError::new(
            "to",
            "is in the past",
        )]));
    }
    let span = from
        .until(to)
        .map(|s| i64::from(s.get_days()))
        .unwrap_or(i64::MAX);
    if span > max_days {
        return Err(Error::Invalid(vec![domain::FieldError::new(
            "to",
            format!("a search covers at most {max_days} days"),
        )]));
    }
    Ok(())
}

pub fn micros_of(tz: &TimeZone, d: Date) -> i64 {
    domain::scheduling::local_to_micros(tz, d, 0).unwrap_or(0)
}

/// A calendar restricted to one chair or room and to named people, when the
/// caller pins them.
fn pin(cal: &mut Calendar, resource: Option<ResourceId>) -> Result<(), Error> {
    if let Some(r) = resource {
        let Some(kind) = cal.resources.iter().find(|x| x.id == r).map(|x| x.kind) else {
            return Err(Error::Invalid(vec![domain::FieldError::new(
                "resource_id",
                "is not an active chair or room of this clinic",
            )]));
        };
        cal.resources.retain(|x| x.kind != kind || x.id == r);
    }
    Ok(())
}

pub struct Availability {
    pub slots: Vec<VisitPlan>,
    pub tally: Tally,
}

#[allow(clippy::too_many_arguments)]
pub async fn availability(
    state: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    patient: Option<PatientId>,
    type_code: &str,
    from: Date,
    to: Date,
    prefs: &Preferences,
    resource: Option<ResourceId>,
    limit: usize,
) -> Result<Availability, Error> {
    caller.require(Permission::ScheduleRead, clinic)?;
    let ty = appointment_type(state, clinic, type_code).await?;
    let tz = clinic_tz(state, clinic).await?;
    check_range(&tz, from, to, 62, state.now())?;
    if let Some(p) = patient {
        patient_in(state, caller, clinic, p).await?;
    }
    let mut cal = state
        .store
        .calendar(
            clinic,
            micros_of(&tz, from),
            micros_of(&tz, to) + 2 * DAY,
            patient,
        )
        .await?;
    pin(&mut cal, resource)?;
    // Without a patient the search still respects everyone else's bookings.
    let who = patient.unwrap_or_default();
    let (slots, tally) = cal.find_slots(
        &cal.occupancy,
        &ty,
        who,
        from,
        to,
        prefs,
        limit.clamp(1, 500),
    );
    if let Some(p) = patient {
        let ev = caller.patient_event(
            Action::AppointmentRead,
            Permission::ScheduleRead,
            clinic,
            &p.to_string(),
        );
        state.store.audit(vec![ev]).await?;
    }
    Ok(Availability { slots, tally })
}

/// Start times free for a visit type, for someone with no visits yet (the
/// public consultation): times only, never who or which room.
pub async fn free_starts(
    state: &Clinic,
    clinic: ClinicId,
    ty: &AppointmentType,
    from: Date,
    to: Date,
    limit: usize,
) -> Result<Vec<i64>, Error> {
    let tz = clinic_tz(state, clinic).await?;
    let cal = state
        .store
        .calendar(
            clinic,
            micros_of(&tz, from),
            micros_of(&tz, to) + 2 * DAY,
            None,
        )
        .await?;
    let (slots, _) = cal.find_slots(
        &cal.occupancy,
        ty,
        PatientId::new(),
        from,
        to,
        &Preferences::default(),
        limit.clamp(1, 500),
    );
    Ok(slots.into_iter().map(|s| s.start).collect())
}

fn blocker_error(b: Blocker) -> Error {
    match b {
        Blocker::Closed | Blocker::OutsideHours => Error::Invalid(vec![domain::FieldError::new(
            "starts_at",
            format!("is not bookable: {}", b.describe()),
        )]),
        Blocker::TooSoon => Error::Invalid(vec![domain::FieldError::new(
            "starts_at",
            "is in the past or within the clinic's minimum notice",
        )]),
        Blocker::BeyondHorizon => Error::Invalid(vec![domain::FieldError::new(
            "starts_at",
            "is beyond the clinic's booking horizon",
        )]),
        other => Error::Conflict(format!("This time cannot be booked: {}.", other.describe())),
    }
}

/// Exact claims for visits, against the seats the database holds now.
async fn exact_claims(
    state: &Clinic,
    visits: &[&VisitPlan],
    patient: PatientId,
    rules: &domain::scheduling::SchedulingRules,
    exclude: Option<AppointmentId>,
) -> Result<Option<Vec<Vec<Claim>>>, Error> {
    let mut keys = vec![Key::Patient(patient)];
    let (mut g0, mut g1) = (i64::MAX, i64::MIN);
    for v in visits {
        for p in &v.phases {
            if let Some(r) = p.resource {
                keys.push(Key::Resource(r));
            }
            keys.extend(p.staff.iter().map(|a| Key::Staff(a.user)));
        }
        g0 = g0.min(granule_of(v.start));
        g1 = g1.max(granule_of(v.end + GRANULE_MICROS - 1) + 30);
    }
    keys.sort();
    keys.dedup();
    let mut occ: Occupancy = state.store.claims_on(&keys, g0, g1, exclude).await?;
    let mut out = vec![];
    for v in visits {
        let Some(c) = plan_claims(v, patient, rules, &occ) else {
            return Ok(None);
        };
        c.iter().for_each(|x| occ.add(x));
        out.push(c);
    }
    Ok(Some(out))
}

/// Books one visit at exactly `start`.
#[allow(clippy::too_many_arguments)]
pub async fn book(
    state: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    patient: PatientId,
    type_code: &str,
    start: i64,
    prefs: &Preferences,
    resource: Option<ResourceId>,
) -> Result<Appointment, Error> {
    caller.require(Permission::ScheduleBook, clinic)?;
    let ty = appointment_type(state, clinic, type_code).await?;
    patient_in(state, caller, clinic, patient).await?;
    if start < state.now() {
        return Err(Error::Invalid(vec![domain::FieldError::new(
            "starts_at",
            "is in the past",
        )]));
    }
    let make_event = |id: AppointmentId| {
        appointment_event(
            caller,
            Action::AppointmentCreate,
            Permission::ScheduleBook,
            clinic,
            patient,
            &id.to_string(),
        )
    };
    let booker = Booker::Staff(caller.user_id());
    book_core(
        state,
        clinic,
        patient,
        &ty,
        start,
        prefs,
        resource,
        &make_event,
        booker,
    )
    .await
}

/// Who books: a staff member, or a lead booking its own consultation (the
/// patient record is created in the same transaction as the visit).
#[derive(Clone, Copy)]
pub enum Booker<'a> {
    Staff(Option<domain::ids::UserId>),
    Lead(&'a store::leads::LeadBooking),
    /// The patient, signed in to the portal.
    Portal,
}

/// Places and inserts one visit at `start`, retrying a lost race against a
/// fresh calendar.
#[allow(clippy::too_many_arguments)]
pub async fn book_core(
    state: &Clinic,
    clinic: ClinicId,
    patient: PatientId,
    ty: &AppointmentType,
    start: i64,
    prefs: &Preferences,
    resource: Option<ResourceId>,
    make_event: &(dyn Fn(AppointmentId) -> store::audit::NewAuditEvent + Sync),
    booker: Booker<'_>,
) -> Result<Appointment, Error> {
    let mut last = Error::Conflict("that time was just taken; choose another".into());
    for _ in 0..ATTEMPTS {
        let mut cal = state
            .store
            .calendar(clinic, start - DAY, start + 2 * DAY, Some(patient))
            .await?;
        pin(&mut cal, resource)?;
        // The calendar carries the clinic's zone: no second clinic lookup.
        let day = cal.day(local_date(&cal.tz, start));
        let plan = cal
            .try_at(&cal.occupancy, &day, ty, patient, start, prefs)
            .map_err(blocker_error)?;
        let Some(mut claims) = exact_claims(state, &[&plan], patient, &cal.rules, None).await?
        else {
            continue;
        };
        let id = AppointmentId::new();
        let ev = make_event(id);
        let mut jobs = crate::jobs::reminder_jobs(id, clinic, 0, plan.start, state.now());
        let visit = NewVisit {
            id,
            type_name: ty.name.clone(),
            plan,
            claims: claims.remove(0),
            series_index: None,
            series_role: None,
        };
        let inserted = match booker {
            Booker::Staff(by) => {
                // The patient learns of a visit the clinic booked for them.
                jobs.extend(crate::jobs::confirmation_jobs(id, clinic, state.now()));
                state
                    .store
                    .insert_visits(clinic, patient, None, &[visit], by, vec![ev], &jobs)
                    .await
            }
            Booker::Lead(b) => {
                jobs.extend(crate::jobs::confirmation_jobs(id, clinic, state.now()));
                state
                    .store
                    .book_lead_visit(b, clinic, &visit, vec![ev], &jobs)
                    .await
            }
            Booker::Portal => {
                jobs.extend(crate::jobs::confirmation_jobs(id, clinic, state.now()));
                state
                    .store
                    .insert_portal_visit(clinic, patient, &visit, vec![ev], &jobs)
                    .await
            }
        };
        match inserted {
            Ok(()) => {
                return state
                    .store
                    .appointment(id, &[clinic])
                    .await?
                    .ok_or(Error::NotFound)
            }
            Err(StoreError::Domain(domain::DomainError::Conflict(c))) => {
                last = Error::Conflict(c);
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last)
}

pub enum SeriesOutcome {
    Booked(SeriesId, SeriesPlan),
    Proposed(SeriesPlan),
    Blocked(SeriesBlocked),
}

/// What is not yet in place for a patient's treatment when a course is
/// booked: eligibility, consent for the plan's route, the plan itself. A
/// clinic may hold the dates before the intake is done, so these are said,
/// never enforced here (the dose itself is gated at the chair). The read of
/// the patient's eligibility is audited.
pub async fn series_warnings(
    state: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    patient: PatientId,
) -> Result<Vec<String>, Error> {
    caller.require(Permission::ScheduleBook, clinic)?;
    let s = crate::intake::status_of(state, clinic, patient).await?;
    let mut out: Vec<String> = vec![];
    if let Some(r) = s.eligibility.reason() {
        out.push(format!("Eligibility: {r}."));
    }
    match s.plan() {
        None => out.push("No treatment plan yet.".into()),
        Some(p) => {
            if let Ok(route) = crate::intake::parse_route(&p.route) {
                let consent = s.consent(route);
                if !consent.is_valid() {
                    out.push(format!("Consent: {}.", consent.reason()));
                }
            }
        }
    }
    let mut ev = caller.patient_event(
        Action::EligibilityRead,
        Permission::ScheduleBook,
        clinic,
        &patient.to_string(),
    );
    ev.detail = Some(format!(
        "before booking a course: {}",
        if out.is_empty() {
            "all in place".to_string()
        } else {
            out.join(" ")
        }
    ));
    state.store.audit(vec![ev]).await?;
    Ok(out)
}

/// Finds (and unless `dry_run`, books) a whole course with its integration sessions.
#[allow(clippy::too_many_arguments)]
pub async fn series(
    state: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    patient: PatientId,
    spec: &CourseSpec,
    from: Date,
    first_by: Date,
    prefs: &Preferences,
    dry_run: bool,
) -> Result<SeriesOutcome, Error> {
    caller.require(
        if dry_run {
            Permission::ScheduleRead
        } else {
            Permission::ScheduleBook
        },
        clinic,
    )?;
    spec.validate()?;
    let dose_ty = appointment_type(state, clinic, &spec.dose_type).await?;
    if !dose_ty.dose {
        return Err(Error::Invalid(vec![domain::FieldError::new(
            "dose_type",
            "is not a dosing visit",
        )]));
    }
    let integ_ty = match &spec.integration_type {
        Some(c) => Some(appointment_type(state, clinic, c).await?),
        None => None,
    };
    patient_in(state, caller, clinic, patient).await?;
    let tz = clinic_tz(state, clinic).await?;
    check_range(&tz, from, first_by, 60, state.now())?;
    let span =
        i64::from(spec.within_days) * DAY + i64::from(spec.integration_max_hours) * HOUR + 2 * DAY;
    let from_m = micros_of(&tz, from);
    let to_m = micros_of(&tz, first_by) + span;
    for _ in 0..ATTEMPTS {
        let cal = state
            .store
            .calendar(clinic, from_m, to_m, Some(patient))
            .await?;
        let plan = match find_series(
            &cal,
            &dose_ty,
            integ_ty.as_ref(),
            spec,
            patient,
            from,
            first_by,
            prefs,
        ) {
            Ok(p) => p,
            Err(b) => return Ok(SeriesOutcome::Blocked(b)),
        };
        let ev = caller.patient_event(
            Action::AppointmentRead,
            Permission::ScheduleRead,
            clinic,
            &patient.to_string(),
        );
        if dry_run {
            state.store.audit(vec![ev]).await?;
            return Ok(SeriesOutcome::Proposed(plan));
        }
        let mut visits: Vec<(&VisitPlan, &'static str, i32, &str)> = vec![];
        for (i, s) in plan.steps.iter().enumerate() {
            visits.push((&s.dose, "dose", i as i32 + 1, &dose_ty.name));
            if let (Some(ip), Some(it)) = (&s.integration, &integ_ty) {
                visits.push((ip, "integration", i as i32 + 1, &it.name));
            }
        }
        let plans: Vec<&VisitPlan> = visits.iter().map(|v| v.0).collect();
        let Some(claims) = exact_claims(state, &plans, patient, &cal.rules, None).await? else {
            continue;
        };
        let sid = SeriesId::new();
        let mut events = vec![];
        let mut new_visits = vec![];
        for ((plan, role, idx, name), claims) in visits.into_iter().zip(claims) {
            let id = AppointmentId::new();
            let mut ev = appointment_event(
                caller,
                Action::AppointmentCreate,
                Permission::ScheduleBook,
                clinic,
                patient,
                &id.to_string(),
            );
            ev.detail = Some(format!("series {sid} {role} {idx}"));
            events.push(ev);
            new_visits.push(NewVisit {
                id,
                type_name: name.to_string(),
                plan: plan.clone(),
                claims,
                series_index: Some(idx),
                series_role: Some(role),
            });
        }
        let mut sev = appointment_event(
            caller,
            Action::SeriesCreate,
            Permission::ScheduleBook,
            clinic,
            patient,
            &sid.to_string(),
        );
        sev.object_type = Some("series".into());
        sev.detail = Some(format!("{} doses, {} visits", spec.doses, new_visits.len()));
        events.push(sev);
        let series = NewSeries {
            id: sid,
            spec: spec.clone(),
        };
        let mut jobs: Vec<_> = new_visits
            .iter()
            .flat_map(|v| crate::jobs::reminder_jobs(v.id, clinic, 0, v.plan.start, state.now()))
            .collect();
        jobs.extend(crate::jobs::series_confirmation_jobs(
            sid,
            clinic,
            state.now(),
        ));
        match state
            .store
            .insert_visits(
                clinic,
                patient,
                Some(&series),
                &new_visits,
                caller.user_id(),
                events,
                &jobs,
            )
            .await
        {
            Ok(()) => return Ok(SeriesOutcome::Booked(sid, plan)),
            Err(StoreError::Domain(domain::DomainError::Conflict(_))) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict(
        "the calendar kept changing while the series was being booked; try again".into(),
    ))
}

/// Reads one visit the caller may see, audited.
pub async fn read(
    state: &Clinic,
    caller: &Caller,
    id: AppointmentId,
) -> Result<Appointment, Error> {
    let clinics = caller.require_any(Permission::ScheduleRead)?;
    let Some(a) = state.store.appointment(id, &clinics).await? else {
        let mut ev = caller.event(Action::AppointmentRead);
        ev.outcome = "not_found";
        ev.object_type = Some("appointment".into());
        ev.object_id = Some(id.to_string());
        state.store.audit(vec![ev]).await?;
        return Err(Error::NotFound);
    };
    let ev = appointment_event(
        caller,
        Action::AppointmentRead,
        Permission::ScheduleRead,
        a.clinic_id,
        a.patient_id,
        &id.to_string(),
    );
    state.store.audit(vec![ev]).await?;
    Ok(a)
}

/// Moves a booked visit to `start`, re-placing it and re-checking its series' spacing.
pub async fn move_to(
    state: &Clinic,
    caller: &Caller,
    id: AppointmentId,
    start: i64,
    prefs: &Preferences,
) -> Result<Appointment, Error> {
    let clinics = caller.require_any(Permission::ScheduleBook)?;
    let a = state
        .store
        .appointment(id, &clinics)
        .await?
        .ok_or(Error::NotFound)?;
    if a.status != Status::Booked {
        return Err(Error::Conflict(format!(
            "a visit that is {} cannot be moved",
            a.status.label().to_lowercase()
        )));
    }
    if start < state.now() {
        return Err(Error::Invalid(vec![domain::FieldError::new(
            "starts_at",
            "is in the past",
        )]));
    }
    let ty = appointment_type(state, a.clinic_id, &a.type_code).await?;
    let new_end = start + ty.total_minutes() * 60_000_000;
    if let Some(sid) = a.series_id {
        let spec = state.store.series_spec(sid).await?;
        let sibs = state.store.series_appointments(sid).await?;
        let mut doses = vec![];
        let mut integ = vec![];
        let live: Vec<&Appointment> = sibs.iter().filter(|s| s.status.holds_time()).collect();
        for d in live
            .iter()
            .filter(|s| s.series_role.as_deref() == Some("dose"))
        {
            let (s, e) = if d.id == id {
                (start, new_end)
            } else {
                (d.starts_at, d.ends_at)
            };
            doses.push((s, e));
            let i = live.iter().find(|x| {
                x.series_role.as_deref() == Some("integration") && x.series_index == d.series_index
            });
            integ.push(i.map(|x| if x.id == id { start } else { x.starts_at }));
        }
        let broken = check_spacing(&spec, &doses, &integ);
        if !broken.is_empty() {
            return Err(Error::Conflict(format!(
                "Moving this visit breaks the course's rules: {}.",
                broken.join("; ")
            )));
        }
    }
    for _ in 0..ATTEMPTS {
        let mut cal = state
            .store
            .calendar(
                a.clinic_id,
                start - DAY,
                start + 2 * DAY,
                Some(a.patient_id),
            )
            .await?;
        // The visit does not stand in its own way.
        store::scheduling::remove_plan(&mut cal.occupancy, &a.plan, a.patient_id, &cal.rules);
        // The calendar carries the clinic's zone: no second clinic lookup.
        let day = cal.day(local_date(&cal.tz, start));
        let plan = cal
            .try_at(&cal.occupancy, &day, &ty, a.patient_id, start, prefs)
            .map_err(blocker_error)?;
        let Some(mut claims) =
            exact_claims(state, &[&plan], a.patient_id, &cal.rules, Some(id)).await?
        else {
            continue;
        };
        let mut ev = appointment_event(
            caller,
            Action::AppointmentUpdate,
            Permission::ScheduleBook,
            a.clinic_id,
            a.patient_id,
            &id.to_string(),
        );
        ev.detail = Some("moved".into());
        match state
            .store
            .move_visit(
                id,
                &plan,
                &claims.remove(0),
                ev,
                &crate::jobs::reminder_jobs(
                    id,
                    a.clinic_id,
                    a.sequence + 1,
                    plan.start,
                    state.now(),
                ),
            )
            .await
        {
            Ok(()) => {
                return state
                    .store
                    .appointment(id, &clinics)
                    .await?
                    .ok_or(Error::NotFound)
            }
            Err(StoreError::Domain(domain::DomainError::Conflict(_))) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict(
        "that time was just taken; choose another".into(),
    ))
}

/// Cancels a visit with a reason; late if within the clinic's late-cancel window.
pub async fn cancel(
    state: &Clinic,
    caller: &Caller,
    id: AppointmentId,
    reason: &str,
) -> Result<Appointment, Error> {
    let clinics = caller.require_any(Permission::ScheduleBook)?;
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(Error::Invalid(vec![domain::FieldError::new(
            "reason",
            "is required, at most 200 characters",
        )]));
    }
    let a = state
        .store
        .appointment(id, &clinics)
        .await?
        .ok_or(Error::NotFound)?;
    let rules = state.store.scheduling_rules(a.clinic_id).await?;
    let late = a.starts_at - state.now() < i64::from(rules.late_cancel_hours) * HOUR;
    let mut ev = appointment_event(
        caller,
        Action::AppointmentUpdate,
        Permission::ScheduleBook,
        a.clinic_id,
        a.patient_id,
        &id.to_string(),
    );
    ev.detail = Some(
        if late {
            "cancelled (late)"
        } else {
            "cancelled"
        }
        .into(),
    );
    state
        .store
        .set_visit_status(id, Status::Cancelled, Some(reason), late, ev)
        .await?;
    // The freed time goes to the first suitable patient on the waitlist.
    let event = |p: &str| {
        caller.patient_event(
            Action::AppointmentUpdate,
            Permission::ScheduleBook,
            a.clinic_id,
            p,
        )
    };
    offer_freed(state, &a, &event).await?;
    state
        .store
        .appointment(id, &clinics)
        .await?
        .ok_or(Error::NotFound)
}

/// Marks a visit whose start has passed as a no-show.
pub async fn no_show(
    state: &Clinic,
    caller: &Caller,
    id: AppointmentId,
) -> Result<Appointment, Error> {
    let clinics = caller.require_any(Permission::ScheduleBook)?;
    let a = state
        .store
        .appointment(id, &clinics)
        .await?
        .ok_or(Error::NotFound)?;
    if a.starts_at > state.now() {
        return Err(Error::Conflict(
            "a visit can be marked a no-show only after its start time".into(),
        ));
    }
    let mut ev = appointment_event(
        caller,
        Action::AppointmentUpdate,
        Permission::ScheduleBook,
        a.clinic_id,
        a.patient_id,
        &id.to_string(),
    );
    ev.detail = Some("no-show".into());
    state
        .store
        .set_visit_status(id, Status::NoShow, None, false, ev)
        .await?;
    state
        .store
        .appointment(id, &clinics)
        .await?
        .ok_or(Error::NotFound)
}

/// Audits a listing of visits: one record names every patient shown.
pub async fn audit_listing(
    state: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    what: &str,
    appts: &[Appointment],
) -> Result<(), Error> {
    let mut ev = caller.event(Action::AppointmentRead);
    ev.clinic_id = Some(clinic.to_string());
    ev.actor_role = caller
        .principal
        .acting_role(Permission::ScheduleRead, clinic)
        .map(|r| r.as_str().to_string());
    ev.object_type = Some("appointment".into());
    let mut patients: Vec<String> = appts.iter().map(|a| a.patient_id.to_string()).collect();
    patients.sort();
    patients.dedup();
    if let [only] = patients.as_slice() {
        ev.patient_id = Some(only.clone());
    }
    ev.detail = Some(format!(
        "{what}: {} visit(s); patients {}",
        appts.len(),
        patients.join(",")
    ));
    state.store.audit(vec![ev]).await?;
    Ok(())
}

/// A clinic's visits on one local date, audited.
pub async fn day(
    state: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    date: Date,
) -> Result<Vec<Appointment>, Error> {
    caller.require(Permission::ScheduleRead, clinic)?;
    let tz = clinic_tz(state, clinic).await?;
    let from = micros_of(&tz, date);
    let to = micros_of(&tz, date.tomorrow().unwrap_or(date));
    let appts = state.store.clinic_appointments(clinic, from, to).await?;
    audit_listing(state, caller, clinic, &format!("day {date}"), &appts).await?;
    Ok(appts)
}

/// Whether `user` works at `clinic` in a bookable role.
pub async fn is_bookable_staff(
    state: &Clinic,
    clinic: ClinicId,
    user: UserId,
) -> Result<bool, Error> {
    Ok(state
        .store
        .bookable_staff(clinic, 0, 1)
        .await?
        .iter()
        .any(|s| s.id == user))
}

/// Puts a patient on the waitlist for a kind of visit between two dates.
#[allow(clippy::too_many_arguments)]
pub async fn add_to_waitlist(
    state: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    patient: PatientId,
    type_code: &str,
    from: Date,
    to: Date,
    note: Option<&str>,
) -> Result<String, Error> {
    caller.require(Permission::ScheduleBook, clinic)?;
    appointment_type(state, clinic, type_code).await?;
    patient_in(state, caller, clinic, patient).await?;
    let tz = clinic_tz(state, clinic).await?;
    check_range(&tz, from, to, 180, state.now())?;
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > 200) {
        return Err(Error::Invalid(vec![domain::FieldError::new(
            "note",
            "at most 200 characters",
        )]));
    }
    let mut ev = caller.patient_event(
        Action::AppointmentUpdate,
        Permission::ScheduleBook,
        clinic,
        &patient.to_string(),
    );
    ev.object_type = Some("waitlist".into());
    ev.detail = Some(format!("waitlist {type_code} {from}..{to}"));
    Ok(state
        .store
        .add_waitlist(
            clinic,
            patient,
            type_code,
            from,
            to,
            note,
            caller.user_id(),
            ev,
        )
        .await?)
}

/// Offers a freed time to the first waiting patient it suits (same kind of
/// visit, date in their window, and the visit fits them then). Returns the
/// entry offered, if any.
pub async fn offer_freed(
    state: &Clinic,
    freed: &Appointment,
    event: &(dyn Fn(&str) -> store::audit::NewAuditEvent + Sync),
) -> Result<Option<String>, Error> {
    if freed.starts_at <= state.now() {
        return Ok(None);
    }
    let tz = clinic_tz(state, freed.clinic_id).await?;
    let day = local_date(&tz, freed.starts_at);
    let ty = match appointment_type(state, freed.clinic_id, &freed.type_code).await {
        Ok(t) => t,
        Err(_) => return Ok(None),
    };
    let entries = state.store.waitlist(freed.clinic_id).await?;
    for w in entries.iter().filter(|w| {
        w.status == "waiting"
            && w.type_code == freed.type_code
            && w.from_date <= day
            && day <= w.to_date
            && w.patient_id != freed.patient_id
    }) {
        let cal = state
            .store
            .calendar(
                freed.clinic_id,
                freed.starts_at - DAY,
                freed.starts_at + 2 * DAY,
                Some(w.patient_id),
            )
            .await?;
        let d = cal.day(day);
        if cal
            .try_at(
                &cal.occupancy,
                &d,
                &ty,
                w.patient_id,
                freed.starts_at,
                &Preferences::default(),
            )
            .is_err()
        {
            continue;
        }
        let mut ev = event(&w.patient_id.to_string());
        ev.object_type = Some("waitlist".into());
        ev.object_id = Some(w.id.clone());
        ev.detail = Some("offered a freed time".into());
        let jobs = crate::jobs::offer_jobs(
            &w.id,
            freed.clinic_id,
            w.patient_id,
            freed.starts_at,
            &freed.type_code,
            state.now(),
        );
        if state
            .store
            .offer_waitlist(&w.id, freed.starts_at, ev, &jobs)
            .await?
        {
            return Ok(Some(w.id.clone()));
        }
    }
    Ok(None)
}

/// Books the time a waitlist entry was offered and closes the entry.
pub async fn book_offer(
    state: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    entry: &str,
) -> Result<Appointment, Error> {
    caller.require(Permission::ScheduleBook, clinic)?;
    let w = state
        .store
        .waitlist(clinic)
        .await?
        .into_iter()
        .find(|w| w.id == entry)
        .ok_or(Error::NotFound)?;
    let Some(start) = w.offered_start else {
        return Err(Error::Conflict(
            "no time has been offered to this patient yet".into(),
        ));
    };
    let a = book(
        state,
        caller,
        clinic,
        w.patient_id,
        &w.type_code,
        start,
        &Preferences::default(),
        None,
    )
    .await?;
    let mut ev = appointment_event(
        caller,
        Action::AppointmentUpdate,
        Permission::ScheduleBook,
        clinic,
        w.patient_id,
        &a.id.to_string(),
    );
    ev.detail = Some(format!("waitlist {entry} booked"));
    state
        .store
        .close_waitlist(clinic, entry, "booked", ev)
        .await?;
    Ok(a)
}

/// A clinic's chairs and rooms (its configuration, not patient data).
pub async fn resources(
    state: &Clinic,
    clinic: ClinicId,
) -> Result<Vec<store::scheduling::ResourceRecord>, Error> {
    Ok(state.store.resources(clinic).await?)
}

/// The kinds of visit a clinic books.
pub async fn appointment_types(
    state: &Clinic,
    clinic: ClinicId,
) -> Result<Vec<AppointmentType>, Error> {
    Ok(state.store.appointment_types(clinic).await?)
}

/// The codes of a clinic's visit types in which a dose is given.
pub async fn dosing_types(state: &Clinic, clinic: ClinicId) -> Result<Vec<String>, Error> {
    Ok(state
        .store
        .appointment_types(clinic)
        .await?
        .into_iter()
        .filter(|t| t.dose)
        .map(|t| t.code)
        .collect())
}

/// The staff who can be booked at a clinic, with their names.
pub async fn bookable_staff(
    state: &Clinic,
    clinic: ClinicId,
) -> Result<Vec<domain::scheduling::StaffMember>, Error> {
    Ok(state.store.bookable_staff(clinic, 0, 1).await?)
}

/// One person's visits at a clinic between two instants, audited as `what`.
pub async fn staff_visits(
    state: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    user: UserId,
    (from, to): (i64, i64),
    what: &str,
) -> Result<Vec<Appointment>, Error> {
    caller.require(Permission::ScheduleRead, clinic)?;
    let appts: Vec<Appointment> = state
        .store
        .staff_appointments(user, from, to)
        .await?
        .into_iter()
        .filter(|a| a.clinic_id == clinic)
        .collect();
    audit_listing(state, caller, clinic, what, &appts).await?;
    Ok(appts)
}

/// One chair's or room's visits between two instants, audited as `what`.
pub async fn resource_visits(
    state: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    resource: ResourceId,
    (from, to): (i64, i64),
    what: &str,
) -> Result<Vec<Appointment>, Error> {
    caller.require(Permission::ScheduleRead, clinic)?;
    if !resources(state, clinic)
        .await?
        .iter()
        .any(|r| r.resource.id == resource)
    {
        return Err(Error::NotFound);
    }
    let appts = state
        .store
        .resource_appointments(resource, from, to)
        .await?;
    audit_listing(state, caller, clinic, what, &appts).await?;
    Ok(appts)
}

/// A clinic's waitlist, audited with the patients on it (`what` names the
/// place it was shown).
pub async fn waitlist(
    state: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    what: &str,
) -> Result<Vec<store::scheduling::WaitEntry>, Error> {
    caller.require(Permission::ScheduleRead, clinic)?;
    let list = state.store.waitlist(clinic).await?;
    let mut ev = caller.event(Action::AppointmentRead);
    ev.clinic_id = Some(clinic.to_string());
    ev.object_type = Some("waitlist".into());
    ev.detail = Some(format!(
        "{what}: {} entries; patients {}",
        list.len(),
        list.iter()
            .map(|w| w.patient_id.to_string())
            .collect::<Vec<_>>()
            .join(",")
    ));
    state.store.audit(vec![ev]).await?;
    Ok(list)
}

/// A visit the caller is about to change (move, cancel), found among the
/// clinics where they book; the change itself is audited.
pub async fn to_change(
    state: &Clinic,
    caller: &Caller,
    id: AppointmentId,
) -> Result<Appointment, Error> {
    let clinics = caller.require_any(Permission::ScheduleBook)?;
    state
        .store
        .appointment(id, &clinics)
        .await?
        .ok_or(Error::NotFound)
}

/// The visits of a series the caller has just booked (its booking is the
/// audited event).
pub async fn series_visits(
    state: &Clinic,
    caller: &Caller,
    series: SeriesId,
) -> Result<Vec<Appointment>, Error> {
    caller.require_any(Permission::ScheduleBook)?;
    Ok(state.store.series_appointments(series).await?)
}

/// Every visit of one patient the caller may see, audited.
pub async fn patient_visits(
    state: &Clinic,
    caller: &Caller,
    patient: PatientId,
) -> Result<Vec<Appointment>, Error> {
    let clinics = caller.require_any(Permission::ScheduleRead)?;
    let Some(p) = state.store.patient(patient, &clinics).await? else {
        return Err(Error::NotFound);
    };
    let a = state.store.patient_appointments(patient, &clinics).await?;
    audit_listing(state, caller, p.clinic_id, "patient visits", &a).await?;
    Ok(a)
}

/// Takes an entry off the clinic's waitlist.
pub async fn remove_from_waitlist(
    state: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    entry: &str,
) -> Result<(), Error> {
    caller.require(Permission::ScheduleBook, clinic)?;
    let mut ev = caller.event(Action::AppointmentUpdate);
    ev.clinic_id = Some(clinic.to_string());
    ev.object_type = Some("waitlist".into());
    ev.object_id = Some(entry.to_string());
    ev.detail = Some("removed from waitlist".into());
    Ok(state
        .store
        .close_waitlist(clinic, entry, "removed", ev)
        .await?)
}

/// A patient's visits at their clinic, for the chart (whose reading is the
/// audited event); empty for a caller who does not see the schedule there.
pub async fn visits_on_chart(
    state: &Clinic,
    caller: &Caller,
    patient: &store::patients::PatientRecord,
) -> Result<Vec<Appointment>, Error> {
    if !caller.may(Permission::ScheduleRead, patient.clinic_id) {
        return Ok(vec![]);
    }
    Ok(state
        .store
        .patient_appointments(patient.id, &[patient.clinic_id])
        .await?)
}
