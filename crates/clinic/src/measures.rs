//! Measurement-based care: scoring and storing responses (staff entry, API,
//! questionnaire links), sending links, trends for the chart, and the safety
//! tasks a risky answer opens. Every path scores through the same engine,
//! and every risky answer opens a task in the same transaction as the answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::audit::Action;
use domain::auth::Permission;
use domain::ids::{AppointmentId, ClinicId, LinkId, PatientId, ResponseId, TaskId};
use domain::instruments::{trend, Instrument, Point, Scored, Trend};
use store::measures::{Link, NewLink, NewResponse, NewTask, Response, Source, Task};

use crate::actor::RequestMeta;
use crate::actor::{secret_hash, Caller};
use crate::error::Error;
use crate::Clinic;

const HOUR: i64 = 3_600_000_000;

/// The instrument a request names: the current version, or the exact
/// version asked for. A version that is not loaded is named as the problem.
pub fn instrument(
    state: &Clinic,
    id: &str,
    version: Option<u32>,
) -> Result<Arc<Instrument>, Error> {
    let found = match version {
        Some(v) => state.instruments.get(id, v),
        None => state.instruments.current(id),
    };
    found.cloned().ok_or_else(|| {
        let (field, msg) = match (version, state.instruments.current(id)) {
            (Some(v), Some(cur)) => (
                "instrument_version",
                format!(
                    "{} has no version {v}; the current version is {}",
                    cur.short_name, cur.version
                ),
            ),
            _ => ("instrument", format!("{id:?} is not a known instrument")),
        };
        Error::Invalid(vec![domain::FieldError::new(field, msg)])
    })
}

fn safety_title(i: &Instrument, s: &Scored, how: &str) -> String {
    let flags: Vec<&str> = s
        .flags
        .iter()
        .filter(|f| f.safety)
        .map(|f| f.label.as_str())
        .collect();
    format!("{} {how}: {}", i.short_name, flags.join("; "))
}

async fn patient_clinic(
    state: &Clinic,
    c: &Caller,
    perm: Permission,
    patient: PatientId,
) -> Result<ClinicId, Error> {
    let clinics = c.require_any(perm)?;
    match state.store.patient(patient, &clinics).await? {
        Some(p) => Ok(p.clinic_id),
        None => {
            let mut ev = c.event(Action::ResponseRead);
            ev.outcome = "not_found";
            ev.object_type = Some("patient".into());
            ev.object_id = Some(patient.to_string());
            state.store.audit(vec![ev]).await?;
            Err(Error::NotFound)
        }
    }
}

/// What recording a response gave.
pub struct Recorded {
    pub id: ResponseId,
    pub scored: Scored,
    pub instrument: Arc<Instrument>,
    pub task: Option<TaskId>,
}

/// Scores and stores answers entered by staff (or sent through the API).
#[allow(clippy::too_many_arguments)]
pub async fn record(
    state: &Clinic,
    c: &Caller,
    patient: PatientId,
    instrument_id: &str,
    version: Option<u32>,
    answers: &BTreeMap<String, i32>,
    appointment: Option<AppointmentId>,
    source: Source,
) -> Result<Recorded, Error> {
    let clinic = patient_clinic(state, c, Permission::MeasureRecord, patient).await?;
    c.require(Permission::MeasureRecord, clinic)?;
    let inst = instrument(state, instrument_id, version)?;
    let scored = inst.score(answers)?;
    if let Some(a) = appointment {
        match state.store.appointment(a, &[clinic]).await? {
            Some(appt) if appt.patient_id == patient => {}
            _ => {
                return Err(Error::Invalid(vec![domain::FieldError::new(
                    "appointment_id",
                    "is not a visit of this patient",
                )]))
            }
        }
    }
    let id = ResponseId::new();
    let task = scored.safety.then(|| NewTask {
        id: TaskId::new(),
        title: safety_title(&inst, &scored, "entered by staff"),
    });
    let now = state.now();
    let r = NewResponse {
        id,
        clinic,
        patient: Some(patient),
        lead: None,
        scored: &scored,
        instrument_hash: &inst.hash,
        source,
        link: None,
        appointment,
        entered_by: c.user_id(),
        started_at: None,
        submitted_at: now,
    };
    let mut ev = c.patient_event(
        Action::ResponseCreate,
        Permission::MeasureRecord,
        clinic,
        &patient.to_string(),
    );
    ev.object_type = Some("questionnaire_response".into());
    ev.object_id = Some(id.to_string());
    ev.detail = Some(format!("{} v{}", inst.id, inst.version));
    state
        .store
        .insert_response(&r, task.as_ref(), vec![ev])
        .await?;
    Ok(Recorded {
        id,
        scored,
        instrument: inst,
        task: task.map(|t| t.id),
    })
}

