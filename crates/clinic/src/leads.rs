//! The front door's use cases: the public self-assessment and its result,
//! free consultation times and booking (no account), and the staff's lead
//! queue. The public side never looks anyone up by name or e-mail, so it
//! cannot reveal whether someone is already a patient: every submission makes
//! a new lead, and every booking a new record that staff reconcile.

use domain::audit::Action;
use domain::auth::Permission;
use domain::ids::{LeadId, PatientId, TaskId};
use domain::leads::{assess, Assessment, AssessmentInput, LeadStatus};
use domain::patients::{PatientDetails, PatientInput};
use domain::scheduling::{AppointmentType, Preferences};
use jiff::tz::TimeZone;
use store::audit::NewAuditEvent;
use store::leads::{Lead, LeadBooking, NewLead};
use store::measures::{NewTask, Response, Task};
use store::org::Clinic as ClinicRecord;
use store::scheduling::Appointment;

use crate::actor::RequestMeta;
use crate::actor::{secret_hash, Caller};
use crate::error::Error;
use crate::Clinic;

/// Days after the assessment in which its result page can still book.
pub const BOOKING_DAYS: i64 = 14;
const DAY: i64 = 86_400_000_000;

/// Refuses a public submission beyond the per-address rate.
pub fn limit(state: &Clinic, meta: &RequestMeta) -> Result<(), Error> {
    let key = meta.source_ip.clone().unwrap_or_default();
    state
        .public_limiter
        .check_key(&key)
        .map_err(|_| Error::TooManyRequests)
}

fn public_event(
    meta: &RequestMeta,
    action: Action,
    clinic: &ClinicRecord,
    lead: LeadId,
) -> NewAuditEvent {
    let mut e = NewAuditEvent::new(action, "public");
    e.org_id = Some(clinic.org_id.to_string());
    e.clinic_id = Some(clinic.id.to_string());
    e.object_type = Some("lead".into());
    e.object_id = Some(lead.to_string());
    e.source_ip = meta.source_ip.clone();
    e.request_id = Some(meta.request_id.clone());
    e
}

pub async fn public_clinic(state: &Clinic, slug: &str) -> Result<ClinicRecord, Error> {
    state
        .store
        .clinic_by_slug(slug)
        .await?
        .ok_or(Error::NotFound)
}

pub fn clinic_today(c: &ClinicRecord, now: i64) -> jiff::civil::Date {
    TimeZone::get(&c.settings.time_zone)
        .map(|tz| domain::clinics::today_in(&tz, now))
        .unwrap_or_else(|_| crate::patients::today(now))
}

/// What a submission made: the secret of its result page, and the assessment.
pub struct Submitted {
    pub token: String,
    pub lead: LeadId,
    pub assessment: Assessment,
}

/// Scores and stores a public self-assessment. The honeypot and the rate
/// limit are checked first; nothing is written unless everything is valid.
pub async fn submit(
    state: &Clinic,
    meta: &RequestMeta,
    clinic: &ClinicRecord,
    input: &AssessmentInput,
) -> Result<Submitted, Error> {
    limit(state, meta)?;
    if input
        .website
        .as_deref()
        .is_some_and(|w| !w.trim().is_empty())
    {
        return Err(Error::bad(
            "This form could not be accepted. If you are a person, clear the hidden \"website\" field and try again.",
            Some("website"),
        ));
    }
    let a = assess(input, &state.instruments, clinic_today(clinic, state.now()))?;
    let (Some(gad), Some(phq)) = (
        state.instruments.current("gad7"),
        state.instruments.current("phq2"),
    ) else {
        return Err(Error::Internal("instruments missing".into()));
    };
    let token = crate::actor::random_token(24);
    let id = LeadId::new();
    let task = a.safety.then(|| NewTask {
        id: TaskId::new(),
        title: "Self-harm answer on the public self-assessment: contact today".into(),
    });
    let lead = NewLead {
        id,
        clinic: clinic.id,
        assessment: &a,
        result_token_hash: secret_hash(&token),
        gad7_hash: &gad.hash,
        phq2_hash: &phq.hash,
        task,
    };
    let mut ev = public_event(meta, Action::LeadCreate, clinic, id);
    ev.detail = Some(format!(
        "outcome={} safety={}",
        a.outcome.as_str(),
        a.safety
    ));
    state.store.insert_lead(&lead, ev).await?;
    Ok(Submitted {
        token,
        lead: id,
        assessment: a,
    })
}

/// The lead behind a result page; a token that matches nothing, or another
/// clinic's lead, is "not found" (the same answer for both).
pub async fn by_token(state: &Clinic, clinic: &ClinicRecord, token: &str) -> Result<Lead, Error> {
    if token.len() > 100 {
        return Err(Error::NotFound);
    }
    match state.store.lead_by_token(&secret_hash(token)).await? {
        Some(l) if l.clinic_id == clinic.id => Ok(l),
        _ => Err(Error::NotFound),
    }
}

