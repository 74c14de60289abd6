//! Intentions: before a dosing session the patient writes what they mean to
//! hold in mind during it, on the clinic's tablet at check-in (a nurse
//! hands the tablet over) or in the portal ahead of the visit. It shows at
//! the chair. Nothing here is changed once written: a newer one for the
//! same visit is the one shown.

use domain::audit::Action;
use domain::auth::Permission;
use domain::ids::{ClinicId, PatientId};
use domain::FieldError;
use store::intentions::{Intention, NewIntention};
use store::scheduling::{Appointment, Status};
use store::treatment::Encounter;

use crate::actor::Caller;
use crate::error::Error;
use crate::portal::Portal;
use crate::Clinic;

/// The longest intention, in characters.
pub const MAX_CHARS: usize = 1000;

fn body(text: &str) -> Result<String, Error> {
    let t = text.trim();
    let n = t.chars().count();
    if n == 0 {
        return Err(Error::Invalid(vec![FieldError::new(
            "intention",
            "write a few words, or hand the tablet back without saving",
        )]));
    }
    if n > MAX_CHARS {
        return Err(Error::Invalid(vec![FieldError::new(
            "intention",
            format!("is {n} characters; at most {MAX_CHARS}"),
        )]));
    }
    Ok(t.to_string())
}

/// The visit an intention written now is for: the patient's open visit,
/// else their next booked dosing visit from today on.
pub enum Target {
    Open(Encounter),
    Booked(Appointment),
}

impl Target {
    /// In words, for the page: "today's session (checked in at 9:05 AM)".
    pub fn describe(&self, clock: &domain::time::WallClock) -> String {
        match self {
            Target::Open(e) => format!(
                "today's session (checked in at {})",
                clock.time(e.opened_at)
            ),
            Target::Booked(a) => format!("your {} on {}", a.type_name, clock.day_time(a.starts_at)),
        }
    }
}

async fn target(state: &Clinic, clinic: ClinicId, pid: PatientId) -> Result<Option<Target>, Error> {
    if let Some(e) = state
        .store
        .patient_encounters(pid)
        .await?
        .into_iter()
        .find(|e| e.status == "open" && e.clinic_id == clinic.to_string())
    {
        return Ok(Some(Target::Open(e)));
    }
    let dosing = crate::scheduling::dosing_types(state, clinic).await?;
    let now = state.now();
    Ok(state
        .store
        .patient_appointments(pid, &[clinic])
        .await?
        .into_iter()
        .filter(|a| a.status == Status::Booked && a.ends_at > now && dosing.contains(&a.type_code))
        .min_by_key(|a| a.starts_at)
        .map(Target::Booked))
}

async fn current(state: &Clinic, t: &Target) -> Result<Option<Intention>, Error> {
    Ok(match t {
        Target::Open(e) => {
            state
                .store
                .intention_for(Some(&e.id), e.appointment_id.as_deref())
                .await?
        }
        Target::Booked(a) => {
            state
                .store
                .intention_for(None, Some(&a.id.to_string()))
                .await?
        }
    })
}

/// What the intention page shows: the visit it is for and the intention
/// already written for it, if any.
pub struct Page {
    pub clinic: ClinicId,
    pub first_name: String,
    pub target: Option<Target>,
    pub current: Option<Intention>,
}

/// The intention page of a patient, as the tablet a nurse handed over
/// shows it (the caller is that nurse's session).
pub async fn page(state: &Clinic, c: &Caller, pid: PatientId) -> Result<Page, Error> {
    let p = crate::patients::read(state, c, pid).await?;
    c.require(Permission::EncounterRecord, p.clinic_id)?;
    let target = target(state, p.clinic_id, pid).await?;
    let current = match &target {
        Some(t) => current(state, t).await?,
        None => None,
    };
    Ok(Page {
        clinic: p.clinic_id,
        first_name: p
            .details
            .preferred_name
            .clone()
            .unwrap_or(p.details.given_name.clone()),
        target,
        current,
    })
}

