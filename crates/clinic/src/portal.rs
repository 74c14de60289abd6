//! The patient portal's use cases. A patient signs in through a single-use
//! link e-mailed to the address the clinic has for them (asked for on the
//! clinic's page, or sent by the front desk); the link opens a short server-side
//! session. In it they see their visits, book follow-ups and integration
//! sessions within the clinic's rules (`domain::scheduling::portal`) and cancel
//! what they booked while it is not yet late. Every read and change is audited
//! with the patient as the actor.

use domain::audit::Action;
use domain::auth::Permission;
use domain::ids::{AppointmentId, ClinicId, PatientId};
use domain::scheduling::portal::{
    booking_refusal, cancel_refusal, OwnVisit, LINK_MINUTES, SESSION_IDLE_MINUTES,
    SESSION_MAX_HOURS,
};
use domain::scheduling::{AppointmentType, Preferences};
use domain::FieldError;
use jiff::civil::Date;
use store::audit::NewAuditEvent;
use store::org::Clinic as ClinicRecord;
use store::portal::{NewPortalLink, NewPortalSession, PortalSession};
use store::scheduling::{Appointment, Status};

use crate::actor::RequestMeta;
use crate::actor::{random_token, secret_hash, Caller};
use crate::error::Error;
use crate::scheduling::{clinic_tz, local_date};
use crate::Clinic;

const MINUTE: i64 = 60_000_000;
const DAY: i64 = 86_400_000_000;
pub const COOKIE: &str = "sw_portal";
/// Days of free times one page of the booking view shows.
pub const SLOT_DAYS: i64 = 14;

/// A signed-in patient and the request they made.
#[derive(Debug, Clone)]
pub struct Portal {
    pub session: PortalSession,
    pub hash: String,
    pub meta: RequestMeta,
}

impl Portal {
    pub fn clinic(&self) -> ClinicId {
        self.session.clinic_id
    }
    pub fn patient(&self) -> PatientId {
        self.session.patient_id
    }

    /// An audit record with the patient as the actor.
    pub fn event(&self, action: Action) -> NewAuditEvent {
        let mut e = patient_actor(action, &self.meta);
        e.org_id = Some(self.session.org_id.to_string());
        e.clinic_id = Some(self.clinic().to_string());
        e.patient_id = Some(self.patient().to_string());
        e.object_type = Some("patient".into());
        e.object_id = Some(self.patient().to_string());
        e
    }

    fn visit_event(&self, action: Action, id: AppointmentId, detail: &str) -> NewAuditEvent {
        let mut e = self.event(action);
        e.object_type = Some("appointment".into());
        e.object_id = Some(id.to_string());
        e.detail = Some(detail.into());
        e
    }
}

fn patient_actor(action: Action, meta: &RequestMeta) -> NewAuditEvent {
    let mut e = NewAuditEvent::new(action, "patient (portal)");
    e.actor_role = Some("patient".into());
    e.source_ip = meta.source_ip.clone();
    e.request_id = Some(meta.request_id.clone());
    e
}

/// The session behind a portal cookie, its idle clock refreshed at most once
/// a minute.
pub async fn session(
    state: &Clinic,
    token: &str,
    meta: RequestMeta,
) -> Result<Option<Portal>, Error> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    let hash = secret_hash(token);
    let now = state.now();
    let Some(s) = state
        .store
        .portal_session(&hash, now, SESSION_IDLE_MINUTES * MINUTE)
        .await?
    else {
        return Ok(None);
    };
    if now - s.last_seen_at > MINUTE {
        state.store.touch_portal_session(&hash, now).await?;
    }
    Ok(Some(Portal {
        session: s,
        hash,
        meta,
    }))
}

async fn create_link(
    state: &Clinic,
    clinic: ClinicId,
    patient: PatientId,
    by: Option<domain::ids::UserId>,
    audit: NewAuditEvent,
    email: bool,
) -> Result<String, Error> {
    let token = random_token(32);
    let id = uuid::Uuid::now_v7().to_string();
    let expires_at = state.now() + LINK_MINUTES * MINUTE;
    let link = NewPortalLink {
        id: id.clone(),
        clinic,
        patient,
        token_hash: secret_hash(&token),
        created_by: by,
        expires_at,
    };
    let jobs = if email {
        crate::jobs::patient_link_jobs(&id, clinic, patient, "portal", expires_at, state.now())
    } else {
        vec![]
    };
    state
        .store
        .insert_portal_link(&link, &jobs, vec![audit])
        .await?;
    Ok(token)
}