/// A patient's responses (one instrument or all); audited.
pub async fn responses(
    state: &Clinic,
    c: &Caller,
    patient: PatientId,
    instrument: Option<&str>,
) -> Result<Vec<Response>, Error> {
    audited_read(state, c, patient).await?;
    Ok(state.store.responses(patient, instrument).await?)
}

/// Checks that the caller may read the patient's scores, and records the read.
async fn audited_read(state: &Clinic, c: &Caller, patient: PatientId) -> Result<(), Error> {
    let clinic = patient_clinic(state, c, Permission::MeasureRead, patient).await?;
    c.require(Permission::MeasureRead, clinic)?;
    let mut ev = c.patient_event(
        Action::ResponseRead,
        Permission::MeasureRead,
        clinic,
        &patient.to_string(),
    );
    ev.object_type = Some("questionnaire_response".into());
    state.store.audit(vec![ev]).await?;
    Ok(())
}

/// A patient's scores for charts (no answers); audited as a read of responses.
pub async fn history(
    state: &Clinic,
    c: &Caller,
    patient: PatientId,
) -> Result<Vec<store::measures::ScorePoint>, Error> {
    audited_read(state, c, patient).await?;
    Ok(state.store.score_history(patient).await?)
}

/// One instrument's chart data for a patient.
pub struct TrendView {
    pub instrument: Arc<Instrument>,
    pub points: Vec<Point>,
    pub trend: Option<Trend>,
    pub doses: Vec<i64>,
}

/// Trends for every instrument the patient has answered, from scores
/// already read, as (instrument, total, when).
pub async fn trends(
    state: &Clinic,
    clinic: ClinicId,
    patient: PatientId,
    points: &[(&str, Option<i32>, i64)],
) -> Result<Vec<TrendView>, Error> {
    let dosing = crate::scheduling::dosing_types(state, clinic).await?;
    let doses = state.store.dose_times(patient, &dosing).await?;
    let mut by: BTreeMap<&str, Vec<Point>> = BTreeMap::new();
    for (id, total, at) in points {
        if let Some(t) = total {
            by.entry(id).or_default().push(Point { at: *at, total: *t });
        }
    }
    let mut out = Vec::new();
    for (id, points) in by {
        let Some(inst) = state.instruments.current(id).cloned() else {
            continue;
        };
        let t = inst.outcome.as_ref().map(|o| trend(&points, &doses, o));
        out.push(TrendView {
            instrument: inst,
            points,
            trend: t,
            doses: doses.clone(),
        });
    }
    // The main outcome measures first.
    let rank = |id: &str| match id {
        "gad7" => 0,
        "phq9" => 1,
        _ => 2,
    };
    out.sort_by_key(|t| (rank(&t.instrument.id), t.instrument.id.clone()));
    Ok(out)
}

// ---- Links ----------------------------------------------------------------