/// The visit types the public may book (the free consultation, in person
/// and, when the clinic has a meeting link, by video), in person first.
pub async fn public_types(
    state: &Clinic,
    clinic: &ClinicRecord,
) -> Result<Vec<AppointmentType>, Error> {
    let mut types: Vec<AppointmentType> = state
        .store
        .appointment_types(clinic.id)
        .await?
        .into_iter()
        .filter(|t| t.public && crate::scheduling::offered_online(t, &clinic.settings))
        .collect();
    types.sort_by_key(AppointmentType::is_video);
    if types.is_empty() {
        return Err(Error::Conflict(
            "This clinic does not take bookings online; please call.".into(),
        ));
    }
    Ok(types)
}

/// The public type by its code (`None`: the first, in person), or why not.
pub async fn public_type(
    state: &Clinic,
    clinic: &ClinicRecord,
    code: Option<&str>,
) -> Result<AppointmentType, Error> {
    choose(&public_types(state, clinic).await?, code)
}

/// Of the public types, the one asked for by its code (`None`: the first).
pub fn choose(types: &[AppointmentType], code: Option<&str>) -> Result<AppointmentType, Error> {
    match code.map(str::trim).filter(|c| !c.is_empty()) {
        None => types.first().cloned().ok_or(Error::NotFound),
        Some(c) => types.iter().find(|t| t.code == c).cloned().ok_or_else(|| {
            Error::Invalid(vec![domain::FieldError::new(
                "type",
                "is not a visit this clinic books online",
            )])
        }),
    }
}

/// Start times of a public visit type (see [`public_type`]) over the next
/// three weeks.
pub async fn public_slots(
    state: &Clinic,
    clinic: &ClinicRecord,
    code: Option<&str>,
    limit: usize,
) -> Result<(AppointmentType, Vec<i64>), Error> {
    let ty = public_type(state, clinic, code).await?;
    let starts = public_starts(state, clinic, &ty, limit).await?;
    Ok((ty, starts))
}

/// Free start times of `ty` over the next three weeks.
pub async fn public_starts(
    state: &Clinic,
    clinic: &ClinicRecord,
    ty: &AppointmentType,
    limit: usize,
) -> Result<Vec<i64>, Error> {
    let today = clinic_today(clinic, state.now());
    let to = today
        .checked_add(jiff::Span::new().days(21))
        .unwrap_or(today);
    crate::scheduling::free_starts(state, clinic.id, ty, today, to, limit).await
}

/// The patient record a lead becomes: the details it gave, nothing retyped.
fn patient_details(lead: &Lead, clinic: &ClinicRecord, now: i64) -> Result<PatientDetails, Error> {
    let input = PatientInput {
        given_name: Some(lead.given_name.clone()),
        family_name: Some(lead.family_name.clone()),
        date_of_birth: Some(lead.date_of_birth.clone()),
        email: lead.email.clone(),
        phone: lead.phone.clone(),
        ..Default::default()
    };
    Ok(PatientDetails::validate(&input, clinic_today(clinic, now))?)
}

/// Books the free consultation from a result page: registers the person and
/// books the visit in one transaction, and queues the confirmation e-mail.
pub async fn book(
    state: &Clinic,
    meta: &RequestMeta,
    clinic: &ClinicRecord,
    token: &str,
    code: Option<&str>,
    start: i64,
) -> Result<Appointment, Error> {
    limit(state, meta)?;
    let lead = by_token(state, clinic, token).await?;
    if lead.appointment_id.is_some() {
        return Err(Error::Conflict(
            "A consultation is already booked from this assessment. To change it, call the clinic."
                .into(),
        ));
    }
    if state.now() - lead.created_at > BOOKING_DAYS * DAY {
        return Err(Error::Conflict(format!(
            "This result page is more than {BOOKING_DAYS} days old; take the assessment again or call the clinic to book."
        )));
    }
    let ty = public_type(state, clinic, code).await?;
    let details = patient_details(&lead, clinic, state.now())?;
    let booking = LeadBooking {
        lead: lead.id,
        org: clinic.org_id,
        patient: PatientId::new(),
        details,
    };
    let make_event = |id: domain::ids::AppointmentId| {
        let mut e = public_event(meta, Action::AppointmentCreate, clinic, lead.id);
        e.patient_id = Some(booking.patient.to_string());
        e.object_type = Some("appointment".into());
        e.object_id = Some(id.to_string());
        e
    };
    crate::scheduling::book_core(
        state,
        clinic.id,
        booking.patient,
        &ty,
        start,
        &Preferences::default(),
        None,
        &make_event,
        crate::scheduling::Booker::Lead(&booking),
    )
    .await
}

// ---- Staff ---------------------------------------------------------------