/// Someone asks for a sign-in link on the clinic's page. The answer is the
/// same whether or not the address belongs to a patient, so the page cannot
/// be used to find out who is one; a link goes only to the address on file.
pub async fn request_link(
    state: &Clinic,
    meta: &RequestMeta,
    clinic: &ClinicRecord,
    email: &str,
) -> Result<(), Error> {
    crate::leads::limit(state, meta)?;
    let email = email.trim();
    let at = email.find('@');
    if email.len() > 254 || at.is_none_or(|i| i == 0 || i + 1 >= email.len()) {
        return Err(Error::Invalid(vec![FieldError::new(
            "email",
            "is not an e-mail address (it looks like name@example.com)",
        )]));
    }
    // The look-up and the link are made after the answer, so a known and
    // an unknown address take the same time to answer (the work differs:
    // a link and its e-mail job for a patient, nothing otherwise).
    let (state, meta, clinic, email) = (
        state.clone(),
        meta.clone(),
        clinic.clone(),
        email.to_string(),
    );
    tokio::spawn(async move {
        if let Err(e) = links_for_address(&state, &meta, &clinic, &email).await {
            tracing::warn!(error = ?e, "making a requested portal link failed");
        }
    });
    Ok(())
}

async fn links_for_address(
    state: &Clinic,
    meta: &RequestMeta,
    clinic: &ClinicRecord,
    email: &str,
) -> Result<(), Error> {
    for p in state.store.patients_with_email(clinic.id, email).await? {
        let mut e = patient_actor(Action::PortalLink, meta);
        e.actor_label = "public".into();
        e.actor_role = None;
        e.org_id = Some(clinic.org_id.to_string());
        e.clinic_id = Some(clinic.id.to_string());
        e.patient_id = Some(p.to_string());
        e.object_type = Some("patient".into());
        e.object_id = Some(p.to_string());
        e.detail = Some("sign-in link asked for on the clinic's page".into());
        create_link(state, clinic.id, p, None, e, true).await?;
    }
    Ok(())
}

/// The front desk e-mails a patient a sign-in link, or (`here`) opens the
/// portal on this device for the patient at the desk (a clinic tablet); the
/// token is then returned instead of sent.
pub async fn send_link(
    state: &Clinic,
    c: &Caller,
    patient: PatientId,
    here: bool,
) -> Result<Option<String>, Error> {
    let p = crate::patients::read(state, c, patient).await?;
    c.require(Permission::ScheduleBook, p.clinic_id)?;
    if !here && p.details.email.is_none() {
        return Err(Error::Invalid(vec![FieldError::new(
            "email",
            "is not on file for this patient; add it to their details first",
        )]));
    }
    let mut e = c.patient_event(
        Action::PortalLink,
        Permission::ScheduleBook,
        p.clinic_id,
        &patient.to_string(),
    );
    e.detail = Some(
        if here {
            "portal opened on a clinic device"
        } else {
            "sign-in link sent by the clinic"
        }
        .into(),
    );
    let token = create_link(state, p.clinic_id, patient, c.user_id(), e, !here).await?;
    Ok(here.then_some(token))
}

/// Whether a sign-in link can still be used (for the page that asks the
/// patient to continue; opening that page does not use the link).
pub async fn link_is_open(state: &Clinic, token: &str) -> Result<bool, Error> {
    if token.is_empty() || token.len() > 100 {
        return Ok(false);
    }
    Ok(state
        .store
        .portal_link_open(&secret_hash(token), state.now())
        .await?)
}

/// Uses a sign-in link: returns the new session's secret for the cookie and
/// its lifetime in seconds, or `None` when the link cannot be used.
pub async fn sign_in(
    state: &Clinic,
    meta: &RequestMeta,
    token: &str,
) -> Result<Option<(String, i64)>, Error> {
    crate::leads::limit(state, meta)?;
    if token.is_empty() || token.len() > 100 {
        return Ok(None);
    }
    let secret = random_token(32);
    let max = SESSION_MAX_HOURS * 60 * MINUTE;
    let s = NewPortalSession {
        id_hash: secret_hash(&secret),
        csrf_token: random_token(24),
        absolute_expires_at: state.now() + max,
    };
    let ev = patient_actor(Action::PortalSignIn, meta);
    let used = state
        .store
        .use_portal_link(&secret_hash(token), &s, ev)
        .await?;
    Ok(used.map(|_| (secret, max / 1_000_000)))
}

pub async fn sign_out(state: &Clinic, p: &Portal) -> Result<(), Error> {
    let ev = p.event(Action::PortalSignOut);
    state.store.end_portal_session(&p.hash, ev).await?;
    Ok(())
}