/// Sends a patient a single-use link to one instrument (by e-mail through
/// the outbox). Returns the link and its secret token (shown once to staff).
pub async fn send_link(
    state: &Clinic,
    c: &Caller,
    patient: PatientId,
    instrument_id: &str,
    valid_hours: i64,
    reason: &str,
) -> Result<(Link, String), Error> {
    let clinic = patient_clinic(state, c, Permission::MeasureRecord, patient).await?;
    c.require(Permission::MeasureRecord, clinic)?;
    let inst = instrument(state, instrument_id, None)?;
    if inst.rater != domain::instruments::Rater::Patient {
        return Err(Error::Invalid(vec![domain::FieldError::new(
            "instrument",
            format!(
                "{} is rated by a clinician, not answered by the patient",
                inst.short_name
            ),
        )]));
    }
    if !(1..=24 * 30).contains(&valid_hours) {
        return Err(Error::Invalid(vec![domain::FieldError::new(
            "valid_hours",
            "must be between 1 and 720 hours (30 days)",
        )]));
    }
    let reason = reason.trim();
    let reason = if reason.is_empty() {
        "Sent by your care team"
    } else {
        reason
    };
    if reason.chars().count() > 200 {
        return Err(Error::Invalid(vec![domain::FieldError::new(
            "reason",
            "must be at most 200 characters",
        )]));
    }
    let (link, token) = create_link(
        state,
        clinic,
        patient,
        &inst,
        reason,
        None,
        c.user_id(),
        Some(c),
        state.now() + valid_hours * HOUR,
    )
    .await?;
    Ok((link.ok_or(Error::Conflict("already sent".into()))?, token))
}

/// Creates a link and its e-mail; `None` when `rule_key` was used already.
#[allow(clippy::too_many_arguments)]
pub async fn create_link(
    state: &Clinic,
    clinic: ClinicId,
    patient: PatientId,
    inst: &Instrument,
    reason: &str,
    rule_key: Option<String>,
    by: Option<domain::ids::UserId>,
    caller: Option<&Caller>,
    expires_at: i64,
) -> Result<(Option<Link>, String), Error> {
    let token = crate::actor::random_token(24);
    let id = LinkId::new();
    let now = state.now();
    let new = NewLink {
        id,
        clinic,
        patient,
        instrument_id: inst.id.clone(),
        instrument_version: inst.version,
        token_hash: secret_hash(&token),
        reason: reason.to_string(),
        rule_key,
        expires_at,
        created_by: by,
    };
    let mut ev = match caller {
        Some(c) => c.patient_event(
            Action::LinkCreate,
            Permission::MeasureRecord,
            clinic,
            &patient.to_string(),
        ),
        None => {
            let mut e = store::audit::NewAuditEvent::new(Action::LinkCreate, "rule");
            e.clinic_id = Some(clinic.to_string());
            e.patient_id = Some(patient.to_string());
            e
        }
    };
    ev.object_type = Some("questionnaire_link".into());
    ev.object_id = Some(id.to_string());
    ev.detail = Some(format!("{} v{}", inst.id, inst.version));
    let jobs = crate::jobs::link_jobs(id, clinic, patient, expires_at, now);
    if !state.store.insert_link(&new, ev, &jobs).await? {
        return Ok((None, token));
    }
    Ok((
        Some(Link {
            id,
            clinic_id: clinic,
            patient_id: patient,
            instrument_id: inst.id.clone(),
            instrument_version: inst.version,
            reason: reason.to_string(),
            created_at: now,
            expires_at,
            used_at: None,
        }),
        token,
    ))
}

/// Why a link cannot be answered, in words for its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProblem {
    /// Unknown or tampered token.
    Invalid,
    Expired,
    Used,
}

impl LinkProblem {
    pub fn words(self) -> (&'static str, &'static str) {
        match self {
            LinkProblem::Invalid => (
                "This link is not valid",
                "Check that you opened the whole link from the e-mail. If it still does not work, ask the clinic to send a new one.",
            ),
            LinkProblem::Expired => (
                "This link has expired",
                "Questionnaire links work for a limited time. Ask the clinic to send a new one.",
            ),
            LinkProblem::Used => (
                "This questionnaire has already been answered",
                "Each link works once, and your answers were received. Thank you.",
            ),
        }
    }
}