fn lead_event(c: &Caller, action: Action, perm: Permission, lead: &Lead) -> NewAuditEvent {
    let mut e = c.event(action);
    e.actor_role = c
        .principal
        .acting_role(perm, lead.clinic_id)
        .map(|r| r.as_str().to_string());
    e.clinic_id = Some(lead.clinic_id.to_string());
    e.patient_id = lead.patient_id.map(|p| p.to_string());
    e.object_type = Some("lead".into());
    e.object_id = Some(lead.id.to_string());
    e
}

/// The queue: leads of the caller's clinics, newest first.
pub async fn list(
    state: &Clinic,
    c: &Caller,
    status: Option<LeadStatus>,
    limit: i64,
) -> Result<Vec<Lead>, Error> {
    let clinics = c.require_any(Permission::LeadRead)?;
    let leads = state
        .store
        .leads(&clinics, status, limit.clamp(1, 500))
        .await?;
    let mut ev = c.event(Action::LeadRead);
    ev.object_type = Some("lead_queue".into());
    ev.detail = Some(format!("{} leads", leads.len()));
    state.store.audit(vec![ev]).await?;
    Ok(leads)
}

pub struct LeadView {
    pub lead: Lead,
    pub responses: Vec<Response>,
    pub tasks: Vec<Task>,
}

/// One lead with its answers and tasks; audited.
pub async fn read(state: &Clinic, c: &Caller, id: LeadId) -> Result<LeadView, Error> {
    let clinics = c.require_any(Permission::LeadRead)?;
    let Some(lead) = state.store.lead(id, &clinics).await? else {
        let mut ev = c.event(Action::LeadRead);
        ev.outcome = "not_found";
        ev.object_type = Some("lead".into());
        ev.object_id = Some(id.to_string());
        state.store.audit(vec![ev]).await?;
        return Err(Error::NotFound);
    };
    let responses = state.store.lead_responses(id).await?;
    let tasks = state.store.lead_tasks(id).await?;
    state
        .store
        .audit(vec![lead_event(
            c,
            Action::LeadRead,
            Permission::LeadRead,
            &lead,
        )])
        .await?;
    Ok(LeadView {
        lead,
        responses,
        tasks,
    })
}

async fn managed(state: &Clinic, c: &Caller, id: LeadId) -> Result<Lead, Error> {
    let clinics = c.require_any(Permission::LeadRead)?;
    let lead = state
        .store
        .lead(id, &clinics)
        .await?
        .ok_or(Error::NotFound)?;
    c.require(Permission::LeadManage, lead.clinic_id)?;
    Ok(lead)
}

/// Sets a lead's status by hand (and keeps a note).
pub async fn set_status(
    state: &Clinic,
    c: &Caller,
    id: LeadId,
    status: &str,
    note: Option<&str>,
) -> Result<(), Error> {
    let lead = managed(state, c, id).await?;
    let status = LeadStatus::parse(status).map_err(|e| Error::Invalid(vec![e]))?;
    if !status.settable() {
        return Err(Error::Invalid(vec![domain::FieldError::new(
            "status",
            "a lead becomes a patient with \"Make patient\", not by setting the status",
        )]));
    }
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > 2000) {
        return Err(Error::Invalid(vec![domain::FieldError::new(
            "note",
            "must be at most 2000 characters",
        )]));
    }
    let mut ev = lead_event(c, Action::LeadUpdate, Permission::LeadManage, &lead);
    ev.detail = Some(format!("status={}", status.as_str()));
    state.store.set_lead_status(id, status, note, ev).await?;
    Ok(())
}

/// Turns a lead into a patient without retyping: the record booked with the
/// consultation, or a new one from the lead's details. The assessment's
/// scores and any task follow into the chart.
pub async fn convert(state: &Clinic, c: &Caller, id: LeadId) -> Result<PatientId, Error> {
    let lead = managed(state, c, id).await?;
    c.require(Permission::PatientCreate, lead.clinic_id)?;
    let clinic = state.store.clinic(lead.clinic_id).await?;
    let details = patient_details(&lead, &clinic, state.now())?;
    let user = c.user_id().ok_or(Error::Forbidden)?;
    let ev = lead_event(c, Action::LeadConvert, Permission::LeadManage, &lead);
    Ok(state
        .store
        .convert_lead(&lead, clinic.org_id, &details, user, ev)
        .await?)
}

/// How many leads are in each status at the clinics where the caller reads
/// leads (counts, not patient data).
pub async fn counts(state: &Clinic, c: &Caller) -> Result<Vec<(String, i64)>, Error> {
    let clinics = c.require_any(Permission::LeadRead)?;
    Ok(state.store.lead_counts(&clinics).await?)
}

/// The visit a lead booked through its result page, as a line for that page
/// (the page's token is the patient's credential).
pub async fn booked_visit(
    state: &Clinic,
    clinic: &ClinicRecord,
    lead: &Lead,
) -> Result<Option<store::scheduling::Appointment>, Error> {
    let Some(a) = lead.appointment_id else {
        return Ok(None);
    };
    Ok(state.store.appointment(a, &[clinic.id]).await?)
}