fn own(a: &Appointment) -> OwnVisit {
    OwnVisit {
        type_code: a.type_code.clone(),
        starts_at: a.starts_at,
        booked: a.status == Status::Booked,
        completed: a.status == Status::Completed,
        self_booked: a.self_booked,
        in_series: a.series_id.is_some(),
    }
}

/// What the portal's home shows.
pub struct Home {
    pub clinic: ClinicRecord,
    pub name: String,
    pub has_email: bool,
    /// Visits from today on, each with why it cannot be cancelled online
    /// and how it is attended (a video visit's join link).
    pub ahead: Vec<(Appointment, Option<String>, crate::scheduling::Attend)>,
    /// Past visits, newest first.
    pub past: Vec<Appointment>,
    /// Types the patient could book, each with why not (now), if so.
    pub bookable: Vec<(AppointmentType, Option<String>)>,
    /// Their invoices, newest first.
    pub invoices: Vec<crate::billing::InvoiceView>,
    /// Their scores over time, per instrument with a total, with the doses.
    pub trends: Vec<crate::measures::TrendView>,
}

/// The patient's own visits and what they may book; the read is audited.
pub async fn home(state: &Clinic, p: &Portal) -> Result<Home, Error> {
    let clinic = state.store.clinic(p.clinic()).await?;
    let me = state
        .store
        .patient(p.patient(), &[p.clinic()])
        .await?
        .ok_or(Error::NotFound)?;
    let visits = state
        .store
        .patient_appointments(p.patient(), &[p.clinic()])
        .await?;
    let types = state.store.appointment_types(p.clinic()).await?;
    let rules = state.store.scheduling_rules(p.clinic()).await?;
    let now = state.now();
    let tz = clinic_tz(state, p.clinic()).await?;
    let today = crate::scheduling::micros_of(&tz, local_date(&tz, now));
    let mine: Vec<OwnVisit> = visits.iter().map(own).collect();
    let (mut ahead, mut past) = (vec![], vec![]);
    for a in visits {
        if a.starts_at >= today {
            let ty = types.iter().find(|t| t.code == a.type_code);
            let why = cancel_refusal(ty, &own(&a), now, rules.late_cancel_hours);
            let attend = crate::scheduling::Attend::of(ty, a.id, &clinic.settings);
            ahead.push((a, why, attend));
        } else {
            past.push(a);
        }
    }
    past.reverse();
    let bookable = types
        .into_iter()
        .filter(|t| t.portal && !t.dose && crate::scheduling::offered_online(t, &clinic.settings))
        .map(|t| {
            let why = booking_refusal(&t, &mine, None, now, |m| day_number(&tz, m));
            (t, why)
        })
        // Consultations are for people new to the clinic: not offered to
        // someone already seen (the refusal says why if they try).
        .filter(|(t, why)| !(t.public && why.is_some()))
        .collect();
    let invoices = crate::billing::invoices_of(state, &p.patient().to_string()).await?;
    let scores = state.store.score_history(p.patient()).await?;
    let points: Vec<_> = scores
        .iter()
        .map(|s| (s.instrument_id.as_str(), s.total, s.submitted_at))
        .collect();
    let trends = crate::measures::trends(state, p.clinic(), p.patient(), &points).await?;
    let mut events = vec![p.event(Action::AppointmentRead)];
    if !invoices.is_empty() {
        events.push(p.event(Action::BillRead));
    }
    if !scores.is_empty() {
        events.push(p.event(Action::ResponseRead));
    }
    state.store.audit(events).await?;
    Ok(Home {
        invoices,
        trends,
        name: me
            .details
            .preferred_name
            .clone()
            .unwrap_or(me.details.given_name.clone()),
        has_email: me.details.email.is_some(),
        clinic,
        ahead,
        past,
        bookable,
    })
}

fn day_number(tz: &jiff::tz::TimeZone, m: i64) -> i64 {
    let d = local_date(tz, m);
    i64::from(d.year()) * 400 + i64::from(d.day_of_year())
}

async fn portal_type(
    state: &Clinic,
    p: &Portal,
    code: &str,
) -> Result<(AppointmentType, Vec<OwnVisit>), Error> {
    let ty = crate::scheduling::appointment_type(state, p.clinic(), code).await?;
    let clinic = state.store.clinic(p.clinic()).await?;
    if !crate::scheduling::offered_online(&ty, &clinic.settings) {
        return Err(refused(
            "the clinic has no video room set up yet; please call us".into(),
        ));
    }
    let visits = state
        .store
        .patient_appointments(p.patient(), &[p.clinic()])
        .await?;
    Ok((ty, visits.iter().map(own).collect()))
}