/// The open link behind a token, and its instrument.
pub async fn open_link(
    state: &Clinic,
    token: &str,
) -> Result<Result<(Link, Arc<Instrument>), LinkProblem>, Error> {
    if token.is_empty() || token.len() > 100 {
        return Ok(Err(LinkProblem::Invalid));
    }
    let Some(link) = state.store.link_by_hash(&secret_hash(token)).await? else {
        return Ok(Err(LinkProblem::Invalid));
    };
    if link.used_at.is_some() {
        return Ok(Err(LinkProblem::Used));
    }
    if link.expires_at <= state.now() {
        return Ok(Err(LinkProblem::Expired));
    }
    let Some(inst) = state
        .instruments
        .get(&link.instrument_id, link.instrument_version)
        .cloned()
    else {
        return Err(Error::Conflict(
            "This questionnaire is no longer available; ask the clinic to send a new one.".into(),
        ));
    };
    Ok(Ok((link, inst)))
}

/// Answers a link: scores against the link's instrument version and stores
/// the response, using up the link in the same transaction.
pub async fn answer_link(
    state: &Clinic,
    meta: &RequestMeta,
    token: &str,
    answers: &BTreeMap<String, i32>,
    started_at: Option<i64>,
) -> Result<Result<(Scored, Arc<Instrument>), LinkProblem>, Error> {
    crate::leads::limit(state, meta)?;
    let (link, inst) = match open_link(state, token).await? {
        Ok(x) => x,
        Err(p) => return Ok(Err(p)),
    };
    let scored = inst.score(answers)?;
    let id = ResponseId::new();
    let task = scored.safety.then(|| NewTask {
        id: TaskId::new(),
        title: safety_title(&inst, &scored, "answered through a link"),
    });
    let now = state.now();
    let started = started_at.filter(|s| *s >= link.created_at && *s <= now);
    let r = NewResponse {
        id,
        clinic: link.clinic_id,
        patient: Some(link.patient_id),
        lead: None,
        scored: &scored,
        instrument_hash: &inst.hash,
        source: Source::Link,
        link: Some(link.id),
        appointment: None,
        entered_by: None,
        started_at: started,
        submitted_at: now,
    };
    let mut ev = store::audit::NewAuditEvent::new(Action::ResponseCreate, "patient (link)");
    ev.clinic_id = Some(link.clinic_id.to_string());
    ev.patient_id = Some(link.patient_id.to_string());
    ev.object_type = Some("questionnaire_response".into());
    ev.object_id = Some(id.to_string());
    ev.source_ip = meta.source_ip.clone();
    ev.request_id = Some(meta.request_id.clone());
    match state
        .store
        .insert_response(&r, task.as_ref(), vec![ev])
        .await
    {
        Ok(()) => Ok(Ok((scored, inst))),
        // Two submissions of one link at once: the second finds it used.
        Err(store::StoreError::Domain(domain::DomainError::Conflict(_))) => {
            Ok(Err(LinkProblem::Used))
        }
        Err(e) => Err(e.into()),
    }
}

// ---- Rules ----------------------------------------------------------------

/// Sends the questionnaire links the rules call for at `now` (before and
/// after each dose, weekly in follow-up, monthly in maintenance). Each
/// occasion has a unique key, so running this again sends nothing twice.
/// Returns how many links were created.
pub async fn run_rules(state: &Clinic, now: i64) -> Result<usize, Error> {
    let mut dosing: Vec<String> = Vec::new();
    let org = state.store.any_org().await?;
    let clinics = match org {
        Some(o) => state.store.clinics_of_org(o).await?,
        None => vec![],
    };
    for k in &clinics {
        for t in state.store.appointment_types(k.id).await? {
            if t.dose && !dosing.contains(&t.code) {
                dosing.push(t.code);
            }
        }
    }
    let visits = state
        .store
        .dose_visits(now - 27 * 7 * 24 * HOUR, now + 60 * 24 * HOUR, &dosing)
        .await?;
    let due =
        domain::instruments::due_links(now, &visits, &domain::instruments::DEFAULT_LINK_RULES);
    let mut made = 0;
    for d in due {
        let Some(inst) = state.instruments.current(d.instrument).cloned() else {
            continue;
        };
        let (link, _) = create_link(
            state,
            d.clinic,
            d.patient,
            &inst,
            &d.reason,
            Some(d.key),
            None,
            None,
            d.expires_at,
        )
        .await?;
        made += usize::from(link.is_some());
    }
    Ok(made)
}