/// Who writes it: the patient on a tablet handed over by staff (the
/// staff member's session), or the patient in their portal.
enum Writer<'a> {
    Tablet(&'a Caller),
    Portal(&'a Portal),
}

fn write_event(
    w: Writer<'_>,
    clinic: ClinicId,
    pid: PatientId,
    t: &Target,
) -> store::audit::NewAuditEvent {
    let mut ev = match w {
        Writer::Tablet(c) => c.patient_event(
            Action::IntentionWrite,
            Permission::EncounterRecord,
            clinic,
            &pid.to_string(),
        ),
        Writer::Portal(p) => p.event(Action::IntentionWrite),
    };
    ev.object_type = Some("intention".into());
    ev.detail = Some(match t {
        Target::Open(e) => format!("at check-in, encounter {}", e.id),
        Target::Booked(a) => format!("ahead of appointment {}", a.id),
    });
    ev
}

async fn write(
    state: &Clinic,
    ev: store::audit::NewAuditEvent,
    clinic: ClinicId,
    pid: PatientId,
    t: &Target,
    text: &str,
    source: &str,
) -> Result<String, Error> {
    let body = body(text)?;
    let (appointment, encounter) = match t {
        Target::Open(e) => (e.appointment_id.clone(), Some(e.id.clone())),
        Target::Booked(a) => (Some(a.id.to_string()), None),
    };
    Ok(state
        .store
        .insert_intention(
            &NewIntention {
                clinic,
                patient: pid,
                appointment_id: appointment.as_deref(),
                encounter_id: encounter.as_deref(),
                body: &body,
                source,
            },
            ev,
        )
        .await?)
}

fn nothing_to_write_for() -> Error {
    Error::Conflict(
        "there is no dosing session checked in or booked to write an intention for".into(),
    )
}

/// The patient writes their intention on the tablet a nurse handed them.
pub async fn write_on_tablet(
    state: &Clinic,
    c: &Caller,
    pid: PatientId,
    text: &str,
) -> Result<String, Error> {
    let p = crate::patients::read(state, c, pid).await?;
    c.require(Permission::EncounterRecord, p.clinic_id)?;
    let t = target(state, p.clinic_id, pid)
        .await?
        .ok_or_else(nothing_to_write_for)?;
    let ev = write_event(Writer::Tablet(c), p.clinic_id, pid, &t);
    write(state, ev, p.clinic_id, pid, &t, text, "tablet").await
}

/// The portal's view: the next dosing session and its intention.
pub async fn in_portal(
    state: &Clinic,
    p: &Portal,
) -> Result<(Option<Target>, Option<Intention>), Error> {
    let t = target(state, p.clinic(), p.patient()).await?;
    let current = match &t {
        Some(t) => current(state, t).await?,
        None => None,
    };
    Ok((t, current))
}

/// The patient writes their intention in the portal, for their next
/// dosing session.
pub async fn write_in_portal(state: &Clinic, p: &Portal, text: &str) -> Result<String, Error> {
    let t = target(state, p.clinic(), p.patient())
        .await?
        .ok_or_else(nothing_to_write_for)?;
    let ev = write_event(Writer::Portal(p), p.clinic(), p.patient(), &t);
    write(state, ev, p.clinic(), p.patient(), &t, text, "portal").await
}

/// The intention for a visit, for the chair view (whose read is checked
/// and audited by the view itself).
pub async fn of_encounter(state: &Clinic, e: &Encounter) -> Result<Option<Intention>, Error> {
    Ok(state
        .store
        .intention_for(Some(&e.id), e.appointment_id.as_deref())
        .await?)
}

/// A patient's intentions, newest first, for the care team: clinicians who
/// see visits or scores (a therapist's session brief included). The read is
/// audited as a chart read.
pub async fn of_patient(
    state: &Clinic,
    c: &Caller,
    pid: PatientId,
) -> Result<Vec<Intention>, Error> {
    let p = crate::patients::read(state, c, pid).await?;
    if !c.may(Permission::EncounterRead, p.clinic_id)
        && !c.may(Permission::MeasureRead, p.clinic_id)
    {
        return Err(Error::Forbidden);
    }
    Ok(state.store.patient_intentions(pid).await?)
}