fn refused(why: String) -> Error {
    Error::Conflict(format!("This visit cannot be booked online: {why}."))
}

/// Free start times for a type over [`SLOT_DAYS`] days from `from`, that fit
/// the patient's other visits too.
pub async fn slots(
    state: &Clinic,
    p: &Portal,
    code: &str,
    from: Option<Date>,
) -> Result<(AppointmentType, Date, Vec<i64>), Error> {
    let (ty, mine) = portal_type(state, p, code).await?;
    let tz = clinic_tz(state, p.clinic()).await?;
    let now = state.now();
    if let Some(why) = booking_refusal(&ty, &mine, None, now, |m| day_number(&tz, m)) {
        return Err(refused(why));
    }
    let today = local_date(&tz, now);
    let from = from.filter(|d| *d > today).unwrap_or(today);
    let to = from
        .checked_add(jiff::Span::new().days(SLOT_DAYS - 1))
        .map_err(|_| Error::Invalid(vec![FieldError::new("from", "is too far in the future")]))?;
    let cal = state
        .store
        .calendar(
            p.clinic(),
            crate::scheduling::micros_of(&tz, from),
            crate::scheduling::micros_of(&tz, to) + 2 * DAY,
            Some(p.patient()),
        )
        .await?;
    let (plans, _) = cal.find_slots(
        &cal.occupancy,
        &ty,
        p.patient(),
        from,
        to,
        &Preferences::default(),
        2000,
    );
    let starts = plans
        .into_iter()
        .map(|v| v.start)
        .filter(|s| booking_refusal(&ty, &mine, Some(*s), now, |m| day_number(&tz, m)).is_none())
        .collect();
    let ev = p.event(Action::AppointmentRead);
    state.store.audit(vec![ev]).await?;
    Ok((ty, from, starts))
}

/// Books a visit the patient chose, re-checking the portal rules and the
/// calendar at that moment.
pub async fn book(
    state: &Clinic,
    p: &Portal,
    code: &str,
    start: i64,
) -> Result<Appointment, Error> {
    let (ty, mine) = portal_type(state, p, code).await?;
    let tz = clinic_tz(state, p.clinic()).await?;
    let now = state.now();
    if start < now {
        return Err(Error::Invalid(vec![FieldError::new(
            "start",
            "is in the past; choose one of the times shown",
        )]));
    }
    if let Some(why) = booking_refusal(&ty, &mine, Some(start), now, |m| day_number(&tz, m)) {
        return Err(refused(why));
    }
    let make_event =
        |id: AppointmentId| p.visit_event(Action::AppointmentCreate, id, "booked in the portal");
    crate::scheduling::book_core(
        state,
        p.clinic(),
        p.patient(),
        &ty,
        start,
        &Preferences::default(),
        None,
        &make_event,
        crate::scheduling::Booker::Portal,
    )
    .await
}

/// Cancels one of the patient's visits when the portal rules allow it, and
/// offers the freed time to the waitlist.
pub async fn cancel(state: &Clinic, p: &Portal, id: AppointmentId) -> Result<(), Error> {
    let a = state
        .store
        .appointment(id, &[p.clinic()])
        .await?
        .filter(|a| a.patient_id == p.patient())
        .ok_or(Error::NotFound)?;
    let types = state.store.appointment_types(p.clinic()).await?;
    let rules = state.store.scheduling_rules(p.clinic()).await?;
    let ty = types.iter().find(|t| t.code == a.type_code);
    let now = state.now();
    if let Some(why) = cancel_refusal(ty, &own(&a), now, rules.late_cancel_hours) {
        return Err(Error::Conflict(format!(
            "This visit cannot be cancelled online: {why}."
        )));
    }
    let ev = p.visit_event(Action::AppointmentUpdate, id, "cancelled in the portal");
    state
        .store
        .set_visit_status(
            id,
            Status::Cancelled,
            Some("cancelled by the patient in the portal"),
            false,
            ev,
        )
        .await?;
    // The offer to someone on the waitlist is the clinic's doing, not the
    // patient's: the record names the system, prompted by this cancellation.
    let event = |patient: &str| {
        let mut e = NewAuditEvent::new(Action::AppointmentUpdate, "system (portal cancellation)");
        e.org_id = Some(p.session.org_id.to_string());
        e.clinic_id = Some(a.clinic_id.to_string());
        e.patient_id = Some(patient.to_string());
        e.request_id = Some(p.meta.request_id.clone());
        e
    };
    crate::scheduling::offer_freed(state, &a, &event).await?;
    Ok(())
}