// ---- Tasks ----------------------------------------------------------------

/// Open tasks in the clinics where the caller reads measures: a safety task
/// names a patient and the answer that raised it, so it follows the clinical
/// permission (the front desk, who may read leads, does not see them).
pub async fn open_tasks(state: &Clinic, c: &Caller) -> Result<Vec<Task>, Error> {
    let clinics = c.clinics_with(Permission::MeasureRead);
    if clinics.is_empty() {
        return Err(Error::Forbidden);
    }
    let tasks = state.store.open_tasks(&clinics).await?;
    // The list names patients: reading it is recorded like any other read.
    let mut ev = c.event(Action::ResponseRead);
    ev.object_type = Some("task_list".into());
    // The patients the list names, as search records them.
    let mut named: Vec<String> = tasks
        .iter()
        .filter_map(|t| t.patient_id.map(|p| p.to_string()))
        .collect();
    named.sort();
    named.dedup();
    ev.detail = Some(format!(
        "{} open tasks; patients: {}",
        tasks.len(),
        named.join(",")
    ));
    state.store.audit(vec![ev]).await?;
    Ok(tasks)
}

/// Closes a task with a clinician's note; the note is required.
pub async fn close_task(state: &Clinic, c: &Caller, id: TaskId, note: &str) -> Result<Task, Error> {
    let clinics = c.clinics_with(Permission::MeasureRead);
    let task = state
        .store
        .task(id, &clinics)
        .await?
        .ok_or(Error::NotFound)?;
    c.require(Permission::TaskClose, task.clinic_id)?;
    let note = note.trim();
    if note.is_empty() {
        return Err(Error::Invalid(vec![domain::FieldError::new(
            "note",
            "is required: say what was done (who called, what was agreed)",
        )]));
    }
    if note.chars().count() > 4000 {
        return Err(Error::Invalid(vec![domain::FieldError::new(
            "note",
            "must be at most 4000 characters",
        )]));
    }
    let mut ev = c.event(Action::TaskClose);
    ev.actor_role = c
        .principal
        .acting_role(Permission::TaskClose, task.clinic_id)
        .map(|r| r.as_str().to_string());
    ev.clinic_id = Some(task.clinic_id.to_string());
    ev.patient_id = task.patient_id.map(|p| p.to_string());
    ev.object_type = Some("task".into());
    ev.object_id = Some(id.to_string());
    let user = c.user_id().ok_or(Error::Forbidden)?;
    state.store.close_task(id, user, note, ev).await?;
    state
        .store
        .task(id, &[task.clinic_id])
        .await?
        .ok_or(Error::NotFound)
}

/// How many follow-up tasks are open at the clinics where the caller reads
/// measures (a count).
pub async fn open_task_count(state: &Clinic, c: &Caller) -> Result<i64, Error> {
    let clinics = c.require_any(Permission::MeasureRead)?;
    Ok(state.store.count_open_tasks(&clinics).await?)
}

/// A patient's follow-up tasks and their ten newest questionnaire links, for
/// the measures page (whose reading of the scores is the audited event).
pub async fn tasks_and_links(
    state: &Clinic,
    c: &Caller,
    pid: PatientId,
) -> Result<(Vec<store::measures::Task>, Vec<store::measures::Link>), Error> {
    let clinics = c.require_any(Permission::MeasureRead)?;
    if state.store.patient(pid, &clinics).await?.is_none() {
        return Err(Error::NotFound);
    }
    let tasks = state.store.patient_tasks(pid).await?;
    let mut links = state.store.links(pid).await?;
    links.truncate(10);
    Ok((tasks, links))
}

/// The questionnaire link a token names, if any (the token is the patient's
/// credential; used after it was answered, to show the clinic's page).
pub async fn link_by_token(
    state: &Clinic,
    token: &str,
) -> Result<Option<store::measures::Link>, Error> {
    Ok(state.store.link_by_hash(&secret_hash(token)).await?)
}
